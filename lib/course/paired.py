"""Paired comparisons over the same test images, the way every chapter reports them.

Two models scored on the same images give per-image values ``a`` and ``b``; their difference
``d = a - b`` has a mean and a standard error ``SE = std(d) / sqrt(n)`` (sample standard
deviation, ``n - 1`` in the denominator). The course's rule: a mean difference within twice
the standard error is reported as no difference (about a 95 % interval under a normal
approximation). Chapter 07 introduces it for its ablation; chapters 05, 08, 10, 11 and 12 use
it for their comparisons.

    >>> import torch
    >>> [round(x, 4) for x in paired_difference(torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.zeros(4))]
    [2.5, 0.6455]
    >>> verdict(2.5, 0.6455), verdict(1.0, 0.6455)
    ('higher', 'no different')
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["paired_difference", "verdict"]


def paired_difference(a, b=None) -> tuple[float, float]:
    """Mean and standard error of the per-image differences ``a - b`` (of ``a`` itself when
    ``b`` is None: pass a difference you formed), over the images where it is finite (an
    image without depth edges has no edge metric, NaN).

    Args:
        a, b: 1-D tensors or arrays of per-image values, the same images in the same order.
            The arithmetic stays in their dtype.

    Returns:
        ``(mean, se)`` as floats; ``se`` is NaN for a single image (one difference has no
        spread), which :func:`verdict` reads as no difference.
    """
    if b is not None and tuple(np.shape(a)) != tuple(np.shape(b)):
        raise ValueError(f"paired_difference: a and b must score the same images, got shapes "
                         f"{tuple(np.shape(a))} and {tuple(np.shape(b))}")
    d = a if b is None else a - b
    if isinstance(d, torch.Tensor):
        d = d[torch.isfinite(d)]
    else:
        d = np.asarray(d)
        d = d[np.isfinite(d)]
    if len(d) == 0:
        raise ValueError("paired_difference: no image has a finite difference")
    if len(d) == 1:
        return float(d[0]), math.nan
    spread = d.std() if isinstance(d, torch.Tensor) else d.std(ddof=1)  # both n - 1
    return float(d.mean()), float(spread / math.sqrt(len(d)))


def verdict(mean: float, se: float,
            words: Sequence[str] = ("lower", "no different", "higher")) -> str:
    """``words[0]`` when ``mean < -2 se``, ``words[2]`` when ``mean > 2 se``, else ``words[1]``:
    a difference within twice its standard error is no difference, and so is one without a
    standard error (NaN: a single image)."""
    if len(words) != 3:
        raise ValueError(f"verdict: words must be (lower, same, higher), got {words!r}")
    if se < 0:
        raise ValueError(f"verdict: the standard error must be >= 0, got {se}")
    if math.isnan(se):
        return words[1]
    return words[0] if mean < -2 * se else words[2] if mean > 2 * se else words[1]
