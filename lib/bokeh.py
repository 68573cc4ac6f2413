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
:func:`render_bokeh` works in linear light (``image ** gamma``) and has two renderers:

- ``"scatter"``, the baseline, BokehMe's classical renderer (Peng et al., CVPR 2022): every pixel
  spreads its colour over its own CoC with a soft-edged weight ``~ 1/(r^2 + 0.2)`` (so a wide CoC
  is faint) and every output pixel is the weighted mean of what lands on it. Sharp pixels outvote
  blurred ones: a blurred foreground hardly spreads over a sharp background, and a blurred
  background bleeds into a sharp foreground.
- ``"layered"``, the default: the image is cut into depth layers by signed CoC; each layer's
  premultiplied colour and coverage are blurred with its own aperture kernel (FFT) and the layers
  are composited back to front. Pixels in front of a depth edge occlude what is behind them
  ("over"); along a continuous surface the layers just add up. What occluders hide is filled in
  (push-pull) before blurring, so that the lens can look round a blurred occluder's rim.

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

from lib import checks

__all__ = ["coc_radius", "K_from_lens", "render_bokeh", "focal_stack", "aperture_kernel", "layer_radii"]

Number = float | int
_EPS = 1e-8
_LOWRES_RADIUS = 4.0   # a blur done at reduced resolution keeps a kernel of at least this radius


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
    fd = checks.per_image(focus_disparity, disparity, "focus_disparity")
    k = checks.per_image(K, disparity, "K")
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


def layer_radii(max_radius: float, step: float = 0.3) -> list[float]:
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


def check_image_and_disparity(image: torch.Tensor, disparity: torch.Tensor, unbatched_ok: bool = False) -> None:
    """Raise a clear error unless ``image`` (B,3,H,W) and ``disparity`` (B,1,H,W) are finite float
    tensors of matching batch and size on one device (shared by the renderers and the learned ones).
    ``unbatched_ok`` only changes the message: the caller also accepts (3,H,W) / (1,H,W)."""
    alt = " (or (3,H,W))" if unbatched_ok else ""
    if not isinstance(image, torch.Tensor) or not isinstance(disparity, torch.Tensor):
        raise TypeError("image and disparity must be torch tensors")
    if image.dim() != 4 or image.shape[1] != 3:
        raise ValueError(f"image must be (B,3,H,W){alt}, got shape {tuple(image.shape)}")
    if disparity.dim() != 4 or disparity.shape[1] != 1:
        raise ValueError(f"disparity must be (B,1,H,W){alt.replace('3', '1')}, got shape {tuple(disparity.shape)}")
    if disparity.shape[0] != image.shape[0] or disparity.shape[-2:] != image.shape[-2:]:
        raise ValueError(f"image {tuple(image.shape)} and disparity {tuple(disparity.shape)} do not match")
    if not image.is_floating_point() or not disparity.is_floating_point():
        raise ValueError(f"image and disparity must be floating point, got {image.dtype} and {disparity.dtype}")
    if disparity.device != image.device:
        raise ValueError(f"image is on {image.device} but disparity on {disparity.device}")
    for name, x in (("disparity", disparity), ("image", image)):
        if not torch.isfinite(x).all():
            raise ValueError(f"{name} must be finite (no NaN or inf)")


