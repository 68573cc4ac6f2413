r"""Strong colour perturbation of the student's input (UniMatch / Depth Anything).

The teacher labels the *clean* image; the student sees a strongly perturbed copy and must give
the same depth. Colour, contrast and sharpness change nothing about the geometry of a scene,
so the student is pushed to read depth from shapes rather than from colours, and it cannot
simply copy the teacher (whose input it never sees). The recipe of the reference code, applied
independently to each image of the batch:

- colour jitter with probability ``p_jitter`` (0.8): brightness :math:`x \cdot b`, contrast
  :math:`(x - \bar y)\,c + \bar y` (:math:`\bar y` the mean grey level), saturation
  :math:`y + (x - y)\,s` (:math:`y` the grey image), each factor uniform in
  :math:`[1 - j, 1 + j]` with j = 0.5, and a hue rotation by :math:`2\pi h`, h uniform in
  [-0.25, 0.25] (``kornia.enhance.adjust_hue``), clipping to [0, 1] after each step; the four
  are applied **in a random order**, drawn per image, as torchvision's ``ColorJitter``
  (``torch.randperm(4)``: the order matters, e.g. saturation before or after a hue turn);
- grey scale with probability ``p_gray`` (0.2) (``kornia.color.rgb_to_grayscale``, Rec. 601);
- Gaussian blur with probability ``p_blur`` (0.5), sigma uniform in ``blur_sigma`` pixels
  (``kornia.filters.gaussian_blur2d``, reflected borders).

The geometry is untouched: depth, valid and masks need no change. Every draw comes from
``generator`` (on the CPU), so a run is reproducible on any device.

Reference: ``LiheYoung/UniMatch``, ``dataset/semi.py`` (the strong view, reused by Depth
Anything): ``ColorJitter(0.5, 0.5, 0.5, 0.25)`` with p 0.8, ``RandomGrayscale(p=0.2)``, PIL
Gaussian blur with p 0.5 and radius U(0.1, 2). Differences: the grey weights are Rec. 601
(0.299, 0.587, 0.114) where torchvision uses (0.2989, 0.587, 0.114); kornia's Gaussian blur on
a kernel of ``2 ceil(3 sigma_max) + 1`` taps with reflected borders stands in for PIL's
(box-filter approximation of a Gaussian); the image stays a float tensor throughout (PIL works on
8-bit images and rounds after each step).

>>> g = torch.Generator().manual_seed(0)
>>> out = strong_perturbation(torch.rand(2, 3, 16, 16), generator=g)
>>> out.shape, bool(out.min() >= 0) and bool(out.max() <= 1)
(torch.Size([2, 3, 16, 16]), True)
"""
from __future__ import annotations

import math

import kornia
import torch

__all__ = ["strong_perturbation"]


def _u(n: int, lo: float, hi: float, generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=generator)


