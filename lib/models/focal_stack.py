"""Depth from a focal stack: one shared encoder per slice, told where that slice was focused,
embeddings pooled over the slices, one decoder (notebook 10).

::

    stack (B,S,3,H,W), focus_disparity (B,S) 1/m, K (B,S) px*m
      -> per slice: normalise, encoder blocks of DepthMaskNet (shared weights), each followed by
         FiLM  x <- x * (1 + gamma_l(c)) + beta_l(c)  with the slice code
         c = (K d_f / r0, K / r0, [K == 0])            (r0 = ``code_scale`` px)
      -> pool every level over the S slices: [mean | max]            (permutation invariant)
      -> DepthMaskNet decoder blocks on the pooled features and skips
      -> log-depth head -> exp                                         (B,1,H,W) metres, > 0

Why this code. A slice focused at disparity ``d_f`` through an aperture of K px*m blurs a point of
disparity d over a disc of radius ``K |d - d_f| = |K d - K d_f|`` pixels (``lib.bokeh``). The encoder
can measure that radius from the local sharpness; to turn it into a disparity it needs exactly
``K d_f`` (where the sharp plane sits, in px) and ``K`` (px of blur per 1/m): the two numbers of
the code, in units of ``code_scale`` pixels. One slice leaves the sign of ``d - d_f`` open (the same
blur in front of and behind the focus plane); two or more slices at different ``d_f`` close it.

The all-in-focus image is a slice like the others with K = 0 (a pinhole: no blur, and
``K d_f = 0`` whatever ``d_f``): the third entry of the code flags it, so a model trained on stacks
that sometimes are just the sharp image (``notebook 10``) is also a single-image depth network.

Pooling with mean and max makes the output independent of the order of the slices and defined for
any number of them (S >= 1); GroupNorm normalises each slice on its own, so nothing leaks across
slices before the pooling.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from lib.models.depth_net import _MEAN, _STD, DecoderBlock, EncoderBlock

__all__ = ["FocalStackNet", "slice_code"]


def slice_code(focus_disparity: torch.Tensor, K: torch.Tensor, code_scale: float = 10.0) -> torch.Tensor:
    """The code of each slice, (B,S,3): ``(K d_f / code_scale, K / code_scale, [K == 0])``.

    ``K d_f`` is where the focus plane sits on the scale of blur radii (pixels), ``K`` how many
    pixels of blur one unit of disparity (1/m) makes; a pinhole slice (K = 0) has code (0, 0, 1)
    whatever its focus disparity.

    >>> slice_code(torch.tensor([[0.5, 0.25]]), torch.tensor([[20.0, 0.0]]))
    tensor([[[1., 2., 0.],
             [0., 0., 1.]]])
    """
    return torch.stack([K * focus_disparity / code_scale, K / code_scale, (K == 0).to(K.dtype)], dim=-1)


def _per_slice(value, B: int, S: int, like: torch.Tensor, name: str) -> torch.Tensor:
    """A float, an (S,), (B,) or (B,S) tensor as a (B,S) tensor on ``like``'s device (float32).
    A 1-D tensor of length S is per slice; of length B (when B != S) per image."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return torch.full((B, S), float(value), device=like.device)
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a float or a tensor, got {type(value).__name__}")
    v = value.to(device=like.device, dtype=torch.float32)
    if v.dim() == 0:
        return v.expand(B, S)
    if v.dim() == 1 and v.shape[0] == S:
        return v[None].expand(B, S)
    if v.dim() == 1 and v.shape[0] == B:
        return v[:, None].expand(B, S)
    if v.dim() == 2 and tuple(v.shape) == (B, S):
        return v
    raise ValueError(f"{name} must be a float, (S,), (B,) or (B,S) with B={B}, S={S}, got shape {tuple(v.shape)}")


