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
import matplotlib.figure
import matplotlib.patches
import matplotlib.pyplot as plt
import matplotlib.text
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
    if shell is not None:
        # every figure passes legible() on its way to the notebook (and so to the PDF)
        png = shell.display_formatter.formatters["image/png"]
        original = png.lookup_by_type(matplotlib.figure.Figure)
        if not getattr(original, "_legible", False):
            def printed(fig, _original=original):
                legible(fig)
                return _original(fig)

            printed._legible = True
            png.for_type(matplotlib.figure.Figure, printed)


# The reports scale a figure to at most 0.9 of the text width (nbconvert's LaTeX template:
# 0.9 x 6.7 in with the course's margins), so a figure W inches wide prints at 6.03 / W of its
# size. Text smaller than 7 pt in print is hard to read.
PRINT_WIDTH_IN = 0.9 * 6.7
MIN_PRINT_PT = 7.0


def printed_pt(fig, size_pt: float, width_in: float = PRINT_WIDTH_IN) -> float:
    """The size in print of ``size_pt`` points of text in ``fig`` (shrunk to the page width)."""
    return size_pt * min(1.0, width_in / fig.get_figwidth())


def legible(fig, min_pt: float = MIN_PRINT_PT, width_in: float = PRINT_WIDTH_IN) -> float:
    """Enlarge every text of ``fig`` (titles, labels, ticks, legends, annotations) that would
    print under ``min_pt`` once the figure is shrunk to the page; returns the smallest printed
    size after the change. The layout engine (constrained layout, the course's default) makes
    room for the larger text when the figure is drawn.

    >>> fig, ax = plt.subplots(figsize=(12, 3)); _ = ax.set_title("wide", fontsize=8)
    >>> round(legible(fig), 2), round(ax.title.get_fontsize(), 2)   # 12 in prints at half size
    (7.0, 13.93)
    >>> plt.close(fig)
    """
    floor = min_pt * max(1.0, fig.get_figwidth() / width_in)
    for ax in fig.get_axes():
        for axis in (ax.xaxis, ax.yaxis):
            for which in ("major", "minor"):
                ticks = axis.get_major_ticks() if which == "major" else axis.get_minor_ticks()
                if ticks and ticks[0].label1.get_fontsize() < floor:
                    ax.tick_params(axis=axis.axis_name, which=which, labelsize=floor)
    smallest = math.inf
    for text in fig.findobj(matplotlib.text.Text):
        if not text.get_text() or not text.get_visible():
            continue
        if text.get_fontsize() < floor:
            text.set_fontsize(floor)
        smallest = min(smallest, printed_pt(fig, text.get_fontsize(), width_in))
    return float(smallest) if smallest < math.inf else float(min_pt)


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


def _diagram(size: tuple[float, float], xlim: tuple[float, float], ylim: tuple[float, float]):
    """An empty canvas for a block diagram, in data units, without axes."""
    fig, ax = plt.subplots(figsize=size)
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.axis("off")
    return fig, ax


def _rounded_box(ax, x0: float, y0: float, w: float, h: float, colour, pad: float) -> None:
    from matplotlib.patches import FancyBboxPatch

    ax.add_patch(FancyBboxPatch((x0, y0), w, h, boxstyle=f"round,pad={pad}", fc=colour, ec="0.3",
                                lw=0.8))


