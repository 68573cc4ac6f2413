"""Refocus an RGB-D photograph after the fact: the command line of chapter 12.

::

    python -m lib.refocus IMAGE --depth DEPTH.png --focus X,Y --f-number 2 -o OUT.jpg
    python -m lib.refocus IMAGE --predict --focus X,Y --f-number 1.4 -o OUT.jpg
    python -m lib.refocus IMAGE --disparity PHONE_DISPARITY.png --focus X,Y --max-blur 12 -o OUT.jpg

The depth comes from a file (:func:`lib.data.depth_files.load_depth`: a 16-bit PNG in
millimetres, ``.npy`` or PFM in metres), from a disparity map as phones export it (any
scale, larger = nearer: the blur is then set by ``--max-blur``, the largest circle of
confusion in pixels, since a relative map has no metres for an f-number to act on), or
is predicted by the course's zoo model (``--predict``). The focus is the depth at pixel
``X,Y`` (the median over a 5x5 window); the lens is a thin lens of ``--focal-mm`` on a
``--sensor-mm`` wide sensor (35 mm equivalent by default: a phone's main camera is about
26 mm) at ``--f-number`` (:func:`lib.bokeh.K_from_lens`). Rendering is
:func:`lib.bokeh.render_bokeh` (layered, chapter 09). Pixels without depth take the
farthest valid depth (they are usually background beside an edge).

>>> img = torch.rand(3, 32, 48)
>>> depth = torch.linspace(1, 4, 48).expand(1, 32, 48)
>>> refocus(img, depth, (10, 16), f_number=2.0).shape
torch.Size([3, 32, 48])
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["refocus", "load_image", "predict_depth", "focus_disparity", "main"]


def load_image(path: str | Path) -> torch.Tensor:
    """(3,H,W) float sRGB in [0,1] from an 8- or 16-bit image file (gray, RGB or RGBA)."""
    import imageio.v3 as iio

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image {path} does not exist")
    arr = np.asarray(iio.imread(path))
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, -1)
    if arr.ndim != 3 or arr.shape[-1] not in (3, 4):
        raise ValueError(f"image {path} must be gray, RGB or RGBA, got shape {arr.shape}")
    peak = 65535.0 if arr.dtype == np.uint16 else 255.0
    return torch.from_numpy(arr[..., :3].astype(np.float32) / peak).permute(2, 0, 1).contiguous()


@torch.no_grad()
def predict_depth(image: torch.Tensor, model: str = "depth", size=(64, 96),
                  device="auto") -> torch.Tensor:
    """(1,H,W) depth (metres, up to the zoo model's sense of scale) of a (3,H,W) image: the
    image resized to ``size`` (the model's training size), the prediction resized back."""
    from lib import zoo

    net = zoo.load(model, device)
    dev = next(net.parameters()).device
    x = F.interpolate(image[None].to(dev), size=tuple(size), mode="bilinear", align_corners=False,
                      antialias=True)
    depth = net(x)["depth"].float()
    return F.interpolate(depth, size=image.shape[-2:], mode="bilinear", align_corners=False)[0].cpu()


def focus_disparity(disparity: torch.Tensor, valid: torch.Tensor, focus_xy) -> float:
    """The median disparity of the valid pixels in the 5x5 window around ``(x, y)``."""
    H, W = disparity.shape[-2:]
    x, y = (int(v) for v in focus_xy)
    if not (0 <= x < W and 0 <= y < H):
        raise ValueError(f"focus point (x={x}, y={y}) lies outside the {W}x{H} image")
    win = (..., slice(max(y - 2, 0), y + 3), slice(max(x - 2, 0), x + 3))
    values = disparity[win][valid[win]]
    if values.numel() == 0:
        raise ValueError(f"no valid depth within 2 px of the focus point (x={x}, y={y})")
    return float(values.median())


def refocus(image: torch.Tensor, depth: torch.Tensor, focus_xy, f_number: float = 2.0, *,
            focal_mm: float = 26.0, sensor_mm: float = 36.0, max_blur: float | None = None,
            valid: torch.Tensor | None = None, disparity: bool = False) -> torch.Tensor:
    """The photograph (3,H,W) refocused at pixel ``focus_xy`` = (x, y).

    Args:
        image: (3,H,W) sRGB in [0,1]. depth: (1,H,W) metres (or, with ``disparity=True``,
            a disparity map of any scale, larger = nearer).
        f_number, focal_mm, sensor_mm: the lens (35 mm equivalent by default).
        max_blur: when given, the aperture is set so that the largest circle of confusion is
            this many pixels (and the f-number is ignored): needed for a relative map.
        valid: (1,H,W) bool, default ``depth > 0`` and finite.
    """
    from lib.bokeh import K_from_lens, render_bokeh

    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"image must be (3,H,W), got {tuple(image.shape)}")
    if depth.dim() == 2:
        depth = depth[None]
    if depth.shape[-2:] != image.shape[-2:]:
        raise ValueError(f"the depth map is {tuple(depth.shape[-2:])} but the image is "
                         f"{tuple(image.shape[-2:])}: they must have the same size")
    depth = depth.float()
    if valid is None:
        valid = torch.isfinite(depth) & (depth > 0)
    if not valid.any():
        raise ValueError("the depth map has no valid pixel (all zero, negative or not finite)")
    disp = depth.clone() if disparity else 1.0 / depth.clamp(min=1e-6)
    disp = torch.where(valid, disp, disp[valid].min())               # holes: the farthest depth
    d_f = focus_disparity(disp, valid, focus_xy)
    if max_blur is not None:
        if not max_blur > 0:
            raise ValueError(f"max_blur must be > 0 pixels, got {max_blur!r}")
        K = float(max_blur) / max(float((disp - d_f).abs().max()), 1e-9)
    elif disparity:
        raise ValueError("a disparity map has no metric scale: give max_blur (pixels)")
    else:
        K = K_from_lens(focal_mm, f_number, sensor_mm, image.shape[-1])
    with torch.no_grad():
        out = render_bokeh(image[None], disp[None], d_f, K)
    return out[0].clamp(0, 1)


def _xy(text: str) -> tuple[int, int]:
    try:
        x, y = (int(round(float(v))) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--focus must be X,Y in pixels, got {text!r}") from None
    return x, y


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lib.refocus",
                                description="Refocus an RGB-D photograph (chapter 12).")
    p.add_argument("image", help="the photograph (PNG or JPEG)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--depth", help="depth map: 16-bit PNG (see --depth-scale), .npy or .pfm metres")
    src.add_argument("--disparity", help="a disparity map of any scale, larger = nearer (phones)")
    src.add_argument("--predict", action="store_true", help="predict depth with the zoo model")
    p.add_argument("--focus", type=_xy, required=True, help="X,Y: the pixel to focus on")
    p.add_argument("--f-number", type=float, default=2.0)
    p.add_argument("--focal-mm", type=float, default=26.0, help="35 mm equivalent focal length")
    p.add_argument("--sensor-mm", type=float, default=36.0, help="sensor width (36: full frame)")
    p.add_argument("--max-blur", type=float, default=None,
                   help="largest blur radius in pixels (replaces the f-number; needed with "
                        "--disparity)")
    p.add_argument("--depth-scale", type=float, default=1000.0, help="PNG units per metre")
    p.add_argument("-o", "--output", required=True, help="the refocused JPEG (or PNG)")
    a = p.parse_args(argv)
    import imageio.v3 as iio

    from lib.data.depth_files import load_depth

    try:
        image = load_image(a.image)
        if a.predict:
            depth, valid, is_disp = predict_depth(image), None, False
        else:
            path = a.depth or a.disparity
            if a.disparity:
                if not Path(path).is_file():
                    raise FileNotFoundError(f"disparity map {path} does not exist")
                raw = np.asarray(iio.imread(path)).astype(np.float32)
                raw = raw[..., 0] if raw.ndim == 3 else raw
                depth, is_disp = torch.from_numpy(raw)[None], True
                valid = depth > 0
                if a.max_blur is None:
                    a.max_blur = 12.0
            else:
                (depth, valid), is_disp = load_depth(path, a.depth_scale), False
            if depth.shape[-2:] != image.shape[-2:]:
                raise ValueError(f"{path} is {depth.shape[-1]}x{depth.shape[-2]} but {a.image} is "
                                 f"{image.shape[-1]}x{image.shape[-2]}: they must match")
            if not valid.any():
                raise ValueError(f"{path} has no valid pixel (every value is 0 or not finite)")
        out = refocus(image, depth, a.focus, a.f_number, focal_mm=a.focal_mm,
                      sensor_mm=a.sensor_mm, max_blur=a.max_blur, valid=valid, disparity=is_disp)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    arr = (out.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    Path(a.output).parent.mkdir(parents=True, exist_ok=True)
    if a.output.lower().endswith((".jpg", ".jpeg")):
        iio.imwrite(a.output, arr, quality=95)
    else:
        iio.imwrite(a.output, arr)
    print(f"wrote {a.output} ({arr.shape[1]}x{arr.shape[0]}, focus at {a.focus})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