class FocalStackNet(nn.Module):
    """Depth from S differently focused images of one scene (any S >= 1, any order).

    Args:
        width: channels of the first encoder block (``width * 2**i`` at level i, as
            :class:`~lib.models.DepthMaskNet`); the decoder sees ``2x`` that (mean and max pooled).
        depth_init: depth (metres) predicted everywhere at initialisation (bias of the log-depth head).
        code_scale: pixels of blur that count as 1 in the slice code (:func:`slice_code`).
        hidden: width of the MLP that maps the slice code to the FiLM parameters.

    Shapes:
        - ``stack``: ``(B,S,3,H,W)`` float sRGB in [0,1], H and W multiples of 16.
        - ``focus_disparity``: 1/S_f of each slice in 1/m: a float, ``(S,)``, ``(B,)`` or ``(B,S)``.
        - ``K``: blur radius in px per 1/m of disparity (``lib.bokeh.K_from_lens``), >= 0, same
          forms; 0 marks an all-in-focus (pinhole) slice.
        - output dict: ``depth`` ``(B,1,H,W)`` metres > 0; ``features`` ``(B,16*width,H/16,W/16)``
          the pooled bottleneck (the scene embedding).

    Example:
        >>> net = FocalStackNet(width=4)
        >>> out = net(torch.rand(2, 3, 3, 32, 32), torch.tensor([0.2, 0.35, 0.5]), K=30.0)
        >>> out["depth"].shape, out["features"].shape, bool((out["depth"] > 0).all())
        (torch.Size([2, 1, 32, 32]), torch.Size([2, 64, 2, 2]), True)
    """

    multiple = 16

    def __init__(self, width: int = 16, depth_init: float = 3.0, code_scale: float = 10.0, hidden: int = 32):
        super().__init__()
        if isinstance(width, bool) or int(width) != width or width < 1:
            raise ValueError(f"width must be a positive integer, got {width!r}")
        if not depth_init > 0:
            raise ValueError(f"depth_init is a depth in metres and must be > 0, got {depth_init!r}")
        if not code_scale > 0:
            raise ValueError(f"code_scale must be > 0 (pixels), got {code_scale!r}")
        width, hidden = int(width), int(hidden)
        self.config = {"width": width, "depth_init": float(depth_init), "code_scale": float(code_scale),
                       "hidden": hidden}
        chans = [width * 2**i for i in range(4)]
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)
        self.encoder = nn.ModuleList(EncoderBlock(c_in, c_out) for c_in, c_out in zip([3] + chans[:-1], chans))
        # FiLM: the code -> (gamma, beta) for the skip and the downsampled output of every level
        self.film = nn.Sequential(nn.Linear(3, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 4 * sum(chans)))
        with torch.no_grad():                     # start as the identity modulation
            self.film[-1].weight.mul_(0.1)
            self.film[-1].bias.zero_()
        dec_out = [chans[2], chans[1], chans[0], chans[0]]
        dec_in = [2 * chans[3]] + dec_out[:-1]
        self.decoder = nn.ModuleList(DecoderBlock(ci, 2 * cs, co) for ci, cs, co in zip(dec_in, chans[::-1], dec_out))
        self.depth_head = nn.Conv2d(width, 1, 3, padding=1)
        with torch.no_grad():
            self.depth_head.weight.mul_(0.1)
            self.depth_head.bias.fill_(math.log(depth_init))
        self._chans = chans

    @staticmethod
    def _pool(x: torch.Tensor, B: int) -> torch.Tensor:
        """(B*S,C,h,w) -> (B,2C,h,w): mean and max over the S slices."""
        x = x.view(B, -1, *x.shape[1:])
        return torch.cat([x.mean(1), x.amax(1)], 1)

    def forward(self, stack: torch.Tensor, focus_disparity, K) -> dict[str, torch.Tensor]:
        if not isinstance(stack, torch.Tensor) or stack.dim() != 5 or stack.shape[2] != 3:
            shape = tuple(stack.shape) if isinstance(stack, torch.Tensor) else type(stack).__name__
            raise ValueError(f"FocalStackNet expects a stack of shape (B,S,3,H,W), got {shape}"
                             + (" (one image? use image[:, None] for a stack of one slice)"
                                if isinstance(stack, torch.Tensor) and stack.dim() == 4 else ""))
        if not stack.is_floating_point():
            raise TypeError(f"FocalStackNet expects float images in [0,1], got dtype {stack.dtype}")
        B, S, _, H, W = stack.shape
        if S < 1 or B < 1:
            raise ValueError(f"the stack needs at least one image and one slice, got shape {tuple(stack.shape)}")
        if H % self.multiple or W % self.multiple or H == 0 or W == 0:
            raise ValueError(f"FocalStackNet needs H and W that are multiples of {self.multiple}, got {H}x{W}")
        fd = _per_slice(focus_disparity, B, S, stack, "focus_disparity")
        k = _per_slice(K, B, S, stack, "K")
        if not (torch.isfinite(fd).all() and torch.isfinite(k).all()):
            raise ValueError("focus_disparity and K must be finite")
        if (k < 0).any():
            raise ValueError("K must be >= 0 (pixels of blur per 1/m of disparity; 0 = all in focus)")

        code = slice_code(fd, k, self.config["code_scale"]).view(B * S, 3)
        film = self.film(code).to(stack.dtype)                                  # (B*S, 4 sum C)
        x = (stack.reshape(B * S, 3, H, W) - self.mean) / self.std
        skips, offset = [], 0
        for block, c in zip(self.encoder, self._chans):
            g_s, b_s, g_d, b_d = film[:, offset:offset + 4 * c].view(B * S, 4, c, 1, 1).unbind(1)
            offset += 4 * c
            skip, x = block(x)
            skips.append(self._pool(skip * (1 + g_s) + b_s, B))
            x = x * (1 + g_d) + b_d
        features = self._pool(x, B)
        x = features
        for block, skip in zip(self.decoder, reversed(skips)):
            x = block(x, skip)
        return {"depth": torch.exp(self.depth_head(x).float()), "features": features}
