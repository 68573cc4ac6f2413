r"""Tiled inference: predict a high-resolution image tile by tile and blend the tiles (PatchFusion).

A depth network has a *processing size* (what it was trained at, what fits in memory). A large
image is either shrunk to it (one pass: global context, blurry edges) or cut into tiles, each
resized to the processing size, predicted, resized back and blended::

    image (B,3,H,W) --tile_boxes(mode)--> N boxes of th x tw pixels (th = ceil(H/4), tw = ceil(W/4))
       for each batch of <= tile_batch boxes:  predictor.predict_tiles(context, boxes) -> (n,1,ph,pw)
           resize to (th, tw), times the blending window w, add into num, add w into den
    depth = num / den                                                        (B,1,H,W) metres

**Modes** (Li et al., *PatchFusion*, CVPR 2024):

- ``"P16"``: a 4x4 grid of tiles that covers the image (tiles meet edge to edge when the sides
  are multiples of 4, and overlap by a pixel or so otherwise: every tile has the same size and
  lies inside the image, so no padding is needed for odd sizes).
- ``"P49"``: the grid plus three grids shifted by half a tile (down: 3x4, right: 4x3, both:
  3x3): 16 + 12 + 12 + 9 = 49 tiles, every seam of the first grid lies in the middle of a tile
  of another.
- ``"R<n>"``: P49 plus ``n`` tiles at random positions (seeded: reproducible).

**Blending.** Each tile's depth is weighted by :func:`blend_weight`, PatchFusion's window: a box
mask inset by 10 % of each side, blurred by a Gaussian, min-max normalised, plus a floor of
1e-3 so that every covered pixel has a positive weight. At pixel :math:`x`,

.. math::  \hat Z(x) = \frac{\sum_t w_t(x)\, \hat Z_t(x)}{\sum_t w_t(x)},

the weighted arithmetic mean of the depths, as PatchFusion's ``RunningAverageMap``: the
normalised weights :math:`w_t / \sum_s w_s` sum to 1 at every pixel, a tile's edge (where its
network saw the least context) counts less than another tile's centre, and a tile that alone
covers a pixel gives it its value whatever its weight. ``blend="log"`` averages log depths
instead (a weighted geometric mean); chapter 08 compares the two.

**Memory** stays bounded: the network sees at most ``tile_batch`` tiles at once; what else is
kept is two ``(H, W)`` accumulators (and the tiles themselves only with ``return_info=True``).

**Predictors.** ``tiled_predict`` takes either a plain depth network (an ``nn.Module`` whose
output is a depth tensor or a dict with ``"depth"``: *naive tiling*, each crop on its own) or
any object with the two methods of :class:`TilePredictor`, such as
:class:`lib.models.fusion.PatchFusion`, which first looks at the whole image once
(``prepare``) and then predicts each tile knowing the global context (``predict_tiles``).
"""
from __future__ import annotations

import math
import re
import weakref
from collections.abc import Callable
from functools import partial
from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn  # noqa: F401  (the doctests use it)
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from lib import checks

__all__ = [
    "TilePredictor",
    "NaiveTiles",
    "parse_mode",
    "tile_boxes",
    "blend_weight",
    "crop_resize",
    "tiled_predict",
    "tile_consistency_error",
    "peak_memory",
]

GRID = 4  # P16 is a 4x4 grid


@runtime_checkable
class TilePredictor(Protocol):
    """What :func:`tiled_predict` needs from a model.

    - ``prepare(image)``: ``image`` ``(1,3,H,W)``; returns any context (e.g. a coarse pass over
      the whole image) that ``predict_tiles`` reads.
    - ``predict_tiles(context, boxes)``: ``boxes`` ``(n,4)`` long ``[y0, x0, y1, x1]`` in pixels
      of the image (end exclusive), all of one size; returns depth ``(n,1,h,w)`` in metres,
      > 0, at any resolution (it is resized to the box size).
    """

    def prepare(self, image: torch.Tensor) -> Any: ...

    def predict_tiles(self, context: Any, boxes: torch.Tensor) -> torch.Tensor: ...


