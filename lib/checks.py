"""The input checks the modules share: sizes, per-image arguments, depth-map triples.

Every public function of ``lib`` refuses bad input before it computes anything, with a message
that names the argument, what was expected and what was given. The checks that more than one
module needs live here, once:

- :func:`size_pair`: an image or tile size ``(H, W)`` (or one int for a square);
- :func:`per_image`: a number or a ``(B,)`` tensor that applies per image of a batch (the focus
  disparity and K of the renderers);
- :func:`depth_maps`: a prediction, a target and a validity mask, three ``(B,1,H,W)`` maps.

>>> size_pair(32, "size", square_ok=True), size_pair((32, 48), "tile")
((32, 32), (32, 48))
>>> per_image(torch.tensor([1.0, 2.0]), torch.zeros(2, 1, 4, 4), "K").shape
torch.Size([2, 1, 1, 1])
"""
from __future__ import annotations

from numbers import Integral
from typing import Any

import torch

__all__ = ["size_pair", "per_image", "depth_maps"]


def _is_int(x: Any) -> bool:
    return isinstance(x, Integral) and not isinstance(x, bool)  # numpy ints count, bools do not


def size_pair(size: Any, what: str = "size", *, square_ok: bool = False) -> tuple[int, int]:
    """``(H, W)`` as two Python ints, from a pair of positive integers (or, with ``square_ok``,
    one integer for a square).

    Raises ``TypeError`` when ``size`` is not integers (``(10, 2.5)``, ``"64"``, ``True``) and
    ``ValueError`` when there are not two of them or one is not positive, naming ``what``.
    """
    expected = f"{'an int or ' if square_ok else ''}a pair (H, W) of positive integers"
    if _is_int(size) and square_ok:
        pair = (int(size), int(size))
    elif isinstance(size, (tuple, list, torch.Size)) and all(map(_is_int, size)):
        if len(size) != 2:
            raise ValueError(f"{what} must be {expected}, got {len(size)} values: {size!r}")
        pair = (int(size[0]), int(size[1]))
    else:
        raise TypeError(f"{what} must be {expected}, got {size!r}")
    if min(pair) <= 0:
        raise ValueError(f"{what} must be {expected}, got {size!r}")
    return pair


def per_image(value: Any, like: torch.Tensor, name: str) -> torch.Tensor:
    """A number, a 0-d tensor or a ``(B,)`` tensor (one value per image of ``like``, ``(B, ...)``)
    as a finite tensor on ``like``'s device and dtype that broadcasts against it: 0-d for one
    value, ``(B, 1, ..., 1)`` for one per image.

    Raises ``TypeError`` for anything else (a bool, a string, a list) and ``ValueError`` for a
    tensor of the wrong length or a value that is not finite.
    """
    if isinstance(value, torch.Tensor):
        v = value.to(device=like.device, dtype=like.dtype)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        v = torch.tensor(float(value), device=like.device, dtype=like.dtype)
    else:
        raise TypeError(f"{name} must be a float or a (B,) tensor, got {type(value).__name__}")
    if v.dim() > 0:
        B = like.shape[0] if like.dim() >= 1 else None
        if v.dim() != 1 or v.shape[0] != B:
            raise ValueError(f"{name} must be a float or a (B,) tensor with B = {B}, got shape "
                             f"{tuple(v.shape)}")
        v = v.view(-1, *([1] * (like.dim() - 1)))
    if not torch.isfinite(v).all():
        raise ValueError(f"{name} must be finite, got {value!r}")
    return v


def depth_maps(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, *,
               target_positive: bool = False, pred_finite: bool = False) -> None:
    """Refuse anything but three matching ``(B,1,H,W)`` maps on one device: floating-point
    ``pred`` and ``target``, bool ``valid``. The metrics also ask for a target that is finite and
    > 0 at every valid pixel (``target_positive``: a depth in metres) and a finite prediction
    there (``pred_finite``); the losses do not (a NaN in training is the training loop's to
    report, with the step and the batch)."""
    for name, x in (("pred", pred), ("target", target), ("valid", valid)):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    for name, x in (("pred", pred), ("target", target)):
        if not x.is_floating_point():
            raise TypeError(f"{name} must be a floating-point torch.Tensor, got {x.dtype}")
    if pred.dim() != 4 or pred.shape[1] != 1:
        raise ValueError(f"pred must have shape (B,1,H,W), got {tuple(pred.shape)}")
    if target.shape != pred.shape:
        raise ValueError(f"target shape {tuple(target.shape)} does not match pred shape "
                         f"{tuple(pred.shape)} (pred and target must have the same shape)")
    if valid.dtype != torch.bool:
        raise TypeError(f"valid must be a bool torch.Tensor, got {valid.dtype}")
    if valid.shape != pred.shape:
        raise ValueError(f"valid shape {tuple(valid.shape)} does not match pred shape "
                         f"{tuple(pred.shape)}")
    if not (pred.device == target.device == valid.device):
        raise ValueError(f"pred, target and valid are on different devices: {pred.device}, "
                         f"{target.device}, {valid.device}")
    if target_positive:
        g = target[valid]
        if not (torch.isfinite(g).all() and (g > 0).all()):
            raise ValueError("target must be finite and > 0 at every valid pixel (depth in metres)")
    if pred_finite and not torch.isfinite(pred[valid]).all():
        raise ValueError("pred has NaN or infinite values at valid pixels")
