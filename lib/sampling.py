"""Point-pair sampling for ordinal (relative-depth) supervision.

A ranking loss does not look at every pixel: it looks at pairs of pixels ``(a, b)`` and asks
whether ``a`` is farther than, nearer than, or about as far as ``b``. Which pairs we show it
matters a great deal. This module draws them, *online* (fresh pairs for every batch, inside
the training step), in three ways:

- :func:`random_pairs`: both ends uniform over the valid pixels of the image.
- :func:`edge_guided_pairs`: pairs straddling image edges (Xian et al., CVPR 2020,
  "Structure-Guided Ranking Loss for Single Image Depth Prediction"; public code
  KexianHust/Structure-Guided-Ranking-Loss, ``edgeGuidedSampling``).
- :func:`instance_guided_pairs`: pairs across and inside instance boundaries (same paper;
  its public code never implemented this part, ours does).

Conventions shared by every sampler:

- A pair is two *flat* pixel indices into ``H*W``: ``idx = row * W + col``; the samplers
  return ``(idx_a, idx_b)``, each int64 ``(B, n)`` on the device of their input.
- Only valid pixels are sampled. An image with **no** valid pixel cannot give a pair: its
  slots hold ``idx_a == idx_b == 0`` (pixel 0 of that image, which is invalid there); an image
  with exactly one valid pixel gives ``idx_a == idx_b`` on that pixel. Such *degenerate*
  pairs are exactly the ones :func:`valid_pairs` flags False, and every loss in
  :mod:`lib.losses` uses :func:`valid_pairs` to drop them, so they never count as "equal"
  pairs. Elsewhere ``idx_a != idx_b`` always.
- Randomness comes from ``generator`` (a ``torch.Generator``) when given: the same seed gives
  the same pairs. The random numbers are drawn on the generator's device and moved to the
  data's device, so a CPU generator gives the *same* pairs for CPU and CUDA inputs.
- Everything is vectorised over the batch and the pairs (no Python loop over either).

>>> import torch
>>> valid = torch.ones(2, 1, 4, 5, dtype=torch.bool)
>>> a, b = random_pairs(valid, 3, generator=torch.Generator().manual_seed(0))
>>> a.shape, a.dtype, bool((a != b).all())
(torch.Size([2, 3]), torch.int64, True)
"""
from __future__ import annotations

import math

import kornia
import torch
import torch.nn.functional as F

__all__ = [
    "ordinal_labels",
    "valid_pairs",
    "random_pairs",
    "sobel_edges",
    "edge_pixel_count",
    "edge_guided_pairs",
    "instance_guided_pairs",
]


# --------------------------------------------------------------------------- checks
def _check_valid(valid: torch.Tensor) -> tuple[int, int, int]:
    if not isinstance(valid, torch.Tensor):
        raise TypeError(f"valid must be a torch.Tensor, got {type(valid).__name__}")
    if valid.dtype != torch.bool:
        raise TypeError(f"valid must be a bool tensor, got dtype {valid.dtype}")
    if valid.ndim != 4 or valid.shape[1] != 1:
        raise ValueError(f"valid must have shape (B,1,H,W), got {tuple(valid.shape)}")
    B, _, H, W = valid.shape
    if B == 0 or H == 0 or W == 0:
        raise ValueError(f"valid must be non-empty, got shape {tuple(valid.shape)}")
    return B, H, W


