r"""Patch fusion (Li et al., *PatchFusion*, CVPR 2024) at course scale: global scale from a coarse
pass, detail from a fine pass on crops, and a small network that fuses the two per tile.

::

    image (1,3,H,W) --resize to P--> coarse DepthMaskNet (frozen) -> coarse depth (1,1,ph,pw), features (1,C,ph/16,pw/16)
                                                                      features -> GlobalContext (self-attention) -> global
    for each tile box b (image pixels):
        rgb    = crop_resize(image, b) -> P          fine DepthMaskNet (frozen) -> log f
        c      = crop_resize(log coarse depth, b) -> P                 (the coarse guess for this tile)
        f'     = log f - mean(log f) + mean(c)       (the fine detail moved to the coarse scale)
        ctx    = crop_resize([features, global], b) -> P/4              (RoIAlign: the whole image, seen from b)
        gate, r, feats = FusionUNet([c - mean c, f' - mean c, rgb], ctx)
        log depth = c + sigmoid(gate) * (f' - c) + r                    (N,1,ph,pw)

``P`` = ``process_size`` = ``(ph, pw)``, the size every network works at. The coarse network sees
the whole image (global context, consistent scale, blurred edges); the fine network sees a tile at
full resolution (sharp edges, but it guesses its own scale and knows nothing outside the tile);
the fusion network decides per pixel how much fine detail to take (the gate) and corrects
both (the residual). Because every tile reads the *same* coarse prediction and the same global
features, neighbouring tiles agree where they overlap: that is what makes tiling seamless.

The global-to-local module is one pre-norm transformer block over the coarse feature map: every
location attends to every other, so after cropping, a tile's context summarises the whole image
(PatchFusion's "global-to-local" module; a Swin-style windowed block is the scalable variant).

**Consistency-aware training.** A training sample is a pair of crops of one image, the second
shifted by a known offset; besides each crop's depth loss,

.. math::  \mathcal{L}_\text{cons} = 0.1\,\bigl(0.1 \operatorname{mean}_{x \in A\cap B} (\hat Z_A(x) - \hat Z_B(x))^2
            + \operatorname{mean}_{x \in A\cap B} \|F_A(x) - F_B(x)\|^2\bigr)

pushes the two predictions (and the fusion network's last features ``F``) to agree on the
overlap :math:`A \cap B` (:func:`consistency_loss`, pairs from :func:`shifted_pairs`; the weights
are those of PatchFusion's original training configuration).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lib.models.depth_net import _conv_norm_act
from lib import checks
from lib.models.tiling import crop_resize

__all__ = ["GlobalContext", "FusionUNet", "PatchFusion", "shifted_pairs", "overlap_difference", "consistency_loss",
           "pair_forward", "fusion_pair_loss"]


def positional_encoding(h: int, w: int, channels: int, device=None, dtype=torch.float32) -> torch.Tensor:
    r"""2-D sinusoidal position code ``(h*w, channels)``: for ``k < channels/4``,
    ``sin(y w_k), cos(y w_k), sin(x w_k), cos(x w_k)`` with :math:`w_k = 10000^{-k/(channels/4)}`
    and ``y, x`` the row and column of a location (Vaswani et al. 2017, in two dimensions)."""
    if channels % 4:
        raise ValueError(f"channels must be a multiple of 4 for a 2-D sine code, got {channels}")
    q = channels // 4
    omega = 10000.0 ** (-torch.arange(q, device=device, dtype=torch.float32) / q)
    y, x = torch.meshgrid(torch.arange(h, device=device, dtype=torch.float32),
                          torch.arange(w, device=device, dtype=torch.float32), indexing="ij")
    ay, ax = y.reshape(-1, 1) * omega, x.reshape(-1, 1) * omega
    return torch.cat([ay.sin(), ay.cos(), ax.sin(), ax.cos()], dim=1).to(dtype)


class GlobalContext(nn.Module):
    r"""Self-attention over a whole feature map: one pre-norm transformer block.

    ``t = tokens + position``; ``t = t + MHA(LN(t))``; ``t = t + MLP(LN(t))``, over the
    ``h*w`` locations of the map, so every output location mixes information from every input
    location (the receptive field is the image).

    Shapes: input ``(B, C, h, w)`` -> output ``(B, C, h, w)``; ``C`` divisible by 4 and by ``heads``.

    >>> GlobalContext(16, heads=2)(torch.rand(2, 16, 3, 5)).shape
    torch.Size([2, 16, 3, 5])
    """

    def __init__(self, channels: int, heads: int = 4, mlp_ratio: int = 2):
        super().__init__()
        if channels % 4 or channels % heads:
            raise ValueError(f"channels ({channels}) must be divisible by 4 and by heads ({heads})")
        self.norm1 = nn.LayerNorm(channels)
        self.attn = nn.MultiheadAttention(channels, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(channels)
        self.mlp = nn.Sequential(nn.Linear(channels, mlp_ratio * channels), nn.GELU(),
                                 nn.Linear(mlp_ratio * channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, h, w = x.shape
        t = x.flatten(2).transpose(1, 2) + positional_encoding(h, w, C, x.device, x.dtype)
        q = self.norm1(t)
        t = t + self.attn(q, q, q, need_weights=False)[0]
        t = t + self.mlp(self.norm2(t))
        return t.transpose(1, 2).reshape(B, C, h, w)


class FusionUNet(nn.Module):
    r"""A small U-Net that fuses a coarse and a fine depth crop.

    Encoder at 1, 1/2, 1/4 of the input (``width``, ``2 width``, ``4 width`` channels); at 1/4 the
    ``context`` features are concatenated and mixed by a 1x1 convolution; the decoder upsamples
    (bilinear) and merges the skips. Head: two maps, a gate logit and a log-depth residual (the
    head starts small, gate 0.5, residual 0).

    Shapes: ``x`` ``(N, in_channels, h, w)`` with ``h, w`` multiples of 4; ``context``
    ``(N, context_channels, h/4, w/4)``. Returns ``(gate, residual, features)``: ``(N,1,h,w)``,
    ``(N,1,h,w)`` (float32) and ``(N, width, h, w)`` (the last decoder features).
    """

    def __init__(self, context_channels: int, width: int = 16, in_channels: int = 5):
        super().__init__()
        w = int(width)
        if w < 1:
            raise ValueError(f"width must be a positive integer, got {width!r}")
        self.enc0 = nn.Sequential(_conv_norm_act(in_channels, w, 3), _conv_norm_act(w, w, 3))
        self.enc1 = nn.Sequential(_conv_norm_act(w, 2 * w, 3, stride=2), _conv_norm_act(2 * w, 2 * w, 3))
        self.enc2 = nn.Sequential(_conv_norm_act(2 * w, 4 * w, 3, stride=2), _conv_norm_act(4 * w, 4 * w, 3))
        self.inject = _conv_norm_act(4 * w + context_channels, 4 * w, 1)
        self.mid = _conv_norm_act(4 * w, 4 * w, 3)
        self.up1 = _conv_norm_act(4 * w + 2 * w, 2 * w, 3)
        self.up0 = _conv_norm_act(2 * w + w, w, 3)
        self.head = nn.Conv2d(w, 2, 3, padding=1)
        with torch.no_grad():
            self.head.weight.mul_(0.1)
            self.head.bias.zero_()

    def forward(self, x: torch.Tensor, context: torch.Tensor):
        s0 = self.enc0(x)
        s1 = self.enc1(s0)
        s2 = self.enc2(s1)
        if context.shape[-2:] != s2.shape[-2:]:
            raise ValueError(f"context must be (N,C,{s2.shape[-2]},{s2.shape[-1]}) (1/4 of the input), "
                             f"got {tuple(context.shape)}")
        z = self.mid(self.inject(torch.cat([s2, context.to(s2.dtype)], dim=1)))
        z = self.up1(torch.cat([F.interpolate(z, size=s1.shape[-2:], mode="bilinear", align_corners=False), s1], 1))
        z = self.up0(torch.cat([F.interpolate(z, size=s0.shape[-2:], mode="bilinear", align_corners=False), s0], 1))
        gate, residual = self.head(z).float().split(1, dim=1)
        return gate, residual, z


def _is_grid(boxes: torch.Tensor) -> bool:
    """Integer boxes of one size (tiles): cut by slicing, resized with anti-aliasing."""
    size = boxes[:, 2:] - boxes[:, :2]
    return bool((boxes == boxes.round()).all() and (size == size[:1]).all())


class PatchFusion(nn.Module):
    r"""The patch-fusion pipeline: a frozen coarse and a frozen fine depth network, a trainable
    :class:`GlobalContext` and :class:`FusionUNet` (see the module docstring for the data flow).

    Args:
        coarse: depth network run on the whole image resized to ``process_size`` (a
            :class:`~lib.models.DepthMaskNet`: its ``features`` are the bottleneck).
        fine: depth network run on each tile resized to ``process_size``.
        process_size: ``(ph, pw)``, multiples of 16.
        width: channels of the fusion U-Net's first level. heads: attention heads.

    Both sub-networks are frozen (``requires_grad=False``) and stay in ``eval()`` whatever
    ``train()`` is called with: only the global-context block and the fusion U-Net learn.

    Interfaces:
        - ``forward(image, boxes, index=None)`` (training): ``image`` ``(B,3,H,W)``, ``boxes``
          ``(N,4)`` ``[y0, x0, y1, x1]`` image pixels, ``index`` ``(N,)`` which image each box is
          from (default: box n from image n when N = B, image 0 when B = 1). Returns a dict of
          ``(N,·,ph,pw)`` maps: ``depth`` (metres, > 0), ``features`` (width channels),
          ``coarse`` and ``fine`` (the two inputs, fine at the coarse scale), ``gate`` (0..1).
        - :class:`~lib.models.tiling.TilePredictor` for :func:`~lib.models.tiling.tiled_predict`:
          ``prepare(image)`` runs the coarse pass and the global context once per image,
          ``predict_tiles(context, boxes)`` returns ``(n,1,ph,pw)`` depth.
        - ``coarse_predict(image)``: the coarse-only baseline, ``(B,1,H,W)`` (bilinear upsampling).

    Example:
        >>> from lib.models import DepthMaskNet, tiled_predict
        >>> pf = PatchFusion(DepthMaskNet(4), DepthMaskNet(4), (16, 32), width=4).eval()
        >>> out = pf(torch.rand(2, 3, 64, 128), torch.tensor([[0., 0., 16., 32.], [8., 8., 24., 40.]]))
        >>> out["depth"].shape, out["features"].shape
        (torch.Size([2, 1, 16, 32]), torch.Size([2, 4, 16, 32]))
        >>> tiled_predict(pf, torch.rand(1, 3, 64, 128), "P49").shape
        torch.Size([1, 1, 64, 128])
    """

    def __init__(self, coarse: nn.Module, fine: nn.Module, process_size: tuple[int, int], width: int = 16,
                 heads: int = 4):
        super().__init__()
        self.process_size = checks.size_pair(process_size, "process_size")
        multiple = int(getattr(coarse, "multiple", 16))
        if any(s % multiple or s % 4 for s in self.process_size):
            raise ValueError(f"process_size must be multiples of {max(multiple, 4)}, got {self.process_size}")
        channels = getattr(coarse, "feature_channels", None)
        if channels is None:
            raise ValueError("coarse must expose feature_channels (the channels of its 'features' output)")
        self.coarse, self.fine = coarse, fine
        for net in (coarse, fine):
            net.requires_grad_(False)
            net.eval()
        self.context = GlobalContext(channels, heads)
        self.fusion = FusionUNet(2 * channels, width)

    def train(self, mode: bool = True) -> "PatchFusion":
        super().train(mode)
        self.coarse.eval()
        self.fine.eval()
        return self

    def _resize(self, image: torch.Tensor) -> torch.Tensor:
        if tuple(image.shape[-2:]) == self.process_size:
            return image
        return F.interpolate(image, size=self.process_size, mode="bilinear", align_corners=False,
                             antialias=True).clamp(0.0, 1.0)

    def _check_image(self, image: torch.Tensor) -> None:
        if not isinstance(image, torch.Tensor) or image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"PatchFusion expects an image (B,3,H,W), got "
                             f"{tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__}")
        if not image.is_floating_point():
            raise TypeError(f"PatchFusion expects a float image in [0,1], got {image.dtype}")

    def coarse_pass(self, image: torch.Tensor) -> dict:
        """The frozen coarse network on the whole image at the processing size: ``depth``
        ``(B,1,ph,pw)`` and ``features`` ``(B,C,ph/16,pw/16)``."""
        self._check_image(image)
        with torch.no_grad():
            out = self.coarse(self._resize(image))
        return {"depth": out["depth"].float(), "features": out["features"]}

    def coarse_predict(self, image: torch.Tensor) -> torch.Tensor:
        """Coarse-only depth at full resolution ``(B,1,H,W)``: the processing-size prediction
        upsampled bilinearly (in log depth)."""
        depth = self.coarse_pass(image)["depth"]
        return torch.exp(F.interpolate(depth.log(), size=image.shape[-2:], mode="bilinear", align_corners=False))

    def prepare(self, image: torch.Tensor) -> dict:
        ctx = self.coarse_pass(image)
        ctx["global"] = self.context(ctx["features"])
        ctx["image"] = image
        return ctx

    def _crops(self, image: torch.Tensor, boxes: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        if _is_grid(boxes):
            crops = torch.cat([image[i:i + 1, :, y0:y1, x0:x1]
                               for i, (y0, x0, y1, x1) in zip(index.tolist(), boxes.long().tolist())])
            return self._resize(crops)
        return crop_resize(image, boxes, self.process_size, index).clamp(0.0, 1.0)

    def fuse(self, ctx: dict, boxes: torch.Tensor, index: torch.Tensor | None = None) -> dict:
        """The per-tile part: crops, fine pass, fusion (see the class docstring for the outputs)."""
        image = ctx["image"]
        B, _, H, W = image.shape
        if boxes.ndim != 2 or boxes.shape[-1] != 4 or len(boxes) == 0:
            raise ValueError(f"boxes must be (N,4) [y0, x0, y1, x1] with N >= 1, got {tuple(boxes.shape)}")
        boxes = boxes.to(image.device)
        N = len(boxes)
        if index is None:
            if B not in (1, N):
                raise ValueError(f"{N} boxes for {B} images: pass index= (which image each box is from)")
            index = torch.zeros(N, dtype=torch.long) if B == 1 else torch.arange(N)
        index = index.to(image.device)
        P = self.process_size
        rgb = self._crops(image, boxes, index)
        with torch.no_grad():
            f = torch.log(self.fine(rgb)["depth"].float())
        c = crop_resize(ctx["depth"].log(), boxes, P, index, image_size=(H, W))
        mc = c.mean(dim=(2, 3), keepdim=True)
        f_aligned = f - f.mean(dim=(2, 3), keepdim=True) + mc
        q = (P[0] // 4, P[1] // 4)
        context = torch.cat([crop_resize(ctx["features"].float(), boxes, q, index, image_size=(H, W)),
                             crop_resize(ctx["global"].float(), boxes, q, index, image_size=(H, W))], dim=1)
        x = torch.cat([c - mc, f_aligned - mc, rgb], dim=1)
        gate, residual, features = self.fusion(x, context)
        g = torch.sigmoid(gate)
        log_depth = c + g * (f_aligned - c) + residual
        return {"depth": torch.exp(log_depth), "features": features, "coarse": torch.exp(c),
                "fine": torch.exp(f_aligned), "gate": g}

    def forward(self, image: torch.Tensor, boxes: torch.Tensor, index: torch.Tensor | None = None) -> dict:
        return self.fuse(self.prepare(image), boxes, index)

    def predict_tiles(self, ctx: dict, boxes: torch.Tensor) -> torch.Tensor:
        return self.fuse(ctx, boxes)["depth"]


def shifted_pairs(height: int, width: int, tile: tuple[int, int], n: int, max_shift: float = 0.5,
                  generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` pairs of tile boxes for consistency-aware training: ``(boxes_a, boxes_b)``, each
    ``(n,4)`` float ``[y0, x0, y1, x1]`` of size ``tile`` = (th, tw), integer-valued, inside the
    ``height x width`` image. Box a is uniform; box b is a shifted by an integer offset drawn
    uniformly from ``[-max_shift * th, max_shift * th] x [-max_shift * tw, max_shift * tw]``,
    then moved back inside the image. With ``max_shift < 1`` the two always overlap.

    >>> a, b = shifted_pairs(64, 96, (32, 48), 3, generator=torch.Generator().manual_seed(0))
    >>> a.shape, bool(((b - a)[:, :2].abs() <= torch.tensor([16, 24])).all())
    (torch.Size([3, 4]), True)
    """
    H, W = checks.size_pair((height, width), "image size")
    th, tw = checks.size_pair(tile, "tile")
    if th > H or tw > W:
        raise ValueError(f"tile {th}x{tw} does not fit in the {H}x{W} image")
    if not 0 <= max_shift < 1:
        raise ValueError(f"max_shift must be in [0, 1) so that the two crops overlap, got {max_shift}")
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    ya = torch.randint(0, H - th + 1, (n,), generator=generator)
    xa = torch.randint(0, W - tw + 1, (n,), generator=generator)
    sy, sx = int(max_shift * th), int(max_shift * tw)
    yb = (ya + torch.randint(-sy, sy + 1, (n,), generator=generator)).clamp(0, H - th)
    xb = (xa + torch.randint(-sx, sx + 1, (n,), generator=generator)).clamp(0, W - tw)
    box = lambda y, x: torch.stack([y, x, y + th, x + tw], dim=1).float()  # noqa: E731
    return box(ya, xa), box(yb, xb)


