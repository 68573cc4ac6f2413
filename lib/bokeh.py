"""Depth of field after the fact: refocus an all-in-focus image with its depth map.

Thin-lens optics
----------------
A thin lens of focal length f images a point at depth S (metres in front of the lens) at the
distance v behind it given by the lens equation ``1/f = 1/S + 1/v``. The sensor sits where the
focus plane S_f is imaged sharply, at ``v_f = f S_f / (S_f - f)``. Any other point focuses at
``v != v_f``: its cone of light, which fills the aperture of diameter ``D = f/N`` (N = f-number),
meets the sensor in a disc, the circle of confusion (CoC). By similar triangles its diameter is

    c = D |v - v_f| / v = D v_f |1/v_f - 1/v| = D v_f |1/S - 1/S_f|        (lens equation twice)
      = (f^2 / N) |1/S - 1/S_f| / (1 - f/S_f)
      ~ (f^2 / N) |d - d_f|                       (S_f >> f, so v_f ~ f)

with the disparities ``d = 1/S`` and ``d_f = 1/S_f`` (1/m). The blur is LINEAR in disparity, the
same in front of and behind the focus plane. The radius is half of it, ``A f |d - d_f|`` with
``A = f/(2N)`` the aperture RADIUS; measured in pixels (f_px = f * image_width_px /
sensor_width) it is

    r = K |d - d_f|,     K = f_px * A   (pixels * metres),

which is also exactly how a ray-traced thin lens spreads a point (``lib.data.synthetic.
render_thin_lens``). :func:`coc_radius` keeps the sign: ``K (d - d_f) > 0`` in front of the focus
plane, ``< 0`` behind it. :func:`K_from_lens` gives K for a real camera.

Rendering
---------
:func:`render_bokeh` works in linear light (``image ** gamma``) and offers two renderers:

- ``"scatter"`` (the baseline): each pixel spreads its colour evenly over its own CoC (weight
  ``1/area``, so a wide CoC is faint), and every output pixel is the weighted mean of what lands
  on it. Blurred pixels are outvoted by sharp ones, so a blurred foreground does not spread over
  a sharp background and colours bleed at depth edges.
- ``"layered"`` (the default): the image is cut into depth layers by signed CoC radius; each
  layer's premultiplied colour and coverage are blurred with its own aperture kernel (FFT
  convolution) and the layers are composited back to front with "over". The parts of a layer
  hidden by nearer layers (which the lens partly sees round the occluder) are filled first by
  push-pull interpolation of that layer, so edges neither darken nor take the occluder's colour.

>>> img = torch.rand(1, 3, 32, 32)
>>> disp = torch.full((1, 1, 32, 32), 0.5)
>>> disp[..., 8:24, 8:24] = 1.0                          # a square 1 m away on a wall 2 m away
>>> out = render_bokeh(img, disp, focus_disparity=1.0, K=6.0)   # focus on the square
>>> out.shape, bool(torch.allclose(out[..., 8:24, 8:24], img[..., 8:24, 8:24], atol=1e-5))
(torch.Size([1, 3, 32, 32]), True)
>>> round(K_from_lens(50, 2.0, 36, 1000), 3)             # 50 mm f/2, full frame, 1000 px wide
17.361
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

__all__ = ["coc_radius", "K_from_lens", "render_bokeh", "focal_stack", "aperture_kernel", "layer_radii"]

Number = float | int
_EPS = 1e-8


# ----------------------------------------------------------------------------- optics


def coc_radius(disparity: torch.Tensor, focus_disparity: Number | torch.Tensor,
               K: Number | torch.Tensor) -> torch.Tensor:
    """Signed circle-of-confusion radius in pixels: ``K * (disparity - focus_disparity)``.

    Args:
        disparity: (B,1,H,W) (any shape) 1/depth in 1/m.
        focus_disparity: float or (B,) tensor, 1/S_f of the focus plane.
        K: float or (B,) tensor, pixels * metres (see :func:`K_from_lens`).

    Returns:
        Tensor shaped like ``disparity``: > 0 in front of the focus plane, < 0 behind, 0 on it.

    >>> coc_radius(torch.tensor([0.1, 0.5, 1.0]), 0.5, 10.0)
    tensor([-4.,  0.,  5.])
    """
    fd = _per_image(focus_disparity, disparity, "focus_disparity")
    k = _per_image(K, disparity, "K")
    return k * (disparity - fd)


def K_from_lens(focal_mm: float, f_number: float, sensor_width_mm: float, image_width_px: int,
                focus_distance: float | None = None) -> float:
    """The K (pixels * metres) of a real lens, so that the CoC radius is ``K |d - d_f|`` pixels.

    From the thin-lens equation (module docstring) the CoC DIAMETER on the sensor is
    ``c = (f^2/N) |d - d_f| / (1 - f/S_f)``; for ``S_f >> f`` (the default, ``focus_distance=None``)
    the last factor is 1. Halve it for the radius, express f in metres for the units of
    disparity, and convert sensor millimetres to pixels with ``image_width_px / sensor_width_mm``:

        K = (f_mm / (2 N) * 1e-3)  *  (f_mm * image_width_px / sensor_width_mm)
          =  A [m, aperture radius] *  f_px [pixels]

    Pass ``focus_distance`` (metres) to keep the exact factor ``1 / (1 - f/S_f)``.

    >>> round(K_from_lens(50, 2.0, 36, 1000), 3)      # f_px = 1388.9 px, A = 12.5 mm
    17.361
    """
    for name, v in (("focal_mm", focal_mm), ("f_number", f_number), ("sensor_width_mm", sensor_width_mm),
                    ("image_width_px", image_width_px)):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be a positive number, got {v!r}")
    f_px = focal_mm * image_width_px / sensor_width_mm
    aperture_radius_m = focal_mm / (2.0 * f_number) * 1e-3
    K = f_px * aperture_radius_m
    if focus_distance is not None:
        if not focus_distance * 1e3 > focal_mm:
            raise ValueError(f"focus_distance must be beyond the focal length, got {focus_distance!r} m")
        K /= 1.0 - focal_mm * 1e-3 / focus_distance
    return float(K)


# ----------------------------------------------------------------------------- apertures


def _shape_factor(dy: torch.Tensor, dx: torch.Tensor, blades: int, rotation: float) -> torch.Tensor:
    """Distance from the centre to the edge of the unit aperture in the direction (dy, dx):
    1 for a disc; for a regular polygon with ``blades`` corners on the unit circle (one corner
    at angle ``rotation``), ``cos(pi/n) / cos(phi - pi/n)``, phi the angle from the last corner."""
    if blades == 0:
        return torch.ones_like(dy)
    sector = 2 * math.pi / blades
    phi = torch.remainder(torch.atan2(dy, dx) - rotation, sector)
    return math.cos(math.pi / blades) / torch.cos(phi - math.pi / blades)


def _soft_inside(dy, dx, radius, blades, rotation, front):
    """Soft (anti-aliased) membership in [0,1] of the offset (dy, dx) in the aperture of
    ``radius`` pixels: 1 inside, 0 outside, a 1-px linear ramp across the edge. The spot of a point
    in FRONT of the focus plane is the aperture; behind it, the aperture point-reflected (as a
    lens inverts the cone past its focus). The radius is at least 0.5 px (a pixel covers itself)."""
    rho = torch.sqrt(dy * dy + dx * dx)
    if blades:
        h_front = _shape_factor(dy, dx, blades, rotation)
        h_back = _shape_factor(-dy, -dx, blades, rotation)
        h = torch.where(front, h_front, h_back) if isinstance(front, torch.Tensor) else (h_front if front else h_back)
        r_eff = (radius * h).clamp(min=0.5)
    else:
        r_eff = radius.clamp(min=0.5) if isinstance(radius, torch.Tensor) else max(radius, 0.5)
    return (r_eff + 0.5 - rho).clamp(0.0, 1.0)


def _ramp_kernel(radius: float, blades: int, rotation: float, front: bool) -> torch.Tensor:
    """The soft-edged aperture of ``radius`` on the integer grid, float64, normalised to sum 1."""
    R = int(math.ceil(radius + 0.5))
    o = torch.arange(-R, R + 1, dtype=torch.float64)
    dy, dx = o[:, None].expand(-1, 2 * R + 1), o[None, :].expand(2 * R + 1, -1)
    k = _soft_inside(dy, dx, float(radius), blades, rotation, front)
    return k / k.sum()


def aperture_kernel(radius: float, blades: int = 0, rotation: float = 0.0, front: bool = True,
                    device=None, dtype=torch.float32) -> torch.Tensor:
    """The normalised (sum 1) blur kernel of one point: a soft disc (``blades=0``) or regular
    polygon with ``blades`` corners on the circle of ``radius`` pixels, rotated by ``rotation``
    radians (x right, y down), point-reflected when ``front`` is False. Shape (2R+1, 2R+1);
    entry [R+dy, R+dx] is the share of light the point sends to the pixel (dy, dx) away.

    The edge is a 1-px linear ramp: each entry is about the share of its pixel's square that
    the continuous aperture covers (the quadrature of the disc integral over an area-sampled
    image), so the kernel's second moment is about ``radius^2/2 + 1/6`` px^2 (disc).

    >>> aperture_kernel(0.0)
    tensor([[0., 0., 0.],
            [0., 1., 0.],
            [0., 0., 0.]])
    """
    k = _ramp_kernel(float(radius), blades, rotation, front)
    return k.to(device=device, dtype=dtype)


def _shape_area(blades: int) -> float:
    """Area of the unit aperture (circumradius 1)."""
    return math.pi if blades == 0 else 0.5 * blades * math.sin(2 * math.pi / blades)


def layer_radii(max_radius: float, step: float = 0.15) -> list[float]:
    """The depth layers of the ``layered`` renderer, as unsigned CoC radii (pixels):
    0, 1, 2, ... with spacing ``max(1, step * r)`` until ``max_radius`` is covered. Blur radii
    that differ by a few per cent look alike, so the layers thin out as the blur grows.

    >>> layer_radii(12.0, step=0.15)
    [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.05, 9.2575, 10.646125, 12.24304375]
    """
    radii, r = [0.0], 1.0
    while True:
        radii.append(r)
        if r >= max_radius:
            return radii
        r += max(1.0, step * r)


# ----------------------------------------------------------------------------- checks


def _per_image(value, like: torch.Tensor, name: str) -> torch.Tensor:
    """A float or (B,) tensor as a tensor broadcastable against ``like`` (B,...)."""
    if isinstance(value, torch.Tensor):
        v = value.to(device=like.device, dtype=like.dtype)
        if v.dim() == 0:
            return v
        if v.dim() != 1 or (like.dim() >= 1 and v.shape[0] != like.shape[0]):
            raise ValueError(f"{name} must be a float or a (B,) tensor with B = {like.shape[0]}, got shape "
                             f"{tuple(v.shape)}")
        return v.view(-1, *([1] * (like.dim() - 1)))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return torch.tensor(float(value), device=like.device, dtype=like.dtype)
    raise TypeError(f"{name} must be a float or a (B,) tensor, got {type(value).__name__}")


def _check_inputs(image, disparity, focus_disparity, K, gamma, method, blades):
    if not isinstance(image, torch.Tensor) or not isinstance(disparity, torch.Tensor):
        raise TypeError("image and disparity must be torch tensors")
    if image.dim() != 4 or image.shape[1] != 3:
        raise ValueError(f"image must be (B,3,H,W) (or (3,H,W)), got shape {tuple(image.shape)}")
    if disparity.dim() != 4 or disparity.shape[1] != 1:
        raise ValueError(f"disparity must be (B,1,H,W) (or (1,H,W)), got shape {tuple(disparity.shape)}")
    if disparity.shape[0] != image.shape[0] or disparity.shape[-2:] != image.shape[-2:]:
        raise ValueError(f"image {tuple(image.shape)} and disparity {tuple(disparity.shape)} do not match")
    if not image.is_floating_point() or not disparity.is_floating_point():
        raise ValueError(f"image and disparity must be floating point, got {image.dtype} and {disparity.dtype}")
    if disparity.device != image.device:
        raise ValueError(f"image is on {image.device} but disparity on {disparity.device}")
    if not torch.isfinite(disparity).all():
        raise ValueError("disparity has NaN or infinite values")
    if not torch.isfinite(image).all():
        raise ValueError("image has NaN or infinite values")
    if not (isinstance(gamma, (int, float)) and gamma > 0):
        raise ValueError(f"gamma must be a positive number, got {gamma!r}")
    if method not in ("layered", "scatter"):
        raise ValueError(f"method must be 'layered' or 'scatter', got {method!r}")
    if not (isinstance(blades, int) and (blades == 0 or blades >= 3)):
        raise ValueError(f"blades must be 0 (a disc) or a polygon's number of corners >= 3, got {blades!r}")
    for name, v in (("K", K), ("focus_disparity", focus_disparity)):
        t = v if isinstance(v, torch.Tensor) else torch.tensor(float(v))
        if not torch.isfinite(t).all():
            raise ValueError(f"{name} must be finite, got {v!r}")
    k = K if isinstance(K, torch.Tensor) else torch.tensor(float(K))
    if (k < 0).any():
        raise ValueError(f"K must be >= 0 (pixels * metres), got {K!r}")


# ----------------------------------------------------------------------------- light


def _to_linear(image: torch.Tensor, gamma: float) -> torch.Tensor:
    return image.clamp(0.0, 1.0) ** gamma


def _to_srgb(linear: torch.Tensor, gamma: float, knee: float = 1e-12) -> torch.Tensor:
    """``x ** (1/gamma)`` with a straight segment below ``knee`` so the gradient stays finite at 0."""
    x = linear.clamp(0.0, 1.0)
    p = 1.0 / gamma
    return torch.where(x > knee, x.clamp(min=knee) ** p, x * knee ** (p - 1.0))


def _highlight_boost(lin: torch.Tensor, s: torch.Tensor, gain: float, threshold: float) -> torch.Tensor:
    """Brighten blurred highlights: multiply the linear colour by ``1 + gain * w^2`` where
    ``w = clamp((Y - threshold)/(1 - threshold), 0, 1)`` of the linear luminance Y, faded out on the
    focus plane (``|CoC| < 1 px``) so that sharp pixels keep their value. A clipped light source,
    spread over its CoC, then stays bright enough to show as a bokeh ball."""
    Y = 0.2126 * lin[:, 0:1] + 0.7152 * lin[:, 1:2] + 0.0722 * lin[:, 2:3]
    w = ((Y - threshold) / max(1.0 - threshold, 1e-6)).clamp(0.0, 1.0)
    return lin * (1.0 + gain * w * w * s.abs().clamp(max=1.0))


# ----------------------------------------------------------------------------- scatter


def _scatter(lin: torch.Tensor, s: torch.Tensor, blades: int, rotation: float) -> torch.Tensor:
    """Normalised scatter, one integer offset at a time (vectorised over pixels): pixel p sends
    ``inside(q - p) / area(r_p)`` of its colour to q; the output is the sum received divided by the
    sum of the weights received. Cost ~ (2R+1)^2 passes over the image."""
    B, _, H, W = lin.shape
    r = s.abs().clamp(min=0.5)
    front = s >= 0
    w = 1.0 / (_shape_area(blades) * r * r + math.pi / 12)     # area of the soft aperture
    R = int(math.ceil(float(r.max()))) + 1
    num = lin.new_zeros(B, 3, H + 2 * R, W + 2 * R)
    den = lin.new_zeros(B, 1, H + 2 * R, W + 2 * R)
    lw = lin * w
    rmax = float(r.max())
    for dy in range(-R, R + 1):
        for dx in range(-R, R + 1):
            rho = math.hypot(dy, dx)
            if rho > rmax + 0.5:
                continue
            if blades:
                ty, tx = torch.tensor(float(dy)), torch.tensor(float(dx))
                hf = float(_shape_factor(ty, tx, blades, rotation))
                hb = float(_shape_factor(-ty, -tx, blades, rotation))
                m = (torch.where(front, r * hf, r * hb).clamp(min=0.5) + (0.5 - rho)).clamp(0.0, 1.0)
            else:
                m = (r + (0.5 - rho)).clamp(0.0, 1.0)
            ys, xs = slice(R + dy, R + dy + H), slice(R + dx, R + dx + W)
            num[:, :, ys, xs] += m * lw
            den[:, :, ys, xs] += m * w
    return num[:, :, R:R + H, R:R + W] / den[:, :, R:R + H, R:R + W].clamp(min=_EPS)


# ----------------------------------------------------------------------------- layered


def _fast_size(n: int) -> int:
    """The smallest m >= n whose prime factors are 2, 3 and 5 (FFT-friendly)."""
    while True:
        k = n
        for p in (2, 3, 5):
            while k % p == 0:
                k //= p
        if k == 1:
            return n
        n += 1


def _fft_blur(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Linear (zero-padded) convolution of x (B,C,H,W) with an odd square kernel, by FFT:
    ``y[q] = sum_d x[q - d] kernel[R + d]`` (each pixel scatters the kernel around itself)."""
    H, W = x.shape[-2:]
    R = kernel.shape[-1] // 2
    Hf, Wf = _fast_size(H + R), _fast_size(W + R)
    k = torch.zeros(Hf, Wf, device=x.device, dtype=x.dtype)
    kh = min(2 * R + 1, Hf)
    kw = min(2 * R + 1, Wf)
    k[:kh, :kw] = kernel[:kh, :kw].to(x.dtype)
    k = torch.roll(k, shifts=(-R, -R), dims=(0, 1))
    y = torch.fft.irfft2(torch.fft.rfft2(x, s=(Hf, Wf)) * torch.fft.rfft2(k), s=(Hf, Wf))
    return y[..., :H, :W]


