"""Worked solutions to the exercises, kept apart from the student's copy.

Each chapter ends with an "Exercises" section; its solutions live in ``solutions/NN_name.py``, a
Python file in the *percent* format that Jupyter, VS Code and jupytext read as a notebook::

    # %% [markdown]
    # ## Exercise 1
    # The question again, then the reasoning.

    # %%
    found = ...
    assert found == expected, found   # a solution asserts what it finds

The file is plain Python, so the test suite runs every solution (``tests/test_solutions.py``) and
a solution whose claim stops being true fails the tests. ``python -m lib.course pdf --solutions``
executes them as notebooks and writes ``reports/solutions/NN_name-solutions.pdf``.
"""
from __future__ import annotations

import re
from pathlib import Path

import nbformat

from lib.paths import REPO, reports_dir

CELL = re.compile(r"^# %%(.*)$")


def solutions_dir() -> Path:
    return REPO / "solutions"


def find(selection: list[str] | None = None) -> list[Path]:
    """Solution files by chapter number or name prefix (all when empty)."""
    files = sorted(solutions_dir().glob("[0-9][0-9]_*.py"))
    if not selection:
        return files
    return [f for f in files if any(f.stem.startswith(k.zfill(2) if k.isdigit() else k)
                                    for k in selection)]


def to_notebook(path: Path) -> nbformat.NotebookNode:
    """A percent-format file -> a notebook: ``# %% [markdown]`` cells lose their ``# ``."""
    cells: list[tuple[str, list[str]]] = []
    for line in Path(path).read_text().splitlines():
        m = CELL.match(line)
        if m:
            cells.append(("markdown" if "[markdown]" in m.group(1) else "code", []))
        elif cells:
            cells[-1][1].append(line)
        elif line.strip() and not line.startswith("#"):
            raise ValueError(f"{path.name}: code before the first '# %%' cell marker")
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for kind, lines in cells:
        text = "\n".join(lines).strip("\n")
        if kind == "markdown":
            text = "\n".join(re.sub(r"^# ?", "", ln) for ln in text.splitlines())
            nb.cells.append(nbformat.v4.new_markdown_cell(text))
        elif text.strip():
            nb.cells.append(nbformat.v4.new_code_cell(text))
    return nb


def exercise_numbers(path: Path) -> list[int]:
    """The k of every ``## Exercise k`` heading of a solution file, in order."""
    return [int(k) for k in re.findall(r"^# ## Exercise (\d+)", Path(path).read_text(), re.M)]


def render_solutions(selection: list[str] | None = None, log=print) -> list[Path]:
    """Execute each solution file as a notebook and render it to reports/solutions/*.pdf."""
    from nbclient import NotebookClient

    from lib.course import render

    kind = "pdf" if render.ensure_tex(log) else "html"
    out_dir = reports_dir() / "solutions"
    out_dir.mkdir(parents=True, exist_ok=True)
    done = []
    for path in find(selection):
        log(f"executing {path.relative_to(REPO)} ...", flush=True)
        nb = to_notebook(path)
        NotebookClient(nb, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(REPO)}}).execute()
        executed = out_dir / f"{path.stem}-solutions.ipynb"
        nbformat.write(nb, executed)
        out = render.render(executed, out_dir, kind)
        log(f"      -> {out}", flush=True)
        done.append(out)
    return done