def fusion_diagram(image_size: tuple[int, int], process_size: tuple[int, int]):
    """The block diagram of chapter 08's patch fusion: which parts are frozen, which learnt,
    and how a tile's depth is made. Drawn at print size (9 in wide, text at 10.5 pt)."""
    from matplotlib.patches import FancyArrowPatch

    (H, W), (h, w) = image_size, process_size
    fig, ax = _diagram((9, 3.4), (-0.15, 11.0), (-0.5, 4.1))
    style = dict(fontsize=10.5)

    def box(x, y, text, colour, bw=1.6, bh=0.72):
        _rounded_box(ax, x, y, bw, bh, colour, pad=0.04)
        ax.text(x + bw / 2, y + bh / 2, text, ha="center", va="center", **style)
        return x, y, bw, bh

    def link(start, end, rad=0.0):
        ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=10, lw=0.8,
                                     color="0.25", connectionstyle=f"arc3,rad={rad}"))

    def arrow(a, b, text=""):
        (xa, ya, wa, ha), (xb, yb, _, hb) = a, b
        start, end = (xa + wa, ya + ha / 2), (xb, yb + hb / 2)
        link(start, end)
        if text:
            ax.text((start[0] + end[0]) / 2, (start[1] + end[1]) / 2 + 0.1, text,
                    ha="center", color="0.3", **style)

    frozen, learnt, datum = "#dfe8f5", "#f7d9b8", "#eeeeee"
    img = box(0.0, 1.75, f"image\n{H}x{W}", datum, bw=1.4)
    small = box(1.85, 3.15, f"resize to\n{h}x{w}", datum)
    coarse = box(3.85, 3.15, "coarse net\n(frozen)", frozen)
    feats = box(5.85, 3.15, "features +\ncoarse depth", datum)
    attn = box(5.85, 2.1, "transformer\nblock", learnt)
    tile = box(1.85, 0.55, "tile crop b\nP16/P49/Rn", datum)
    fine = box(3.85, 0.55, "fine net\n(frozen)", frozen)
    roi = box(7.85, 2.55, "crop to b\n(RoIAlign)", datum, bw=1.5)
    unet = box(7.85, 0.55, "fusion U-Net\ngate g, res. r", learnt, bw=1.5, bh=0.85)
    blend = box(9.6, 0.55, "blend\ntiles", datum, bw=1.3, bh=0.85)
    for a, b in ((img, small), (small, coarse), (coarse, feats), (img, tile), (tile, fine),
                 (feats, roi), (attn, roi), (unet, blend)):
        arrow(a, b)
    arrow(fine, unet, "fine f")
    link((6.65, 3.15), (6.65, 2.85))
    link((8.6, 2.55), (8.6, 1.43))
    ax.text(8.7, 1.95, "context, c", color="0.3", **style)
    link((2.65, 0.55), (8.1, 0.55), rad=0.22)
    ax.text(5.3, -0.38, "RGB crop", color="0.3", **style)
    ax.text(0.0, 4.05, "blue: frozen, orange: learnt. Log depth of a tile: c + g (f' - c) + r",
            **style)
    return fig


