"""The course runner: parameters checked before execution, failures reported and kept, numbers recorded."""
from __future__ import annotations

import json

import nbformat
import numpy as np
import pytest

from lib.course import __main__ as cli
from lib.course import catalog, execute, render, results


def write_nb(folder, name, cells):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for kind, src, *tags in cells:
        cell = nbformat.v4.new_markdown_cell(src) if kind == "md" else nbformat.v4.new_code_cell(src)
        if tags:
            cell.metadata["tags"] = tags
        nb.cells.append(cell)
    path = folder / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.fixture
def course_dirs(tmp_path, monkeypatch):
    nbs, reports = tmp_path / "notebooks", tmp_path / "reports"
    nbs.mkdir()
    monkeypatch.setenv("COURSE_NOTEBOOKS_DIR", str(nbs))
    monkeypatch.setenv("COURSE_REPORTS_DIR", str(reports))
    write_nb(nbs, "00_first", [
        ("md", "# The first $\\sigma$ chapter\n\nText."),
        ("code", "seed = 0\nprofile = 'quick'\nsteps = 10  # training steps\nlr = 0.5\nname = 'a'", "parameters"),
        ("code", "from lib import course\ncourse.record(steps=steps, lr=lr, twice=2 * steps)"),
        ("code", "course.check('steps is positive', steps > 0, steps=steps)\n"
                 "course.check('steps exceed 100', steps > 100, steps=steps, bound=100)"),
    ])
    write_nb(nbs, "01_broken", [
        ("md", "# Broken chapter"),
        ("code", "seed = 0\nprofile = 'quick'", "parameters"),
        ("code", "x = 1"),
        ("code", "raise RuntimeError('on purpose')"),
        ("code", "y = 2"),
    ])
    write_nb(nbs, "02_second", [
        ("md", "# Second"),
        ("code", "seed = 0\nprofile = 'quick'\nk = 3", "parameters"),
        ("code", "import os\nfrom lib import course\ncourse.record(k2=k * k, omp=os.environ.get('OMP_NUM_THREADS', 'unset'))"),
    ])
    (nbs / "profiles.yaml").write_text("00_first:\n  full: {steps: 1000}\n  smoke: {steps: 1, lr: 2}\n")
    return nbs, reports


def test_catalog_reads_titles_defaults_and_profiles(course_dirs):
    nb = catalog.find(["00"])[0]
    assert nb.title == "The first \\sigma chapter"
    assert nb.defaults() == {"seed": 0, "profile": "quick", "steps": 10, "lr": 0.5, "name": "a"}
    final, changed = catalog.resolve(nb, "full")
    assert final["steps"] == 1000 and final["profile"] == "full" and changed == {"profile": "full", "steps": 1000}
    final, _ = catalog.resolve(nb, "smoke", {"steps": 7})  # -p beats the profile
    assert final["steps"] == 7 and final["lr"] == 2.0 and isinstance(final["lr"], float)  # int -> float is fine
    assert [n.stem for n in catalog.find(None)] == ["00_first", "01_broken", "02_second"]


def test_unknown_parameter_is_refused_with_the_valid_names(course_dirs, capsys):
    with pytest.raises(ValueError, match="no_such_name.*valid names: seed, profile, steps, lr, name"):
        catalog.resolve(catalog.find(["00"])[0], "quick", {"no_such_name": 1})
    assert cli.main(["run", "00", "-p", "no_such_name", "1"]) == 2
    assert "valid names" in capsys.readouterr().err
    assert not (course_dirs[1] / "00_first.ipynb").exists()  # refused before execution


@pytest.mark.parametrize("name,value,expected", [("steps", "abc", "expects int"), ("lr", "'x'", "expects float"),
                                                 ("steps", "1.5", "expects int"), ("steps", "True", "expects int")])
def test_wrong_type_is_refused(course_dirs, name, value, expected):
    with pytest.raises(ValueError, match=expected):
        catalog.resolve(catalog.find(["00"])[0], "quick", {name: catalog.parse_value(value)})


@pytest.mark.parametrize("name,value,expected", [
    ("steps", -5, "integer >= 1"), ("steps", 0, "integer >= 1"), ("lr", 0.0, "must be > 0"),
    ("seed", -1, ">= 0")])
def test_values_outside_their_range_are_refused_before_execution(course_dirs, capsys, name, value,
                                                                  expected):
    with pytest.raises(ValueError, match=expected):
        catalog.resolve(catalog.find(["00"])[0], "quick", {name: value})
    assert cli.main(["run", "00", "-p", name, str(value)]) == 2
    assert expected.split()[0] in capsys.readouterr().err
    assert not (course_dirs[1] / "00_first.ipynb").exists()


