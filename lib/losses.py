r"""Training losses for monocular depth: ordinal ranking, scale-invariant, scale-and-shift-invariant.

Every loss takes ``pred`` and ``target`` ``(B,1,H,W)`` and a bool ``valid`` ``(B,1,H,W)`` and
returns a scalar tensor. Shared rules:

- Pixels outside ``valid`` never reach the arithmetic: they are replaced (``torch.where``)
  *before* any log or division, so NaN/inf/0/negative values there cannot leak into the
  value or the gradient.
- A loss over no valid pixel (or no usable pair) returns an exact 0 that is still connected
  to ``pred`` (it backpropagates zeros), never NaN.
- Two reductions, as in the reference code of each loss:

  * *image mean* (``ranking_loss``, ``scale_invariant_loss``): a value per image, then the
    mean over the images that have at least one valid pixel (usable pair); an image with
    nothing to measure neither counts nor dilutes the others. ``silog_loss`` pools the valid
    pixels of the whole batch instead, as its reference code does.
  * *batch-based* (MiDaS: ``gradient_matching_loss``, ``ssi_loss``, ``ssi_trimmed_loss``):
    sums over the whole batch divided by the number of valid pixels of the whole batch
    (``reduction_batch_based`` of the MiDaS training-loss reference,
    https://gist.github.com/ranftlr/1d6194db2e1dffa0a50c9b0a9549cbd2, Ranftl et al., TPAMI
    2022, "Towards Robust Monocular Depth Estimation: Mixing Datasets for Zero-shot
    Cross-dataset Transfer").
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from lib import checks
from lib.sampling import (
    edge_guided_pairs,
    edge_pixel_count,
    instance_guided_pairs,
    ordinal_labels,
    random_pairs,
    valid_pairs,
)

__all__ = [
    "ranking_loss",
    "scale_invariant_loss",
    "silog_loss",
    "gradient_matching_loss",
    "ssi_loss",
    "ssi_trimmed_loss",
    "structure_guided_ranking_loss",
    "feature_alignment_loss",
]


# --------------------------------------------------------------------------- checks and helpers
def _masked(x: torch.Tensor, valid: torch.Tensor, fill: float = 0.0) -> torch.Tensor:
    """``x`` where valid, ``fill`` elsewhere (gradient 0 there, whatever x holds)."""
    return torch.where(valid, x, torch.full((), fill, dtype=x.dtype, device=x.device))


def _image_mean(per_image: torch.Tensor, has: torch.Tensor) -> torch.Tensor:
    """Mean of ``per_image`` (B,) over the images flagged in ``has`` (B,); 0 when none."""
    per_image = torch.where(has, per_image, torch.zeros_like(per_image))
    return per_image.sum() / has.sum().clamp_min(1)


def _log_residual(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, eps: float) -> torch.Tensor:
    """g = log pred - log target on valid pixels (0 elsewhere); pred is clamped at ``eps``."""
    p = _masked(pred, valid, 1.0).clamp_min(eps)
    t = _masked(target, valid, 1.0)
    return _masked(torch.log(p) - torch.log(t), valid)


def _si_terms(g: torch.Tensor, valid: torch.Tensor, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Per image ``mean(g^2) - lam * mean(g)^2`` (B,) and the has-valid flags (B,).

    Evaluated as :math:`\mathrm{mean}((g-\bar g)^2) + (1-\lambda)\bar g^2`, the same quantity
    without the cancellation of two large numbers, and >= 0 for lam <= 1.
    """
    m = valid.flatten(1)
    g = g.flatten(1)
    n = m.sum(1)
    nc = n.clamp_min(1).to(g.dtype)
    mean = g.sum(1) / nc
    var = (_masked(g - mean.unsqueeze(1), m) ** 2).sum(1) / nc
    return var + (1.0 - lam) * mean * mean, n > 0