def _check_inputs(image, disparity, focus_disparity, K, gamma, method, blades):
    check_image_and_disparity(image, disparity, unbatched_ok=True)
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
    """BokehMe's classical scatter, one integer offset at a time (vectorised over pixels).

    Pixel p of radius r = |s_p| sends ``w = (0.5 + 0.5 tanh(4 (r_e - |q - p|))) / (r^2 + 0.2)`` of
    its colour to every q with ``max(|dy|, |dx|) <= floor(r) + 1`` (``r_e = r``; for a polygon,
    ``r`` times the aperture's extent in that direction); the output is the sum received divided
    by the sum of the weights received. Cost ~ (2R+1)^2 passes over the image."""
    B, _, H, W = lin.shape
    r = s.abs()
    front = s >= 0
    w0 = 1.0 / (r * r + 0.2)
    reach = torch.floor(r) + 1                                  # the square window of each pixel
    R = int(float(reach.max()))
    num = lin.new_zeros(B, 3, H + 2 * R, W + 2 * R)
    den = lin.new_zeros(B, 1, H + 2 * R, W + 2 * R)
    for dy in range(-R, R + 1):
        for dx in range(-R, R + 1):
            rho = math.hypot(dy, dx)
            if blades:
                ty, tx = torch.tensor(float(dy)), torch.tensor(float(dx))
                hf = float(_shape_factor(ty, tx, blades, rotation))
                hb = float(_shape_factor(-ty, -tx, blades, rotation))
                r_e = torch.where(front, r * hf, r * hb)
            else:
                r_e = r
            m = (0.5 + 0.5 * torch.tanh(4.0 * (r_e - rho))) * w0
            m = torch.where(reach >= max(abs(dy), abs(dx)), m, torch.zeros_like(m))
            ys, xs = slice(R + dy, R + dy + H), slice(R + dx, R + dx + W)
            num[:, :, ys, xs] += m * lin
            den[:, :, ys, xs] += m
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
    Hf, Wf = _fast_size(max(H + R, 2 * R + 1)), _fast_size(max(W + R, 2 * R + 1))
    k = torch.zeros(Hf, Wf, device=x.device, dtype=x.dtype)
    k[:2 * R + 1, :2 * R + 1] = kernel.to(x.dtype)
    k = torch.roll(k, shifts=(-R, -R), dims=(0, 1))                    # centre at (0, 0)
    y = torch.fft.irfft2(torch.fft.rfft2(x, s=(Hf, Wf)) * torch.fft.rfft2(k), s=(Hf, Wf))
    return y[..., :H, :W]


def _push_pull(values: torch.Tensor, weight: torch.Tensor, start: int = 4, confidence: float = 2.0) -> torch.Tensor:
    """Fill in ``values`` (B,C,H,W) where ``weight`` (B,1,H,W) in [0,1] is low, from around.

    ``values`` are already multiplied by ``weight``. Pull: average both down a pyramid, from 1/``start``
    of the resolution (the fill is smooth anyway) halving to one pixel. Push: from the coarsest level
    up, each level keeps its own normalised value ``values / weight`` with confidence
    ``min(1, confidence * weight)`` and takes the rest from the coarser level (bilinear). Returns the
    normalised estimate (B,C,H,W) everywhere.
    """
    H, W = values.shape[-2:]
    levels = [(F.avg_pool2d(values, start, ceil_mode=True), F.avg_pool2d(weight, start, ceil_mode=True))]
    while min(levels[-1][1].shape[-2:]) > 1:
        v, w = levels[-1]
        levels.append((F.avg_pool2d(v, 2, ceil_mode=True), F.avg_pool2d(w, 2, ceil_mode=True)))
    v, w = levels[-1]
    est = v / w.clamp(min=_EPS)
    for v, w in reversed(levels[:-1]):
        up = F.interpolate(est, size=v.shape[-2:], mode="bilinear", align_corners=False)
        c = (confidence * w).clamp(max=1.0)
        est = c * (v / w.clamp(min=_EPS)) + (1.0 - c) * up
    return F.interpolate(est, size=(H, W), mode="bilinear", align_corners=False)


