"""Evaluation metrics for monocular depth: alignment, the standard error table, WHDR and SEE.

Every function takes batched maps ``pred``, ``target`` float ``(B,1,H,W)`` (depth in metres,
``target > 0`` where valid) and a bool ``valid`` ``(B,1,H,W)``, and looks only at valid pixels:
what ``pred`` or ``target`` hold elsewhere never changes a result.

Reductions: a metric is computed per image over that image's valid pixels (or pairs, or edge
pixels) and the batch value is the plain mean over images. An image with nothing to measure is
left out of that mean with a ``RuntimeWarning``; a batch with nothing to measure at all raises
``ValueError``.

Non-positive predictions: depth metrics take logs and ratios of ``pred``, so ``pred`` is clamped
to at least ``EPS`` = 1e-6 m at valid pixels first (a prediction of 0 or -3 m is scored as
1 micrometre: a huge but finite error, never NaN). Non-finite ``pred`` at a valid pixel, or a
non-positive / non-finite ``target`` at a valid pixel, is bad input and raises ``ValueError``.

>>> import torch
>>> g = torch.tensor([[[[1.0, 2.0], [4.0, 8.0]]]])
>>> valid = torch.ones_like(g, dtype=torch.bool)
>>> m = depth_metrics(2 * g, g, valid)
>>> round(m["abs_rel"], 6), m["delta1"], round(m["silog"], 6)
(1.0, 0.0, 0.0)
>>> m = depth_metrics(align(2 * g, g, valid, method="median"), g, valid)
>>> m["abs_rel"], m["delta1"]
(0.0, 1.0)
"""
from __future__ import annotations

import math
import warnings
from typing import Literal

import torch
import torch.nn.functional as F

from lib import checks

__all__ = [
    "disparity",
    "EPS",
    "abs_rel_per_image",
    "align",
    "align_log",
    "align_median",
    "align_scale_shift",
    "align_to_points",
    "depth_edges",
    "depth_metrics",
    "flat_map",
    "psnr_per_image",
    "soft_edge_error",
    "soft_edge_error_map",
    "soft_edge_error_per_image",
    "whdr",
]

EPS = 1e-6
"""Smallest depth (metres) a prediction is scored as; non-positive predictions are clamped to it."""

_DIMS = (1, 2, 3)


# ----------------------------------------------------------------------------- input checks


def _counts(valid: torch.Tensor) -> torch.Tensor:
    """Number of valid pixels per image, ``(B,)`` float64; raises when the whole batch has none."""
    n = valid.sum(dim=_DIMS).double()
    if not bool((n > 0).any()):
        raise ValueError("no valid pixel in the batch: a metric over no valid pixel is undefined")
    return n


def _batch_mean(per_image: torch.Tensor, has: torch.Tensor, what: str) -> torch.Tensor:
    """Mean of ``per_image`` ``(B,...)`` over the images where ``has`` is True, warning about the rest."""
    if not bool(has.any()):
        raise ValueError(f"no image in the batch has any {what}: the metric is undefined")
    if not bool(has.all()):
        skipped = (~has).nonzero().flatten().tolist()
        warnings.warn(f"images {skipped} of the batch have no {what} and are left out of the mean",
                      RuntimeWarning, stacklevel=3)
    return per_image[has].mean(dim=0)