def teacher_student_diagram(n_labelled: int):
    """Chapter 07's recipe (Depth Anything's, at course scale) as a block diagram; the dashed
    arrows are the feature alignment of the chapter's ablation. Drawn at print size."""
    fig, ax = _diagram((9, 5.4), (0, 13), (-0.2, 8.2))
    style = dict(fontsize=10.5)

    def box(x, y, text, colour, w=2.8, h=1.15):
        _rounded_box(ax, x - w / 2, y - h / 2, w, h, colour, pad=0.05)
        ax.text(x, y, text, ha="center", va="center", **style)

    def arrow(a, b, text="", at=None, colour="0.25", ls="-", rad=0.0, ha="center"):
        ax.annotate("", xy=b, xytext=a, arrowprops=dict(
            arrowstyle="-|>", color=colour, lw=1.0, ls=ls, connectionstyle=f"arc3,rad={rad}"))
        if text:
            x, y = at or ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2)
            ax.text(x, y, text, ha=ha, va="center", color=colour, fontsize=10)

    blue, orange, green, violet, grey = "#cfe3f6", "#f8e1c4", "#d9efd5", "#ead7f1", "0.92"
    box(1.6, 5.6, f"labelled scenes\nteacher: 12,000\nstudents: {n_labelled}", blue, h=1.5)
    box(5.2, 5.6, "teacher\nSSI + gradient", green)
    box(1.6, 3.2, "unlabelled images\n(depth withheld,\nreal photographs)", orange, h=1.5)
    box(5.2, 3.2, "pseudo-labels\n(teacher's\ndisparity)", orange, h=1.5)
    box(5.2, 0.7, "strong perturbation\n+ CutMix", orange)
    box(8.6, 3.2, "student", green, w=2.0)
    box(8.6, 5.9, "loss: labelled SSI;\nper CutMix region,\ntop 10 % ignored", grey, w=3.0,
        h=1.5)
    box(11.6, 4.5, "frozen image\nencoder", violet, w=2.4)
    box(11.6, 1.9, "frozen depth\nencoder", violet, w=2.4)
    arrow((3.0, 5.6), (3.8, 5.6), "train", at=(3.4, 6.0))
    arrow((5.2, 5.0), (5.2, 3.95), "labels once", at=(5.1, 4.5), ha="right")
    arrow((3.0, 3.2), (3.8, 3.2))
    arrow((1.6, 2.45), (3.8, 0.8), "images", at=(2.1, 1.4), ha="right")
    arrow((6.6, 0.8), (7.9, 2.75), "perturbed mix", at=(7.35, 1.45), ha="left")
    arrow((6.6, 3.6), (7.1, 5.2), "targets", at=(6.95, 4.3), ha="left")
    arrow((1.6, 6.35), (7.2, 6.5), rad=-0.3)
    ax.text(4.4, 7.45, "labelled batch: images to the student, depth to the loss", ha="center",
            color="0.25", fontsize=10)
    arrow((8.6, 3.65), (8.6, 5.15), "prediction", at=(8.7, 4.4), ha="left")
    arrow((10.4, 4.3), (9.6, 3.45), "align (b)", at=(10.55, 3.65), colour="#7b3294", ls="--",
          ha="left")
    arrow((10.4, 2.1), (9.6, 2.95), "align (c)", at=(10.55, 2.75), colour="#7b3294", ls="--",
          ha="left")
    ax.text(0.2, 8.0, "Depth Anything's recipe as chapter 07 runs it (dashed: the feature "
            "alignment of the ablation)", **style)
    return fig


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]], text_columns: int = 1):
    """A Markdown table from a header and rows of formatted cells (chapters 03, 05 and 08 print
    their results with it); the rule's dashes follow the cell widths, so that the PDF gives each
    column the room it needs. The first ``text_columns`` columns are left-aligned (names), the
    others right-aligned (numbers).

    >>> md_table(["run", "WHDR"], [["a", "0.12"]]).data.splitlines()[1]
    '|----|------:|'
    >>> md_table(["run", "mode", "WHDR"], [["a", "P16", "0.12"]], 2).data.splitlines()[1]
    '|----|------|------:|'
    """
    from IPython.display import Markdown

    if not 0 <= text_columns <= len(header):
        raise ValueError(f"md_table: text_columns must be in 0..{len(header)}, got {text_columns}")
    widths = [max(len(str(c)) for c in col) + 2 for col in zip(*(list(rows) or [header]))]
    rule = "|" + "|".join("-" * w + ("-" if j < text_columns else ":")
                          for j, w in enumerate(widths)) + "|"
    body = ["| " + " | ".join(r) + " |" for r in [header, *rows]]
    return Markdown("\n".join(body[:1] + [rule] + body[1:]))