def _downsample(x: torch.Tensor, f: int) -> torch.Tensor:
    """Shrink (B,C,H,W) by an even factor f with the adjoint of bilinear upsampling (a tent of width
    2f, weights summing to 1): unlike f x f box averaging it keeps where within a cell a light sits,
    so that ``F.interpolate(..., scale_factor=f, mode="bilinear")`` puts it back in place."""
    H, W = x.shape[-2:]
    x = F.pad(x, (0, (-W) % f, 0, (-H) % f))
    C = x.shape[1]
    t = (torch.arange(2 * f, device=x.device, dtype=x.dtype) + 0.5) / f - 1.0
    tent = (1.0 - t.abs()) / f
    x = F.conv2d(x, tent.view(1, 1, -1, 1).expand(C, 1, -1, 1), stride=(f, 1), padding=(f // 2, 0), groups=C)
    return F.conv2d(x, tent.view(1, 1, 1, -1).expand(C, 1, 1, -1), stride=(1, f), padding=(0, f // 2), groups=C)


def _lower_envelope(s: torch.Tensor, slope: float) -> torch.Tensor:
    """``min_q s(q) + slope * |p - q|_1`` at every pixel p of s (B,1,H,W): the lowest surface of
    gradient ``slope`` (px of CoC per px) lying on or under s. Exact, with running minima along
    the rows, then the columns (an L1 distance transform)."""
    for dim in (-1, -2):
        n = s.shape[dim]
        shape = [1] * s.dim()
        shape[dim] = n
        ramp = (torch.arange(n, device=s.device, dtype=s.dtype) * slope).view(shape)
        ahead = torch.cummin(s - ramp, dim).values + ramp                          # min over q <= p
        behind = torch.cummin((s + ramp).flip(dim), dim).values.flip(dim) - ramp  # min over q >= p
        s = torch.minimum(ahead, behind)
    return s


def _layer_centres(smin: float, smax: float, layers: int | None, step: float) -> list[float]:
    """Signed CoC radii of the layers, back (most negative) to front, covering [smin, smax]."""
    if layers is None:
        ladder = layer_radii(max(-smin, smax, 0.0), step)
        signed = sorted(set([-r for r in ladder] + ladder))
        lo = max(c for c in signed if c <= smin)
        hi = min(c for c in signed if c >= smax)
        return [c for c in signed if lo <= c <= hi]
    if not (isinstance(layers, int) and layers >= 1):
        raise ValueError(f"layers must be a positive integer or None, got {layers!r}")
    return sorted(set([0.0] + torch.linspace(min(smin, 0.0), max(smax, 0.0), layers).tolist()))


def _layer_index(s: torch.Tensor, centres: list[float]) -> torch.Tensor:
    """Fractional layer index of every pixel: linear in ``q = s|s|`` (CoC AREA, signed) between the
    two layer centres around s, so that the mix of their two kernels has the pixel's spread."""
    if len(centres) == 1:
        return torch.zeros_like(s)
    s64 = s.double()
    c = torch.tensor(centres, device=s.device, dtype=torch.float64)
    q, qc = s64 * s64.abs(), c * c.abs()
    j = torch.searchsorted(qc, q.contiguous().view(-1)).view_as(q).clamp(1, len(qc) - 1)
    lo, hi = qc[j - 1], qc[j]
    return ((j - 1).double() + ((q - lo) / (hi - lo)).clamp(0.0, 1.0)).to(s.dtype)


def _paste(full: torch.Tensor, part: torch.Tensor, y0: int, x0: int) -> torch.Tensor:
    """``full`` with ``part`` written at (y0, x0), out of place (for autograd)."""
    y1, x1 = y0 + part.shape[-2], x0 + part.shape[-1]
    rows = torch.slice_scatter(full[..., y0:y1, :], part, dim=-1, start=x0, end=x1)
    return torch.slice_scatter(full, rows, dim=-2, start=y0, end=y1)


# The layered renderer in steps. Each layer j (centre radius c_j, from `_layer_centres`) is
#   1. boxed: the rows and columns where it can be non-zero (`_layer_box`);
#   2. cut: its share of each pixel's colour and coverage, and the coverage it occludes with
#      (`_layer_maps`);
#   3. filled: the colour it would show where nearer occluders hide it (`_hidden`, then
#      `_push_pull` inside `_blur_layer`);
#   4. blurred by its disc, at reduced resolution when the disc is wide (`_blur_layer`);
#   5. composited over the layers behind it (`_composite`), back to front.

FILL_MARGIN_JUMPS = 2.0    # the fill starts this many `jump`s in front of an edge ...
FILL_MARGIN_SLOPE = 0.5    # ... plus this share of `slope` times the layer's radius, so that the
                           # blurred fill stays under the blurred occluder and never shows beside it
MAX_DOWNSAMPLE = 8         # a wide disc is blurred at 1/2, 1/4 or at most 1/8 of the resolution


def _layer_ranges(t: torch.Tensor, excess: torch.Tensor, jump: float, fill: bool) -> list:
    """Per axis (rows, then columns), per row/column: the lowest and highest fractional layer
    index of its pixels, and the highest index of a pixel that occludes a depth edge (the fill
    paints behind those). The batch shares them."""
    td = t.detach()
    tf = torch.where(excess > FILL_MARGIN_JUMPS * jump, td, torch.full_like(td, -1.0)) if fill \
        else torch.full_like(td, -1.0)
    return [[r.tolist() for r in (td.amin(dim=(0, 1, k)), td.amax(dim=(0, 1, k)),
                                  tf.amax(dim=(0, 1, k)))] for k in (3, 2)]


def _layer_box(ranges: list, j: int, c: float, H: int, W: int):
    """(y0, y1, x0, x1) of layer j: its own pixels (index in (j-1, j+1)) and, for the fill,
    pixels in front of it at a depth edge, grown by the blur radius |c| + 1; None when empty."""
    box = []
    for lo, hi, hi_fill in ranges:
        idx = [i for i, (l, h, f) in enumerate(zip(lo, hi, hi_fill)) if (l < j + 1 and h > j - 1) or f > j]
        if not idx:
            return None
        box.append((idx[0], idx[-1] + 1))
    pad = int(math.ceil(abs(c))) + 1
    (y0, y1), (x0, x1) = box
    return max(y0 - pad, 0), min(y1 + pad, H), max(x0 - pad, 0), min(x1 + pad, W)


def _layer_maps(tc: torch.Tensor, lin: torch.Tensor, occluder: torch.Tensor, j: int, c: float
                ) -> torch.Tensor:
    """(B,5,h,w): premultiplied colour a*C (3), coverage a (1) and occluding coverage O (1).

    A pixel at fractional index t shares its colour and coverage between the layers floor(t) and
    ceil(t), ``a = 1 - |t - j|``; its occluding coverage goes whole to the nearest layer (two
    shares of one opaque pixel do not each let half the light through), and only where the pixel
    stands in front of a depth edge (``occluder``), except in the focus layer, which hides all.
    """
    a = (1.0 - (tc - j).abs()).clamp(min=0.0)
    nearest = (tc.detach().round() == j).to(a.dtype)
    occ = nearest if c == 0.0 else nearest * occluder
    return torch.cat([a * lin, a, occ], 1)


def _hidden(tc: torch.Tensor, excess: torch.Tensor, j: int, centres: list[float], jump: float,
            slope: float):
    """Where occluders in front hide layer j (None when nowhere): pixels at least two layers
    nearer (one, when the next is the focus layer), standing in front of a depth edge by more
    than the fill margin, ramped over one ``jump``."""
    if j >= len(centres) - 1:
        return None
    c = centres[j]
    first = j + 1 if centres[j + 1] == 0.0 else j + 2
    margin = FILL_MARGIN_JUMPS * jump + FILL_MARGIN_SLOPE * slope * abs(c)
    hidden = (tc.detach().round() >= first).to(tc.dtype) * ((excess - margin) / jump).clamp(0.0, 1.0)
    return hidden if bool((hidden > 0).any()) else None


def _blur_layer(layer: torch.Tensor, hidden, c: float, *, blades: int, rotation: float,
                downsample: bool) -> torch.Tensor:
    """Fill the hidden part of a layer from its visible neighbourhood, then blur it by its disc
    of radius |c| (flipped behind the focus plane, c < 0). A wide blur is smooth: with
    ``downsample`` it runs at 1/f of the resolution, f doubling while the disc keeps a radius of
    at least ``_LOWRES_RADIUS`` px, up to ``MAX_DOWNSAMPLE``."""
    f = 1
    while downsample and abs(c) / (2 * f) >= _LOWRES_RADIUS and f < MAX_DOWNSAMPLE:
        f *= 2
    h, w = layer.shape[-2:]
    if f > 1:
        layer = _downsample(layer, f)
        if hidden is not None:
            hidden = _downsample(hidden, f)
    if hidden is not None:
        est = _push_pull(layer[:, :4], 1.0 - hidden, start=max(4 // f, 1))
        layer = torch.cat([layer[:, :4] + hidden * est, layer[:, 4:]], 1)
    if c != 0.0:
        kernel = aperture_kernel(abs(c) / f, blades, rotation, c > 0, device=layer.device,
                                 dtype=layer.dtype)
        layer = _fft_blur(layer, kernel)
    if f > 1:
        layer = F.interpolate(layer, scale_factor=f, mode="bilinear", align_corners=False)[..., :h, :w]
    return layer


def _composite(seen: torch.Tensor, last: torch.Tensor, layer: torch.Tensor, c: float,
               box: tuple[int, int, int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """One layer over what lies behind it, with occluding coverage O of this layer: the light
    of every layer two or more behind (``seen``) is attenuated by 1 - O; the layer just behind
    (``last``) holds the other share of the pixels between the two, the same surface, and is not
    attenuated, except by the focus layer, which hides all. Returns the new (seen, last).

    With autograd on, new tensors are built (:func:`_paste`); without, the buffers are updated
    in place (the same numbers, less memory; ``tests/test_bokeh.py`` checks they agree)."""
    y0, y1, x0, x1 = box
    crop = (..., slice(y0, y1), slice(x0, x1))
    light, behind = layer[:, :4], 1.0 - layer[:, 4:]
    part = behind * (seen[crop] + last[crop]) if c == 0.0 else last[crop] + behind * seen[crop]
    if torch.is_grad_enabled():
        return _paste(seen + last, part, y0, x0), _paste(torch.zeros_like(last), light, y0, x0)
    seen += last
    seen[crop] = part
    last.zero_()
    last[crop] = light
    return seen, last


def _layered(lin: torch.Tensor, s: torch.Tensor, *, blades: int, rotation: float, layers: int | None,
             layer_step: float, fill: bool, slope: float, jump: float, downsample: bool) -> torch.Tensor:
    """Layered rendering (see :func:`render_bokeh`): lin (B,3,H,W) linear light, s (B,1,H,W)
    signed blur radii; the steps are the functions above."""
    B, _, H, W = lin.shape
    centres = _layer_centres(float(s.min()), float(s.max()), layers, layer_step)
    t = _layer_index(s, centres)                                       # between layers floor(t), ceil(t)
    sd = s.detach()
    excess = sd - _lower_envelope(sd, slope)                           # drop beyond a surface of gradient `slope`
    occluder = ((excess - jump) / jump).clamp(0.0, 1.0)                # in front of a depth edge
    ranges = _layer_ranges(t, excess, jump, fill)
    seen, last = lin.new_zeros(B, 4, H, W), lin.new_zeros(B, 4, H, W)  # sums of (C, A) behind
    for j, c in enumerate(centres):                                    # back to front
        box = _layer_box(ranges, j, c, H, W)
        if box is None:                                                # nothing in this layer
            seen, last = seen + last, torch.zeros_like(last)
            continue
        crop = (..., slice(box[0], box[1]), slice(box[2], box[3]))
        tc = t[crop]
        layer = _layer_maps(tc, lin[crop], occluder[crop], j, c)
        hidden = _hidden(tc, excess[crop], j, centres, jump, slope) if fill else None
        layer = _blur_layer(layer, hidden, c, blades=blades, rotation=rotation, downsample=downsample)
        seen, last = _composite(seen, last, layer, c, box)
    total = seen + last
    num, den = total[:, :3], total[:, 3:]
    return num / den.clamp(min=_EPS)


# ----------------------------------------------------------------------------- public


def render_bokeh(image: torch.Tensor, disparity: torch.Tensor, focus_disparity: Number | torch.Tensor,
                 K: Number | torch.Tensor, gamma: float = 2.2, method: str = "layered", *,
                 blades: int = 0, rotation: float = 0.0, highlight: float = 0.0,
                 highlight_threshold: float = 0.9, max_radius: float | None = None,
                 layers: int | None = None, layer_step: float = 0.3, fill: bool = True,
                 slope: float = 0.75, jump: float = 0.5, downsample: bool = True) -> torch.Tensor:
    """Depth of field from an all-in-focus image and its disparity.

    Every pixel is spread over its circle of confusion of signed radius
    ``s = K (disparity - focus_disparity)`` pixels (:func:`coc_radius`), in linear light
    (``image ** gamma``, back with ``** (1/gamma)``): the focus plane (s = 0) stays sharp and the
    blur grows linearly in disparity on both sides of it.

    Args:
        image: (B,3,H,W) or (3,H,W) sRGB in [0,1].
        disparity: (B,1,H,W) or (1,H,W), 1/depth in 1/m (any finite values: only the differences
            from ``focus_disparity`` matter).
        focus_disparity: float or (B,) tensor, 1/S_f in 1/m.
        K: float or (B,) tensor >= 0, pixels * metres (:func:`K_from_lens`); K = 0 is a pinhole.
        gamma: the sRGB exponent.
        method: ``"layered"`` (occlusion-aware, the default) or ``"scatter"`` (the baseline,
            BokehMe's classical renderer).
        blades: 0 for a round aperture, n >= 3 for a regular n-gon with its corners on the CoC
            circle, turned by ``rotation`` radians (x right, y down). Points in front of the focus
            plane draw the aperture, points behind it its point reflection, as in a real lens.
        highlight: gain of the highlight boost (0 = off): linear colours whose luminance exceeds
            ``highlight_threshold`` are brightened by up to ``1 + highlight`` before blurring (not on
            the focus plane). It stands in for the light that clipping took from the sharp image,
            so that blurred lights become visible bokeh balls.
        max_radius: clamp |s| to this many pixels. The default, and the upper bound, is max(H, W):
            a blur wider than the image is clamped to the image size.
        layers, layer_step: (``layered``) None = layers at the radii of :func:`layer_radii` with
            ``layer_step``, those the disparities reach; an int = that many layers evenly spaced
            between the smallest and largest s (plus one on the focus plane).
        fill: (``layered``) fill in what occluders hide of the layers behind them.
        slope, jump: (``layered``) depth-edge test, in px of CoC: a pixel occludes what is behind it
            when s drops by more than ``jump`` beyond what a surface of gradient ``slope`` px/px
            explains (see below).
        downsample: (``layered``) blur wide layers at 1/2, 1/4 or 1/8 of the resolution (the
            kernel keeps a radius >= 4 px there).

    Returns:
        (B,3,H,W) (or (3,H,W)) sRGB in [0,1], differentiable w.r.t. ``image``.

    ``layered``. Layers sit at signed radii c_j (:func:`layer_radii`); each pixel's colour and
    coverage are split between the two layers around its s, linearly in s|s| (so that the mix of
    the two kernels has the pixel's spread). Per layer, back (far) to front, premultiplied colour,
    coverage and occluding coverage are blurred with the layer's kernel (:func:`aperture_kernel`,
    by FFT) into C_j, A_j, O_j, and composited: the light (C, A) of layer j is attenuated by
    (1 - O_k) of every layer k >= j + 2 ("over"), and the output is sum C / sum A. Layer j + 1 holds
    the other share of the pixels between the two, the same surface, and does not attenuate j;
    the focus layer (c = 0) attenuates everything behind it. The division by sum A undoes coverage
    lost at the image border (zero padding) and in unfilled holes.

    Which pixels occlude: a lens sees round an occluder only where there is something behind it,
    at a depth edge. A pixel is "in front of an edge" when
    ``e = s(p) - min_q (s(q) + slope |p - q|_1)`` exceeds ``jump`` (a drop no surface of gradient
    <= ``slope`` px/px makes; an exact L1 distance transform); its occluding coverage ramps from 0
    at e = jump to 1 at e = 2 jump and goes whole to its nearest layer. In-focus pixels always
    occlude (their cone closes on them). Elsewhere O = 0 and the layers add up, which is exact for a
    continuous surface (each ray meets it once), while "over" is right for an occluder with an
    unseen surface behind it. ``fill``: the part of layer j hidden by the occluders in front of it
    (e above ``2 jump + slope |c_j| / 2``, a margin that keeps the blurred fill under them) is
    filled by push-pull interpolation of layer j, so that a blurred occluder's see-through rim
    shows the surface behind it, not a hole.

    Consequences: the focus plane is untouched (a sharp foreground stays exactly sharp); a blurred
    background is not mixed with an in-focus foreground; a blurred foreground spreads over what is
    behind it. Limits: an occluder counts as such within about (drop - 2 jump) / slope px of its
    edge, so a small depth step in front of a much wider blur can let some background light into
    it; light is kept exactly only where occluded surfaces are filled. Cost: an FFT of 5 channels
    per layer present (2 + 2 log_(1+step)(R) layers for blur up to R px), on the layer's bounding
    box, at 1/2 to 1/8 of the resolution for wide kernels (``downsample``).

    ``scatter``: BokehMe's classical renderer. Pixel p, of radius r = |s_p|, sends colour with
    weight ``(0.5 + 0.5 tanh(4 (r - |q - p|))) / (r^2 + 0.2)`` to every q with
    ``max(|q_y - p_y|, |q_x - p_x|) <= floor(r) + 1``; out = sum of colour / sum of weights. Exact
    but slow: one pass over the image per integer offset within the largest radius.
    Reference: ``JuewenPeng/BokehMe``, ``classical_renderer/scatter.py``
    (``kernel_Render_updateOutput``: the same weight and window, ``bokeh_cum / weight_cum``) and
    ``demo.py`` (``classical_renderer(image**gamma, K * (disp - disp_focus))``, then
    ``** (1/gamma)``). Differences: BokehMe's demo uses ``gamma = 4`` (a stronger linearisation
    that makes highlights bloom); here gamma is the argument, 2.2 by default, the sRGB exponent
    that the thin-lens ground truth of the course uses (pass ``gamma=4`` for BokehMe's look);
    BokehMe's scatter is a CUDA kernel, this one runs on any device and is differentiable in
    ``image``; polygonal apertures (``blades``) scale r by the aperture's extent in each direction
    (BokehMe's ``scatter_ex`` has its own polygon kernel).

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
    if not (slope > 0 and jump > 0 and layer_step > 0):
        raise ValueError(f"slope, jump and layer_step must be > 0, got {slope!r}, {jump!r}, {layer_step!r}")
    H, W = image.shape[-2:]
    limit = float(max(H, W)) if max_radius is None else min(float(max_radius), float(max(H, W)))
    if not limit >= 0:
        raise ValueError(f"max_radius must be >= 0, got {max_radius!r}")
    disparity = disparity.to(image.dtype)
    s = coc_radius(disparity, focus_disparity, K).clamp(-limit, limit)
    lin = _to_linear(image, gamma)
    if highlight:
        lin = _highlight_boost(lin, s, float(highlight), float(highlight_threshold))
    if method == "scatter":
        out = _scatter(lin, s, blades, float(rotation))
    else:
        out = _layered(lin, s, blades=blades, rotation=float(rotation), layers=layers, layer_step=float(layer_step),
                       fill=fill, slope=float(slope), jump=float(jump), downsample=downsample)
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
