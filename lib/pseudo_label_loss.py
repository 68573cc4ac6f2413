r"""The student's loss on pseudo-labelled images (Depth Anything V1 and V2, Yang et al. 2024).

A teacher's prediction on an unlabelled image is a *pseudo-label*: relative depth (disparity up
to an unknown scale and shift) that is right in most places and wrong in a few. The student is
compared with it by the **affine-invariant** residual of MiDaS / Depth Anything: each map is
normalised per image by its median (shift) and its mean absolute deviation from the median
(scale),

.. math:: \hat x_i = \frac{x_i - \mathrm{med}(x)}{\frac{1}{n}\sum_j |x_j - \mathrm{med}(x)|},
          \qquad \rho_i = |\hat p_i - \hat g_i| ,

and, because the pseudo-label is wrong in places, the **largest 10 %** of the residuals of each
pseudo-labelled image are ignored: a pixel where student and teacher disagree most is more
likely a teacher mistake than a lesson. This "ignore the top-n-largest-loss regions" rule is
Depth Anything **V2**'s (Yang et al., NeurIPS 2024, section 5.2, n = 10 %); V1 (CVPR 2024)
trains its student on all pixels of the pseudo-labels, with CutMix and the strong perturbation. With CutMix (:mod:`lib.cutmix`) one mixed image holds
two regions, each with its own pseudo-label and its own unknown scale and shift: each region is
then normalised and trimmed on its own (:func:`cutmix_pseudo_label_loss`).

Reduction: the mean of the kept residuals over the whole batch. A batch with no kept pixel gives
an exact 0 that is still connected to ``pred`` (never NaN).

>>> g = torch.arange(1.0, 11.0).view(1, 1, 2, 5); v = torch.ones_like(g, dtype=torch.bool)
>>> pseudo_label_loss(3 * g + 1, g, v).abs().item() < 1e-6      # an affine copy costs nothing
True
"""
from __future__ import annotations

import torch

from lib import checks
from lib.losses import _masked, _median_mad_normalise

__all__ = ["affine_normalise", "affine_invariant_residual", "ignore_top", "pseudo_label_loss", "cutmix_pseudo_label_loss"]


def affine_normalise(x: torch.Tensor, valid: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    r"""Per image :math:`(x - \mathrm{med}\,x) / \max(\frac{1}{n}\sum|x - \mathrm{med}\,x|, \epsilon)` over
    the valid pixels (lower median); 0 outside ``valid``. ``(B,1,H,W)`` in, same out: the common
    scale-and-shift-free form of disparity maps that come with unrelated scales and shifts.

    >>> x = torch.tensor([1.0, 2.0, 3.0, 10.0]).view(1, 1, 2, 2); v = torch.ones_like(x, dtype=torch.bool)
    >>> affine_normalise(x, v).flatten().tolist()        # median 2, MAD (1 + 0 + 1 + 8) / 4 = 2.5
    [-0.4000000059604645, 0.0, 0.4000000059604645, 3.200000047683716]
    """
    checks.depth_maps(x, x, valid)
    return _median_mad_normalise(x, valid, eps)


def affine_invariant_residual(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor,
                              eps: float = 1e-6) -> torch.Tensor:
    r"""Per-pixel :math:`\rho = |\hat p - \hat g|` after median/MAD normalisation of each image.

    Args:
        pred, target: ``(B,1,H,W)`` disparity-like maps (any scale and shift).
        valid: bool ``(B,1,H,W)``: the pixels that take part (statistics and residual).
        eps: floor of the MAD (a constant map normalises to 0).

    Returns:
        ``(B,1,H,W)`` residuals, 0 outside ``valid``. Unchanged when ``pred`` or ``target`` is
        replaced by ``a x + b`` with a > 0.
    """
    checks.depth_maps(pred, target, valid)
    p_hat = _median_mad_normalise(pred, valid, eps)
    g_hat = _median_mad_normalise(_masked(target, valid), valid, eps)
    return _masked((p_hat - g_hat).abs(), valid)


def ignore_top(residual: torch.Tensor, valid: torch.Tensor, fraction: float = 0.1) -> torch.Tensor:
    r"""The valid pixels of each image except its :math:`\lfloor f\, n_b \rfloor` largest residuals.

    Args:
        residual: ``(B,1,H,W)`` per-pixel loss (only its order matters; not differentiated).
        valid: bool ``(B,1,H,W)``; :math:`n_b` is the number of valid pixels of image b.
        fraction: :math:`f \in [0, 1)`, the share of each image's valid pixels to ignore.

    Returns:
        bool ``(B,1,H,W)``: True at the pixels that are kept. Ties are broken by position
        (the first in raster order is dropped first), so exactly :math:`\lfloor f n_b \rfloor`
        pixels are dropped per image.

    Reference: Depth Anything V2 (Yang et al., NeurIPS 2024), section 5.2: "we ignore the
    top-n-largest-loss regions", n = 10 %, per pseudo-labelled sample.

    >>> r = torch.arange(20.0).view(1, 1, 4, 5); v = torch.ones_like(r, dtype=torch.bool)
    >>> (~ignore_top(r, v, 0.1)).nonzero()[:, 2:].tolist()    # 2 of 20 dropped: 18 and 19
    [[3, 3], [3, 4]]
    """
    if not isinstance(residual, torch.Tensor) or residual.ndim != 4 or residual.shape[1] != 1:
        raise ValueError(f"residual must be a (B,1,H,W) tensor, got "
                         f"{tuple(residual.shape) if isinstance(residual, torch.Tensor) else type(residual).__name__}")
    if not isinstance(valid, torch.Tensor) or valid.dtype != torch.bool or valid.shape != residual.shape:
        raise ValueError("valid must be a bool tensor of the shape of residual")
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must lie in [0, 1), got {fraction!r}")
    B = residual.shape[0]
    m = valid.flatten(1)
    r = torch.where(m, residual.detach().flatten(1), torch.full((), -float("inf"), device=residual.device,
                                                                dtype=residual.dtype))
    order = r.argsort(dim=1, descending=True, stable=True)              # largest first, invalid last
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(r.shape[1], device=r.device).expand_as(order))
    n_drop = torch.floor(m.sum(1, keepdim=True).double() * fraction + 1e-9).long()
    return (m & (rank >= n_drop)).view(B, *residual.shape[1:])