def overlap_difference(map_a: torch.Tensor, map_b: torch.Tensor, box_a: torch.Tensor, box_b: torch.Tensor,
                       size: tuple[int, int] | None = None, distance: str = "l1") -> torch.Tensor:
    r"""Mean difference (``"l1"``: absolute, ``"mse"``: squared) of two crops' maps over their overlap.

    ``map_a`` ``(N,C,h,w)`` covers ``box_a`` ``(N,4)`` (image pixels ``[y0, x0, y1, x1]``), and
    likewise for b. The overlap :math:`A \cap B` of each pair is resampled from both maps onto
    the same ``size`` grid (default ``(h, w)``) of points spread evenly from the first to the
    last pixel centre of the overlap (bilinear, :func:`~lib.models.tiling.crop_resize`: any
    offset, any map resolution; two crops of one map agree exactly), then ``mean |a - b|`` over
    pairs, channels and grid points (``mean (a - b)^2`` with ``distance="mse"``). Pairs that do not
    overlap are left out; none at all gives a 0 that still backpropagates. Differentiable in both
    maps; a scalar tensor.
    """
    if distance not in ("l1", "mse"):
        raise ValueError(f"distance must be 'l1' or 'mse', got {distance!r}")
    if map_a.shape != map_b.shape or map_a.ndim != 4:
        raise ValueError(f"map_a and map_b must be (N,C,h,w) of one shape, got {tuple(map_a.shape)}, {tuple(map_b.shape)}")
    if box_a.shape != (map_a.shape[0], 4) or box_b.shape != box_a.shape:
        raise ValueError(f"box_a and box_b must be ({map_a.shape[0]},4), got {tuple(box_a.shape)}, {tuple(box_b.shape)}")
    h, w = map_a.shape[-2:]
    size = checks.size_pair(size or (h, w), "size")
    box_a, box_b = box_a.to(map_a.device).float(), box_b.to(map_a.device).float()
    ov = torch.cat([torch.maximum(box_a[:, :2], box_b[:, :2]), torch.minimum(box_a[:, 2:], box_b[:, 2:])], dim=1)
    keep = (ov[:, 2] > ov[:, 0]) & (ov[:, 3] > ov[:, 1])
    if not keep.any():
        return (map_a.sum() + map_b.sum()) * 0.0

    n = torch.tensor(size, dtype=torch.float32, device=map_a.device)

    def local(box):
        """A box whose cell centres run from the first to the last pixel centre of the overlap, in
        the map pixels of the crop ``box``: bilinear sampling then never reads a pixel outside
        the overlap (which the other crop does not have)."""
        scale = torch.stack([h / (box[:, 2] - box[:, 0]), w / (box[:, 3] - box[:, 1])], dim=1)
        u = (ov - box[:, :2].repeat(1, 2)) * scale.repeat(1, 2)
        lo, hi = u[:, :2] + 0.5, u[:, 2:] - 0.5
        mid = 0.5 * (lo + hi)
        lo, hi = torch.minimum(lo, mid), torch.maximum(hi, mid)     # overlap under one pixel: its middle
        d = (hi - lo) / (n - 1).clamp(min=1)
        return torch.cat([lo - d / 2, hi + d / 2], dim=1)

    a = crop_resize(map_a[keep], local(box_a)[keep], size)
    b = crop_resize(map_b[keep], local(box_b)[keep], size)
    d = a.float() - b.float()
    return d.abs().mean() if distance == "l1" else (d * d).mean()