# --------------------------------------------------------------------------- ranking
def ranking_loss(pred: torch.Tensor, target: torch.Tensor, idx_a: torch.Tensor, idx_b: torch.Tensor,
                 valid: torch.Tensor, sigma: float = 0.03, alpha: float = 1.0) -> torch.Tensor:
    r"""Pairwise ranking loss (ReDWeb / Xian et al. 2018, 2020).

    For image i with :math:`N_i` usable pairs (both ends valid, ``a != b``; see
    :func:`lib.sampling.valid_pairs`) and labels :math:`l = ` ``ordinal_labels(target_a,
    target_b, sigma)``, split into equal pairs :math:`E_i` (l = 0) and ordinal pairs
    :math:`O_i` (l = +-1):

    .. math::
        L_i = \frac{1}{N_i}\Bigl[\alpha \sum_{E_i} (p_a - p_b)^2
              + \sum_{O_i} \log\bigl(1 + e^{-l (p_a - p_b)}\bigr)\Bigr]

    both groups over the same :math:`N_i` (one pair, one vote: a batch with few equal pairs does
    not blow up their weight), computed with ``softplus`` (stable for large margins). The result
    is the mean of :math:`L_i` over the images with at least one usable pair.

    Reference: Xian et al., CVPR 2020, eq. (1)-(2), and the official
    ``KexianHust/Structure-Guided-Ranking-Loss``, ``ranking_loss.py``
    (``EdgeguidedRankingLoss.forward``: ``alpha * equal_loss.mean() + unequal_loss.mean()``,
    each a mean over all the pairs of the image). Differences, and why:

    - the official ``.mean()`` also counts the pairs it masked out (an end on an invalid pixel
      contributes 0 but still counts in N); here N counts usable pairs only, so the loss does not
      shrink as an image has more holes (identical when every pixel is valid);
    - the official loss sums over images and divides by the batch size B; here an image with no
      usable pair neither counts nor dilutes the others (identical when every image has one);
    - the official labels compare ``(t_a + 1e-6) / (t_b + 1e-6)``; here ``t_a / t_b`` (targets are
      > 0 where valid, so the 1e-6 only matters for depths of a few micrometres).

    Args:
        pred: ``(B,1,H,W)`` depth-like prediction (larger = farther), any scale.
        target: ``(B,1,H,W)`` depth (> 0 where valid).
        idx_a, idx_b: int64 ``(B, n)`` flat pixel indices (from :mod:`lib.sampling`).
        valid: bool ``(B,1,H,W)``.
        sigma: ordinal tolerance (see :func:`lib.sampling.ordinal_labels`).
        alpha: weight of the equal-pair term.

    Example: one image, pair 1 has target 2 vs 1 (l = +1) and pred 0 vs 0; pair 2 has
    target 1 vs 1 (equal) and pred 1 vs 0 -> ``(log 2 + 1) / 2``.

    >>> t = torch.tensor([2.0, 1.0, 1.0, 1.0]).view(1, 1, 2, 2)
    >>> p = torch.tensor([0.0, 0.0, 1.0, 0.0]).view(1, 1, 2, 2)
    >>> v = torch.ones(1, 1, 2, 2, dtype=torch.bool)
    >>> round(ranking_loss(p, t, torch.tensor([[0, 2]]), torch.tensor([[1, 3]]), v).item(), 4)
    0.8466
    """
    checks.depth_maps(pred, target, valid)
    use = valid_pairs(valid, idx_a, idx_b)                                 # (B,n); also checks indices
    p, t = _masked(pred, valid).flatten(1), _masked(target, valid, 1.0).flatten(1)
    pa, pb = p.gather(1, idx_a), p.gather(1, idx_b)
    labels = ordinal_labels(t.gather(1, idx_a), t.gather(1, idx_b), sigma)
    eq = use & (labels == 0)
    od = use & (labels != 0)
    diff = _masked(pa - pb, use)
    eq_sum = _masked(diff * diff, eq).sum(1)
    od_sum = _masked(F.softplus(-labels.to(diff.dtype) * diff), od).sum(1)
    n_use = use.sum(1).clamp_min(1)
    return _image_mean((alpha * eq_sum + od_sum) / n_use, use.any(1))


