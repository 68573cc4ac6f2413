"""lib.plot: figures legible in print, panels in rows that fit the page."""
from __future__ import annotations

import doctest

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from lib import plot  # noqa: E402


def test_doctests():
    assert doctest.testmod(plot).failed == 0


def test_legible_enlarges_only_what_would_print_too_small():
    fig, axes = plt.subplots(1, 2, figsize=(12, 3))  # prints at 6.03 / 12 of its size
    axes[0].set_title("small", fontsize=6)
    axes[1].set_title("already large", fontsize=20)
    axes[0].plot([0, 1], label="a line")
    axes[0].legend(fontsize=5)
    fig.suptitle("a suptitle", fontsize=9)
    smallest = plot.legible(fig)
    fig.canvas.draw()  # tick labels are made at draw time: they must follow tick_params
    texts = [t for t in fig.findobj(matplotlib.text.Text) if t.get_text() and t.get_visible()]
    sizes = [plot.printed_pt(fig, t.get_fontsize()) for t in texts]
    assert smallest >= 7.0 - 1e-9 and min(sizes) >= 7.0 - 1e-9
    assert axes[1].title.get_fontsize() == 20  # larger text is left alone
    tick = axes[0].xaxis.get_major_ticks()[0].label1
    assert plot.printed_pt(fig, tick.get_fontsize()) >= 7.0 - 1e-9
    plt.close(fig)


def test_narrow_figures_are_not_shrunk_and_keep_their_sizes():
    fig, ax = plt.subplots(figsize=(5, 3))  # narrower than the page: printed at full size
    ax.set_title("t", fontsize=8)
    assert plot.printed_pt(fig, 8) == 8 and plot.legible(fig) >= 7.0
    assert ax.title.get_fontsize() == 8
    plt.close(fig)


def test_panels_wrap_into_rows_of_at_most_four():
    fig = plot.panels([torch.rand(1, 8, 8) for _ in range(7)], [str(i) for i in range(7)])
    rows = {round(ax.get_position().y0, 3) for ax in fig.get_axes() if ax.get_label() != "<colorbar>"}
    assert len(fig.get_axes()) >= 7 and len(rows) >= 2
    plt.close(fig)


def test_ordinal_pairs_draws_each_pair_from_a_to_b_in_its_label_colour():
    W, H = 10, 6
    idx_a = torch.tensor([0, 12, 59, 33])   # (row, col): (0,0) (1,2) (5,9) (3,3)
    idx_b = torch.tensor([11, 2, 48, 34])   # (1,1) (0,2) (4,8) (3,4)
    labels = torch.tensor([1, -1, 1, 0])
    fig, ax = plt.subplots()
    plot.ordinal_pairs(ax, idx_a, idx_b, labels, W, H)
    segs = {tuple(map(tuple, s)) for c in ax.collections for s in c.get_segments()}
    assert segs == {((0, 0), (1, 1)), ((2, 1), (2, 0)), ((9, 5), (8, 4)), ((3, 3), (4, 3))}
    names = [line.get_label() for line in ax.lines]
    assert names == ["a farther (+1): 2", "a nearer (-1): 1", "equal (0): 1"]
    assert ax.get_xlim() == (-0.5, W - 0.5) and ax.get_ylim() == (H - 0.5, -0.5)
    colours = [matplotlib.colors.to_hex(c.get_colors()[0]) for c in ax.collections]
    assert colours == [matplotlib.colors.to_hex(plot.ORDINAL_COLOURS[k]) for k in (1, -1, 0)]
    plt.close(fig)