def consistency_loss(out_a: dict, out_b: dict, box_a: torch.Tensor, box_b: torch.Tensor, *,
                     depth_weight: float = 0.1, feature_weight: float = 1.0, weight: float = 0.1,
                     space: str = "depth", distance: str = "mse",
                     size: tuple[int, int] | None = None) -> torch.Tensor:
    r"""Consistency-aware training term for two shifted crops of one image (PatchFusion).

    .. math:: \mathcal{L}_\text{cons} = w\,\bigl(w_d\, D(\hat Z_A, \hat Z_B)
              + w_f\, D(F_A, F_B)\bigr)

    with :math:`D` = :func:`overlap_difference` over the overlap of the two crops (``distance``
    ``"mse"``: mean squared difference), on linear depth (``space="depth"``; ``"log"``: on log
    depth) and on the fusion network's features; by default :math:`w = 0.1`,
    :math:`w_d = 0.1`, :math:`w_f = 1`. Zero when the two crops agree on their overlap; a
    scalar tensor, to be added to each crop's depth loss.

    Reference: ``zhyever/PatchFusion`` at commit 0181da7, ``zoedepth/trainers/loss.py``
    (``ConsistencyLoss``, target ``"mix"``): ``F.mse_loss`` on the overlap of the two depth
    predictions (metres) and on the fusion U-Net's decoder features, combined as
    ``w_p * pred + feat`` with ``w_p = 0.1`` and weighted by ``w_consistency = 0.1``
    (``config_zoedepth_patchfusion_finetune.json``). Differences, and why:

    - the reference compares all six decoder levels (concatenated into one MSE); here the
      fusion network's last decoder features (``features`` of :class:`PatchFusion`), the one
      level :class:`FusionUNet` exposes;
    - the reference slices the overlap by the integer shift at each level (the shift of two
      crops of one size); here both crops are resampled onto one grid over the overlap
      (any offset, any map size) and all overlap pixels count (the reference keeps those with
      valid ground truth);
    - the reference pairs crops shifted by exactly +-135 rows and +-240 columns of 540 x 960;
      :func:`shifted_pairs` draws shifts up to ``max_shift`` of the tile.

    Args:
        out_a, out_b: dicts with ``depth`` ``(N,1,h,w)`` > 0 and (when ``feature_weight > 0``)
            ``features`` ``(N,C,h',w')``, e.g. :class:`PatchFusion` outputs for ``box_a`` / ``box_b``.
        box_a, box_b: ``(N,4)`` crop boxes in image pixels.
        depth_weight, feature_weight, weight: :math:`w_d, w_f, w` (all >= 0).
        space: ``"depth"`` (metres, as the reference) or ``"log"``.
        distance: ``"mse"`` (as the reference) or ``"l1"``.
        size: the common grid of the overlap (default: the maps' size).
    """
    if min(depth_weight, feature_weight, weight) < 0:
        raise ValueError(f"weights must be >= 0, got depth_weight={depth_weight}, "
                         f"feature_weight={feature_weight}, weight={weight}")
    if space not in ("depth", "log"):
        raise ValueError(f"space must be 'depth' (as PatchFusion) or 'log', got {space!r}")
    da, db = out_a["depth"].float(), out_b["depth"].float()
    if space == "log":
        da, db = torch.log(da.clamp(min=1e-6)), torch.log(db.clamp(min=1e-6))
    loss = depth_weight * overlap_difference(da, db, box_a, box_b, size, distance)
    if feature_weight > 0:
        loss = loss + feature_weight * overlap_difference(out_a["features"], out_b["features"],
                                                          box_a, box_b, size, distance)
    return weight * loss


