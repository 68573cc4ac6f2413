"""The record of a training run: one row (a dict) per logged step, printable and plottable."""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

__all__ = ["History"]


class History:
    """Rows logged by :func:`lib.train.fit`.

    Every row is a dict with ``step`` (optimisation steps done so far) and ``split``:

    - ``split="train"``: ``epoch``, ``loss`` (mean training loss since the previous row),
      ``lr`` (the learning rate of the row's step), ``grad_norm`` (global gradient norm before clipping, mean since the previous
      row), ``samples_per_s`` (all processes together) and ``time_s`` (since the start);
    - ``split="val"``: the validation metrics prefixed ``val_`` (``val_abs_rel``,
      ``val_delta1``, ... after median-scale alignment, and ``val_abs_rel_raw`` without it).

    >>> h = History([{"step": 10, "split": "train", "loss": 0.5}, {"step": 10, "split": "val", "val_abs_rel": 0.2}])
    >>> h.column("loss")
    ([10], [0.5])
    >>> print(h.to_markdown("val"))
    | step | val_abs_rel |
    |---:|---:|
    | 10 | 0.2 |
    """

    def __init__(self, rows: Iterable[dict] | None = None):
        self.rows: list[dict] = [dict(r) for r in rows or []]

    def append(self, row: dict) -> None:
        self.rows.append(dict(row))

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def __getitem__(self, i):
        return self.rows[i]

    def __repr__(self) -> str:
        return f"History({len(self.train)} train rows, {len(self.val)} val rows)"

    def _repr_markdown_(self) -> str:  # Jupyter shows the validation table (or the training one)
        return self.to_markdown("val" if self.val else "train")

    @property
    def train(self) -> list[dict]:
        return [r for r in self.rows if r.get("split") == "train"]

    @property
    def val(self) -> list[dict]:
        return [r for r in self.rows if r.get("split") == "val"]

    def last(self, split: str = "val") -> dict | None:
        """The latest row of ``split`` (``None`` when there is none)."""
        rows = [r for r in self.rows if r.get("split") == split]
        return rows[-1] if rows else None

    def column(self, key: str, split: str | None = None) -> tuple[list[int], list[float]]:
        """``(steps, values)`` of the rows (of ``split``, if given) that have ``key``."""
        rows = [r for r in self.rows if key in r and (split is None or r.get("split") == split)]
        return [r["step"] for r in rows], [r[key] for r in rows]

    def to_markdown(self, split: str | None = None, columns: Sequence[str] | None = None, digits: int = 4) -> str:
        """A Markdown table of the rows of ``split`` (all rows when ``None``); floats to ``digits``
        significant digits; ``columns`` defaults to every key in order of first appearance."""
        rows = [r for r in self.rows if split is None or r.get("split") == split]
        if columns is None:
            columns = []
            for r in rows:
                columns += [k for k in r if k not in columns and not (split is not None and k == "split")]

        def fmt(v) -> str:
            if v is None:
                return ""
            if isinstance(v, float):
                return f"{v:.{digits}g}" if math.isfinite(v) else str(v)
            return str(v)

        lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---:" for _ in columns) + "|"]
        lines += ["| " + " | ".join(fmt(r.get(c)) for c in columns) + " |" for r in rows]
        return "\n".join(lines)

    def plot(self, metrics: Sequence[str] | None = None):
        """Learning curves: training loss against step (log scale) and, when there are
        validation rows, the validation ``metrics`` against step (default: AbsRel aligned and
        raw, delta1). Returns the matplotlib ``Figure``."""
        import matplotlib.pyplot as plt

        val = self.val
        if metrics is None:
            metrics = [m for m in ("val_abs_rel", "val_abs_rel_raw", "val_delta1") if any(m in r for r in val)]
            if not metrics:
                metrics = sorted({k for r in val for k in r if k.startswith("val_")})
        n_axes = 2 if val and metrics else 1
        fig, axes = plt.subplots(1, n_axes, figsize=(5.5 * n_axes, 3.6), squeeze=False)
        ax = axes[0, 0]
        steps, loss = self.column("loss", "train")
        ax.plot(steps, loss, label="train loss")
        if loss and all(v > 0 for v in loss):
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
        ax.set_title("training loss")
        ax.grid(True, alpha=0.3)
        if n_axes == 2:
            ax = axes[0, 1]
            for m in metrics:
                s, v = self.column(m, "val")
                ax.plot(s, v, marker="o", ms=3, label=m.removeprefix("val_"))
            ax.set_xlabel("step")
            ax.set_ylabel("validation metric")
            ax.set_title("validation")
            ax.grid(True, alpha=0.3)
            ax.legend()
        fig.tight_layout()
        return fig
