r"""CutMix for unlabelled images: paste a box of one image into another (Yun et al., ICCV 2019).

Semi-supervised segmentation (UniMatch, Yang et al. 2023) and then Depth Anything (Yang et al.,
CVPR 2024) apply it to the *unlabelled* half of a batch: image ``a`` receives a box cut from
image ``b``; the student predicts on the mixed image, and its loss is computed region by region,
against the teacher's pseudo-label of ``a`` outside the box and of ``b`` inside it (see
:func:`lib.pseudo_label_loss.cutmix_pseudo_label_loss`). The model cannot use the context of
the whole picture to guess what lies in the box: it has to read depth from local evidence.

The box draw (one per image) is UniMatch's ``obtain_cutmix_box`` (``dataset/transform.py`` of
``LiheYoung/UniMatch``, which Depth Anything reuses), by default:

- with probability ``p`` = 0.5 the image gets a box, otherwise none (an all-False mask);
- the box area is drawn ONCE, :math:`A = a H W` with :math:`a \sim U(0.02, 0.4)`;
- then, until the box fits: the ratio :math:`r = h / w \sim U(0.3, 1/0.3)` (uniform, so about
  3/4 of the draws are taller than wide), :math:`w = \lfloor\sqrt{A / r}\rfloor`,
  :math:`h = \lfloor\sqrt{A r}\rfloor`, the top-left corner uniform over the whole image;
  the draw is kept when the box lies inside the image (ratio and corner are redrawn together).

Redrawing until the box fits makes tall-and-thin or large boxes near the border rare; it
leaves the area as drawn. ``exact_area=True`` is the course's variant (not the reference): a
log-uniform ratio restricted to the ratios for which the box fits and a corner uniform over
the positions that keep it inside, so that every draw fits at once and tall and wide boxes are
equally likely; chapter 07 shows both distributions.

>>> g = torch.Generator().manual_seed(0)
>>> box = cutmix_boxes(2, (32, 32), generator=g)
>>> box.shape, box.dtype
(torch.Size([2, 1, 32, 32]), torch.bool)
>>> a, b = torch.zeros(2, 3, 32, 32), torch.ones(2, 3, 32, 32)
>>> bool((cutmix(a, b, box)[:, :1] == box).all())   # 1 (from b) exactly inside the box
True
"""
from __future__ import annotations

import math

import torch

__all__ = ["cutmix_boxes", "cutmix"]


def _uniform(n: int, lo: float, hi: float, generator: torch.Generator | None) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=generator, dtype=torch.float64)