def _depth_of(output) -> torch.Tensor:
    return output["depth"] if isinstance(output, dict) else output


class NaiveTiles:
    """A plain depth network as a :class:`TilePredictor`: each tile is cut out, resized to
    ``process_size`` (bilinear, anti-aliased) and predicted on its own, with no knowledge of the
    rest of the image. ``model(x)`` returns depth ``(n,1,ph,pw)`` or a dict with ``"depth"``.

    >>> class Const(nn.Module):
    ...     def forward(self, x): return torch.full_like(x[:, :1], 2.0)
    >>> p = NaiveTiles(Const(), (16, 16))
    >>> p.predict_tiles(p.prepare(torch.rand(1, 3, 40, 40)), torch.tensor([[0, 0, 10, 10]])).shape
    torch.Size([1, 1, 16, 16])
    """

    def __init__(self, model: Callable, process_size: tuple[int, int]):
        self.model, self.process_size = model, checks.size_pair(process_size, "process_size")

    def prepare(self, image: torch.Tensor) -> torch.Tensor:
        return image

    def predict_tiles(self, context: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        crops = _cut(context, boxes)
        if tuple(crops.shape[-2:]) != self.process_size:
            crops = F.interpolate(crops, size=self.process_size, mode="bilinear", align_corners=False,
                                  antialias=True).clamp_(0.0, 1.0)
        return _depth_of(self.model(crops))


def _cut(image: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Integer boxes (n,4) of one size out of a (1,C,H,W) image -> (n,C,th,tw)."""
    return torch.cat([image[..., int(y0):int(y1), int(x0):int(x1)] for y0, x0, y1, x1 in boxes.tolist()])


def parse_mode(mode: str) -> tuple[str, int]:
    """``"P16"`` -> ("P", 16), ``"P49"`` -> ("P", 49), ``"R<n>"`` -> ("R", n); anything else raises.

    >>> parse_mode("P49"), parse_mode("r128")
    (('P', 49), ('R', 128))
    """
    m = re.fullmatch(r"\s*([PpRr])(\d+)\s*", mode) if isinstance(mode, str) else None
    if m is None or (m.group(1).upper() == "P" and int(m.group(2)) not in (16, 49)) \
            or (m.group(1).upper() == "R" and int(m.group(2)) < 1):
        raise ValueError(f"mode must be 'P16', 'P49' or 'R<n>' with n >= 1 random tiles (e.g. 'R32'), got {mode!r}")
    return m.group(1).upper(), int(m.group(2))


def _starts(n: int, tile: int, count: int) -> list[int]:
    """``count`` tile starts spread evenly over [0, n - tile] (first at 0, last at n - tile)."""
    if count == 1:
        return [0]
    return [round(i * (n - tile) / (count - 1)) for i in range(count)]


def tile_boxes(height: int, width: int, mode: str = "P16", seed: int | torch.Generator = 0) -> torch.Tensor:
    """The tiles of ``mode`` for an image of ``height x width`` pixels: ``(N,4)`` long
    ``[y0, x0, y1, x1]`` (end exclusive), all of size ``th x tw = ceil(H/4) x ceil(W/4)``.

    Grid tiles start at ``round(i (H - th) / 3)``, ``i = 0..3`` (edge to edge when 4 divides H);
    the shifted grids start half-way between consecutive grid starts. ``R<n>`` draws its ``n``
    extra starts uniformly from ``0..H-th`` and ``0..W-tw`` with ``seed`` (an int or a
    ``torch.Generator``). Every pixel is covered by at least one tile (the 4x4 grid alone covers it).

    >>> tile_boxes(8, 8).tolist()[:2]
    [[0, 0, 2, 2], [0, 2, 2, 4]]
    >>> [len(tile_boxes(100, 150, m)) for m in ("P16", "P49", "R10")]
    [16, 49, 59]
    """
    kind, n = parse_mode(mode)
    H, W = checks.size_pair((height, width), "image size")
    if H < GRID or W < GRID:
        raise ValueError(f"tiling needs an image of at least {GRID}x{GRID} pixels, got {H}x{W}")
    th, tw = -(-H // GRID), -(-W // GRID)
    ys, xs = _starts(H, th, GRID), _starts(W, tw, GRID)
    grids = [(ys, xs)]
    if kind == "R" or n == 49:
        mid_y = [(a + b) // 2 for a, b in zip(ys[:-1], ys[1:])]
        mid_x = [(a + b) // 2 for a, b in zip(xs[:-1], xs[1:])]
        grids += [(mid_y, xs), (ys, mid_x), (mid_y, mid_x)]
    starts = [(y, x) for gy, gx in grids for y in gy for x in gx]
    if kind == "R":
        gen = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(int(seed))
        ry = torch.randint(0, H - th + 1, (n,), generator=gen).tolist()
        rx = torch.randint(0, W - tw + 1, (n,), generator=gen).tolist()
        starts += list(zip(ry, rx))
    return torch.tensor([[y, x, y + th, x + tw] for y, x in starts], dtype=torch.long)


def blend_weight(height: int, width: int, inset: float = 0.1, sigma: float | None = None,
                 floor: float = 1e-3, device=None) -> torch.Tensor:
    r"""The blending window of a ``height x width`` tile, ``(height, width)`` float32 in (0, 1 + floor].

    PatchFusion's ``generatemask``: a box mask, 1 on rows ``[int(inset H), H - int(inset H))``
    and columns ``[int(inset W), W - int(inset W))`` and 0 on the border, blurred by a Gaussian of
    standard deviation ``sigma`` pixels (default ``int(H / 16)``, from the height, on both axes)
    on a kernel of ``2 ceil(2 sigma) + 1`` taps with a reflected border (OpenCV's default,
    ``BORDER_REFLECT_101``), min-max normalised to [0, 1], plus ``floor`` (1e-3): highest in the
    middle, falling smoothly towards the edges, never 0 (so that a pixel that one tile alone
    covers still gets a weight, and no pixel divides by 0).

    Reference: ``zhyever/PatchFusion``, ``estimator/models/utils.py`` (``generatemask``, fixed
    0.1 inset) and its callers in ``estimator/models/patchfusion.py`` (``generatemask(...) +
    1e-3``). Differences: ``inset``, ``sigma`` and ``floor`` are arguments here; a window with
    nothing to normalise (a box covering the whole tile, max = min) is all ones here, NaN there;
    the reference makes the window at the network's processing size, here at the tile's size
    in the image (the blending happens there).

    >>> w = blend_weight(32, 48)
    >>> w.shape, round(float(w.max()), 3), round(float(w.min()), 3), bool((w == w.flip(0).flip(1)).all())
    (torch.Size([32, 48]), 1.001, 0.001, True)
    """
    H, W = checks.size_pair((height, width), "tile size")
    if not (0 <= inset < 0.5 and (sigma is None or sigma >= 0) and 0 < floor <= 1):
        raise ValueError(f"need 0 <= inset < 0.5, sigma >= 0 (or None) and 0 < floor <= 1, "
                         f"got {inset}, {sigma}, {floor}")
    s = float(int(H / 16)) if sigma is None else float(sigma)
    iy, ix = int(inset * H), int(inset * W)
    mask = torch.zeros(1, 1, H, W, dtype=torch.float64)
    mask[..., iy:H - iy, ix:W - ix] = 1.0
    r = math.ceil(2 * s) if s > 0 else 0
    if r > 0:
        k = torch.arange(-r, r + 1, dtype=torch.float64)
        g = torch.exp(-0.5 * (k / s) ** 2)
        g = g / g.sum()
        for dim, n in ((2, H), (3, W)):                      # separable, reflect-101 borders
            rr = min(r, n - 1)
            if rr == 0:
                continue
            pad = (0, 0, rr, rr) if dim == 2 else (rr, rr, 0, 0)
            x = F.pad(mask, pad, mode="reflect")
            kern = g[r - rr:r + rr + 1] / g[r - rr:r + rr + 1].sum()
            kern = kern.view(1, 1, -1, 1) if dim == 2 else kern.view(1, 1, 1, -1)
            mask = F.conv2d(x, kern)
    lo, hi = mask.min(), mask.max()
    w = (mask - lo) / (hi - lo) if hi > lo else torch.ones_like(mask)
    return (w[0, 0] + floor).float().to(device)


def crop_resize(maps: torch.Tensor, boxes: torch.Tensor, size: tuple[int, int], index: torch.Tensor | None = None,
                image_size: tuple[int, int] | None = None, mode: str = "bilinear") -> torch.Tensor:
    r"""Cut boxes out of maps and resample each to ``size``: RoIAlign with one sample per output
    pixel (``torchvision.ops.roi_align(..., aligned=True, sampling_ratio=1)``), on ``F.grid_sample``.

    ``maps`` ``(B,C,h,w)`` span an image of ``image_size`` = (H, W) pixels (default ``(h, w)``):
    a feature map at stride 16, a depth map at the processing size and the image itself are all
    cropped with the same boxes in image pixels. ``boxes`` ``(N,4)`` float ``[y0, x0, y1, x1]``
    with pixel ``i`` covering ``[i, i+1)`` (so an integer box is the slice ``y0:y1, x0:x1``);
    output pixel ``j`` of a box samples the point ``x0 + (j + 1/2)(x1 - x0)/w_out`` bilinearly
    (border values outside the map). ``index`` ``(N,)`` long says which map each box reads
    (default: map 0 when B = 1, else box ``n`` reads map ``n``). Returns ``(N,C,*size)``;
    differentiable in ``maps``.

    >>> m = torch.arange(16.0).view(1, 1, 4, 4)
    >>> crop_resize(m, torch.tensor([[1.0, 1.0, 3.0, 3.0]]), (2, 2))      # the slice [1:3, 1:3]
    tensor([[[[ 5.,  6.],
              [ 9., 10.]]]])
    """
    if maps.ndim != 4:
        raise ValueError(f"maps must be (B,C,h,w), got {tuple(maps.shape)}")
    if boxes.ndim != 2 or boxes.shape[-1] != 4:
        raise ValueError(f"boxes must be (N,4) [y0, x0, y1, x1], got {tuple(boxes.shape)}")
    oh, ow = checks.size_pair(size, "size")
    H, W = checks.size_pair(image_size or maps.shape[-2:], "image_size")
    N, B = boxes.shape[0], maps.shape[0]
    if index is None:
        if B != 1 and B != N:
            raise ValueError(f"{N} boxes for {B} maps: pass index= (which map each box reads)")
        index = torch.zeros(N, dtype=torch.long, device=maps.device) if B == 1 else torch.arange(N, device=maps.device)
    boxes = boxes.to(device=maps.device, dtype=torch.float32)
    y0, x0, y1, x1 = boxes.unbind(-1)
    ty = (torch.arange(oh, device=maps.device, dtype=torch.float32) + 0.5) / oh         # (oh,)
    tx = (torch.arange(ow, device=maps.device, dtype=torch.float32) + 0.5) / ow
    gy = (y0[:, None] + ty[None] * (y1 - y0)[:, None]) * (2.0 / H) - 1.0                   # (N, oh)
    gx = (x0[:, None] + tx[None] * (x1 - x0)[:, None]) * (2.0 / W) - 1.0
    grid = torch.stack([gx[:, None, :].expand(N, oh, ow), gy[:, :, None].expand(N, oh, ow)], dim=-1)
    src = maps[index]
    return F.grid_sample(src, grid.to(src.dtype), mode=mode, padding_mode="border", align_corners=False)


def _as_predictor(model, process_size, tile_size) -> TilePredictor:
    if isinstance(model, TilePredictor):
        return model
    if not callable(model):
        raise TypeError(f"model must be a depth network or a TilePredictor, got {type(model).__name__}")
    if process_size is None:
        m = int(getattr(model, "multiple", 1))                   # DepthMaskNet needs multiples of 16
        process_size = tuple(-(-t // m) * m for t in tile_size)
    return NaiveTiles(model, process_size)


@torch.no_grad()
def tiled_predict(model, image: torch.Tensor, mode: str = "P16", *, process_size: tuple[int, int] | None = None,
                  tile_batch: int = 16, seed: int | torch.Generator = 0, progress: bool | None = None,
                  weight: dict | None = None, blend: str = "depth", return_info: bool = False):
    r"""Depth of a high-resolution image predicted tile by tile and blended (see the module docstring).

    Args:
        model: a plain depth network (``model(x)`` -> depth or a dict with ``"depth"``; the
            tiles are resized to ``process_size``, by default the tile size rounded up to the
            model's ``multiple``, 16 for :class:`DepthMaskNet`) or a :class:`TilePredictor` (e.g.
            :class:`lib.models.fusion.PatchFusion`, which has its own processing size).
        image: ``(B,3,H,W)`` float in [0,1], any ``H, W >= 4`` (not only multiples of 4).
        mode: ``"P16"``, ``"P49"`` or ``"R<n>"`` (:func:`tile_boxes`).
        tile_batch: at most this many tiles go through the network at once (bounds memory).
        seed: random tiles of ``R<n>`` (the same tiles for every image of the batch).
        progress: a tqdm bar over the tile batches; ``None`` shows it when there are more than 64
            tiles in all.
        weight: keyword arguments of :func:`blend_weight` (``inset``, ``sigma``, ``floor``).
        blend: ``"depth"`` (the default, as PatchFusion's ``RunningAverageMap``): the weighted
            arithmetic mean of the tiles' depths; ``"log"``: the weighted mean of their log depths
            (a weighted geometric mean, which treats a tile twice too far like one half as far).
        return_info: also return a dict with ``boxes`` ``(N,4)``, ``weight`` ``(th,tw)``,
            ``coverage`` ``(H,W)`` (tiles per pixel), ``log_tiles`` ``(B,N,1,th,tw)`` (each
            tile's log depth at its box size, before blending: for :func:`tile_consistency_error`)
            and ``calls`` (network batches run).

    Returns:
        depth ``(B,1,H,W)`` float32 metres (and the info dict). Runs without gradients, on the
        image's device; the model is not switched to ``eval()`` (do it yourself).

    Example:
        >>> from lib.models import DepthMaskNet
        >>> net = DepthMaskNet(width=4).eval()
        >>> tiled_predict(net, torch.rand(1, 3, 70, 101), "P49", tile_batch=8).shape
        torch.Size([1, 1, 70, 101])
    """
    if not isinstance(image, torch.Tensor) or image.ndim != 4 or image.shape[1] != 3:
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"tiled_predict expects an image of shape (B,3,H,W), got {shape}")
    if not image.is_floating_point():
        raise TypeError(f"tiled_predict expects a float image in [0,1], got dtype {image.dtype}")
    if isinstance(tile_batch, bool) or int(tile_batch) != tile_batch or tile_batch < 1:
        raise ValueError(f"tile_batch must be a positive integer, got {tile_batch!r}")
    if blend not in ("depth", "log"):
        raise ValueError(f"blend must be 'depth' (arithmetic mean, as PatchFusion) or 'log', got {blend!r}")
    B, _, H, W = image.shape
    boxes = tile_boxes(H, W, mode, seed)
    th, tw = int(boxes[0, 2] - boxes[0, 0]), int(boxes[0, 3] - boxes[0, 1])
    predictor = _as_predictor(model, process_size, (th, tw))
    w = blend_weight(th, tw, device=image.device, **(weight or {}))
    num = torch.zeros(B, 1, H, W, device=image.device)
    den = torch.zeros(B, 1, H, W, device=image.device)
    coverage = torch.zeros(H, W, dtype=torch.int32, device=image.device)
    for y0, x0, y1, x1 in boxes.tolist():
        coverage[y0:y1, x0:x1] += 1
    tiles = torch.empty(B, len(boxes), 1, th, tw, device=image.device) if return_info else None
    chunks = list(torch.split(torch.arange(len(boxes)), int(tile_batch)))
    show = len(boxes) * B > 64 if progress is None else bool(progress)
    bar = None
    if show:
        from tqdm.auto import tqdm
        bar = tqdm(total=B * len(chunks), desc=f"tiles {mode}", leave=False)
    calls = 0
    for b in range(B):
        context = predictor.prepare(image[b:b + 1])
        for chunk in chunks:
            depth = predictor.predict_tiles(context, boxes[chunk]).float()
            calls += 1
            if depth.ndim != 4 or depth.shape[:2] != (len(chunk), 1):
                raise ValueError(f"predict_tiles returned {tuple(depth.shape)} for {len(chunk)} boxes; expected (n,1,h,w)")
            if tuple(depth.shape[-2:]) != (th, tw):
                depth = F.interpolate(depth, size=(th, tw), mode="bilinear", align_corners=False)
            log_depth = torch.log(depth.clamp(min=1e-6))
            value = log_depth if blend == "log" else depth
            for k, (y0, x0, y1, x1) in zip(chunk.tolist(), boxes[chunk].tolist()):
                num[b, :, y0:y1, x0:x1] += w * value[k - int(chunk[0])]
                den[b, :, y0:y1, x0:x1] += w
                if tiles is not None:
                    tiles[b, k] = log_depth[k - int(chunk[0])]
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    out = torch.exp(num / den) if blend == "log" else num / den
    if return_info:
        return out, {"boxes": boxes, "weight": w, "coverage": coverage, "log_tiles": tiles, "calls": calls}
    return out


def tile_consistency_error(log_tiles: torch.Tensor, boxes: torch.Tensor, size: tuple[int, int]) -> float:
    r"""How much overlapping tiles disagree before blending: the mean absolute difference of their log depths.

    For every pixel :math:`x` that at least two tiles cover, the mean over the pairs
    :math:`(s, t)` of tiles covering it of :math:`|\log \hat Z_s(x) - \log \hat Z_t(x)|`; then the
    mean over those pixels, per image, then over images. In log depth, so it is a relative
    disagreement (0.05 is about 5 %), comparable between a naive tiling (whose tiles each guess
    their own scale) and a fused one, and between near and far scenes. Blending hides it
    (smoothly), which is why it is measured on the tiles themselves (PatchFusion's consistency
    error). A pixel covered by ``k`` tiles has ``k(k-1)/2`` pairs.

    Args:
        log_tiles: ``(B,N,1,th,tw)`` or ``(N,1,th,tw)`` log depth of each tile at its box size
            (``info["log_tiles"]`` of :func:`tiled_predict`).
        boxes: ``(N,4)`` ``[y0, x0, y1, x1]``. size: ``(H, W)`` of the image.

    Raises ``ValueError`` when no pixel is covered twice (e.g. P16 when 4 divides both sides:
    its tiles only touch, there is nothing to compare).

    >>> boxes = torch.tensor([[0, 0, 1, 2], [0, 1, 1, 3]])           # two 1x2 tiles sharing pixel (0, 1)
    >>> tiles = torch.tensor([[[[0.0, 1.0]]], [[[1.5, 9.0]]]])
    >>> tile_consistency_error(tiles, boxes, (1, 3))
    0.5
    """
    if log_tiles.ndim == 4:
        log_tiles = log_tiles[None]
    if log_tiles.ndim != 5 or log_tiles.shape[2] != 1:
        raise ValueError(f"log_tiles must be (B,N,1,th,tw), got {tuple(log_tiles.shape)}")
    if boxes.ndim != 2 or boxes.shape != (log_tiles.shape[1], 4):
        raise ValueError(f"boxes must be ({log_tiles.shape[1]},4) for {log_tiles.shape[1]} tiles, got {tuple(boxes.shape)}")
    H, W = checks.size_pair(size, "size")
    bx = boxes.long()
    if (bx[:, 2] - bx[:, 0] != log_tiles.shape[-2]).any() or (bx[:, 3] - bx[:, 1] != log_tiles.shape[-1]).any():
        raise ValueError("every box must have the size of the tiles")
    if (bx[:, :2] < 0).any() or (bx[:, 2] > H).any() or (bx[:, 3] > W).any():
        raise ValueError(f"boxes must lie inside the {H}x{W} image")
    B = log_tiles.shape[0]
    total = torch.zeros(B, H, W, dtype=torch.float64, device=log_tiles.device)
    pairs = torch.zeros(H, W, dtype=torch.float64, device=log_tiles.device)
    # pairs of tiles that overlap (vectorised test), then one slice difference per pair
    oy0 = torch.maximum(bx[:, None, 0], bx[None, :, 0])
    ox0 = torch.maximum(bx[:, None, 1], bx[None, :, 1])
    oy1 = torch.minimum(bx[:, None, 2], bx[None, :, 2])
    ox1 = torch.minimum(bx[:, None, 3], bx[None, :, 3])
    hit = (oy1 > oy0) & (ox1 > ox0) & torch.ones_like(oy0, dtype=torch.bool).triu(1)
    for s, t in hit.nonzero().tolist():
        y0, x0, y1, x1 = int(oy0[s, t]), int(ox0[s, t]), int(oy1[s, t]), int(ox1[s, t])
        a = log_tiles[:, s, 0, y0 - bx[s, 0]:y1 - bx[s, 0], x0 - bx[s, 1]:x1 - bx[s, 1]]
        b = log_tiles[:, t, 0, y0 - bx[t, 0]:y1 - bx[t, 0], x0 - bx[t, 1]:x1 - bx[t, 1]]
        total[:, y0:y1, x0:x1] += (a - b).abs().double()
        pairs[y0:y1, x0:x1] += 1
    covered = pairs > 0
    if not covered.any():
        raise ValueError("tile_consistency_error: no pixel is covered by two tiles (the tiles do not overlap)")
    per_pixel = total[:, covered] / pairs[covered]
    return float(per_pixel.mean(dim=1).mean())


class _LiveTensors(TorchDispatchMode):
    """Counts the bytes of the tensor storages that operators create, from creation until freed."""

    def __init__(self, device_type: str):
        super().__init__()
        self.device_type, self.now, self.peak = device_type, 0, 0
        self.live: dict[int, weakref.ref] = {}

    def _free(self, key: int, nbytes: int, _ref) -> None:
        if self.live.pop(key, None) is not None:
            self.now -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.device.type == self.device_type:
                storage = t.untyped_storage()
                key = storage._cdata
                if key not in self.live:                       # a new storage (not a view or an in-place result)
                    nbytes = storage.nbytes()
                    self.live[key] = weakref.ref(storage, partial(self._free, key, nbytes))
                    self.now += nbytes
                    self.peak = max(self.peak, self.now)
        return out


def peak_memory(fn: Callable[[], Any], device=None) -> tuple[Any, int]:
    """Run ``fn()`` and return ``(its result, peak bytes of tensors allocated during the call)``.

    On CUDA: ``torch.cuda.max_memory_allocated`` above what was allocated before (the caching
    allocator's count: every tensor, workspaces included). On CPU, where PyTorch keeps no such
    count: every storage that an operator creates during the call is followed (a
    ``TorchDispatchMode``) from its creation until it is freed, and the peak of their sum is
    returned. That misses buffers an operator allocates and frees inside itself (convolution
    workspaces) and the tensors that already existed (weights, the input): the memory the call
    *adds*, a lower bound that compares runs fairly. The tracked run is slower: time it separately.

    >>> _, peak = peak_memory(lambda: torch.ones(1000) + 1)      # two 4000-byte tensors
    >>> peak
    8000
    """
    device = torch.device(device) if device is not None else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        out = fn()
        torch.cuda.synchronize(device)
        return out, int(torch.cuda.max_memory_allocated(device) - base)
    mode = _LiveTensors(device.type)
    with mode:
        out = fn()
    return out, int(mode.peak)