def strong_perturbation(image: torch.Tensor, generator: torch.Generator | None = None, *,
                        p_jitter: float = 0.8, brightness: float = 0.5, contrast: float = 0.5,
                        saturation: float = 0.5, hue: float = 0.25, p_gray: float = 0.2,
                        p_blur: float = 0.5, blur_sigma: tuple[float, float] = (0.1, 2.0)) -> torch.Tensor:
    r"""Colour jitter, grey scale and Gaussian blur, each drawn per image (see the module docstring).

    Args:
        image: ``(B,3,H,W)`` float sRGB in [0, 1].
        generator: ``torch.Generator`` for every random draw.
        p_jitter, p_gray, p_blur: probability of each of the three stages.
        brightness, contrast, saturation: jitter strength j in [0, 1): factors in [1-j, 1+j].
        hue: in [0, 0.5]: hue shift in turns, uniform in [-hue, hue].
        blur_sigma: ``(lo, hi)`` standard deviation of the blur in pixels.

    Returns:
        ``(B,3,H,W)`` in [0, 1], same dtype and device. Differentiable in ``image``.
    """
    if not isinstance(image, torch.Tensor) or image.ndim != 4 or image.shape[1] != 3:
        raise ValueError(f"image must be a (B,3,H,W) tensor, got "
                         f"{tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__}")
    if not image.is_floating_point():
        raise TypeError(f"image must be float in [0,1], got {image.dtype}")
    for name, p in (("p_jitter", p_jitter), ("p_gray", p_gray), ("p_blur", p_blur)):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{name} is a probability and must lie in [0, 1], got {p!r}")
    for name, j in (("brightness", brightness), ("contrast", contrast), ("saturation", saturation)):
        if not 0.0 <= j < 1.0:
            raise ValueError(f"{name} must lie in [0, 1) (factors in [1-j, 1+j]), got {j!r}")
    if not 0.0 <= hue <= 0.5:
        raise ValueError(f"hue must lie in [0, 0.5] turns, got {hue!r}")
    if not (len(blur_sigma) == 2 and 0.0 < blur_sigma[0] <= blur_sigma[1]):
        raise ValueError(f"blur_sigma must be (lo, hi) with 0 < lo <= hi, got {blur_sigma!r}")

    B, dev, dt = image.shape[0], image.device, image.dtype

    def col(v: torch.Tensor) -> torch.Tensor:                          # (B,) -> (B,1,1,1) on the device
        return v.to(device=dev, dtype=dt).view(B, 1, 1, 1)

    # all draws first, in a fixed order, so that they do not depend on which stages run
    jit = torch.rand(B, generator=generator) < p_jitter
    order = torch.stack([torch.randperm(4, generator=generator) for _ in range(B)])   # (B, 4)
    b = _u(B, 1 - brightness, 1 + brightness, generator)
    c = _u(B, 1 - contrast, 1 + contrast, generator)
    s = _u(B, 1 - saturation, 1 + saturation, generator)
    h = _u(B, -hue, hue, generator)
    gray = torch.rand(B, generator=generator) < p_gray
    blur = torch.rand(B, generator=generator) < p_blur
    sigma = _u(B, blur_sigma[0], blur_sigma[1], generator)

    x = image.clamp(0, 1)
    # colour jitter: factor 1 (and hue 0) for the images that skip it
    b, c, s = (torch.where(jit, v, torch.ones(B)) for v in (b, c, s))
    h = torch.where(jit, h, torch.zeros(B))

    def brightness_(x):
        return (x * col(b)).clamp(0, 1)

    def contrast_(x):
        mean_gray = kornia.color.rgb_to_grayscale(x).mean((1, 2, 3), keepdim=True)
        return ((x - mean_gray) * col(c) + mean_gray).clamp(0, 1)

    def saturation_(x):
        y = kornia.color.rgb_to_grayscale(x)
        return (y + (x - y) * col(s)).clamp(0, 1)

    def hue_(x):
        return kornia.enhance.adjust_hue(x, (2 * math.pi * h).to(device=dev, dtype=dt)).clamp(0, 1)

    ops = (brightness_, contrast_, saturation_, hue_)          # torchvision's indices 0..3
    for step in range(4):                                     # image i applies ops[order[i, step]]
        out = x
        for k, op in enumerate(ops):
            out = torch.where(col((order[:, step] == k).float()) > 0, op(x), out)
        x = out
    # grey scale
    x = torch.where(col(gray.float()) > 0, kornia.color.rgb_to_grayscale(x).expand_as(x), x)
    # Gaussian blur with a per-image sigma (kernel wide enough for the largest one)
    if bool(blur.any()):
        k = 2 * math.ceil(3 * blur_sigma[1]) + 1
        k = min(k, 2 * ((min(x.shape[-2:]) - 1) // 2) + 1)             # reflection needs k <= side
        sig = sigma.to(device=dev, dtype=dt).view(B, 1).expand(B, 2).contiguous()
        blurred = kornia.filters.gaussian_blur2d(x, (k, k), sig, border_type="reflect")
        x = torch.where(col(blur.float()) > 0, blurred, x)
    return x.clamp(0, 1)
