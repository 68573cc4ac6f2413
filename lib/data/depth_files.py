"""Depth maps on disk: 16-bit PNG in millimetres, float32 ``.npy`` and PFM, read back exactly.

Which format to save a depth map in (chapter 12):

- ``.png``: 16-bit unsigned integers, depth in units of ``1 / depth_scale`` metres (millimetres by
  default, as Kinect and RealSense tools write them). It loses what lies between two integers
  (up to half a unit: 0.5 mm) and everything beyond 65.535 m; 0 means "no depth". Every image
  viewer opens it, and it is what :class:`lib.data.ImageDepthFolder` reads.
- ``.npy``: float32 metres, exact; NaN (or 0) where there is no depth. Numpy only.
- ``.pfm``: float32 metres, exact, the Portable Float Map of Middlebury and many stereo tools
  (a text header ``Pf``, width and height, a scale whose sign gives the byte order, then rows
  bottom to top).

An 8-bit PNG (what many demo scripts save) keeps 256 levels over the whole range: 1.2 cm steps
at 3 m. Use :func:`colorize` for a preview to look at, never as data.

>>> import tempfile, os
>>> d = torch.tensor([[[1.0, 2.5], [0.0, 4.25]]])
>>> path = os.path.join(tempfile.mkdtemp(), "a.pfm")
>>> save_depth(path, d)
>>> depth, valid = load_depth(path)
>>> depth.tolist(), valid.tolist()
([[[1.0, 2.5], [0.0, 4.25]]], [[[True, True], [False, True]]])
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import torch

__all__ = ["save_depth", "load_depth", "colorize", "DEPTH_EXTS"]

DEPTH_EXTS = (".png", ".npy", ".pfm")
_UINT16_MAX = 65535


def _as_array(depth) -> np.ndarray:
    arr = depth.detach().cpu().numpy() if isinstance(depth, torch.Tensor) else np.asarray(depth)
    arr = np.squeeze(arr)
    if arr.ndim != 2:
        raise ValueError(f"depth must be one map (H,W), (1,H,W) or (1,1,H,W), got shape "
                         f"{tuple(np.shape(depth))}")
    if not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"depth must be numeric, got {arr.dtype}")
    return arr.astype(np.float64)


def _ext(path: Path) -> str:
    ext = path.suffix.lower()
    if ext not in DEPTH_EXTS:
        raise ValueError(f"{path}: unknown depth format {ext!r}; use one of {', '.join(DEPTH_EXTS)}")
    return ext


def _write_pfm(path: Path, arr: np.ndarray) -> None:
    h, w = arr.shape
    little = sys.byteorder == "little"
    with open(path, "wb") as f:
        f.write(f"Pf\n{w} {h}\n{-1.0 if little else 1.0}\n".encode("ascii"))
        f.write(np.ascontiguousarray(arr[::-1], dtype=np.float32).tobytes())


def _read_pfm(path: Path) -> np.ndarray:
    with open(path, "rb") as f:
        kind = f.readline().strip()
        if kind not in (b"Pf", b"PF"):
            raise ValueError(f"{path} is not a PFM file (its header is {kind[:10]!r})")
        try:
            w, h = (int(v) for v in f.readline().split())
            scale = float(f.readline().strip())
        except ValueError:
            raise ValueError(f"{path}: unreadable PFM header") from None
        channels = 3 if kind == b"PF" else 1
        body = f.read()
    if len(body) != 4 * w * h * channels:
        raise ValueError(f"{path}: PFM of {w}x{h}x{channels} needs {4 * w * h * channels} bytes "
                         f"of floats, the file has {len(body)} (truncated?)")
    data = np.frombuffer(body, dtype="<f4" if scale < 0 else ">f4")
    arr = data.reshape(h, w, channels)[::-1]
    return arr[..., 0].astype(np.float32)


def save_depth(path: str | os.PathLike, depth, depth_scale: float = 1000.0) -> None:
    """Write one depth map in metres; the format follows the extension (module docstring).

    Args:
        path: ``.png`` (16-bit, ``round(depth * depth_scale)``), ``.npy`` or ``.pfm`` (float32).
        depth: ``(H,W)``, ``(1,H,W)`` or ``(1,1,H,W)`` metres, tensor or array; 0, negative and
            non-finite values mean "no depth" (written as 0, or NaN in the float formats).
        depth_scale: PNG units per metre (1000: millimetres).

    Raises ValueError for an unknown extension, a depth beyond what a 16-bit PNG holds
    (``65535 / depth_scale`` m: pass a smaller ``depth_scale``), or a bad shape.
    """
    path = Path(path)
    ext = _ext(path)
    arr = _as_array(depth)
    valid = np.isfinite(arr) & (arr > 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    if ext == ".png":
        import imageio.v3 as iio

        if not (float(depth_scale) > 0 and np.isfinite(depth_scale)):
            raise ValueError(f"depth_scale must be a positive number, got {depth_scale!r}")
        units = np.where(valid, np.round(np.where(valid, arr, 0) * depth_scale), 0)
        if units.max(initial=0) > _UINT16_MAX:
            raise ValueError(f"{path}: depth up to {arr[valid].max():.3f} m does not fit a 16-bit "
                             f"PNG at {depth_scale:g} units per metre (at most "
                             f"{_UINT16_MAX / depth_scale:.3f} m); pass a smaller depth_scale")
        iio.imwrite(path, units.astype(np.uint16))
        return
    out = np.where(valid, arr, np.nan).astype(np.float32)
    if ext == ".npy":
        np.save(path, out)
    else:
        _write_pfm(path, out)


def load_depth(path: str | os.PathLike, depth_scale: float = 1000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Read a depth map written by :func:`save_depth` (or any 16-bit PNG, ``.npy`` or PFM).

    Returns ``(depth, valid)``: ``(1,H,W)`` float32 metres (0 where invalid) and ``(1,H,W)``
    bool (finite and > 0). Integer PNGs are divided by ``depth_scale``.
    """
    path = Path(path)
    ext = _ext(path)
    if not path.is_file():
        raise FileNotFoundError(f"depth file {path} does not exist")
    if ext == ".png":
        import imageio.v3 as iio

        raw = np.asarray(iio.imread(path))
        if raw.ndim == 3 and raw.shape[-1] == 1:
            raw = raw[..., 0]
        if raw.ndim != 2 or not np.issubdtype(raw.dtype, np.integer):
            raise ValueError(f"{path}: a depth PNG must be single-channel integers, got "
                             f"{raw.dtype} {raw.shape}")
        arr = raw.astype(np.float64) / depth_scale
    elif ext == ".npy":
        arr = np.load(path, allow_pickle=False)
        arr = np.squeeze(arr)
        if arr.ndim != 2:
            raise ValueError(f"{path}: expected one (H,W) map, got shape {arr.shape}")
    else:
        arr = _read_pfm(path)
    arr = np.asarray(arr, dtype=np.float64)
    valid = np.isfinite(arr) & (arr > 0)
    depth = torch.from_numpy(np.where(valid, arr, 0.0).astype(np.float32))[None]
    return depth, torch.from_numpy(valid)[None]


def colorize(depth, valid=None, cmap: str = "magma_r") -> np.ndarray:
    """A colour-mapped preview (H,W,3) uint8 of a depth map, near = bright with ``magma_r``:
    for looking at, not for storing depth (it keeps 256 levels and no units)."""
    import matplotlib

    arr = _as_array(depth)
    ok = np.isfinite(arr) & (arr > 0) if valid is None else np.squeeze(np.asarray(valid, bool))
    if not ok.any():
        raise ValueError("the depth map has no valid pixel to colour")
    lo, hi = np.percentile(arr[ok], [1, 99])
    x = np.clip((arr - lo) / max(hi - lo, 1e-9), 0, 1)
    rgb = matplotlib.colormaps[cmap](x)[..., :3]
    rgb[~ok] = 0.5
    return (rgb * 255).round().astype(np.uint8)