def thin_lens_diagram(f: float = 1.0, S_f: float = 3.0, near: float = 2.0, far: float = 6.0,
                      A: float = 0.5):
    """Chapter 09's thin lens: rays from a point in focus, a near and a far point through a
    lens at x = 0 to the sensor at v_f = 1 / (1/f - 1/S_f); a point off the focus plane meets
    the sensor as a disc (the thick bars). Lengths in units of the focal length f."""
    v = lambda S: 1.0 / (1.0 / f - 1.0 / S)  # noqa: E731  (the lens equation)
    vf = v(S_f)
    fig, ax = plt.subplots(figsize=(9.5, 4.2))
    ax.axhline(0, color="0.6", lw=0.8)
    ax.add_patch(matplotlib.patches.Ellipse((0, 0), 0.12, 2.3 * A, color="tab:blue",
                                            alpha=0.25))
    ax.plot([vf, vf], [-1.3 * A, 1.3 * A], color="k", lw=3)
    ax.text(vf + 0.05, 1.2 * A, "sensor", fontsize=9)
    points = ((S_f, "tab:green", "in focus", 0.0), (near, "tab:red", "near", 0.4),
              (far, "tab:purple", "far", -0.5))  # off-axis heights separate the cones
    for S, colour, name, y0 in points:
        img_v = v(S)
        img_y = -y0 * img_v / S  # magnification -v/S
        ax.plot(-S, y0, "o", color=colour)
        ax.text(-S, y0 + 0.12, f"{name}\nS = {S:g}", ha="center", fontsize=8, color=colour)
        for edge in (-A, A):
            ax.plot([-S, 0], [y0, edge], color=colour, lw=1)
            # beyond the lens: towards the image point, continued to the sensor if the
            # image point lies before it
            end = max(img_v, vf)
            ax.plot([0, end], [edge, edge + end / img_v * (img_y - edge)], color=colour,
                    lw=1, ls="-" if end == img_v else "--")
        if S != S_f:
            hit = [edge + (vf / img_v) * (img_y - edge) for edge in (-A, A)]
            ax.plot([vf, vf], hit, color=colour, lw=5, alpha=0.6)
    ax.annotate("", xy=(0, -A), xytext=(0, A),
                arrowprops=dict(arrowstyle="<->", color="tab:blue"))
    ax.text(0.05, -A - 0.1, "aperture D", color="tab:blue", fontsize=9)
    ax.set_xlabel("distance along the optical axis (units of f)")
    ax.set_ylabel("height")
    ax.set_title("thin lens: a point off the focus plane meets the sensor as a disc "
                 "(thick bars)")
    ax.set_xlim(-far - 0.5, vf + 0.9)
    return fig


ORDINAL_COLOURS = {1: "tab:red", -1: "tab:blue", 0: "gold"}
"""Colour of each ordinal label (+1: a is farther, -1: a is nearer, 0: equal)."""
ORDINAL_NAMES = {1: "a farther (+1)", -1: "a nearer (-1)", 0: "equal (0)"}


def ordinal_pairs(ax, idx_a, idx_b, labels, W: int, H: int | None = None, *, lw: float = 1.2,
                  ms: float = 2.5) -> None:
    """Point pairs on an image, as chapters 03 (random pairs) and 05 (edge- and
    instance-guided pairs) show them: a line from a (dot) to b for each pair, coloured by its
    ordinal label, with a legend label that counts each kind. ``idx_a``, ``idx_b`` are flat
    indices ``row * W + col`` into an ``H x W`` image (``H = W`` by default); ``labels`` the
    pairs' labels in {+1, -1, 0}. The axes are set to the image, without ticks."""
    from matplotlib.collections import LineCollection

    H = W if H is None else H
    idx_a, idx_b, labels = (np.asarray(t.cpu() if isinstance(t, torch.Tensor) else t).reshape(-1)
                            for t in (idx_a, idx_b, labels))
    ya, xa, yb, xb = idx_a // W, idx_a % W, idx_b // W, idx_b % W
    for lab, colour in ORDINAL_COLOURS.items():
        sel = labels == lab
        ends_a = np.stack([xa[sel], ya[sel]], -1)
        ends_b = np.stack([xb[sel], yb[sel]], -1)
        segs = np.stack([ends_a, ends_b], 1)  # (n, 2 ends, xy)
        ax.add_collection(LineCollection(segs, colors=colour, linewidths=lw, alpha=0.8))
        ax.plot(xa[sel], ya[sel], "o", ms=ms, color=colour,
                label=f"{ORDINAL_NAMES[lab]}: {int(sel.sum())}")
    ax.set_xlim(-0.5, W - 0.5)
    ax.set_ylim(H - 0.5, -0.5)
    ax.set_xticks([])
    ax.set_yticks([])