def test_range_rules_by_name():
    catalog.check_range("flip", 0.0)
    catalog.check_range("process", [64, 96])
    catalog.check_range("onnx_sizes", [[16, 32]])
    for name, value, expected in [("flip", 1.5, r"\[0, 1\]"), ("max_shift", 1.0, r"\[0, 1\)"),
                                  ("process", [60, 96], "multiples of 16"),
                                  ("onnx_sizes", [[64, 90]], "multiples of 16"),
                                  ("n_test", 2.0, "integer >= 1")]:
        with pytest.raises(ValueError, match=expected):
            catalog.check_range(name, value)
    catalog.check_range("unknown_name", -1e9)                 # no rule: anything goes


def test_every_chapter_default_and_profile_is_in_range():
    for nb in catalog.find(None):
        for k, v in nb.defaults().items():
            catalog.check_range(k, v)
        for profile in catalog.PROFILES:
            catalog.resolve(nb, profile)


def test_unknown_notebook_and_profile(course_dirs):
    with pytest.raises(ValueError, match="no notebook matches '07'.*00_first"):
        catalog.find(["07"])
    with pytest.raises(ValueError, match="unknown profile"):
        catalog.resolve(catalog.find(["00"])[0], "huge")


@pytest.mark.slow
def test_run_records_numbers_and_failures(course_dirs):
    nbs, reports = course_dirs
    assert cli.main(["run", "00", "-p", "steps", "4"]) == 0
    rec = next(r for r in results.load_records() if r["notebook"] == "00_first")
    assert rec["status"] == "ok" and rec["numbers"] == {"steps": 4, "lr": 0.5, "twice": 8}
    assert rec["overrides"] == {"steps": 4}
    executed = json.loads((reports / "00_first.ipynb").read_text())
    assert any("steps = 4" in "".join(c["source"]) for c in executed["cells"])  # papermill injected it
    # the checks: recorded in order with their evidence, shown with a tick / a cross, counted
    assert rec["checks"] == [
        {"claim": "steps is positive", "held": True, "evidence": {"steps": 4}},
        {"claim": "steps exceed 100", "held": False, "evidence": {"steps": 4, "bound": 100}}]
    shown = json.dumps([o for c in executed["cells"] for o in c.get("outputs", [])], ensure_ascii=False)
    assert "\u2713 steps is positive (steps = 4)" in shown
    assert "\u2717 **not held:** steps exceed 100 (steps = 4, bound = 100)" in shown
    lines = []
    execute.run(["00"], log=lambda *a, **k: lines.append(" ".join(map(str, a))))
    assert any("checks: 1/2 held" in ln for ln in lines)
    assert any("not held: steps exceed 100" in ln for ln in lines)
    assert "| 1/2 |" in (reports / "results.md").read_text()

    # a failing chapter: non-zero exit, the cell named, the partial notebook kept, --keep-going runs the rest
    runs = execute.run(["01", "02"], keep_going=True, log=lambda *a, **k: None)
    broken, second = runs
    assert not broken.ok and second.ok
    assert "01_broken.ipynb failed in cell" in broken.error and "RuntimeError: on purpose" in broken.error
    partial = json.loads((reports / "01_broken.ipynb").read_text())
    assert any(o.get("output_type") == "error" for c in partial["cells"] for o in c.get("outputs", []))
    assert cli.main(["run", "01", "02"]) == 1  # stops at the failure without --keep-going
    table = (reports / "results.md").read_text()
    assert "| failed |" in table and "| ok |" in table and "k2" in table and "steps=4" in table


@pytest.mark.slow
def test_sweep_makes_one_run_per_value_and_a_table(course_dirs):
    res, table = execute.sweep("02", {"k": [2, 5]}, log=lambda *a, **k: None)
    assert [r.record["numbers"]["k2"] for r in res] == [4, 25]
    lines = [ln for ln in table.splitlines() if ln.startswith("| 2 ") or ln.startswith("| 5 ")]
    assert len(lines) == 2 and "| 4 |" in lines[0] and "| 25 |" in lines[1]
    assert (course_dirs[1] / "sweeps" / "02_second--k.md").exists()


