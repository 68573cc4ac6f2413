"""The course's baseline network: a dilated-convolution encoder, a pixel-shuffle decoder, and two
heads (metric depth and a foreground mask), after the depth-and-mask design of the seed projects.

::

    image (B,3,H,W) in [0,1]
      -> normalise (ImageNet mean/std), [coords=True: append pixel coordinates u, v in [-1, 1]]
      -> 4 encoder blocks      [3x3 conv | 3x3 dilated conv] -> concat -> 1x1 mix -> stride-2 conv
             skips at H, H/2, H/4, H/8 with w, 2w, 4w, 8w channels; bottleneck (B,8w,H/16,W/16)
      -> 4 decoder blocks      1x1 conv to 4*c channels -> pixel-shuffle x2 -> concat skip -> 3x3 conv
      -> depth head            log-depth -> exp       (B,1,H,W) metres, > 0
      -> mask head             foreground logits       (B,1,H,W)

The 3x3 and the dilated 3x3 convolution look at the same pixels at two scales (a 3x3 and a 5x5
neighbourhood with holes) for the price of two 3x3 kernels; the 1x1 convolution mixes them.
Pixel-shuffle upsampling (Shi et al. 2016) turns ``4c`` channels at ``(h, w)`` into ``c``
channels at ``(2h, 2w)``: learnt, and free of the checkerboard of transposed convolutions.

The optional coordinate channels (``coords=True``; CoordConv, Liu et al. 2018) tell the first
layer where in the image a pixel is: convolutions are translation-equivariant, but depth in a
room is not (bottom rows are usually near floor). Without them the network reads position from
the zero padding at the borders; on the synthetic rooms that was enough (same one-minute result
with and without), so they are off by default.

Normalisation is GroupNorm, which does not depend on the batch: the network behaves the same
at batch 1, in ``eval()`` and under DistributedDataParallel (no running statistics to sync).

The helpers :func:`count_parameters`, :func:`activation_memory` and :func:`describe` are the
numbers notebook 02 prints.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["DepthMaskNet", "count_parameters", "activation_memory", "describe"]

# ImageNet statistics: the usual input normalisation, kept so that pretrained encoders can be
# swapped in by later chapters without changing the data pipeline.
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


def _group_norm(channels: int, max_groups: int = 32) -> nn.GroupNorm:
    """GroupNorm with about 4 channels per group (at most ``max_groups``), dividing ``channels``."""
    groups = min(max_groups, max(1, channels // 4))
    while channels % groups:
        groups -= 1
    return nn.GroupNorm(groups, channels)


def _conv_norm_act(c_in: int, c_out: int, kernel: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
        _group_norm(c_out),
        nn.ReLU(inplace=True),
    )


def _coordinates(x: torch.Tensor) -> torch.Tensor:
    """``(B, 2, H, W)`` pixel coordinates for ``x`` ``(B, C, H, W)``: channel 0 is the column u,
    channel 1 the row v, each running linearly from -1 (first pixel) to +1 (last pixel), in the
    dtype and on the device of ``x`` (CoordConv, Liu et al. 2018)."""
    B, _, H, W = x.shape
    u = torch.linspace(-1.0, 1.0, W, device=x.device, dtype=x.dtype).view(1, 1, 1, W).expand(B, 1, H, W)
    v = torch.linspace(-1.0, 1.0, H, device=x.device, dtype=x.dtype).view(1, 1, H, 1).expand(B, 1, H, W)
    return torch.cat([u, v], dim=1)


class EncoderBlock(nn.Module):
    """``[3x3 conv | 3x3 conv dilated d]`` -> concat -> 1x1 conv + norm + ReLU, then a stride-2
    3x3 conv + norm + ReLU.

    Input ``(B, c_in, h, w)``; returns ``(skip, down)`` with skip ``(B, c_out, h, w)`` (before
    downsampling, for the decoder) and down ``(B, c_out, h/2, w/2)``.
    """

    def __init__(self, c_in: int, c_out: int, dilation: int = 2):
        super().__init__()
        self.local = nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(inplace=True))
        self.dilated = nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=dilation, dilation=dilation), nn.ReLU(inplace=True))
        self.mix = _conv_norm_act(2 * c_out, c_out, 1)
        self.down = _conv_norm_act(c_out, c_out, 3, stride=2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        skip = self.mix(torch.cat([self.local(x), self.dilated(x)], dim=1))
        return skip, self.down(skip)


class DecoderBlock(nn.Module):
    """1x1 conv to ``4 * c_out`` channels -> pixel-shuffle x2 -> concat skip -> 3x3 conv + norm + ReLU.

    Input ``(B, c_in, h, w)`` and skip ``(B, c_skip, 2h, 2w)``; output ``(B, c_out, 2h, 2w)``.
    """

    def __init__(self, c_in: int, c_skip: int, c_out: int):
        super().__init__()
        self.expand = nn.Conv2d(c_in, 4 * c_out, 1)
        self.shuffle = nn.PixelShuffle(2)
        self.fuse = _conv_norm_act(c_out + c_skip, c_out, 3)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat([self.shuffle(self.expand(x)), skip], dim=1))


class DepthMaskNet(nn.Module):
    """Encoder-decoder predicting metric depth and a foreground mask from one RGB image.

    Args:
        width: channels of the first encoder block; block ``i`` has ``width * 2**i`` channels
            and the bottleneck ``8 * width``. About ``2.5e6 * (width/32)**2`` parameters.
        dilation: dilation of the second 3x3 convolution of each encoder block.
        depth_init: depth (metres) predicted everywhere at initialisation: the depth head's
            bias starts at ``log(depth_init)`` (3 m, a typical indoor distance) and its
            weights small, so training starts from a sensible flat room instead of ``e**0 = 1 m``
            plus noise.
        coords: append two channels of normalised pixel coordinates (u, v in [-1, 1], left to
            right and top to bottom) to the normalised image, so the first convolutions take 5
            input channels instead of 3. Off by default: on the synthetic rooms it did not
            change the one-minute result (the network reads position from the zero padding).

    Shapes:
        - input ``image``: ``(B, 3, H, W)`` float, sRGB in [0, 1], ``H`` and ``W`` multiples of 16
          (any layout; ``channels_last`` works and gives the same numbers).
        - output: a dict with
            ``depth`` ``(B, 1, H, W)`` metres, > 0: the head predicts log-depth ``z`` and
            returns ``exp(z)`` (computed in float32), so depth is positive by construction
            and a log-depth loss sees ``z`` up to float rounding;
            ``mask`` ``(B, 1, H, W)``: foreground logits (``sigmoid`` gives the probability
            that a pixel belongs to an object rather than the room; instance id > 0);
            ``features`` ``(B, 8*width, H/16, W/16)``: the bottleneck, for feature alignment
            (teacher-student) and crop fusion (patch fusion).

    Example:
        >>> model = DepthMaskNet(width=8)
        >>> out = model(torch.rand(2, 3, 32, 48))
        >>> out["depth"].shape, out["mask"].shape, out["features"].shape
        (torch.Size([2, 1, 32, 48]), torch.Size([2, 1, 32, 48]), torch.Size([2, 64, 2, 3]))
        >>> bool((out["depth"] > 0).all())
        True
    """

    multiple = 16  # input sides must be multiples of this (4 stride-2 stages)

    def __init__(self, width: int = 32, dilation: int = 2, depth_init: float = 3.0, coords: bool = False):
        super().__init__()
        if int(width) < 1:
            raise ValueError(f"width must be a positive integer, got {width!r}")
        if int(dilation) < 1:
            raise ValueError(f"dilation must be a positive integer, got {dilation!r}")
        if not isinstance(coords, bool):
            raise TypeError(f"coords must be True or False, got {coords!r}")
        if not depth_init > 0:
            raise ValueError(f"depth_init is a depth in metres and must be > 0, got {depth_init!r}")
        width, dilation, depth_init = int(width), int(dilation), float(depth_init)
        # Constructor arguments, stored in checkpoints so that lib.train.load_model rebuilds the model.
        self.config = {"width": width, "dilation": dilation, "depth_init": depth_init, "coords": coords}

        chans = [width * 2**i for i in range(4)]  # w, 2w, 4w, 8w
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)
        self.encoder = nn.ModuleList(
            EncoderBlock(c_in, c_out, dilation) for c_in, c_out in zip([3 + 2 * bool(coords)] + chans[:-1], chans)
        )
        # decoder: 8w@H/16 -> 4w@H/8 -> 2w@H/4 -> w@H/2 -> w@H, each fused with the skip of that size
        dec_out = [chans[2], chans[1], chans[0], chans[0]]
        dec_in = [chans[3]] + dec_out[:-1]
        self.decoder = nn.ModuleList(
            DecoderBlock(c_in, c_skip, c_out) for c_in, c_skip, c_out in zip(dec_in, chans[::-1], dec_out)
        )
        self.depth_head = nn.Conv2d(width, 1, 3, padding=1)
        self.mask_head = nn.Conv2d(width, 1, 3, padding=1)
        with torch.no_grad():
            self.depth_head.weight.mul_(0.1)
            self.depth_head.bias.fill_(math.log(depth_init))

    @property
    def feature_channels(self) -> int:
        """Channels of ``features`` (the bottleneck): ``8 * width``."""
        return 8 * self.config["width"]

    def check_size(self, height: int, width: int) -> None:
        """Raise ``ValueError`` unless both sides are multiples of 16, naming the nearest valid sizes."""
        m = self.multiple
        if height % m == 0 and width % m == 0 and height > 0 and width > 0:
            return

        def near(n: int) -> list[int]:
            lo, hi = (n // m) * m, -(-n // m) * m
            return sorted({v for v in (lo, hi) if v > 0})

        options = [f"{h}x{w}" for h in near(height) for w in near(width)]
        raise ValueError(
            f"DepthMaskNet needs H and W that are multiples of {m} (4 stride-2 stages), got "
            f"{height}x{width}; nearest valid sizes: {', '.join(options)} (resize or crop the image)"
        )

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        if image.ndim != 4 or image.shape[1] != 3:
            hint = " (add a batch dimension: image[None])" if image.ndim == 3 else ""
            raise ValueError(f"DepthMaskNet expects an image of shape (B,3,H,W), got {tuple(image.shape)}{hint}")
        if not image.is_floating_point():
            raise TypeError(f"DepthMaskNet expects a float image in [0,1], got dtype {image.dtype}")
        self.check_size(image.shape[-2], image.shape[-1])

        x = (image - self.mean) / self.std
        if self.config["coords"]:
            x = torch.cat([x, _coordinates(x)], dim=1)
        skips = []
        for block in self.encoder:
            skip, x = block(x)
            skips.append(skip)
        features = x
        for block, skip in zip(self.decoder, reversed(skips)):
            x = block(x, skip)
        log_depth = self.depth_head(x).float()
        return {"depth": torch.exp(log_depth), "mask": self.mask_head(x), "features": features}


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters of ``model`` (shared parameters counted once).

    >>> count_parameters(nn.Conv2d(3, 8, 3))  # 8*3*3*3 weights + 8 biases
    224
    """
    params = {id(p): p for p in model.parameters() if p.requires_grad or not trainable_only}
    return sum(p.numel() for p in params.values())