def _check_n(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n (number of pairs) must be an int, got {type(n).__name__}")
    if n <= 0:
        raise ValueError(f"n (number of pairs) must be > 0, got {n}")
    return n


def _check_fraction(name: str, x: float) -> float:
    if not 0.0 <= float(x) <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {x}")
    return float(x)


def _check_dists(min_dist: int, max_dist: int, strict: bool = False) -> None:
    if not (1 <= min_dist <= max_dist) or (strict and min_dist == max_dist):
        rel = "<" if strict else "<="
        raise ValueError(f"need 1 <= min_dist {rel} max_dist, got min_dist={min_dist}, max_dist={max_dist}")


# --------------------------------------------------------------------------- randomness
def _rand(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """Uniform [0,1) float64 numbers drawn on the generator's device, returned on ``device``."""
    src = generator.device if generator is not None else device
    return torch.rand(shape, generator=generator, device=src, dtype=torch.float64).to(device)


def _randint(low: int, high: int, shape: tuple[int, ...], generator: torch.Generator | None,
             device: torch.device) -> torch.Tensor:
    src = generator.device if generator is not None else device
    return torch.randint(low, high, shape, generator=generator, device=src).to(device)


def _uniform_rank(count: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """floor(u * count) clamped into [0, count-1] (0 where count == 0); count broadcasts against u."""
    return torch.minimum((u * count).floor().long(), (count - 1).clamp_min(0))


def _select(cumsum: torch.Tensor, rank: torch.Tensor) -> torch.Tensor:
    """Flat index of the ``rank``-th (0-based) True pixel of each row, given the row cumsum of the mask."""
    idx = torch.searchsorted(cumsum, rank + 1)  # first position where cumsum >= rank + 1
    return idx.clamp_max(cumsum.shape[1] - 1)


def _draw(mask_flat: torch.Tensor, k: int, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """``k`` flat indices per row, uniform (with replacement) over the True entries of ``mask_flat`` (B, HW).

    Returns ``(idx (B,k), count (B,))``; rows with no True entry get index 0.
    """
    cs = mask_flat.long().cumsum(1)
    count = cs[:, -1]
    rank = _uniform_rank(count.unsqueeze(1), _rand((mask_flat.shape[0], k), generator, mask_flat.device))
    idx = _select(cs, rank)
    return torch.where(count.unsqueeze(1) > 0, idx, torch.zeros_like(idx)), count


def _gather(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Values of the (B,1,H,W) map ``x`` at flat indices ``idx`` (B,n) -> (B,n)."""
    return x.flatten(1).gather(1, idx)


# --------------------------------------------------------------------------- labels
def ordinal_labels(depth_a: torch.Tensor, depth_b: torch.Tensor, sigma: float = 0.03) -> torch.Tensor:
    r"""Ordinal relation of depth pairs with tolerance ``sigma``.

    .. math::
        l = \begin{cases} +1 & d_a / d_b \ge 1 + \sigma \quad (a \text{ is farther}) \\
                          -1 & d_a / d_b \le 1 / (1 + \sigma) \quad (a \text{ is nearer}) \\
                           0 & \text{otherwise ("equal")} \end{cases}

    Args:
        depth_a, depth_b: depths (> 0) of the two ends, same shape (any).
        sigma: relative tolerance, >= 0.

    Returns:
        int64 tensor of the same shape with values in {-1, 0, +1}. Ratios that are NaN
        (0/0, NaN input) give 0; callers should only label pairs of valid pixels anyway.

    >>> ordinal_labels(torch.tensor([2.0, 1.0, 1.01]), torch.tensor([1.0, 2.0, 1.0]))
    tensor([ 1, -1,  0])
    """
    if not isinstance(depth_a, torch.Tensor) or not isinstance(depth_b, torch.Tensor):
        raise TypeError("depth_a and depth_b must be torch.Tensors")
    if depth_a.shape != depth_b.shape:
        raise ValueError(f"depth_a and depth_b must have the same shape, got {tuple(depth_a.shape)} "
                         f"and {tuple(depth_b.shape)}")
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    ratio = depth_a / depth_b
    labels = torch.zeros(depth_a.shape, dtype=torch.int64, device=depth_a.device)
    labels[ratio >= 1.0 + sigma] = 1
    labels[ratio <= 1.0 / (1.0 + sigma)] = -1
    return labels


def valid_pairs(valid: torch.Tensor, idx_a: torch.Tensor, idx_b: torch.Tensor) -> torch.Tensor:
    """Which pairs are usable: both ends valid and ``idx_a != idx_b``. bool ``(B, n)``.

    This is how the losses ignore the degenerate pairs that the samplers return for images
    with fewer than two valid pixels (see the module docstring).

    >>> valid = torch.tensor([[[[True, True, False]]]])
    >>> valid_pairs(valid, torch.tensor([[0, 0, 1]]), torch.tensor([[1, 2, 1]]))
    tensor([[ True, False, False]])
    """
    B, H, W = _check_valid(valid)
    _check_indices(idx_a, idx_b, B, H * W)
    return _gather(valid, idx_a) & _gather(valid, idx_b) & (idx_a != idx_b)


def _check_indices(idx_a: torch.Tensor, idx_b: torch.Tensor, B: int, HW: int) -> None:
    for name, idx in (("idx_a", idx_a), ("idx_b", idx_b)):
        if not isinstance(idx, torch.Tensor) or idx.dtype != torch.int64:
            raise TypeError(f"{name} must be an int64 tensor of flat pixel indices")
        if idx.ndim != 2 or idx.shape[0] != B:
            raise ValueError(f"{name} must have shape (B, n) with B={B}, got {tuple(idx.shape)}")
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= HW):
            raise ValueError(f"{name} holds indices outside [0, H*W) = [0, {HW})")
    if idx_a.shape != idx_b.shape:
        raise ValueError(f"idx_a and idx_b must have the same shape, got {tuple(idx_a.shape)} and {tuple(idx_b.shape)}")


# --------------------------------------------------------------------------- random
def random_pairs(valid: torch.Tensor, n: int, generator: torch.Generator | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` random pairs per image, both ends uniform over the valid pixels, ``a != b``.

    ``a`` is uniform over the M valid pixels of its image; ``b`` is uniform over the other
    M-1 (pairs are drawn with replacement across slots: the same pair may appear twice).
    Images with M < 2 give degenerate pairs (see the module docstring and :func:`valid_pairs`).

    Args:
        valid: bool ``(B,1,H,W)``.
        n: pairs per image, > 0.
        generator: optional ``torch.Generator`` for reproducibility.

    Returns:
        ``(idx_a, idx_b)``, int64 ``(B, n)`` flat indices into ``H*W``.

    >>> valid = torch.zeros(1, 1, 2, 2, dtype=torch.bool); valid[0, 0, 0] = True  # pixels 0, 1
    >>> a, b = random_pairs(valid, 4)
    >>> sorted(set(a.tolist()[0]) | set(b.tolist()[0]))
    [0, 1]
    """
    B, H, W = _check_valid(valid)
    n = _check_n(n)
    cs = valid.flatten(1).long().cumsum(1)
    M = cs[:, -1]
    u = _rand((B, 2, n), generator, valid.device)
    M1 = M.unsqueeze(1)
    rank_a = _uniform_rank(M1, u[:, 0])
    # b: one of the other M-1 valid pixels, i.e. rank_a shifted by 1..M-1 (mod M).
    rank_b = (rank_a + 1 + _uniform_rank(M1 - 1, u[:, 1])) % M1.clamp_min(1)
    idx_a, idx_b = _select(cs, rank_a), _select(cs, rank_b)
    empty = (M == 0).unsqueeze(1)
    zero = torch.zeros_like(idx_a)
    return torch.where(empty, zero, idx_a), torch.where(empty, zero, idx_b)


# --------------------------------------------------------------------------- edge-guided
def _sobel(image: torch.Tensor, channel: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """kornia's normalised Sobel ``(gx, gy)``, each ``(B,1,H,W)``, of image channel ``channel``
    (``None``: the luminance, or the single channel of a 1-channel image)."""
    if channel is None:
        grey = kornia.color.rgb_to_grayscale(image) if image.shape[1] == 3 else image
    else:
        if not 0 <= channel < image.shape[1]:
            raise ValueError(f"channel must be None (luminance) or in [0, {image.shape[1]}), got {channel!r}")
        grey = image[:, channel:channel + 1]
    g = kornia.filters.spatial_gradient(grey, mode="sobel", order=1, normalized=True)  # (B,1,2,H,W)
    return g[:, :, 0], g[:, :, 1]


def sobel_edges(image: torch.Tensor, channel: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Sobel gradient magnitude and direction of the grey-level image (or of one channel).

    ``gx, gy`` are kornia's normalised Sobel derivatives (kernel / 8) of the luminance
    (``kornia.color.rgb_to_grayscale`` for 3 channels, the channel itself for 1), or of image
    channel ``channel`` (what :func:`edge_guided_pairs` looks at: channel 0), so a unit
    step edge has magnitude 0.5. ``theta = atan2(gy, gx)`` points from dark to bright
    (x to the right, y down).

    Args:
        image: ``(B,3,H,W)`` or ``(B,1,H,W)`` float in [0,1].
        channel: ``None`` for the luminance, or the index of one channel.

    Returns:
        ``(magnitude, theta)``, each ``(B,1,H,W)``; theta in radians in (-pi, pi].
    """
    if not isinstance(image, torch.Tensor) or not image.is_floating_point():
        raise TypeError("image must be a floating-point torch.Tensor")
    if image.ndim != 4 or image.shape[1] not in (1, 3):
        raise ValueError(f"image must have shape (B,3,H,W) or (B,1,H,W), got {tuple(image.shape)}")
    gx, gy = _sobel(image, channel)
    return torch.sqrt(gx * gx + gy * gy), torch.atan2(gy, gx)


def _edge_map(image: torch.Tensor, valid: torch.Tensor, channel: int | None, edge_threshold: float,
              min_magnitude: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sobel ``gx, gy`` (B, HW) of the chosen channel and the edge pixels (B, HW) of each image."""
    gx, gy = (g.flatten(1) for g in _sobel(image, channel))
    vflat = valid.flatten(1)
    mag2 = torch.where(vflat, gx * gx + gy * gy, torch.zeros((), dtype=gx.dtype, device=gx.device))
    top2 = mag2.amax(1, keepdim=True)
    edges = vflat & (mag2 >= edge_threshold ** 2 * top2) & (mag2 >= min_magnitude ** 2)  # |grad| thresholds
    return gx, gy, edges


def _check_image(image: torch.Tensor, valid: torch.Tensor) -> None:
    B, _, H, W = valid.shape
    if not isinstance(image, torch.Tensor) or image.ndim != 4 or image.shape[0] != B or image.shape[2:] != (H, W):
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"image must be (B,3,H,W) or (B,1,H,W) matching valid {tuple(valid.shape)}, got {shape}")
    if not image.is_floating_point():
        raise TypeError(f"image must be a floating-point tensor in [0,1], got dtype {image.dtype}")


def edge_pixel_count(image: torch.Tensor, valid: torch.Tensor, *, channel: int | None = 0,
                     edge_threshold: float = 0.1, min_magnitude: float = 0.01) -> torch.Tensor:
    """Number of edge pixels of each image, int64 ``(B,)``, as :func:`edge_guided_pairs` finds them.

    The reference code of the structure-guided ranking loss draws one anchor per edge pixel,
    i.e. ``4 x edge_pixel_count`` pairs per image (3 edge-guided + 1 random per anchor).

    >>> img = torch.zeros(1, 1, 8, 8); img[..., 4:] = 1.0
    >>> edge_pixel_count(img, torch.ones(1, 1, 8, 8, dtype=torch.bool)).tolist()   # columns 3, 4
    [16]
    """
    _check_valid(valid)
    _check_image(image, valid)
    _, _, edges = _edge_map(image.detach().to(valid.device), valid, channel, edge_threshold, min_magnitude)
    return edges.sum(1)


def edge_guided_pairs(image: torch.Tensor, valid: torch.Tensor, n: int, generator: torch.Generator | None = None,
                      *, random_fraction: float = 0.25, min_dist: int = 2, max_dist: int = 30,
                      edge_threshold: float = 0.1, min_magnitude: float = 0.01, channel: int | None = 0
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Pairs that straddle image edges (Xian et al. 2020, edge-guided sampling), plus random pairs.

    1. Edges: Sobel gradient :math:`\nabla I` of image channel ``channel`` (0, the first
       channel, as the reference; ``None`` = the luminance); an *edge pixel* is valid with
       :math:`|\nabla I| \ge` ``edge_threshold`` x (max over the image's valid pixels) and
       :math:`\ge` ``min_magnitude`` (so a flat image has no edges).
    2. Anchors: ``ceil(n_edge / 3)`` anchors per image, uniform (with replacement) over its
       edge pixels.
    3. Four points on the line through the anchor along the gradient direction :math:`\theta`
       (the edge normal), at offsets :math:`-d_0, -d_1, +d_2, +d_3` px, the four distances drawn
       independently and uniformly from the integers ``[min_dist, max_dist]`` (2..30, as the
       reference); points are rounded to the pixel grid. Two on the dark side, two on the bright.
    4. Consecutive points are paired, ``(p_0, p_1)``, ``(p_1, p_2)``, ``(p_2, p_3)``: the outer
       pairs lie on one side (mostly "equal"), the middle one crosses the edge. Slots
       ``3j, 3j+1, 3j+2`` hold the three pairs of anchor j.
    5. A pair with an end outside the image or on an invalid pixel, or with ``p == q`` (equal
       distances), or from an image with no edge pixel, is replaced by a random pair: slot j then
       holds slot j of ``random_pairs(valid, n, generator)`` drawn from the generator's state
       on entry (the random pairs are drawn first).
    6. The last ``n_random = round(random_fraction * n)`` slots are random pairs (the
       reference adds as many random pairs as anchors, i.e. 1/4 of all pairs).

    Reference: ``KexianHust/Structure-Guided-Ranking-Loss``, ``ranking_loss.py``
    (``EdgeguidedRankingLoss.getEdge`` and ``edgeGuidedSampling``). Differences, and why:

    - **a bug of the reference, not followed**: its y kernel ``[[1, 2, 1], [0, 0, 0], [-1, -2, -1]]``
      (``F.conv2d`` correlates) is minus the derivative down the rows, so ``theta = atan2(gy, gx)``
      is the gradient direction mirrored about the x axis. On horizontal and vertical edges the
      points still cross the edge; on a 45-degree edge they run *along* it and the "crossing"
      pair never crosses. Here :math:`\theta` is the true gradient direction;
    - the reference anchors on ``4 x`` (number of edge pixels) pairs per image; here ``n`` is the
      caller's (:func:`structure_guided_ranking_loss` uses the reference count by default);
    - the reference clamps points that leave the image to its border and keeps pairs with an
      invalid end (they add 0 to the loss but count in its mean); here such pairs are replaced by
      random pairs, so that all ``n`` pairs are usable and none piles up on the border pixels;
    - the reference thresholds edges against the maximum over all pixels (invalid ones too) and
      has no absolute floor (a flat image makes every pixel an "edge" with theta = 0); here the
      maximum is over valid pixels and ``min_magnitude`` applies;
    - the reference computes the Sobel filter without padding and zero-pads the result (the
      image border is never an edge); here kornia's replicate-padded Sobel (the border can be).

    Args:
        image: ``(B,3,H,W)`` or ``(B,1,H,W)`` float in [0,1]; same B, H, W as ``valid``.
        valid: bool ``(B,1,H,W)``.
        n: pairs per image, > 0.
        generator: optional ``torch.Generator``.
        random_fraction: share of plain random pairs, in [0, 1].
        min_dist, max_dist: range of the point distances from the anchor, in pixels.
        edge_threshold: relative edge threshold (of the per-image maximum magnitude).
        min_magnitude: absolute floor on the magnitude of an edge.
        channel: image channel whose edges are used (``None``: luminance).

    Returns:
        ``(idx_a, idx_b)``, int64 ``(B, n)``.

    >>> img = torch.zeros(1, 1, 32, 32); img[..., 16:] = 1.0          # vertical edge
    >>> valid = torch.ones(1, 1, 32, 32, dtype=torch.bool)
    >>> a, b = edge_guided_pairs(img, valid, 30, random_fraction=0.0, max_dist=8)
    >>> bool(((a[0, 1::3] % 32 < 16) & (b[0, 1::3] % 32 >= 16)).all())  # (a, b) cross the edge
    True
    """
    B, H, W = _check_valid(valid)
    n = _check_n(n)
    random_fraction = _check_fraction("random_fraction", random_fraction)
    _check_dists(min_dist, max_dist)
    _check_image(image, valid)
    device = valid.device
    image = image.detach().to(device)

    n_rand = int(round(random_fraction * n))
    n_edge = n - n_rand
    # Random pairs for every slot: they fill the random share and replace failed edge pairs.
    ra, rb = random_pairs(valid, n, generator)
    if n_edge == 0:
        return ra, rb

    gx, gy, edges = _edge_map(image, valid, channel, edge_threshold, min_magnitude)
    vflat = valid.flatten(1)
    k = math.ceil(n_edge / 3)
    anchor, count = _draw(edges, k, generator)                            # (B,k)
    ax, ay = gx.gather(1, anchor), gy.gather(1, anchor)
    norm = torch.sqrt(ax * ax + ay * ay).clamp_min(torch.finfo(ax.dtype).tiny)
    cos_t, sin_t = (ax / norm).unsqueeze(-1), (ay / norm).unsqueeze(-1)  # gradient direction theta
    # Four independent distances per anchor, as the reference: -d0, -d1 (dark), +d2, +d3 (bright).
    d = _randint(min_dist, max_dist + 1, (B, k, 4), generator, device).to(ax.dtype)
    offs = d * torch.tensor([-1.0, -1.0, 1.0, 1.0], dtype=ax.dtype, device=device)
    row = torch.round((anchor // W).unsqueeze(-1).to(offs.dtype) + offs * sin_t).long()
    col = torch.round((anchor % W).unsqueeze(-1).to(offs.dtype) + offs * cos_t).long()
    inside = (row >= 0) & (row < H) & (col >= 0) & (col < W)
    flat = row.clamp(0, H - 1) * W + col.clamp(0, W - 1)

    pa = flat[..., :3].reshape(B, 3 * k)[:, :n_edge]
    pb = flat[..., 1:].reshape(B, 3 * k)[:, :n_edge]
    ok = (inside[..., :3] & inside[..., 1:]).reshape(B, 3 * k)[:, :n_edge]
    ok = ok & vflat.gather(1, pa) & vflat.gather(1, pb) & (pa != pb) & (count > 0).unsqueeze(1)
    idx_a = torch.cat([torch.where(ok, pa, ra[:, :n_edge]), ra[:, n_edge:]], dim=1)
    idx_b = torch.cat([torch.where(ok, pb, rb[:, :n_edge]), rb[:, n_edge:]], dim=1)
    return idx_a, idx_b


# --------------------------------------------------------------------------- instance-guided
# The 3x3 neighbourhood in row-major order and the Sobel weights (x, y) of each neighbour.
_NB_DR = torch.tensor([-1, -1, -1, 0, 0, 0, 1, 1, 1])
_NB_DC = torch.tensor([-1, 0, 1, -1, 0, 1, -1, 0, 1])
_SOBEL_XY = torch.tensor([[-1.0, 0.0, 1.0, -2.0, 0.0, 2.0, -1.0, 0.0, 1.0],
                          [-1.0, -2.0, -1.0, 0.0, 0.0, 0.0, 1.0, 2.0, 1.0]]).T  # (9, 2)


def instance_guided_pairs(mask: torch.Tensor, valid: torch.Tensor, n: int, generator: torch.Generator | None = None,
                          *, cross_fraction: float = 0.5, max_dist: int = 10
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Pairs across instance boundaries and inside instances (Xian et al. 2020, instance-guided sampling).

    The mix (per image):

    - **Cross pairs**, the first ``round(cross_fraction * n)`` slots: an anchor uniform over
      the *boundary pixels* of objects (valid pixels with label k > 0 that have an 8-neighbour
      with another label; the image border is not a boundary). The outward normal is
      :math:`-\nabla s / |\nabla s|`, with :math:`\nabla s` the Sobel gradient of the 3x3
      indicator "neighbour has label k" (no normal, e.g. on a 1 px line: the pair fails). ``idx_a`` is the point :math:`d_{in}` px *inside*
      (against the normal) and ``idx_b`` the point :math:`d_{out}` px *outside* (along it),
      :math:`d_{in}, d_{out}` uniform integers in ``[1, max_dist]``. A pair is kept only if
      ``mask[a] == k``, ``mask[b] != k`` and both ends are valid and in the image.
    - **Within pairs**, the remaining slots: ``a`` uniform over the valid object pixels
      (so larger objects get more pairs) and ``b`` uniform over the *other* valid pixels of
      the same object.
    - Failed pairs (no object, no boundary, an end outside the image / invalid / on the wrong
      side, an object with a single valid pixel) are replaced by random pairs: slot j then
      holds slot j of ``random_pairs(valid, n, generator)`` drawn from the generator's state on
      entry (the random pairs are drawn first). So the output always holds ``n`` usable pairs
      when the image has two valid pixels.

    Args:
        mask: int64 ``(B,1,H,W)``, 0 = background, 1..N = objects.
        valid: bool ``(B,1,H,W)``.
        n: pairs per image, > 0.
        generator: optional ``torch.Generator``.
        cross_fraction: share of boundary-crossing pairs, in [0, 1].
        max_dist: largest distance (px) of either end from the boundary anchor.

    Returns:
        ``(idx_a, idx_b)``, int64 ``(B, n)``.

    >>> m = torch.zeros(1, 1, 16, 16, dtype=torch.int64); m[..., 4:12, 4:12] = 1
    >>> valid = torch.ones(1, 1, 16, 16, dtype=torch.bool)
    >>> a, b = instance_guided_pairs(m, valid, 10, cross_fraction=1.0, max_dist=3)
    >>> bool((m.flatten()[a[0]] == 1).all() and (m.flatten()[b[0]] == 0).all())
    True
    """
    B, H, W = _check_valid(valid)
    n = _check_n(n)
    cross_fraction = _check_fraction("cross_fraction", cross_fraction)
    _check_dists(1, max_dist)
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.int64:
        raise TypeError("mask must be an int64 torch.Tensor (instance ids, 0 = background)")
    if mask.shape != valid.shape:
        raise ValueError(f"mask must have the shape of valid {tuple(valid.shape)}, got {tuple(mask.shape)}")
    device = valid.device
    mask = mask.to(device)
    vflat, mflat = valid.flatten(1), mask.flatten(1)
    HW = H * W

    n_cross = int(round(cross_fraction * n))
    n_within = n - n_cross
    ra, rb = random_pairs(valid, n, generator)
    parts_a, parts_b = [], []

    if n_cross > 0:
        # Boundary pixels: some 8-neighbour has another label (3x3 max/min of the labels;
        # replicate padding, so the image border is no boundary).
        padded = F.pad(mask.to(torch.float64), (1, 1, 1, 1), mode="replicate")
        hi = F.max_pool2d(padded, 3, stride=1).flatten(1)
        lo = -F.max_pool2d(-padded, 3, stride=1).flatten(1)
        mf = mflat.to(torch.float64)
        boundary = vflat & (mflat > 0) & ((hi != mf) | (lo != mf))
        anchor, count = _draw(boundary, n_cross, generator)
        # Sobel gradient of the indicator "neighbour has the anchor's label", at the anchors only.
        k = mflat.gather(1, anchor)
        nr = ((anchor // W).unsqueeze(-1) + _NB_DR.to(device)).clamp(0, H - 1)   # (B,n,9)
        nc = ((anchor % W).unsqueeze(-1) + _NB_DC.to(device)).clamp(0, W - 1)
        same = (mflat.gather(1, (nr * W + nc).flatten(1)).view(B, n_cross, 9) == k.unsqueeze(-1))
        gxy = same.to(torch.float32) @ _SOBEL_XY.to(device)                        # (B,n,2)
        norm = gxy.norm(dim=-1)
        ux = -gxy[..., 0] / norm.clamp_min(1e-12)                                # outward unit normal
        uy = -gxy[..., 1] / norm.clamp_min(1e-12)
        d = _randint(1, max_dist + 1, (B, 2, n_cross), generator, device).to(ux.dtype)
        r0, c0 = (anchor // W).to(ux.dtype), (anchor % W).to(ux.dtype)
        ends = []
        for sign, dist in ((-1.0, d[:, 0]), (1.0, d[:, 1])):                # inside, outside
            r = torch.round(r0 + sign * dist * uy).long()
            c = torch.round(c0 + sign * dist * ux).long()
            ends.append(((r >= 0) & (r < H) & (c >= 0) & (c < W), r.clamp(0, H - 1) * W + c.clamp(0, W - 1)))
        (in_a, pa), (in_b, pb) = ends
        ok = in_a & in_b & vflat.gather(1, pa) & vflat.gather(1, pb) & (count > 0).unsqueeze(1) & (norm > 0)
        ok = ok & (mflat.gather(1, pa) == k) & (mflat.gather(1, pb) != k)
        parts_a.append(torch.where(ok, pa, ra[:, :n_cross]))
        parts_b.append(torch.where(ok, pb, rb[:, :n_cross]))

    if n_within > 0:
        # Sort the valid object pixels by label: each object is a contiguous run of the sorted row.
        key = torch.where(vflat & (mflat > 0), mflat, torch.full_like(mflat, -1))
        skey, order = torch.sort(key, dim=1, stable=True)
        n_out = (key < 0).sum(1, keepdim=True)
        u = _rand((B, 2, n_within), generator, device)
        pos_a = n_out + _uniform_rank(HW - n_out, u[:, 0])
        pos_a = pos_a.clamp_max(HW - 1)
        lab = skey.gather(1, pos_a)
        start = torch.searchsorted(skey, lab, right=False)
        cnt = torch.searchsorted(skey, lab, right=True) - start
        shift = 1 + _uniform_rank(cnt - 1, u[:, 1])
        pos_b = start + (pos_a - start + shift) % cnt.clamp_min(1)
        pa, pb = order.gather(1, pos_a), order.gather(1, pos_b)
        ok = (lab > 0) & (cnt >= 2)
        parts_a.append(torch.where(ok, pa, ra[:, n_cross:]))
        parts_b.append(torch.where(ok, pb, rb[:, n_cross:]))

    return torch.cat(parts_a, dim=1), torch.cat(parts_b, dim=1)
