"""Figures the chapters share: depth maps with a colour bar, rows of panels, sharp PNGs for the PDFs.

>>> import torch
>>> from lib import plot
>>> plot.setup()
>>> fig = plot.panels([torch.rand(3, 32, 32), torch.rand(1, 32, 32) + 1], ["image", "depth (m)"])
"""
from __future__ import annotations

from typing import Sequence

import math

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch


def setup(dpi: int = 110) -> None:
    """Sharp PNG figures (PDF reports embed them) with readable labels."""
    matplotlib.rcParams.update({
        "figure.dpi": dpi, "savefig.dpi": 2 * dpi, "figure.figsize": (8, 3.2), "font.size": 9,
        "axes.titlesize": 9, "image.interpolation": "nearest", "figure.constrained_layout.use": True,
    })
    try:
        from IPython import get_ipython
        from matplotlib_inline.backend_inline import set_matplotlib_formats
    except ImportError:  # not in a notebook
        return
    shell = get_ipython()
    if shell is not None and type(shell).__name__ == "ZMQInteractiveShell":
        # Figures must land in the notebook (and so in the PDF) even when the environment
        # names a non-interactive backend (MPLBACKEND=Agg makes plt.show() draw nothing).
        shell.run_line_magic("matplotlib", "inline")
    set_matplotlib_formats("png")


def to_numpy(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """(3,H,W) or (1,H,W) or (H,W) tensor/array -> (H,W,3) or (H,W) numpy for imshow."""
    if isinstance(x, torch.Tensor):
        x = x.detach().float().cpu().numpy()
    x = np.asarray(x)
    if x.ndim == 4:
        x = x[0]
    if x.ndim == 3 and x.shape[0] in (1, 3):
        x = x[0] if x.shape[0] == 1 else x.transpose(1, 2, 0)
    return x


def panels(items: Sequence, titles: Sequence[str], *, cmap: str = "magma_r", valid=None,
           vmin=None, vmax=None, colorbar: bool = True, size: float = 2.6, suptitle: str | None = None,
           max_cols: int = 4):
    """Panels in rows of at most ``max_cols`` (legible in print): 3-channel items are shown as
    images, 1-channel ones as maps with a colour bar.

    ``valid`` (a mask, or a list of masks) greys out invalid pixels of the maps. ``vmin``/``vmax``
    fix a shared colour scale so depth maps are comparable across panels. Five to eight panels
    make two balanced rows (3 + 2, 3 + 3, 4 + 3, 4 + 4).
    """
    n = len(items)
    rows = max(1, math.ceil(n / max_cols))
    cols = max(1, math.ceil(n / rows))
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * 0.85 * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    for k, (ax, item, title) in enumerate(zip(axes.flat, items, titles)):
        arr = to_numpy(item)
        if arr.ndim == 3:
            ax.imshow(np.clip(arr, 0, 1))
        else:
            mask = valid[k] if isinstance(valid, (list, tuple)) else valid
            if mask is not None:
                arr = np.ma.masked_where(~to_numpy(mask).astype(bool), arr)
            cm = matplotlib.colormaps[cmap].copy()
            cm.set_bad("0.8")
            im = ax.imshow(arr, cmap=cm, vmin=vmin, vmax=vmax)
            if colorbar:
                fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
        ax.set_title(title)
        ax.axis("off")
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def curves(history_rows: Sequence[dict], x: str, ys: Sequence[str], *, title: str = "", logy: bool = False):
    """Line plot of columns ``ys`` against ``x`` from a list of dicts (training histories)."""
    fig, ax = plt.subplots(figsize=(5, 3))
    for y in ys:
        pts = [(r[x], r[y]) for r in history_rows if r.get(y) is not None]
        if pts:
            ax.plot(*zip(*pts), marker=".", label=y)
    ax.set_xlabel(x)
    ax.set_title(title)
    if logy:
        ax.set_yscale("log")
    ax.legend()
    ax.grid(alpha=0.3)
    return fig