def _masked_mean(x: torch.Tensor, valid: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """Per-image mean of ``x`` over valid pixels, ``(B,)``; 0 for an image with none."""
    return torch.where(valid, x, torch.zeros_like(x)).sum(dim=_DIMS) / n.clamp(min=1)


def _masked_median(x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Per-image median of ``x`` over valid pixels, ``(B,)`` float64 (mean of the two middle values
    for an even count, as ``numpy.median``); 0 for an image with none."""
    b = x.shape[0]
    flat = torch.where(valid, x.double(), torch.full_like(x, math.inf, dtype=torch.float64)).reshape(b, -1)
    srt, _ = flat.sort(dim=1)
    n = valid.reshape(b, -1).sum(dim=1)
    lo = ((n - 1).clamp(min=0) // 2).unsqueeze(1)
    hi = (n // 2).clamp(max=flat.shape[1] - 1).unsqueeze(1)
    med = 0.5 * (srt.gather(1, lo) + srt.gather(1, hi)).squeeze(1)
    return torch.where(n > 0, med, torch.zeros_like(med))


# ----------------------------------------------------------------------------- alignment


def align_scale_shift(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Per-image least-squares scale and shift of ``pred`` onto ``target`` (MiDaS alignment).

    For each image, over its valid pixels :math:`i = 1..n`,

    .. math::  (s, t) = \arg\min_{s,t} \sum_i (s\,p_i + t - g_i)^2 ,

    whose 2x2 normal equations :math:`[\sum p^2, \sum p; \sum p, n]\,[s; t] = [\sum p g; \sum g]`
    have the closed form :math:`s = \mathrm{cov}(p, g) / \mathrm{var}(p)`,
    :math:`t = \bar g - s\,\bar p` (computed in float64, centred, for accuracy).

    A constant prediction (``var(p) <= 1e-12 * mean(p^2)``) has no defined scale: it gets
    ``s = 0``, ``t = mean(g)`` (the best constant), never NaN. An image with no valid pixel gets
    the identity ``s = 1, t = 0``; a batch with no valid pixel raises ``ValueError``.

    Args:
        pred: ``(B,1,H,W)`` prediction (any affine-invariant quantity: depth, disparity, ...).
        target: ``(B,1,H,W)`` ground truth in the space the fit is wanted in, > 0 where valid.
        valid: ``(B,1,H,W)`` bool.

    Returns:
        ``(aligned, scale, shift)``: ``aligned = scale * pred + shift`` ``(B,1,H,W)`` (every pixel,
        valid or not), ``scale`` and ``shift`` of shape ``(B,)``, all in ``pred``'s dtype.

    Example:
        >>> g = torch.tensor([[[[1.0, 2.0, 3.0, 4.0]]]])
        >>> aligned, s, t = align_scale_shift(0.5 * g - 1.0, g, torch.ones_like(g, dtype=torch.bool))
        >>> s.tolist(), t.tolist(), aligned.flatten().tolist()
        ([2.0], [2.0], [1.0, 2.0, 3.0, 4.0])
    """
    checks.depth_maps(pred, target, valid, target_positive=True, pred_finite=True)
    n = _counts(valid)
    p, g = pred.double(), target.double()
    mp, mg = _masked_mean(p, valid, n), _masked_mean(g, valid, n)
    dp = p - mp.view(-1, 1, 1, 1)
    dg = g - mg.view(-1, 1, 1, 1)
    var = _masked_mean(dp * dp, valid, n)
    cov = _masked_mean(dp * dg, valid, n)
    flat = var <= 1e-12 * _masked_mean(p * p, valid, n)
    scale = torch.where(flat, torch.zeros_like(var), cov / torch.where(flat, torch.ones_like(var), var))
    shift = mg - scale * mp
    empty = n == 0
    scale = torch.where(empty, torch.ones_like(scale), scale)
    shift = torch.where(empty, torch.zeros_like(shift), shift)
    aligned = scale.view(-1, 1, 1, 1) * p + shift.view(-1, 1, 1, 1)
    return aligned.to(pred.dtype), scale.to(pred.dtype), shift.to(pred.dtype)


def align_to_points(pred: torch.Tensor, points, distances, space: str = "depth"
                    ) -> tuple[torch.Tensor, float, float]:
    r"""Metric depth from a relative prediction and a few distances a user measured.

    ``points`` are pixels ``(x, y)`` (column, row) whose true distances ``distances`` (metres)
    are known (a tape measure, a ruler in the picture). With the predicted values :math:`p_i`
    there and the measured :math:`g_i`:

    - ``space="depth"`` (a model that predicts depth up to scale): one scale,
      :math:`s = \sum p_i g_i / \sum p_i^2` (least squares; one point suffices),
      depth :math:`= s\,p`;
    - ``space="disparity"`` (a model that predicts disparity up to scale and shift, as MiDaS
      and Depth Anything do, or depth whose inverse is that): scale and shift of
      :math:`1/p` onto :math:`1/g` by least squares (two points at least, at different
      distances), depth :math:`= 1 / (s / p + t)`, as :func:`align` does with every pixel.

    Args:
        pred: ``(1,H,W)`` or ``(H,W)`` predicted depth (> 0 at the points).
        points: sequence of ``(x, y)`` integer pixel positions inside the image.
        distances: the measured depths (metres, > 0), one per point.
        space: ``"depth"`` or ``"disparity"``.

    Returns:
        ``(depth, scale, shift)``: the metric map, shaped like ``pred``, and the fitted numbers
        (``shift`` is 0 for ``"depth"``). A disparity fit that makes some pixel's disparity
        non-positive (beyond infinity) clamps it to a small positive value.

    Example:
        >>> p = torch.tensor([[1.0, 2.0], [4.0, 8.0]])
        >>> d, s, t = align_to_points(p, [(0, 0), (1, 1)], [3.0, 24.0])
        >>> round(s, 4), d[1, 0].item()
        (3.0, 12.0)
    """
    if space not in ("depth", "disparity"):
        raise ValueError(f"space must be 'depth' or 'disparity', got {space!r}")
    if not isinstance(pred, torch.Tensor) or pred.dim() not in (2, 3) or (
            pred.dim() == 3 and pred.shape[0] != 1):
        raise ValueError("pred must be one (H,W) or (1,H,W) depth map")
    H, W = pred.shape[-2:]
    pts = [tuple(int(v) for v in xy) for xy in points]
    g = torch.as_tensor(distances, dtype=torch.float64).flatten()
    if len(pts) != len(g) or not pts:
        raise ValueError(f"need one distance per point, got {len(pts)} points and {len(g)} "
                         "distances")
    for x, y in pts:
        if not (0 <= x < W and 0 <= y < H):
            raise ValueError(f"point (x={x}, y={y}) lies outside the {W}x{H} image")
    if not (torch.isfinite(g).all() and (g > 0).all()):
        raise ValueError(f"distances must be positive metres, got {g.tolist()}")
    flat = pred.double().reshape(H, W)
    p = torch.stack([flat[y, x] for x, y in pts])
    if not (torch.isfinite(p).all() and (p > 0).all()):
        raise ValueError("the prediction must be positive and finite at every point")
    if space == "depth":
        scale = float((p * g).sum() / (p * p).sum())
        return (pred.double() * scale).to(pred.dtype), scale, 0.0
    if len(set((1 / g).tolist())) < 2:
        raise ValueError("a scale-and-shift fit needs two points at different distances")
    x, y = 1 / p, 1 / g
    A = torch.stack([x, torch.ones_like(x)], 1)
    scale, shift = (float(v) for v in torch.linalg.lstsq(A, y[:, None]).solution[:, 0])
    disp = (scale / pred.double() + shift).clamp(min=1e-6)
    return (1 / disp).to(pred.dtype), scale, shift


def disparity(depth: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``1/depth`` (1/m) at valid pixels, 0 elsewhere, without ever dividing by an invalid depth
    (which may be 0). Chapter 04 trains in this space; chapter 07's teacher labels in it.

    >>> disparity(torch.tensor([2.0, 0.0, 4.0]), torch.tensor([True, False, True])).tolist()
    [0.5, 0.0, 0.25]
    """
    safe = torch.where(valid, depth, torch.ones_like(depth))
    return torch.where(valid, 1.0 / safe, torch.zeros_like(depth))


def flat_map(target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    r"""The baseline every depth metric is read against: one depth per image, the median of its
    valid true depths (a constant prediction after :func:`align_median`; what a model that learnt
    nothing scores with median scaling). ``(B,1,H,W)``.

    >>> t = torch.tensor([1.0, 2.0, 9.0]).view(1, 1, 1, 3)
    >>> flat_map(t, torch.ones_like(t, dtype=torch.bool)).flatten().tolist()
    [2.0, 2.0, 2.0]
    """
    return align_median(torch.ones_like(target), target, valid)[0]


def align_median(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Per-image median scaling: :math:`s = \mathrm{median}(g) / \mathrm{median}(p)` over valid pixels.

    The median of an even number of values is the mean of the two middle ones (as
    ``numpy.median``). ``median(p)`` must be > 0 on every image that has valid pixels, else
    ``ValueError`` (median scaling needs a positive, depth-like prediction). An image with no
    valid pixel gets ``s = 1``; a batch with none raises ``ValueError``.

    Args:
        pred, target: ``(B,1,H,W)``; valid: ``(B,1,H,W)`` bool.

    Returns:
        ``(aligned, scale)``: ``aligned = scale * pred`` ``(B,1,H,W)``, ``scale`` ``(B,)``.

    Example:
        >>> g = torch.tensor([[[[1.0, 2.0, 4.0]]]])
        >>> aligned, s = align_median(3 * g, g, torch.ones_like(g, dtype=torch.bool))
        >>> round(s.item(), 6), aligned.flatten().tolist()
        (0.333333, [1.0, 2.0, 4.0])
    """
    checks.depth_maps(pred, target, valid, target_positive=True, pred_finite=True)
    n = _counts(valid)
    mp, mg = _masked_median(pred, valid), _masked_median(target, valid)
    has = n > 0
    if not bool((mp[has] > 0).all()):
        bad = (has & (mp <= 0)).nonzero().flatten().tolist()
        raise ValueError(f"median of pred over valid pixels is <= 0 on images {bad}; "
                         "median scaling needs a positive, depth-like prediction")
    scale = torch.where(has, mg / torch.where(has, mp, torch.ones_like(mp)), torch.ones_like(mp))
    aligned = scale.view(-1, 1, 1, 1) * pred.double()
    return aligned.to(pred.dtype), scale.to(pred.dtype)


def align_log(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Per-image least squares in log depth: :math:`\log \hat Z' = s \log \hat Z + t`.

    With :math:`x = \log \hat Z`, :math:`y = \log Z` over an image's valid pixels, the closed
    form is :math:`s = \mathrm{cov}(x, y) / \mathrm{var}(x)`, :math:`t = \bar y - s \bar x`, so
    the aligned depth is :math:`e^{t} \hat Z^{s}`. It undoes a global scale (:math:`t`) and the
    spread of the log-depths (:math:`s`), the two things a ranking loss cannot see: chapter 03
    derives it for its ranking-trained model, chapter 05 aligns its variants with it.
    :func:`align_scale_shift` cannot do this fit, as it wants a positive target and log depths
    may be negative. Computed in float64.

    Args:
        pred: ``(B,1,H,W)`` depth, > 0 at valid pixels; target: ``(B,1,H,W)`` depth > 0 at
            valid pixels; valid: ``(B,1,H,W)`` bool, at least two pixels per image with
            different predictions.

    Returns:
        ``(aligned, s)``: ``aligned`` ``(B,1,H,W)`` in ``pred``'s dtype (where ``pred`` is not
        positive outside ``valid`` it is taken as ``EPS``), ``s`` ``(B,)`` float64.

    Example:
        >>> g = torch.tensor([[[[1.0, 2.0, 4.0]]]])
        >>> aligned, s = align_log(3 * g ** 2, g, torch.ones_like(g, dtype=torch.bool))
        >>> round(s.item(), 6), [round(v, 6) for v in aligned.flatten().tolist()]
        (0.5, [1.0, 2.0, 4.0])
    """
    checks.depth_maps(pred, target, valid, target_positive=True, pred_finite=True)
    if bool((pred[valid] <= 0).any()):
        raise ValueError("align_log: pred must be > 0 at every valid pixel (it takes its log)")
    n = _counts(valid)
    if bool((n < 2).any()):
        bad = (n < 2).nonzero().flatten().tolist()
        raise ValueError(f"align_log: images {bad} have fewer than 2 valid pixels to fit")
    x_all = torch.where(valid | (pred > 0), pred, EPS).double().log()
    x = torch.where(valid, x_all, 0.0)
    y = torch.where(valid, target, 1.0).double().log()

    def mean(v):  # per-image mean over the valid pixels, shape (B,1,1,1)
        return _masked_mean(v, valid, n).view(-1, 1, 1, 1)

    mx, my = mean(x), mean(y)
    var = mean((x - mx) ** 2)
    if bool((var == 0).any()):
        bad = (var.flatten() == 0).nonzero().flatten().tolist()
        raise ValueError(f"align_log: the prediction is constant on images {bad}; "
                         "no log-space scale can be fitted")
    s = mean((x - mx) * (y - my)) / var
    return (s * (x_all - mx) + my).exp().to(pred.dtype), s.flatten()

def align(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor,
          method: Literal["none", "median", "lstsq"] = "lstsq",
          space: Literal["depth", "disparity"] = "depth",
          depth_cap: float | None = None) -> torch.Tensor:
    r"""Align a depth prediction to the target before scoring it; returns aligned DEPTH ``(B,1,H,W)``.

    ``method``:
      * ``"none"``: ``pred`` as it is (for metric-depth models).
      * ``"median"``: :func:`align_median` (recovers a global scale).
      * ``"lstsq"``: :func:`align_scale_shift` (recovers scale and shift).

    ``space``:
      * ``"depth"``: fit ``pred`` to ``target`` directly. Least squares may give non-positive
        depths; they are left as they are (:func:`depth_metrics` scores them as ``EPS``).
      * ``"disparity"``: fit :math:`1/p` to :math:`1/g` (``pred`` clamped to ``EPS`` first), then
        invert. Affine-invariant models (MiDaS, Depth Anything) predict disparity up to scale
        and shift, so this is the space their shift is defined in. The fitted disparity can be
        <= 0 (a point "beyond infinity"); as in the MiDaS evaluation it is clamped from below at
        ``1 / depth_cap``, i.e. aligned depth is at most ``depth_cap`` metres. ``depth_cap=None``
        uses each image's farthest valid target depth.

    ``"median"`` in disparity space gives ``s = median(1/g) / median(1/p)`` and depth ``p / s``.

    Args:
        pred: ``(B,1,H,W)`` predicted depth (anything depth-like: larger = farther).
        target: ``(B,1,H,W)`` depth in metres, > 0 where valid. valid: ``(B,1,H,W)`` bool.
        method, space, depth_cap: see above.

    Example:
        >>> g = torch.tensor([[[[1.0, 2.0, 4.0]]]])
        >>> v = torch.ones_like(g, dtype=torch.bool)
        >>> [round(x, 4) for x in align(1 / (0.5 / g + 0.25), g, v, space="disparity").flatten().tolist()]
        [1.0, 2.0, 4.0]
    """
    if method not in ("none", "median", "lstsq"):
        raise ValueError(f"method must be 'none', 'median' or 'lstsq', got {method!r}")
    if space not in ("depth", "disparity"):
        raise ValueError(f"space must be 'depth' or 'disparity', got {space!r}")
    if depth_cap is not None and not depth_cap > 0:
        raise ValueError(f"depth_cap must be > 0 metres, got {depth_cap}")
    checks.depth_maps(pred, target, valid, target_positive=True, pred_finite=True)
    if method == "none":
        return pred
    fit = align_median if method == "median" else align_scale_shift
    if space == "depth":
        return fit(pred, target, valid)[0]
    disp_p = 1.0 / pred.double().clamp(min=EPS)
    disp_g = 1.0 / torch.where(valid, target.double(), torch.ones_like(target, dtype=torch.float64))
    disp = fit(disp_p, disp_g, valid)[0]
    if depth_cap is None:
        far = torch.where(valid, target.double(), torch.zeros_like(target, dtype=torch.float64)).amax(dim=_DIMS)
        far = torch.where(far > 0, far, torch.ones_like(far))  # images with no valid pixel
        floor = (1.0 / far).view(-1, 1, 1, 1)
    else:
        floor = torch.full((pred.shape[0], 1, 1, 1), 1.0 / depth_cap, dtype=torch.float64, device=pred.device)
    return (1.0 / torch.maximum(disp, floor)).to(pred.dtype)


# ----------------------------------------------------------------------------- dense metrics


def _prepared(pred, target, valid):
    """float64 prediction (clamped to ``EPS``) and target, 1 where not valid; valid counts."""
    checks.depth_maps(pred, target, valid, target_positive=True, pred_finite=True)
    n = _counts(valid)
    one = torch.ones_like(target, dtype=torch.float64)
    p = torch.where(valid, pred.double().clamp(min=EPS), one)
    g = torch.where(valid, target.double(), one)
    return p, g, n


def abs_rel_per_image(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    r"""AbsRel of every image, ``(B,)`` float64: :math:`\mathrm{mean}\,|p - g| / g` over its
    valid pixels, NaN for an image with none. The values whose mean is
    :func:`depth_metrics`' ``abs_rel``, for paired comparisons over the same images.

    Example:
        >>> g = torch.tensor([[[[1.0, 2.0]]], [[[4.0, 4.0]]]])
        >>> abs_rel_per_image(torch.tensor([[[[1.0, 3.0]]], [[[2.0, 4.0]]]]), g, g > 0).tolist()
        [0.25, 0.25]
    """
    p, g, n = _prepared(pred, target, valid)
    per = _masked_mean((p - g).abs() / g, valid, n)
    return torch.where(n > 0, per, torch.full_like(per, math.nan))


def depth_metrics(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> dict[str, float]:
    r"""The standard depth error table (Eigen et al. 2014), per image over valid pixels, then the mean over images.

    With :math:`p` the prediction (clamped to at least ``EPS``), :math:`g` the target and means
    over the :math:`n` valid pixels of one image:

    * ``abs_rel``  :math:`= \mathrm{mean}\,|p - g| / g`
    * ``sq_rel``   :math:`= \mathrm{mean}\,(p - g)^2 / g`
    * ``rmse``     :math:`= \sqrt{\mathrm{mean}\,(p - g)^2}` (metres)
    * ``rmse_log`` :math:`= \sqrt{\mathrm{mean}\,(\ln p - \ln g)^2}`
    * ``log10``    :math:`= \mathrm{mean}\,|\log_{10} p - \log_{10} g|`
    * ``silog``    :math:`= 100 \sqrt{\mathrm{mean}(e^2) - \mathrm{mean}(e)^2}`, :math:`e = \ln p - \ln g`
      (invariant to a global scale of ``pred``)
    * ``delta_k``  :math:`= \mathrm{mean}\,[\max(p/g, g/p) < 1.25^k]`, k = 1, 2, 3: fractions in [0, 1]
      (strict ``<``, as in the reference implementations).

    An image with no valid pixel is left out of the mean (``RuntimeWarning``); a batch with no
    valid pixel raises ``ValueError``. Computed in float64.

    Args:
        pred: ``(B,1,H,W)`` predicted depth (metres, or aligned with :func:`align` first).
        target: ``(B,1,H,W)`` depth in metres, > 0 where valid. valid: ``(B,1,H,W)`` bool.

    Returns:
        dict of Python floats with keys ``abs_rel, sq_rel, rmse, rmse_log, log10, silog,
        delta1, delta2, delta3``.

    Example:
        >>> g = torch.tensor([[[[1.0, 2.0]]]])
        >>> m = depth_metrics(torch.tensor([[[[1.0, 3.0]]]]), g, torch.ones_like(g, dtype=torch.bool))
        >>> m["abs_rel"], round(m["rmse"], 4), m["delta1"], m["delta2"]   # rmse = sqrt((0 + 1) / 2)
        (0.25, 0.7071, 0.5, 1.0)
    """
    p, g, n = _prepared(pred, target, valid)

    def mean(x: torch.Tensor) -> torch.Tensor:
        return _masked_mean(x, valid, n)

    diff = p - g
    e = p.log() - g.log()
    ratio = torch.maximum(p / g, g / p)
    per_image = torch.stack([
        mean(diff.abs() / g),
        mean(diff * diff / g),
        mean(diff * diff).sqrt(),
        mean(e * e).sqrt(),
        mean((p.log10() - g.log10()).abs()),
        100.0 * (mean(e * e) - mean(e) ** 2).clamp(min=0).sqrt(),
        mean((ratio < 1.25).double()),
        mean((ratio < 1.25 ** 2).double()),
        mean((ratio < 1.25 ** 3).double()),
    ], dim=1)
    names = ("abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "silog", "delta1", "delta2", "delta3")
    values = _batch_mean(per_image, n > 0, "valid pixel").tolist()
    return dict(zip(names, values))


# ----------------------------------------------------------------------------- ordinal metric


def _ordinal_label(depth_a: torch.Tensor, depth_b: torch.Tensor, sigma: float) -> torch.Tensor:
    """+1 where depth_a/depth_b >= 1+sigma (a farther), -1 where <= 1/(1+sigma), else 0; int64.

    The same rule as ``lib.sampling.ordinal_labels``, kept here so metrics depend on nothing else.
    """
    ratio = depth_a / depth_b
    label = torch.zeros_like(ratio, dtype=torch.int64)
    label = torch.where(ratio >= 1 + sigma, torch.ones_like(label), label)
    return torch.where(ratio <= 1 / (1 + sigma), -torch.ones_like(label), label)


def whdr(pred: torch.Tensor, target: torch.Tensor, idx_a: torch.Tensor, idx_b: torch.Tensor,
         valid: torch.Tensor, sigma: float = 0.03) -> float:
    r"""Weighted Human Disagreement Rate (unweighted form) of point pairs: the ordinal error rate.

    Each pair ``(a, b)`` of flat pixel indices into ``H*W`` gets a target label
    :math:`\ell = +1` if :math:`g_a / g_b \ge 1 + \sigma` (a farther), :math:`-1` if
    :math:`g_a / g_b \le 1 / (1 + \sigma)`, else 0 ("equal"), and a predicted label
    :math:`\hat\ell` by the same rule on ``pred`` (clamped to ``EPS``; the rule is scale-invariant,
    so no alignment is needed, but ``pred`` must be depth-like and positive: pass ``exp`` of a
    log-depth output, ``1/x`` of a disparity output). Per image, over the pairs with both ends
    valid and :math:`\ell \ne 0`,

    .. math::  \mathrm{WHDR} = \frac{1}{|P|} \sum_{(a,b) \in P} [\hat\ell_{ab} \ne \ell_{ab}] .

    Ties: a pair the target orders but the prediction calls "equal" (:math:`\hat\ell = 0`) counts
    as a disagreement, as in the WHDR literature; pairs the target calls equal are not scored.
    The batch value is the mean over images; an image without a scored pair is left out
    (``RuntimeWarning``); no scored pair in the whole batch raises ``ValueError``.

    Args:
        pred, target: ``(B,1,H,W)`` depth-like (larger = farther), target > 0 where valid.
        idx_a, idx_b: ``(B, n)`` integer flat indices ``y * W + x`` in ``[0, H*W)``.
        valid: ``(B,1,H,W)`` bool. sigma: the "equal" tolerance of the ratio.

    Returns:
        the error rate in [0, 1], a Python float.

    Example:
        >>> g = torch.tensor([[[[1.0, 2.0, 4.0]]]])
        >>> p = torch.tensor([[[[1.0, 3.0, 2.0]]]])        # orders 0<1 right, 1<2 wrong, 0<2 right
        >>> a, b = torch.tensor([[0, 1, 0]]), torch.tensor([[1, 2, 2]])
        >>> round(whdr(p, g, a, b, torch.ones_like(g, dtype=torch.bool)), 6)
        0.333333
    """
    checks.depth_maps(pred, target, valid, target_positive=True, pred_finite=True)
    for name, idx in (("idx_a", idx_a), ("idx_b", idx_b)):
        if not isinstance(idx, torch.Tensor) or idx.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"{name} must be an int64 (or int32) tensor of flat pixel indices")
        if idx.dim() != 2 or idx.shape[0] != pred.shape[0]:
            raise ValueError(f"{name} must have shape (B, n) with B={pred.shape[0]}, got {tuple(idx.shape)}")
        if idx.device != pred.device:
            raise ValueError(f"{name} is on {idx.device} but pred is on {pred.device}")
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= pred.shape[2] * pred.shape[3]):
            raise ValueError(f"{name} has indices outside [0, H*W) = [0, {pred.shape[2] * pred.shape[3]})")
    if idx_a.shape != idx_b.shape:
        raise ValueError(f"idx_a shape {tuple(idx_a.shape)} does not match idx_b shape {tuple(idx_b.shape)}")
    if not sigma >= 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    b = pred.shape[0]
    ia, ib = idx_a.long(), idx_b.long()
    v = valid.reshape(b, -1)
    both = v.gather(1, ia) & v.gather(1, ib)
    g = torch.where(valid, target.double(), torch.ones_like(target, dtype=torch.float64)).reshape(b, -1)
    p = pred.double().clamp(min=EPS).reshape(b, -1)
    lt = _ordinal_label(g.gather(1, ia), g.gather(1, ib), sigma)
    lp = _ordinal_label(p.gather(1, ia), p.gather(1, ib), sigma)
    scored = both & (lt != 0)
    wrong = (scored & (lp != lt)).sum(dim=1).double()
    count = scored.sum(dim=1).double()
    return float(_batch_mean(wrong / count.clamp(min=1), count > 0, "pair with a non-zero target label"))


# ----------------------------------------------------------------------------- soft edge error


def depth_edges(target: torch.Tensor, valid: torch.Tensor, threshold: float = 0.05,
                dilation: int = 0) -> torch.Tensor:
    r"""Depth discontinuities of the target, as in PatchFusion's ``get_boundaries``; bool ``(B,1,H,W)``.

    A valid pixel is an edge when the target disparity :math:`1/g` (1/m) of one of its 4
    neighbours, also valid, differs from its own by more than ``threshold``: both pixels of a
    jump are marked. ``dilation > 0`` then grows the edges with a ``dilation x dilation`` square
    (anchored like ``cv2.dilate``); PatchFusion evaluates with ``dilation=0``.

    Units: PatchFusion thresholds the disparity of UnrealStereo4K in pixels, at 1 px. Our
    disparity is 1/depth in 1/m, so ``threshold`` is in 1/m; 1 px of a stereo rig's disparity
    is ``1 / (f_px * baseline_m)`` 1/m (Middlebury motorcycle at 741 px wide: 1/192 = 0.0052,
    pass that to reproduce the reference there). The default 0.05 suits the course's small
    images: it marks a jump from 2 m to beyond 2.22 m, or from 4 m to beyond 5 m. A plane's
    disparity changes by about ``1 / (f_px * distance_to_plane)`` per pixel, so a plane closer
    than ``1 / (f_px * threshold)`` m is wrongly all edge: 0.31 m for f = 64 px at the default;
    lower the threshold for larger images.

    Args:
        target: ``(B,1,H,W)`` depth in metres (> 0 where valid). valid: ``(B,1,H,W)`` bool.
        threshold: disparity jump in 1/m. dilation: square size in pixels, 0 for none.

    Example:
        >>> g = torch.tensor([[[[1.0, 1.0, 4.0, 4.0]]]])   # disparities 1, 1, 0.25, 0.25
        >>> depth_edges(g, torch.ones_like(g, dtype=torch.bool)).flatten().tolist()
        [False, True, True, False]
    """
    checks.depth_maps(target, target, valid, target_positive=True, pred_finite=True)
    if not threshold >= 0:
        raise ValueError(f"threshold must be >= 0, got {threshold}")
    if dilation < 0 or int(dilation) != dilation:
        raise ValueError(f"dilation must be a non-negative integer, got {dilation}")
    d = 1.0 / torch.where(valid, target.double(), torch.ones_like(target, dtype=torch.float64))
    edges = torch.zeros_like(valid)
    jump_y = ((d[:, :, 1:] - d[:, :, :-1]).abs() > threshold) & valid[:, :, 1:] & valid[:, :, :-1]
    jump_x = ((d[..., 1:] - d[..., :-1]).abs() > threshold) & valid[..., 1:] & valid[..., :-1]
    edges[:, :, 1:] |= jump_y
    edges[:, :, :-1] |= jump_y
    edges[..., 1:] |= jump_x
    edges[..., :-1] |= jump_x
    if dilation > 0:
        k, a = int(dilation), int(dilation) // 2  # cv2 anchor: offsets -a .. k-1-a
        grown = F.pad(edges.float(), (a, k - 1 - a, a, k - 1 - a), value=0.0)
        edges = F.max_pool2d(grown, kernel_size=k, stride=1) > 0
    return edges & valid


def soft_edge_error_map(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor,
                        radius: int = 1) -> torch.Tensor:
    r"""Per-pixel soft edge error: :math:`\min_{\|\delta\|_\infty \le r} |g(x + \delta) - p(x)|`, ``(B,1,H,W)``.

    The distance from the prediction at ``x`` to the closest target value in the
    ``(2r+1) x (2r+1)`` window around ``x``: a prediction that puts an edge one pixel off, or
    picks either side of a step, costs nothing; one that smears the step across it does.
    Neighbours outside the image or not valid are left out of the min (PatchFusion pads the
    shifted target with 0 instead, a border artefact). 0 where ``valid`` is False.
    """
    checks.depth_maps(pred, target, valid, target_positive=True, pred_finite=True)
    if radius < 0 or int(radius) != radius:
        raise ValueError(f"radius must be a non-negative integer, got {radius}")
    r = int(radius)
    h, w = pred.shape[-2:]
    dtype = torch.promote_types(pred.dtype, torch.float32)
    p = pred.to(dtype)
    g = torch.where(valid, target.to(dtype), torch.full_like(p, math.inf))
    g = F.pad(g, (r, r, r, r), value=math.inf)
    best = torch.full_like(p, math.inf)
    for dy in range(2 * r + 1):
        for dx in range(2 * r + 1):
            best = torch.minimum(best, (g[:, :, dy:dy + h, dx:dx + w] - p).abs())
    return torch.where(valid, best, torch.zeros_like(best))


def soft_edge_error(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor,
                    threshold: float = 0.05, radius: int = 1, dilation: int = 0) -> float:
    r"""Soft Edge Error (SEE) of PatchFusion (Li et al., CVPR 2024), in metres.

    Definition (``estimator/utils/metric.py`` of github.com/zhyever/PatchFusion:
    ``soft_edge_error`` and ``get_boundaries``): on the edge pixels :math:`E` of the target
    (:func:`depth_edges`: a jump of the target disparity to a 4-neighbour above ``threshold``,
    ``dilation`` 0 at evaluation) that are valid,

    .. math::  \mathrm{SEE} = \frac{1}{|E|} \sum_{x \in E} \min_{\|\delta\|_\infty \le r} |g(x+\delta) - p(x)| ,

    with :math:`r` = ``radius`` = 1 (a 3x3 window), on depth. A perfect prediction, or one that
    takes either side's value at each edge pixel, scores 0; a blurred edge scores more the more
    it is blurred. Per image, then the mean over images.

    Differences from the reference, all documented choices: the threshold is in 1/m, not in
    pixels of disparity (see :func:`depth_edges` for the default 0.05); out-of-image and invalid
    neighbours are excluded from the min instead of being read as depth 0; an image without an
    edge pixel is left out of the batch mean with a ``RuntimeWarning`` (PatchFusion scores it 0);
    a batch with no edge pixel raises ``ValueError``. The reference also clips ``pred`` to the
    dataset's depth range first; align or clip before calling if you want that.

    Args:
        pred: ``(B,1,H,W)`` predicted depth (metres, or aligned). target: ``(B,1,H,W)`` metres.
        valid: ``(B,1,H,W)`` bool. threshold, dilation: see :func:`depth_edges`. radius: window.

    Returns:
        SEE in metres, a Python float.

    Example:
        >>> g = torch.tensor([[[[1.0, 1.0, 4.0, 4.0]]]])
        >>> v = torch.ones_like(g, dtype=torch.bool)
        >>> soft_edge_error(g, g, v), soft_edge_error(torch.tensor([[[[1.0, 2.0, 3.0, 4.0]]]]), g, v)
        (0.0, 1.0)
    """
    per_image, count = _see_per_image(pred, target, valid, threshold, radius, dilation)
    return float(_batch_mean(per_image, count > 0, "edge pixel"))


def soft_edge_error_per_image(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor,
                              threshold: float = 0.05, radius: int = 1,
                              dilation: int = 0) -> torch.Tensor:
    """SEE of every image, ``(B,)`` float64 metres, NaN for an image without an edge pixel:
    the values whose mean is :func:`soft_edge_error`, for paired comparisons over the same
    images (chapters 04, 05 and 08). Arguments as for :func:`soft_edge_error`.

    Example:
        >>> g = torch.tensor([[[[1.0, 1.0, 4.0, 4.0]]], [[[2.0, 2.0, 2.0, 2.0]]]])
        >>> p = torch.tensor([[[[1.0, 2.0, 3.0, 4.0]]], [[[2.0, 2.0, 2.0, 2.0]]]])
        >>> soft_edge_error_per_image(p, g, g > 0).tolist()
        [1.0, nan]
    """
    per_image, count = _see_per_image(pred, target, valid, threshold, radius, dilation)
    return torch.where(count > 0, per_image, torch.full_like(per_image, math.nan))


def _see_per_image(pred, target, valid, threshold, radius, dilation):
    """(mean soft edge error over each image's edge pixels, their count), both ``(B,)``."""
    edges = depth_edges(target, valid, threshold=threshold, dilation=dilation)
    see = soft_edge_error_map(pred, target, valid, radius=radius).double()
    count = edges.sum(dim=_DIMS).double()
    per_image = torch.where(edges, see, torch.zeros_like(see)).sum(dim=_DIMS) / count.clamp(min=1)
    return per_image, count


# ----------------------------------------------------------------------------- images
def psnr_per_image(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None,
                   peak: float = 1.0) -> torch.Tensor:
    r"""Peak signal-to-noise ratio of each image, :math:`10\log_{10}(\mathrm{peak}^2/\mathrm{MSE})` dB.

    The MSE is over all channels and pixels, or over the pixels where ``mask`` is True (an image
    without any such pixel gets NaN). ``kornia.metrics.psnr`` gives the same number for one image
    without a mask; this is the per-image version that paired comparisons need.

    Args:
        pred, target: ``(B,C,H,W)`` images on the same scale (sRGB in [0, 1] for ``peak=1``).
        mask: optional ``(B,1,H,W)`` bool. peak: the largest possible value.

    Returns:
        ``(B,)`` dB (infinite MSE floors at 1e-10, i.e. at most 100 dB for ``peak=1``).

    Example:
        >>> psnr_per_image(torch.zeros(1, 3, 2, 2), torch.full((1, 3, 2, 2), 0.1))
        tensor([20.])
    """
    if not isinstance(pred, torch.Tensor) or not isinstance(target, torch.Tensor):
        raise TypeError("pred and target must be torch tensors")
    if pred.shape != target.shape or pred.dim() != 4:
        raise ValueError(f"pred and target must be (B,C,H,W) of one shape, got {tuple(pred.shape)} "
                         f"and {tuple(target.shape)}")
    if not peak > 0:
        raise ValueError(f"peak must be > 0, got {peak!r}")
    err = (pred.float() - target.float()) ** 2
    if mask is None:
        mse = err.flatten(1).mean(1)
    else:
        if mask.dtype != torch.bool or mask.shape != (pred.shape[0], 1, *pred.shape[-2:]):
            raise ValueError(f"mask must be a bool (B,1,H,W) tensor, got {mask.dtype} "
                             f"{tuple(mask.shape)}")
        m = mask.expand_as(err).float()
        n = m.flatten(1).sum(1)
        mse = (err * m).flatten(1).sum(1) / n.clamp(min=1)
        mse = torch.where(n > 0, mse, torch.full_like(mse, float("nan")))
    return 10 * torch.log10(peak ** 2 / mse.clamp(min=1e-10))
