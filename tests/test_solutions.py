"""The exercises of every chapter and their worked solutions: each solution runs and asserts."""
from __future__ import annotations

import json
import re
import runpy

import pytest

from lib.course import render, solutions
from lib.paths import REPO

NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SOLUTIONS = solutions.find()


def exercises_of(path) -> list[int]:
    cells = json.loads(path.read_text())["cells"]
    found = [("".join(c["source"])) for c in cells if c["cell_type"] == "markdown"
             and "".join(c["source"]).startswith("## Exercises")]
    assert len(found) == 1, f"{path.name}: needs one '## Exercises' cell, has {len(found)}"
    return [int(k) for k in re.findall(r"^(\d+)\. ", found[0], re.M)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_chapter_ends_with_exercises_that_have_solutions(path):
    numbers = exercises_of(path)
    assert 3 <= len(numbers) <= 6 and numbers == list(range(1, len(numbers) + 1)), numbers
    cells = json.loads(path.read_text())["cells"]
    last_heading = [c for c in cells if c["cell_type"] == "markdown"][-1]
    assert "".join(last_heading["source"]).startswith("## Exercises"), "Exercises come last"
    sol = REPO / "solutions" / f"{path.stem}.py"
    assert sol.exists(), f"no worked solutions in {sol.relative_to(REPO)}"
    assert solutions.exercise_numbers(sol) == numbers, "one '## Exercise k' per exercise, in order"


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_solution_runs_and_its_assertions_hold(path, capsys):
    runpy.run_path(str(path), run_name="__main__")  # an AssertionError here is a wrong answer


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_solution_code_fits_the_page(path):
    long = [ln for ln in path.read_text().splitlines() if len(ln) > 88 and not ln.startswith("#")]
    assert not long, f"{path.name}: {long[0][:60]!r}..."


def test_percent_format_becomes_a_notebook(tmp_path):
    src = tmp_path / "00_x.py"
    src.write_text("# %% [markdown]\n# # Title\n#\n# Some *prose*.\n\n# %%\nx = 1\n"
                   "assert x == 1\n\n# %% [markdown]\n# ## Exercise 1\n")
    nb = solutions.to_notebook(src)
    assert [c.cell_type for c in nb.cells] == ["markdown", "code", "markdown"]
    assert nb.cells[0].source == "# Title\n\nSome *prose*."
    assert nb.cells[1].source == "x = 1\nassert x == 1" and solutions.exercise_numbers(src) == [1]
    (tmp_path / "bad.py").write_text("x = 1\n# %%\n")
    with pytest.raises(ValueError, match="before the first"):
        solutions.to_notebook(tmp_path / "bad.py")


@pytest.mark.slow
@pytest.mark.skipif(not render.have_tex(), reason="xelatex/pandoc not installed (CI installs them; see README)")
def test_pdf_solutions_renders_executed_solutions(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_REPORTS_DIR", str(tmp_path))
    (out,) = solutions.render_solutions(["02"], log=lambda *a, **k: None)
    text = render.pdf_text(out)
    assert "Exercise 1" in text and "AbsRel 0.3333, delta1 0.6667" in text  # executed outputs