def _kept_sum(pred, target, valid, fraction, eps):
    res = affine_invariant_residual(pred, target, valid, eps)
    keep = ignore_top(res, valid, fraction)
    return _masked(res, keep).sum(), keep.sum()


def pseudo_label_loss(pred: torch.Tensor, pseudo: torch.Tensor, valid: torch.Tensor, ignore: float = 0.1,
                      eps: float = 1e-6) -> torch.Tensor:
    r"""Affine-invariant loss against a pseudo-label, ignoring each image's largest residuals.

    .. math:: L = \frac{\sum_b \sum_{i \in K_b} \rho_{b,i}}{\sum_b |K_b|}

    with :math:`\rho` from :func:`affine_invariant_residual` and :math:`K_b` the valid pixels of
    image b without its :math:`\lfloor \text{ignore}\cdot n_b\rfloor` largest residuals
    (:func:`ignore_top`).

    Args:
        pred: ``(B,1,H,W)`` the student's disparity (any scale and shift).
        pseudo: ``(B,1,H,W)`` the teacher's disparity on the same (unperturbed) images.
        valid: bool ``(B,1,H,W)``.
        ignore: share of each image's pixels to leave out (0.1 in Depth Anything V2).
    """
    total, count = _kept_sum(pred, pseudo, valid, ignore, eps)
    return total / count.clamp_min(1)


def cutmix_pseudo_label_loss(pred: torch.Tensor, pseudo_a: torch.Tensor, pseudo_b: torch.Tensor,
                             box: torch.Tensor, valid_a: torch.Tensor, valid_b: torch.Tensor | None = None,
                             ignore: float = 0.1, eps: float = 1e-6) -> torch.Tensor:
    r"""Pseudo-label loss of a CutMix image, region by region.

    The prediction on ``cutmix(image_a, image_b, box)`` is compared with ``pseudo_b`` inside the
    box and with ``pseudo_a`` outside it; each region gets its own median/MAD normalisation
    (the two pseudo-labels have unrelated scales and shifts) and its own
    ``ignore`` trimming. The result is the mean of all kept residuals, so each region weighs in
    proportion to its kept pixels (the area-weighted average of Depth Anything's two terms):

    .. math:: L = \frac{\sum_{i \in K_a} \rho^a_i + \sum_{i \in K_b} \rho^b_i}{|K_a| + |K_b|},
       \quad \rho^a \text{ over } \neg\text{box} \wedge \text{valid}_a,\;
       \rho^b \text{ over } \text{box} \wedge \text{valid}_b .

    An image without a box (all False) reduces to :func:`pseudo_label_loss`.

    Args:
        pred: ``(B,1,H,W)`` the student's disparity on the mixed images.
        pseudo_a, pseudo_b: ``(B,1,H,W)`` the pseudo-labels of the two source images
            (``pseudo_b`` is usually ``pseudo_a[perm]``), *not* mixed.
        box: bool ``(B,1,H,W)`` from :func:`lib.cutmix.cutmix_boxes`.
        valid_a, valid_b: bool ``(B,1,H,W)`` valid pixels of each source (``valid_b`` defaults to
            ``valid_a``).
        ignore: share of each region's pixels to leave out.
    """
    valid_b = valid_a if valid_b is None else valid_b
    if not isinstance(box, torch.Tensor) or box.dtype != torch.bool or box.shape != pred.shape:
        raise ValueError(f"box must be a bool tensor of the shape of pred {tuple(pred.shape)}")
    checks.depth_maps(pred, pseudo_b, valid_b)
    sum_a, n_a = _kept_sum(pred, pseudo_a, valid_a & ~box, ignore, eps)
    sum_b, n_b = _kept_sum(pred, pseudo_b, valid_b & box, ignore, eps)
    return (sum_a + sum_b) / (n_a + n_b).clamp_min(1)