def _push_pull(values: torch.Tensor, weight: torch.Tensor, confidence: float = 2.0) -> torch.Tensor:
    """Fill in values where ``weight`` (B,1,H,W) in [0,1] is low from their surroundings.

    ``values`` (B,C,H,W) are already multiplied by ``weight``. Pull: average both down a 2x pyramid
    to 1 pixel. Push: from the coarsest level up, each level keeps its own normalised value
    ``values/weight`` with confidence ``min(1, confidence * weight)`` and takes the rest from the
    bilinearly upsampled coarser level. Returns the normalised estimate (B,C,H,W) everywhere.
    """
    levels = [(values, weight)]
    while min(levels[-1][1].shape[-2:]) > 1:
        v, w = levels[-1]
        levels.append((F.avg_pool2d(v, 2, ceil_mode=True), F.avg_pool2d(w, 2, ceil_mode=True)))
    v, w = levels[-1]
    est = v / w.clamp(min=_EPS)
    for v, w in reversed(levels[:-1]):
        up = F.interpolate(est, size=v.shape[-2:], mode="bilinear", align_corners=False)
        c = (confidence * w).clamp(max=1.0)
        est = c * (v / w.clamp(min=_EPS)) + (1.0 - c) * up
    return est


def _layer_index(s: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Fractional layer index of every pixel: linear in ``q = s|s|`` (CoC AREA, signed) between the
    two nearest layer centres, so that the mix of their two kernels has the pixel's second moment."""
    q = s * s.abs()
    qc = centres * centres.abs()
    j = torch.searchsorted(qc, q.contiguous().view(-1)).view_as(q).clamp(1, len(qc) - 1)
    lo, hi = qc[j - 1], qc[j]
    return (j - 1).to(s.dtype) + ((q - lo) / (hi - lo)).clamp(0.0, 1.0)


def _layered(lin: torch.Tensor, s: torch.Tensor, blades: int, rotation: float, layers: int | None,
             layer_step: float, fill: bool) -> torch.Tensor:
    """Layered rendering: back-to-front "over" of blurred depth layers (see render_bokeh)."""
    smin, smax = float(s.min()), float(s.max())
    if layers is None:
        ladder = layer_radii(max(-smin, smax, 0.0), layer_step)
        signed = sorted(set([-r for r in ladder] + ladder))
        lo = max(c for c in signed if c <= smin)                       # the layers around [smin, smax]
        hi = min(c for c in signed if c >= smax)
        centres = [c for c in signed if lo <= c <= hi]
    else:
        if layers < 1:
            raise ValueError(f"layers must be >= 1, got {layers}")
        centres = sorted(set([0.0] + torch.linspace(min(smin, 0.0), max(smax, 0.0), layers).tolist()))
    centres_t = torch.tensor(centres, device=s.device, dtype=torch.float64)
    if len(centres) == 1:
        t = torch.zeros_like(s)
    else:
        t = _layer_index(s.double(), centres_t).to(s.dtype)
    num = den = None
    for j, c in enumerate(centres):                                    # back to front
        a = (1.0 - (t - j).abs()).clamp(min=0.0)                       # this layer's share of each pixel
        if not bool((a > 0).any()):
            continue
        layer = torch.cat([a * lin, a], 1)                             # premultiplied colour, coverage
        if fill:
            hidden = (t - j).clamp(0.0, 1.0)                           # share in nearer layers
            if bool((hidden > 0).any()):
                layer = layer + hidden * _push_pull(layer, 1.0 - hidden)
        if c != 0.0:
            kernel = aperture_kernel(abs(c), blades, rotation, front=c > 0, device=s.device, dtype=s.dtype)
            layer = _fft_blur(layer, kernel)
        colour, alpha = layer[:, :3].clamp(min=0.0), layer[:, 3:].clamp(0.0, 1.0)
        if num is None:
            num, den = colour, alpha
        else:                                                          # "over"
            num = colour + (1.0 - alpha) * num
            den = alpha + (1.0 - alpha) * den
    return num / den.clamp(min=_EPS)


# ----------------------------------------------------------------------------- public


def render_bokeh(image: torch.Tensor, disparity: torch.Tensor, focus_disparity: Number | torch.Tensor,
                 K: Number | torch.Tensor, gamma: float = 2.2, method: str = "layered", *,
                 blades: int = 0, rotation: float = 0.0, highlight: float = 0.0,
                 highlight_threshold: float = 0.9, max_radius: float | None = None,
                 layers: int | None = None, layer_step: float = 0.15, fill: bool = True) -> torch.Tensor:
    """Depth of field from an all-in-focus image and its disparity.

    Every pixel is blurred over its circle of confusion of signed radius
    ``s = K (disparity - focus_disparity)`` pixels (:func:`coc_radius`), in linear light
    (``image ** gamma``, back with ``** (1/gamma)``): the focus plane (s = 0) stays exactly sharp,
    the blur grows linearly in disparity on both sides.

    Args:
        image: (B,3,H,W) or (3,H,W) sRGB in [0,1].
        disparity: (B,1,H,W) or (1,H,W), 1/depth in 1/m (any finite values; only differences
            from ``focus_disparity`` matter).
        focus_disparity: float or (B,) tensor, 1/S_f (1/m).
        K: float or (B,) tensor >= 0, pixels * metres (:func:`K_from_lens`). K = 0: a pinhole.
        gamma: the sRGB exponent (2.2).
        method: ``"layered"`` (occlusion-aware, default) or ``"scatter"`` (the baseline).
        blades: 0 for a round aperture, n >= 3 for a regular n-gon with corners on the CoC circle
            (``rotation`` radians, x right / y down). Points in front of the focus plane draw the
            aperture, points behind it its point reflection.
        highlight: gain of the highlight boost (0 = off): linear colours whose luminance exceeds
            ``highlight_threshold`` are brightened by up to ``1 + highlight`` before blurring
            (not on the focus plane), standing in for the light that clipping removed from the
            sharp image, so that blurred lights become visible bokeh balls.
        max_radius: clamp |CoC| to this many pixels; default (and upper bound) ``max(H, W)``: a
            blur wider than the image is clamped to the image size.
        layers: ``layered`` only: None = adaptive layers (:func:`layer_radii` with ``layer_step``,
            only those the disparity range reaches), or this many layers evenly spaced in CoC
            radius between the smallest and largest (plus the focus plane).
        fill: ``layered`` only: fill the hidden parts of each layer (push-pull) before blurring.

    Returns:
        (B,3,H,W) (or (3,H,W)) sRGB in [0,1], differentiable w.r.t. ``image``.

    ``layered``: the pixels are split between depth layers (each pixel between the two layers
    around its CoC radius, linearly in CoC area). Per layer j, back (far) to front: coverage
    ``a_j`` and premultiplied colour ``a_j * rgb``; the part of the layer hidden by nearer layers is
    filled by push-pull interpolation of what is visible at or behind it (``fill``); both are
    blurred with the layer's aperture kernel (normalised, soft edge, FFT); then
    ``num = C_j + (1 - A_j) num`` and ``den = A_j + (1 - A_j) den`` ("over"), output ``num / den``
    (the division undoes coverage lost at the image border). Consequences: an in-focus layer is
    untouched (its kernel is the identity, so sharp foreground stays exactly sharp); a blurred
    background behind it is blurred together with its own filled-in hidden part, never with the
    foreground's colour; a blurred foreground spreads over whatever is behind it and turns
    semi-transparent at its edges. Cost: two FFTs of 4 channels per layer present.

    ``scatter``: see :func:`_scatter`; exact but slow, (2R+1)^2 passes, R the largest radius.

    >>> img = torch.zeros(1, 3, 21, 21); img[..., 10, 10] = 1.0
    >>> disp = torch.ones(1, 1, 21, 21)
    >>> out = render_bokeh(img, disp, focus_disparity=0.5, K=8.0, gamma=1.0)   # CoC radius 4 px
    >>> round(float(out.sum() / 3), 4)                                         # light is kept
    1.0
    """
    squeeze = image.dim() == 3
    if squeeze:
        image = image.unsqueeze(0)
        disparity = disparity.unsqueeze(0) if disparity.dim() == 3 else disparity
    _check_inputs(image, disparity, focus_disparity, K, gamma, method, blades)
    H, W = image.shape[-2:]
    limit = float(max(H, W)) if max_radius is None else min(float(max_radius), float(max(H, W)))
    if limit < 0:
        raise ValueError(f"max_radius must be >= 0, got {max_radius!r}")
    disparity = disparity.to(image.dtype)
    s = coc_radius(disparity, focus_disparity, K).clamp(-limit, limit)
    lin = _to_linear(image, gamma)
    if highlight:
        lin = _highlight_boost(lin, s, float(highlight), float(highlight_threshold))
    if method == "scatter":
        out = _scatter(lin, s, blades, float(rotation))
    else:
        out = _layered(lin, s, blades, float(rotation), layers, float(layer_step), fill)
    out = _to_srgb(out, gamma)
    return out[0] if squeeze else out


def focal_stack(image: torch.Tensor, disparity: torch.Tensor,
                focus_disparities: Sequence[float] | torch.Tensor, K: Number | torch.Tensor,
                **kw) -> torch.Tensor:
    """One :func:`render_bokeh` per focus disparity, stacked: (B,S,3,H,W).

    ``focus_disparities``: a sequence of S floats, an (S,) tensor (the same for every image) or a
    (B,S) tensor (per image). ``kw`` go to :func:`render_bokeh`.

    >>> img, disp = torch.rand(2, 3, 16, 16), torch.rand(2, 1, 16, 16)
    >>> focal_stack(img, disp, [0.2, 0.5, 0.8], K=4.0).shape
    torch.Size([2, 3, 3, 16, 16])
    """
    if image.dim() != 4:
        raise ValueError(f"image must be (B,3,H,W), got shape {tuple(image.shape)}")
    fds = focus_disparities if isinstance(focus_disparities, torch.Tensor) else torch.tensor(
        [float(f) for f in focus_disparities])
    if fds.dim() == 1:
        fds = fds[None].expand(image.shape[0], -1)
    if fds.dim() != 2 or fds.shape[0] != image.shape[0] or fds.shape[1] < 1:
        raise ValueError(f"focus_disparities must be (S,) or (B,S) with S >= 1, got shape {tuple(fds.shape)}")
    fds = fds.to(device=image.device, dtype=image.dtype)
    return torch.stack([render_bokeh(image, disparity, fds[:, i], K, **kw) for i in range(fds.shape[1])], 1)