def cutmix_boxes(batch_size: int, size: tuple[int, int], *, p: float = 0.5,
                 area: tuple[float, float] = (0.02, 0.4), aspect: tuple[float, float] = (0.3, 1 / 0.3),
                 exact_area: bool = False, generator: torch.Generator | None = None,
                 device=None) -> torch.Tensor:
    r"""Draw one CutMix box per image (see the module docstring for the distribution).

    Args:
        batch_size: number of boxes B.
        size: ``(H, W)`` of the images, in pixels.
        p: probability that an image gets a box at all (0.5, as the reference).
        area: ``(lo, hi)`` with ``0 < lo <= hi <= 1``: the box area as a fraction of the image,
            drawn uniformly (the sides are then truncated to whole pixels).
        aspect: ``(lo, hi)`` with ``0 < lo <= 1 <= hi``: range of the ratio height / width
            (uniform as the reference; log-uniform with ``exact_area``).
        exact_area: the course's variant: every draw fits at once (see the module docstring).
        generator: a ``torch.Generator`` for reproducible draws (on the CPU).
        device: where the mask is returned.

    Returns:
        bool ``(B, 1, H, W)``: True inside the box (pixels that come from the second image).

    Reference: ``LiheYoung/UniMatch``, ``dataset/transform.py`` (``obtain_cutmix_box``, for a
    square image of side ``img_size``). Differences: any ``(H, W)`` (the corner is drawn over
    ``[0, W) x [0, H)`` and the box must fit in both); draws from a ``torch.Generator``
    instead of Python's and NumPy's global generators; a box of zero height or width (only
    possible for images under 13 px) is widened to 1 px.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 0:
        raise ValueError(f"batch_size must be a non-negative integer, got {batch_size!r}")
    if len(size) != 2 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in size):
        raise ValueError(f"size must be two positive integers (H, W), got {size!r}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p is a probability and must lie in [0, 1], got {p!r}")
    if not (len(area) == 2 and 0.0 < area[0] <= area[1] <= 1.0):
        raise ValueError(f"area must be (lo, hi) with 0 < lo <= hi <= 1 (fractions of the image), got {area!r}")
    if not (len(aspect) == 2 and 0.0 < aspect[0] <= 1.0 <= aspect[1]):
        raise ValueError(f"aspect must be (lo, hi) with 0 < lo <= 1 <= hi (height / width), got {aspect!r}")
    H, W = size
    B = batch_size
    has = torch.rand(B, generator=generator) < p
    A = _uniform(B, area[0], area[1], generator) * H * W                     # pixels
    if exact_area:
        top, left, h, w = _exact_boxes(A, H, W, aspect, generator)
    else:
        top, left, h, w = (torch.zeros(B, dtype=torch.long) for _ in range(4))
        for i in range(B):                                   # the reference's rejection loop
            while True:
                r = float(_uniform(1, aspect[0], aspect[1], generator))
                wi, hi = int(math.sqrt(float(A[i]) / r)), int(math.sqrt(float(A[i]) * r))
                x = int(torch.randint(0, W, (1,), generator=generator))
                y = int(torch.randint(0, H, (1,), generator=generator))
                if x + max(wi, 1) <= W and y + max(hi, 1) <= H:
                    break
            top[i], left[i], h[i], w[i] = y, x, max(hi, 1), max(wi, 1)
    rows = torch.arange(H).view(1, H, 1)
    cols = torch.arange(W).view(1, 1, W)
    inside = ((rows >= top.view(B, 1, 1)) & (rows < (top + h).view(B, 1, 1))
              & (cols >= left.view(B, 1, 1)) & (cols < (left + w).view(B, 1, 1)))
    box = inside & has.view(B, 1, 1)
    return box.unsqueeze(1).to(device) if device is not None else box.unsqueeze(1)


def _exact_boxes(A: torch.Tensor, H: int, W: int, aspect: tuple[float, float],
                 generator: torch.Generator | None):
    r"""The exact-area variant: a log-uniform ratio among those for which the box fits
    (:math:`A/W^2 \le r \le H^2/A`), rounded sides, a corner uniform over the positions inside."""
    B = A.shape[0]
    lo = torch.clamp(A / W**2, min=aspect[0]).clamp(max=aspect[1])
    hi = torch.clamp(H**2 / A, max=aspect[1]).clamp(min=lo)
    u = torch.rand(B, generator=generator, dtype=torch.float64)
    r = torch.exp(torch.log(lo) + (torch.log(hi) - torch.log(lo)) * u)
    h = torch.sqrt(A * r).round().clamp(1, H).long()
    w = torch.sqrt(A / r).round().clamp(1, W).long()
    top = (torch.rand(B, generator=generator, dtype=torch.float64) * (H - h + 1)).floor().long()
    left = (torch.rand(B, generator=generator, dtype=torch.float64) * (W - w + 1)).floor().long()
    return top, left, h, w


def cutmix(x_a: torch.Tensor, x_b: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
    r"""Mix two batches: ``x_b`` inside ``box``, ``x_a`` outside.

    Works for anything laid out ``(B, C, H, W)``: images, depth or pseudo-label maps, valid
    masks (bool), instance masks. :math:`\mathrm{out} = \mathrm{where}(\mathrm{box}, x_b, x_a)`,
    so gradients reach ``x_a`` outside the box and ``x_b`` inside it.

    Args:
        x_a, x_b: ``(B, C, H, W)`` tensors of the same shape and dtype (typically ``x_b = x_a[perm]``).
        box: bool ``(B, 1, H, W)`` from :func:`cutmix_boxes`.

    >>> box = torch.tensor([[True, False]]).view(1, 1, 1, 2)
    >>> cutmix(torch.zeros(1, 1, 1, 2), torch.ones(1, 1, 1, 2), box).flatten().tolist()
    [1.0, 0.0]
    """
    for name, x in (("x_a", x_a), ("x_b", x_b), ("box", box)):
        if not isinstance(x, torch.Tensor) or x.ndim != 4:
            raise ValueError(f"{name} must be a (B, C, H, W) tensor, got "
                             f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    if x_a.shape != x_b.shape or x_a.dtype != x_b.dtype:
        raise ValueError(f"x_a and x_b must have the same shape and dtype, got {tuple(x_a.shape)} {x_a.dtype} "
                         f"and {tuple(x_b.shape)} {x_b.dtype}")
    if box.dtype != torch.bool:
        raise TypeError(f"box must be a bool tensor, got {box.dtype}")
    B, _, H, W = x_a.shape
    if box.shape != (B, 1, H, W):
        raise ValueError(f"box must have shape {(B, 1, H, W)} to mix {tuple(x_a.shape)}, got {tuple(box.shape)}")
    return torch.where(box.to(x_a.device), x_b, x_a)