@pytest.mark.slow
def test_threads_option_reaches_the_kernel(course_dirs, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    (res,) = execute.run(["02"], threads=1, log=lambda *a, **k: None)
    assert res.ok and res.record["numbers"]["omp"] == "1"
    assert "OMP_NUM_THREADS" not in __import__("os").environ  # restored after the run
    (res,) = execute.run(["02"], log=lambda *a, **k: None, force=True)
    assert res.record["numbers"]["omp"] == "unset"


def test_the_cache_reruns_only_what_changed(course_dirs, monkeypatch):
    """Keys from content hashes: unchanged -> skipped; a parameter, the notebook, an upstream
    checkpoint or a failed last run -> executed again; --force always executes."""
    nbs, reports = course_dirs
    write_nb(nbs, "03_reader", [
        ("md", "# Reads chapter 02's checkpoint"),
        ("code", "seed = 0\nprofile = 'quick'", "parameters"),
        ("code", "path = '02_model.pt'"),
    ])
    ran = []

    def fake_run_one(nb, params, changed, profile, output=None, log=print, threads=None):
        out = reports / f"{nb.stem}.ipynb"
        out.write_text(json.dumps({"params": params}))  # stands in for the executed notebook
        ran.append(nb.stem)
        return execute.RunResult(nb.stem, out, nb.stem != "01_broken", 0.1, {"checks": []})

    monkeypatch.setattr(execute, "run_one", fake_run_one)
    lines = []

    def run(*sel, **kw):
        ran.clear()
        execute.run(list(sel), keep_going=True, log=lambda *a, **k: lines.append(a[0]), **kw)
        return list(ran)

    assert run() == ["00_first", "01_broken", "02_second", "03_reader"]
    assert run() == ["01_broken"]  # its last run failed; the others are up to date
    assert any("00_first (quick) up to date" in ln for ln in lines)
    assert run("00", force=True) == ["00_first"]
    assert run("00", overrides={"steps": 5}) == ["00_first"]
    assert run("00", "02") == ["00_first"]  # back to steps = 10: 00's key changed again, 02's did not
    assert run("02", profile="full") == ["02_second"]  # the profile is a parameter too
    assert run("02") == ["02_second"]
    (reports / "runs").mkdir(exist_ok=True)
    (reports / "runs" / "02_model.pt").write_bytes(b"weights")  # chapter 02 wrote a checkpoint
    lines.clear()
    assert run("02", "03") == ["03_reader"]
    assert any("changed: runs/02_*" in ln for ln in lines)
    write_nb(nbs, "02_second", [("md", "# Second, edited"),
                                ("code", "seed = 0\nprofile = 'quick'\nk = 3", "parameters")])
    assert run("02", "03") == ["02_second"]
    (reports / "03_reader.ipynb").write_text("{}")  # replaced by hand: not the cached one
    assert run("03") == ["03_reader"]


def test_check_outside_the_runner_returns_and_remembers(monkeypatch, capsys):
    monkeypatch.delenv("COURSE_RECORD", raising=False)
    assert results.check("two beats one", 2 > 1, two=2, one=1) is None
    results.check("one beats two", np.float64(1) > 2)                 # numpy bools are fine
    assert results.checked()[-2:] == [
        {"claim": "two beats one", "held": True, "evidence": {"two": 2, "one": 1}},
        {"claim": "one beats two", "held": False, "evidence": {}}]
    out = capsys.readouterr().out
    assert "\u2713 two beats one (two = 2, one = 1)" in out and "\u2717" in out
    with pytest.raises(ValueError, match="claim"):
        results.check("  ", True)
    with pytest.raises(TypeError, match="bool"):
        results.check("a number is not an outcome", 0.3)


def test_record_outside_the_runner_keeps_numbers_in_memory(monkeypatch, capsys):
    monkeypatch.delenv("COURSE_RECORD", raising=False)
    results.record(alpha=0.25)
    assert results.recorded()["alpha"] == 0.25
    assert "alpha" in capsys.readouterr().out
    with pytest.raises(ValueError):
        results.record()


def test_clean_outputs_drops_widgets_stderr_and_progress_frames():
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stderr", text="  0%|  | 0/9\r100%|##| 9/9\n"),
        nbformat.v4.new_output("stream", name="stdout", text="step 1\rstep 2\rstep 3\ndone\n"),
        nbformat.v4.new_output("display_data", data={render.WIDGET: {"model_id": "x"}, "text/plain": "HBox()"}),
        nbformat.v4.new_output("display_data", data={"text/plain": "kept"}),
    ]
    out, _ = render.CleanOutputs().preprocess_cell(cell, {}, 0)
    assert [o.output_type for o in out.outputs] == ["stream", "display_data"]
    assert out.outputs[0].text == "step 3\ndone\n"
    assert out.outputs[1].data["text/plain"] == "kept"


def test_recorded_table_fills_its_columns_and_leaves_none_empty():
    from lib.course.results import recorded_table

    def shape(n):
        lines = recorded_table({f"n{i}": i for i in range(n)}).splitlines()
        return len(lines) - 2, lines[0].count("recorded")

    assert shape(3) == (3, 1)
    assert shape(4) == (2, 2)      # not 2 rows of 3 pairs with the third pair empty
    assert shape(7) == (3, 3)
    assert shape(9) == (3, 3)
    table = recorded_table({f"n{i}": i for i in range(4)})
    assert "|  |  |" not in table and "`n3` | 3" in table
    assert table.splitlines()[1] == "|---|---:|---|---:|"  # values right-aligned