def pair_forward(model: "PatchFusion", batch: dict, tile: tuple[int, int], max_shift: float = 0.5,
                 generator: torch.Generator | None = None) -> dict:
    """Consistency-aware training's forward pass: for every image of ``batch`` a pair of crops
    (:func:`shifted_pairs`), both through ``model``. Returns the model's outputs for the 2B
    boxes (the A crops, then the B crops) with ``boxes``, ``index``, ``box_a`` and ``box_b``
    added. Use it as ``lib.train.fit(..., forward=lambda m, b: pair_forward(m, b, tile))``.
    """
    image = batch["image"]
    B, _, H, W = image.shape
    a, b = shifted_pairs(H, W, tile, B, max_shift=max_shift, generator=generator)
    boxes, index = torch.cat([a, b]), torch.arange(B).repeat(2)
    out = model(image, boxes.to(image.device), index.to(image.device))
    out.update(boxes=boxes, index=index, box_a=a, box_b=b)
    return out


def fusion_pair_loss(out: dict, batch: dict, process_size: tuple[int, int], *,
                     consistency_weight: float = 0.1, depth_weight: float = 0.1,
                     feature_weight: float = 1.0) -> torch.Tensor:
    """The training loss of a :func:`pair_forward` output: the log-depth L1 of every crop
    against the true depth cropped to its box (nearest-neighbour, valid pixels only), plus
    :func:`consistency_loss` of the A and B crops with the given weights (``consistency_weight=0``:
    the ablation without it). A scalar tensor."""
    boxes = out["boxes"].to(out["depth"].device)
    index = out["index"].to(out["depth"].device)
    gt = crop_resize(batch["depth"].float(), boxes, process_size, index, mode="nearest")
    valid = crop_resize(batch["valid"].float(), boxes, process_size, index, mode="nearest") > 0.5
    err = (torch.log(out["depth"].float()) - torch.log(gt.clamp(min=1e-6))).abs()
    loss = (err * valid).sum() / valid.sum().clamp(min=1)
    if consistency_weight == 0:
        return loss
    B = len(out["box_a"])
    half = [{k: out[k][i * B:(i + 1) * B] for k in ("depth", "features")} for i in (0, 1)]
    return loss + consistency_loss(half[0], half[1], out["box_a"], out["box_b"],
                                   depth_weight=depth_weight, feature_weight=feature_weight,
                                   weight=consistency_weight)
