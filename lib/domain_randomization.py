r"""Domain randomisation: make synthetic training images look like what cameras deliver.

A network trained on clean renders learns their look: exact exposure, neutral white balance, no
noise, no blur, no compression. A photograph has all of these, so the network meets inputs it
has never seen. Randomising them during training (Tobin et al., IROS 2017, "Domain
Randomization for Transferring Deep Neural Networks from Simulation to the Real World") makes
them nuisances the network learns to ignore. :func:`camera_effects` draws, per image, what a
camera does between the light and the file; :func:`random_zoom` changes the field of view (a
longer or shorter lens) by cropping and resizing image and depth together. Neither changes the
depth of a pixel, so the targets stay exact.

Every draw comes from a ``torch.Generator`` (CPU), so a training run is reproducible.

>>> g = torch.Generator().manual_seed(0)
>>> x = torch.rand(4, 3, 16, 24)
>>> y = camera_effects(x, g)
>>> y.shape, bool(y.min() >= 0) and bool(y.max() <= 1)
(torch.Size([4, 3, 16, 24]), True)
"""
from __future__ import annotations

import io
import math

import kornia
import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["camera_effects", "random_zoom", "jpeg"]


def _u(n: int, lo: float, hi: float, g: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g)


def jpeg(image: torch.Tensor, quality: int) -> torch.Tensor:
    """One ``(3,H,W)`` image in [0,1] through a JPEG encoder at ``quality`` (Pillow) and back."""
    from PIL import Image

    arr = (image.detach().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255 + 0.5).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=int(quality))
    out = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"), dtype=np.float32) / 255
    return torch.from_numpy(out).permute(2, 0, 1).to(image)


def camera_effects(image: torch.Tensor, generator: torch.Generator | None = None, *,
                   exposure: float = 1.0, white_balance: float = 0.2, gamma: tuple[float, float] = (0.75, 1.35),
                   saturation: tuple[float, float] = (0.4, 1.3), noise: float = 0.03, p_blur: float = 0.3,
                   blur_sigma: tuple[float, float] = (0.3, 1.2), p_jpeg: float = 0.3,
                   jpeg_quality: tuple[int, int] = (30, 90), p_gray: float = 0.05) -> torch.Tensor:
    r"""Random camera processing of a batch of sRGB images, drawn per image.

    In linear light (:math:`x^{2.2}`): exposure :math:`\times 2^{e}`, :math:`e \sim U(-\text{exposure},
    \text{exposure})` stops; white balance, a gain per channel in :math:`[1 - w, 1 + w]`; then back to
    sRGB, a tone curve :math:`x^{\gamma}` (``gamma``), saturation (``saturation``, 0 = grey), sensor
    noise (Gaussian, standard deviation up to ``noise``, a signal-dependent and a constant part),
    with probability ``p_blur`` a Gaussian blur (defocus, shake), with ``p_jpeg`` a JPEG round trip,
    with ``p_gray`` grey scale. Geometry is untouched.

    Args:
        image: ``(B,3,H,W)`` float sRGB in [0,1].
        generator: a ``torch.Generator`` for every draw.

    Returns:
        ``(B,3,H,W)`` in [0,1], same dtype and device.
    """
    if not isinstance(image, torch.Tensor) or image.ndim != 4 or image.shape[1] != 3:
        raise ValueError(f"image must be a (B,3,H,W) tensor, got "
                         f"{tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__}")
    B, dev, dt = image.shape[0], image.device, image.dtype
    g = generator

    def col(v):
        return v.to(device=dev, dtype=dt).view(B, -1, 1, 1)

    ev = _u(B, -exposure, exposure, g)
    wb = _u(3 * B, 1 - white_balance, 1 + white_balance, g).view(B, 3)
    gam = _u(B, *gamma, g)
    sat = _u(B, *saturation, g)
    sig = _u(B, 0.0, noise, g)
    blur = torch.rand(B, generator=g) < p_blur
    bsig = _u(B, *blur_sigma, g)
    jp = torch.rand(B, generator=g) < p_jpeg
    quality = torch.randint(jpeg_quality[0], jpeg_quality[1] + 1, (B,), generator=g)
    gray = torch.rand(B, generator=g) < p_gray
    noise_field = torch.randn(image.shape, generator=g).to(device=dev, dtype=dt)

    lin = image.clamp(0, 1) ** 2.2 * col(2.0 ** ev) * col(wb)
    x = lin.clamp(0, 1) ** (1 / 2.2)
    x = x.clamp(1e-6, 1) ** col(gam)
    y = kornia.color.rgb_to_grayscale(x)
    x = (y + (x - y) * col(sat)).clamp(0, 1)
    x = (x + noise_field * col(sig) * (0.5 + 0.5 * x.sqrt())).clamp(0, 1)
    if bool(blur.any()):
        k = 2 * math.ceil(3 * blur_sigma[1]) + 1
        k = min(k, 2 * ((min(x.shape[-2:]) - 1) // 2) + 1)
        s = bsig.to(device=dev, dtype=dt).view(B, 1).expand(B, 2).contiguous()
        x = torch.where(col(blur.float()) > 0, kornia.filters.gaussian_blur2d(x, (k, k), s, border_type="reflect"), x)
    x = torch.where(col(gray.float()) > 0, kornia.color.rgb_to_grayscale(x).expand_as(x), x)
    if bool(jp.any()):
        x = torch.stack([jpeg(x[i], int(quality[i])) if jp[i] else x[i] for i in range(B)])
    return x.clamp(0, 1)


def random_zoom(batch: dict, generator: torch.Generator | None = None, scale: tuple[float, float] = (0.6, 1.0),
                p_flip: float = 0.5) -> dict:
    r"""A random crop of each image (side :math:`s \in` ``scale`` of the full side, same aspect ratio,
    anywhere in the frame) resized back to the full size, and a horizontal flip with ``p_flip``.

    Cropping and resizing is a lens of :math:`1/s` times the focal length: objects look bigger at the
    same depth, so the network cannot read depth from apparent size alone. ``image`` is resized
    bilinearly; ``depth``, ``valid`` and ``mask`` (when present) by nearest neighbour, so every depth
    stays a true depth. Returns a new dict with the same keys.
    """
    img = batch["image"]
    B, _, H, W = img.shape
    s = _u(B, *scale, generator)
    h = (s * H).round().clamp(2, H).long()
    w = (s * W).round().clamp(2, W).long()
    top = (torch.rand(B, generator=generator) * (H - h + 1)).floor().long()
    left = (torch.rand(B, generator=generator) * (W - w + 1)).floor().long()
    flip = torch.rand(B, generator=generator) < p_flip
    out = {k: v for k, v in batch.items()}
    for key, mode in (("image", "bilinear"), ("depth", "nearest"), ("valid", "nearest"), ("mask", "nearest")):
        if key not in batch:
            continue
        x = batch[key]
        crops = []
        for i in range(B):
            c = x[i:i + 1, :, top[i]:top[i] + h[i], left[i]:left[i] + w[i]]
            kind = c.dtype
            c = c.float()
            c = F.interpolate(c, size=(H, W), mode=mode, **({"align_corners": False} if mode == "bilinear" else {}))
            c = c.flip(-1) if flip[i] else c
            crops.append(c.to(kind))
        out[key] = torch.cat(crops)
    return out