def _random_image(input_size: Sequence[int], model: nn.Module, device) -> torch.Tensor:
    if len(input_size) != 4:
        raise ValueError(f"input_size must be (B, C, H, W), got {tuple(input_size)}")
    ref = next(model.parameters(), None)
    device = torch.device(device) if device is not None else (ref.device if ref is not None else torch.device("cpu"))
    dtype = ref.dtype if ref is not None and ref.is_floating_point() else torch.float32
    return torch.rand(*input_size, device=device, dtype=dtype)


def activation_memory(model: nn.Module, input_size: Sequence[int] = (1, 3, 256, 256), device="meta") -> int:
    """Bytes of activations that a training step keeps alive between forward and backward.

    Runs one forward pass in training mode and records, through
    :class:`torch.autograd.graph.saved_tensors_hooks`, every tensor that autograd saves for the
    backward pass. The answer is the total size of the distinct storages among them (a tensor
    saved by two operations, or two views of one tensor, count once), leaving out parameters
    and buffers: the input image, the inputs of every convolution, the normalisation inputs,
    the ReLU outputs, etc. That is the memory that grows with batch size and image size and
    decides whether a batch fits.

    Not counted: parameters, gradients and optimiser state (see :func:`count_parameters`; with
    Adam about 4x the parameter bytes), outputs that autograd does not keep, transient buffers
    freed inside an operation (convolution workspaces), allocator caching and fragmentation.

    By default the pass runs on a copy of the model on the ``meta`` device (shapes and sizes
    only, no arithmetic, no memory): instant even for batches that would not fit. Pass
    ``device=None`` to run the real model where it is (same number; falls back to that when an
    operation has no meta implementation). The model itself is left untouched.

    Args:
        input_size: ``(B, 3, H, W)`` of the (random) input batch.
        device: ``"meta"`` (default), ``None`` (the model's device) or a device.

    Returns:
        bytes (int): about ``B * H * W * (bytes per pixel)``, linear in batch, quadratic in side.

    >>> activation_memory(nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU()), (2, 3, 8, 8))
    3584
    """
    # (the conv saves its input 2*3*8*8 floats, ReLU its output 2*4*8*8 floats: 4 * 896 bytes)
    if device is not None and torch.device(device).type == "meta":
        try:
            return activation_memory(copy.deepcopy(model).to("meta"), input_size, device=None)
        except (NotImplementedError, RuntimeError):
            device = None  # an operation without a meta kernel: measure for real
    x = _random_image(input_size, model, device)
    # A storage is identified by its StorageImpl (``_cdata``), which works on every device
    # including meta, where data_ptr() is 0 for all tensors.
    own = {t.untyped_storage()._cdata for t in list(model.parameters()) + list(model.buffers())}
    seen: dict[int, int] = {}
    alive: list[torch.Tensor] = []  # keeps storages alive so that their ids are not reused

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        alive.append(t)
        if storage._cdata not in own:
            seen.setdefault(storage._cdata, storage.nbytes())
        return t

    was_training = model.training
    model.train()
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = model(x)
        del out  # frees the graph without running backward
    finally:
        model.train(was_training)
    return int(sum(seen.values()))