def structure_guided_ranking_loss(pred: torch.Tensor, target: torch.Tensor, image: torch.Tensor,
                                  valid: torch.Tensor, mask: torch.Tensor | None = None,
                                  n_pairs: int | None = None, sigma: float = 0.03, alpha: float = 1.0,
                                  generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Structure-guided ranking loss (Xian et al., CVPR 2020): guided pair sampling + :func:`ranking_loss`.

    Pairs are drawn online (fresh at each call), ``n_pairs`` per image:

    - without ``mask``: ``edge_guided_pairs(image, valid, n_pairs)``, i.e. 3/4 edge-guided
      pairs and 1/4 random pairs (the ratio of the reference code);
    - with ``mask``: 1/2 edge-guided, 1/4 instance-guided (``instance_guided_pairs``: half
      across object boundaries, half inside objects), 1/4 random.

    ``n_pairs=None`` (the default) takes the reference's count: one anchor per edge pixel, so
    ``4 x`` the number of edge pixels (:func:`lib.sampling.edge_pixel_count`), here the largest
    count over the batch for every image (a batch is one tensor of pairs; the reference loops
    over images and gives each its own count). The pair count only changes how many pairs the
    loss averages (it is 1/N per image), not what it measures.

    Reference: ``KexianHust/Structure-Guided-Ranking-Loss``, ``ranking_loss.py``
    (``EdgeguidedRankingLoss``); the differences of the sampler and of the loss are listed in
    :func:`lib.sampling.edge_guided_pairs` and :func:`ranking_loss`. The instance-guided part
    is described in the paper but not in its public code.

    Args:
        pred: ``(B,1,H,W)`` depth-like prediction (larger = farther).
        target: ``(B,1,H,W)`` depth.
        image: ``(B,3,H,W)`` in [0,1] (edges are found on it).
        valid: bool ``(B,1,H,W)``.
        mask: optional int64 ``(B,1,H,W)`` instance mask (0 = background).
        n_pairs: pairs per image (>= 4), or None for the reference's 4 x edge pixels.
        sigma, alpha: as in :func:`ranking_loss`.
        generator: optional ``torch.Generator`` for the sampling.
    """
    checks.depth_maps(pred, target, valid)
    if n_pairs is None:
        n_pairs = max(4, 4 * int(edge_pixel_count(image, valid).max()))
    if n_pairs < 4:
        raise ValueError(f"n_pairs must be >= 4 (or None), got {n_pairs}")
    if mask is None:
        idx_a, idx_b = edge_guided_pairs(image, valid, n_pairs, generator, random_fraction=0.25)
    else:
        n_inst = n_pairs // 4
        n_rand = n_pairs // 4
        n_edge = n_pairs - n_inst - n_rand
        ea, eb = edge_guided_pairs(image, valid, n_edge, generator, random_fraction=0.0)
        ia, ib = instance_guided_pairs(mask, valid, n_inst, generator)
        ra, rb = random_pairs(valid, n_rand, generator)
        idx_a, idx_b = torch.cat([ea, ia, ra], 1), torch.cat([eb, ib, rb], 1)
    return ranking_loss(pred, target, idx_a, idx_b, valid, sigma=sigma, alpha=alpha)


# --------------------------------------------------------------------------- scale-invariant
def scale_invariant_loss(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, lam: float = 0.5,
                         eps: float = 1e-6) -> torch.Tensor:
    r"""Scale-invariant log loss (Eigen et al., NeurIPS 2014).

    With :math:`g = \log \hat d - \log d` over the :math:`n_i` valid pixels of image i:

    .. math:: L_i = \frac{1}{n_i}\sum g^2 - \lambda \Bigl(\frac{1}{n_i}\sum g\Bigr)^2

    mean over images with a valid pixel. With ``lam = 1`` this is the variance of g and
    does not change when ``pred`` is multiplied by a constant; with ``lam < 1`` it equals
    :math:`\mathrm{Var}(g) + (1-\lambda)\bar g^2` and a wrong global scale is penalised.

    ``pred`` must be positive; it is clamped at ``eps`` on valid pixels (a value <= 0 there
    gets no gradient rather than a NaN). Invalid pixels are never logged.

    Example: g = (log 2, log 2) -> ``log(2)^2 - 0.5 log(2)^2 = 0.2402``.

    >>> t = torch.ones(1, 1, 1, 2); v = torch.ones(1, 1, 1, 2, dtype=torch.bool)
    >>> round(scale_invariant_loss(2 * t, t, v).item(), 4)
    0.2402
    """
    checks.depth_maps(pred, target, valid)
    per_image, has = _si_terms(_log_residual(pred, target, valid, eps), valid, lam)
    return _image_mean(per_image, has)


def _safe_sqrt(x: torch.Tensor, eps: float) -> torch.Tensor:
    """sqrt(x) for x > eps; the straight line x / sqrt(eps) below (continuous at eps, 0 at 0,
    finite slope); negative rounding noise is clamped to 0."""
    x = x.clamp_min(0)
    return torch.where(x > eps, torch.sqrt(x.clamp_min(eps)), x / math.sqrt(eps))


def silog_loss(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, lam: float = 0.85,
               scale: float = 10.0, eps: float = 1e-6, reduction: str = "batch") -> torch.Tensor:
    r"""SILog loss (Lee et al., BTS 2019; AdaBins, ZoeDepth and PatchFusion train with it).

    With :math:`g = \log \hat d - \log d` over the :math:`n` valid pixels of the **whole batch
    pooled** (``reduction="batch"``, the default, as the reference code):

    .. math:: L = s \sqrt{\mathrm{Var}_{n-1}(g) + (1 - \lambda)\,\bar g^{\,2}}

    one square root for the batch; :math:`\mathrm{Var}_{n-1}` is the unbiased variance
    (``torch.var``), so this is :math:`s\sqrt{\frac{1}{n}\sum g^2 - \lambda \bar g^2}` of the
    paper up to the factor :math:`n/(n-1)` on the variance (below 0.1 % for n > 1000).
    Scale-invariant only for ``lam = 1``.

    ``reduction="image"`` computes L per image and averages over the images with a valid
    pixel. It is *not* the reference loss: one root per image weighs every image equally
    (whatever its number of valid pixels) and, the root being concave, it is smaller than the
    pooled value whenever images disagree (two images at log scale +0.1 and -0.1 give 0.387
    per image but 1.016 pooled, the pooled :math:`\bar g = 0` hiding nothing of the spread).
    The metric SILog of :func:`lib.metrics.depth_metrics` is per image.

    As in :func:`scale_invariant_loss`, ``pred`` is clamped at ``eps`` on valid pixels and invalid
    pixels are never logged. The square root is guarded so its gradient stays finite when the
    inside is 0 (a perfect prediction): for inside values :math:`x \le 10^{-8}` it is replaced by
    the line :math:`x / 10^{-4}`, which meets :math:`\sqrt{x}` at :math:`10^{-8}` and is 0 at 0.

    Reference: AdaBins ``loss.py`` (``SILogLoss``), ZoeDepth ``zoedepth/trainers/loss.py`` and
    PatchFusion ``estimator/models/losses.py`` (``SILogLoss``): ``input[mask]`` pools the
    batch, ``Dg = torch.var(g) + 0.15 * torch.pow(torch.mean(g), 2)``, ``10 * torch.sqrt(Dg)``
    (0.15 = 1 - lam). Differences, and why:

    - ZoeDepth and PatchFusion take ``log(x + 1e-7)``; here ``pred`` is clamped at ``eps`` and the
      target is used as it is (it is > 0 where valid);
    - with a single valid pixel ``torch.var`` is NaN; here the variance is 0 then;
    - with no valid pixel the reference returns NaN; here an exact 0 that backpropagates;
    - the reference bilinearly resizes ``input`` to the target's size first; here the two must
      already have the same shape (a clear error otherwise);
    - the guarded root near 0 (see above), where ``torch.sqrt`` has an infinite gradient.

    >>> t = torch.ones(1, 1, 1, 2); v = torch.ones(1, 1, 1, 2, dtype=torch.bool)
    >>> round(silog_loss(2 * t, t, v).item(), 4)  # 10 * sqrt(0.15) * log 2
    2.6845
    """
    checks.depth_maps(pred, target, valid)
    if reduction not in ("batch", "image"):
        raise ValueError(f"reduction must be 'batch' (pooled, as the reference) or 'image', got {reduction!r}")
    g = _log_residual(pred, target, valid, eps)
    if reduction == "batch":                      # the whole batch as one image
        g, valid = g.reshape(1, 1, 1, -1), valid.reshape(1, 1, 1, -1)
    m = valid.flatten(1)
    n = m.sum(1)
    nf = n.to(g.dtype)
    mean = g.flatten(1).sum(1) / nf.clamp_min(1)
    ss = (_masked(g.flatten(1) - mean.unsqueeze(1), m) ** 2).sum(1)
    var = ss / (nf - 1).clamp_min(1)              # unbiased, as torch.var; 0 for one pixel
    inside = var + (1.0 - lam) * mean * mean
    return _image_mean(scale * _safe_sqrt(inside, 1e-8), n > 0)


# --------------------------------------------------------------------------- MiDaS losses
def _gradient_sum(r: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Batch sum of |d/dx r| + |d/dy r| over neighbour pairs that are both valid (r already masked)."""
    mx = valid[..., :, 1:] & valid[..., :, :-1]
    my = valid[..., 1:, :] & valid[..., :-1, :]
    gx = _masked((r[..., :, 1:] - r[..., :, :-1]).abs(), mx)
    gy = _masked((r[..., 1:, :] - r[..., :-1, :]).abs(), my)
    return gx.sum() + gy.sum()


def gradient_matching_loss(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor,
                           scales: int = 4) -> torch.Tensor:
    r"""Multi-scale gradient matching loss of MiDaS (Ranftl et al.; after Li & Snavely 2018).

    On the residual :math:`R = \hat d - d` (0 at invalid pixels), at scales
    :math:`k = 0..K-1` the maps are subsampled by :math:`2^k` (``x[..., ::2**k, ::2**k]``,
    as in the reference ``GradientLoss``), and

    .. math:: L = \sum_{k} \frac{1}{M_k} \sum_{b} \sum_{i}
              \bigl(|\nabla_x R^k_i| + |\nabla_y R^k_i|\bigr)

    where a forward difference counts only when both of its pixels are valid and :math:`M_k`
    is the number of valid pixels of the whole batch at scale k (batch-based reduction; a
    scale with :math:`M_k = 0` contributes 0). Invariant to adding a constant to ``pred``.

    Args:
        pred, target: ``(B,1,H,W)``, in whatever space the caller trains (MiDaS: disparity).
        valid: bool ``(B,1,H,W)``.
        scales: number of scales K >= 1.

    Example: R = [[0, 1], [0, 1]] has two x-differences of 1, no y-difference, M = 4.

    >>> p = torch.tensor([[0.0, 1.0], [0.0, 1.0]]).view(1, 1, 2, 2); v = torch.ones_like(p, dtype=torch.bool)
    >>> gradient_matching_loss(p, torch.zeros_like(p), v, scales=1).item()
    0.5
    """
    checks.depth_maps(pred, target, valid)
    if scales < 1:
        raise ValueError(f"scales must be >= 1, got {scales}")
    r = _masked(pred - _masked(target, valid), valid)
    total = r.sum() * 0.0  # keeps the graph when every scale is empty
    for k in range(scales):
        step = 2 ** k
        rk, vk = r[..., ::step, ::step], valid[..., ::step, ::step]
        total = total + _gradient_sum(rk, vk) / vk.sum().clamp_min(1)
    return total


def _scale_shift(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Per-image least squares :math:`\min_{s,t}\sum m (s p + t - g)^2` in centred form.

    :math:`s = \sum m (p-\bar p)(g-\bar g) / \sum m (p-\bar p)^2`, :math:`t = \bar g - s \bar p`.
    When the prediction has (numerically) no variance, :math:`s = 0, t = \bar g` (the best
    constant), so no division by zero. Returns ``(s, t)``, each ``(B,1,1,1)``.
    """
    m = valid
    n = m.sum((1, 2, 3), keepdim=True).clamp_min(1).to(pred.dtype)
    p, g = _masked(pred, m), _masked(target, m)
    pm, gm = p.sum((1, 2, 3), keepdim=True) / n, g.sum((1, 2, 3), keepdim=True) / n
    pc, gc = _masked(p - pm, m), _masked(g - gm, m)
    den = (pc * pc).sum((1, 2, 3), keepdim=True)
    num = (pc * gc).sum((1, 2, 3), keepdim=True)
    ok = den > 1e-10 * (p * p).sum((1, 2, 3), keepdim=True) + torch.finfo(pred.dtype).tiny
    s = torch.where(ok, num / torch.where(ok, den, torch.ones_like(den)), torch.zeros_like(den))
    return s, gm - s * pm


def ssi_loss(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, alpha: float = 0.5,
             scales: int = 4) -> torch.Tensor:
    r"""Scale-and-shift-invariant MSE loss of MiDaS with the gradient matching regulariser.

    Per image, the least-squares scale and shift :math:`(s, t)` of ``pred`` onto ``target``
    over its valid pixels (closed form; :math:`s = 0, t = \bar g` for a constant prediction),
    then with :math:`M` the number of valid pixels in the whole batch:

    .. math:: L = \frac{1}{2M}\sum_{b,i} m_i (s_b p_i + t_b - g_i)^2
              + \alpha\, L_{grad}(s p + t,\; g)

    (:func:`gradient_matching_loss`). The gradient flows through :math:`s, t` too, as in
    the reference ``ScaleAndShiftInvariantLoss``. The loss is agnostic to the space: MiDaS
    applies it to disparity (inverse depth), but it aligns whatever ``pred``/``target`` it is
    given. Unchanged when ``pred`` is replaced by ``a * pred + b`` (any a != 0, any b).

    >>> g = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 1, 2, 2); v = torch.ones_like(g, dtype=torch.bool)
    >>> ssi_loss(5 * g - 7, g, v).abs().item() < 1e-5
    True
    """
    checks.depth_maps(pred, target, valid)
    s, t = _scale_shift(pred, target, valid)
    aligned = s * _masked(pred, valid) + t
    r = _masked(aligned - _masked(target, valid), valid)
    M = valid.sum().clamp_min(1)
    data = (r * r).sum() / (2 * M)
    if alpha > 0:
        data = data + alpha * gradient_matching_loss(aligned, target, valid, scales)
    return data


def _median_mad_normalise(x: torch.Tensor, valid: torch.Tensor, eps: float) -> torch.Tensor:
    r"""Per image :math:`(x - \mathrm{med}(x)) / \max(\frac{1}{n}\sum |x - \mathrm{med}(x)|, \epsilon)`
    over valid pixels (lower median, like ``torch.median``); 0 at invalid pixels."""
    B = x.shape[0]
    m = valid.flatten(1)
    xf = _masked(x.flatten(1), m)
    n = m.sum(1, keepdim=True)
    inf = torch.full((), float("inf"), dtype=x.dtype, device=x.device)
    srt = torch.where(m, xf, inf).sort(dim=1).values                        # valid values first
    med = srt.gather(1, ((n - 1) // 2).clamp_min(0))
    med = torch.where(n > 0, med, torch.zeros_like(med))
    dev = _masked((xf - med).abs(), m)
    mad = dev.sum(1, keepdim=True) / n.clamp_min(1).to(x.dtype)
    return _masked((xf - med) / mad.clamp_min(eps), m).view(B, *x.shape[1:])


def ssi_trimmed_loss(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, trim: float = 0.2,
                     alpha: float = 0.5, scales: int = 4, eps: float = 1e-6) -> torch.Tensor:
    r"""Robust scale-and-shift-invariant loss of MiDaS ("ssitrim", trimmed MAE) + gradient term.

    Both maps are normalised per image over their valid pixels by the median (shift) and
    the mean absolute deviation from it (scale):
    :math:`\hat x = (x - \mathrm{med}\,x) / \max(\frac{1}{n}\sum|x - \mathrm{med}\,x|, \epsilon)`
    (lower median; :math:`\epsilon` guards constant maps, whose normalised form is 0).
    With residuals :math:`\rho_i = |\hat p_i - \hat g_i|` sorted in increasing order, image b
    keeps its :math:`U_b = \lfloor (1 - \mathrm{trim}) M_b \rfloor` smallest ones, and

    .. math:: L = \frac{1}{2M}\sum_b \sum_{j \le U_b} \rho_{b,(j)}
              + \alpha\, L_{grad}(\hat p, \hat g)

    with :math:`M = \sum_b M_b` the valid pixels of the batch: eq. (7) of Ranftl et al.
    with the batch-based reduction of the reference (``trimmed_mae_loss``: sum of the kept
    residuals over ``2 * M``; note the factor 1/2 and that M counts the trimmed pixels too,
    so this is ``(1 - trim) / 2`` times the mean of the kept residuals).
    Unchanged when ``pred`` is replaced by ``a * pred + b`` with a > 0.

    Reference: Ranftl et al., TPAMI 2022, eq. (6)-(7) (per-image median / mean absolute deviation,
    trim 20 % per image), and the MiDaS training-loss gist of its first author
    (``gist.github.com/ranftlr/1d6194db2e1dffa0a50c9b0a9549cbd2``: ``normalize_prediction_robust``,
    ``trimmed_mae_loss``). This function follows the paper; the gist has two bugs, not followed:

    - ``torch.median((mask * target).view(B, -1), dim=1)`` takes the median over *all* pixels,
      the masked ones entering as zeros, so an image with holes gets a shift pulled towards 0;
      here the median is over the valid pixels only;
    - ``trimmed, _ = torch.sort(res.view(-1), descending=False)[: int(len(res) * (1.0 - trim))]``
      slices the ``(values, indices)`` tuple that ``torch.sort`` returns, not the values: the slice
      ``[:k]`` of a 2-tuple is the whole tuple for any k >= 2, so ``trimmed`` is every sorted
      residual and **nothing is trimmed**. (Had the slice worked, it would have trimmed the residuals
      of the whole batch pooled, not per image.) The gist's loss is thus ``sum |res| / (2 M)`` of
      all residuals; ``trim=0`` here gives the same value when every pixel is valid.

    >>> g = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 1, 2, 2); v = torch.ones_like(g, dtype=torch.bool)
    >>> ssi_trimmed_loss(3 * g + 1, g, v).abs().item() < 1e-5
    True
    """
    checks.depth_maps(pred, target, valid)
    if not 0.0 <= trim < 1.0:
        raise ValueError(f"trim must lie in [0, 1), got {trim}")
    p_hat = _median_mad_normalise(pred, valid, eps)
    g_hat = _median_mad_normalise(_masked(target, valid), valid, eps)
    m = valid.flatten(1)
    res = (p_hat - g_hat).flatten(1).abs()
    inf = torch.full((), float("inf"), dtype=res.dtype, device=res.device)
    srt = torch.where(m, res, inf).sort(dim=1).values                      # invalid last
    M_b = m.sum(1, keepdim=True)
    keep_n = torch.floor((1.0 - trim) * M_b.to(torch.float64)).long()
    keep = torch.arange(res.shape[1], device=res.device).unsqueeze(0) < keep_n
    data = _masked(srt, keep).sum() / (2 * M_b.sum().clamp_min(1))
    if alpha > 0:
        data = data + alpha * gradient_matching_loss(p_hat, g_hat, valid, scales)
    return data


# --------------------------------------------------------------------------- feature alignment
def feature_alignment_loss(student: torch.Tensor, teacher: torch.Tensor, margin: float = 0.15,
                           projection=None) -> torch.Tensor:
    r"""Feature alignment to a frozen encoder with a tolerance margin (Depth Anything, Sec. 3.3).

    At every location :math:`i` of the feature grid, :math:`d_i = 1 - \cos(f_i, f'_i)` between the
    student's feature vector :math:`f_i` and the frozen encoder's :math:`f'_i` (over channels).
    Locations already within the margin, :math:`d_i < m`, are left out (the student may keep
    its own features there: depth needs them to differ where semantics do not, e.g. across
    the two sides of one object); the loss is the mean of :math:`d_i` over the rest, over the
    whole batch:

    .. math:: L = \frac{1}{|S|}\sum_{i \in S} d_i, \qquad S = \{i : d_i \ge m\}.

    ``margin=0`` keeps every location (plain mean of :math:`1-\cos`). With ``margin=0.15`` this is
    Depth Anything's "cosine similarity above :math:`\alpha = 0.85` is not considered". When no
    location is left, the result is an exact 0 that still backpropagates.

    The teacher is frozen: it is detached. When its grid differs from the student's it is
    resized to the student's ``(h, w)`` (bilinear). When the channel counts differ, pass
    ``projection``, a module (e.g. ``nn.Conv2d(C_s, C_t, 1)``, trained with the student) applied
    to the student's features before the comparison.

    Args:
        student: ``(B, C_s, h, w)`` the student's features (e.g. ``DepthMaskNet(...)(x)["features"]``).
        teacher: ``(B, C_t, h', w')`` the frozen encoder's features of the same images.
        margin: m in [0, 2).
        projection: optional callable ``(B, C_s, h, w) -> (B, C_t, h, w)``.

    >>> s = torch.tensor([1.0, 0.0]).view(1, 2, 1, 1).expand(1, 2, 1, 2).contiguous()
    >>> t = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).T.reshape(1, 2, 1, 2)   # cos = 1, then 0
    >>> feature_alignment_loss(s, t, margin=0.0).item(), feature_alignment_loss(s, t).item()
    (0.5, 1.0)
    """
    for name, x in (("student", student), ("teacher", teacher)):
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
            raise ValueError(f"{name} features must be a float (B,C,h,w) tensor, got "
                             f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    if student.shape[0] != teacher.shape[0]:
        raise ValueError(f"student and teacher features must have the same batch size, got "
                         f"{student.shape[0]} and {teacher.shape[0]}")
    if not 0.0 <= margin < 2.0:
        raise ValueError(f"margin is a bound on 1 - cos and must lie in [0, 2), got {margin!r}")
    if projection is not None:
        student = projection(student)
    if student.shape[1] != teacher.shape[1]:
        raise ValueError(
            f"student has {student.shape[1]} channels and teacher {teacher.shape[1]}: pass "
            f"projection=nn.Conv2d({student.shape[1]}, {teacher.shape[1]}, 1) (trained with the student)")
    teacher = teacher.detach().to(student.dtype)
    if teacher.shape[-2:] != student.shape[-2:]:
        teacher = F.interpolate(teacher, size=student.shape[-2:], mode="bilinear", align_corners=False)
    d = 1.0 - F.cosine_similarity(student, teacher, dim=1, eps=1e-8)          # (B, h, w)
    keep = d >= margin if margin > 0 else torch.ones_like(d, dtype=torch.bool)
    return _masked(d, keep).sum() / keep.sum().clamp_min(1)