def describe(model: nn.Module, input_size: Sequence[int] = (1, 3, 256, 256), depth: int = 3, device=None) -> str:
    """A table of the output shape and parameter count of every sub-module, in call order.

    Runs one forward pass on a random input of ``input_size`` (no gradients) and records the
    output of each sub-module whose qualified name has at most ``depth`` parts
    (``encoder.0.local`` has 3). Returns a Markdown table (a string: ``print`` it).

    >>> print(describe(DepthMaskNet(width=8), (1, 3, 32, 32), depth=2))  # doctest: +ELLIPSIS
    | layer | type | output shape | parameters |
    ...
    | encoder.0 | EncoderBlock | (1, 8, 32, 32) + (1, 8, 16, 16) | 1,184 |
    ...
    """
    x = _random_image(input_size, model, device)
    rows: list[tuple[str, str, str, int]] = []

    def shape_of(out) -> str:
        if isinstance(out, torch.Tensor):
            return str(tuple(out.shape))
        if isinstance(out, dict):
            return ", ".join(f"{k}: {shape_of(v)}" for k, v in out.items())
        if isinstance(out, (tuple, list)):
            return " + ".join(shape_of(v) for v in out)
        return type(out).__name__

    def hooks_for(name: str):
        slot: list[int] = []

        def pre(module, inputs):  # reserve the row when the module is called: parents before children
            slot.append(len(rows))
            rows.append((name, type(module).__name__, "", count_parameters(module)))

        def post(module, inputs, output):
            i = slot.pop()
            rows[i] = rows[i][:2] + (shape_of(output),) + rows[i][3:]

        return pre, post

    handles = []
    for name, m in model.named_modules():
        if name and len(name.split(".")) <= depth:
            pre, post = hooks_for(name)
            handles += [m.register_forward_pre_hook(pre), m.register_forward_hook(post)]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(x)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    lines = ["| layer | type | output shape | parameters |", "|---|---|---|---:|"]
    lines += [f"| {n} | {t} | {s} | {p:,} |" for n, t, s, p in rows]
    lines.append(f"| **total** | {type(model).__name__} | input {tuple(x.shape)} | {count_parameters(model):,} |")
    return "\n".join(lines)
