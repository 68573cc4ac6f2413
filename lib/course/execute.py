"""Executing notebooks with papermill: one run, a list of runs, a sweep."""
from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import os

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lib.course import cache, catalog
from lib.paths import reports_dir
from lib.course.results import (
    load_records,
    markdown_table,
    records_dir,
    run_row,
    write_json,
    write_results_md,
)


@dataclass
class RunResult:
    notebook: str
    output: Path
    ok: bool
    seconds: float
    record: dict
    error: str = ""


def _run_id(nb: catalog.Notebook, changed: dict, profile: str) -> str:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    digest = hashlib.sha1(json.dumps([profile, changed], sort_keys=True, default=str).encode()).hexdigest()[:6]
    return f"{nb.stem}-{stamp}-{digest}"


def run_one(nb: catalog.Notebook, parameters: dict, changed: dict, profile: str, output: Path | None = None,
            log=print, threads: int | None = None) -> RunResult:
    """Execute one notebook; keep the executed (or partially executed) copy; record the run."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    output = output or reports_dir() / f"{nb.stem}.ipynb"
    output.parent.mkdir(parents=True, exist_ok=True)
    run_id = _run_id(nb, changed, profile)
    rec_path = records_dir() / f"{run_id}.json"
    rec = {"run_id": run_id, "notebook": nb.stem, "title": nb.title, "profile": profile,
           "parameters": parameters, "overrides": changed, "output": str(output),
           "started": dt.datetime.now().isoformat(timespec="seconds"), "status": "running", "numbers": {}}
    write_json(rec_path, rec)
    # The kernel inherits the environment: the record file, and (with --threads) the CPU thread count.
    # On a machine that is busy with other work, torch's default of one thread per core can make every
    # small operation wait for a busy core; --threads 1 keeps a chapter's speed predictable there.
    env = {"COURSE_RECORD": str(rec_path)}
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    env_before = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    t0 = time.perf_counter()
    error = ""
    try:
        # only what differs from the parameters cell is injected: the report then shows the defaults with
        # their comments, followed by a short "injected-parameters" cell when something was changed
        pm.execute_notebook(str(nb.path), str(output), parameters=changed, kernel_name="python3",
                            language="python", progress_bar=False, cwd=str(nb.path.parent))
        ok = True
    except PapermillExecutionError as e:
        ok = False
        error = (f"{nb.path.name} failed in cell {e.cell_index} (execution count {e.exec_count}): "
                 f"{e.ename}: {e.evalue}")
    except Exception as e:  # the kernel died, the notebook is unreadable, ...
        ok = False
        error = f"{nb.path.name} could not be executed: {type(e).__name__}: {e}"
    finally:
        for k, v in env_before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    seconds = time.perf_counter() - t0
    rec = json.loads(rec_path.read_text())  # the kernel may have added numbers
    rec.update(status="ok" if ok else "failed", seconds=round(seconds, 1), error=error)
    write_json(rec_path, rec)
    write_results_md()
    return RunResult(nb.stem, output, ok, seconds, rec, error)


def _checks_line(rec: dict) -> str:
    checks = rec.get("checks", [])
    held = sum(c.get("held", False) for c in checks)
    return f"checks: {held}/{len(checks)} held" if checks else ""


def _log_not_held(rec: dict, log) -> None:
    for c in rec.get("checks", []):
        if not c.get("held"):
            log(f"        not held: {c['claim']}", flush=True)


def run(selection: list[str] | None, profile: str = "quick", overrides: dict[str, Any] | None = None,
        keep_going: bool = False, log=print, threads: int | None = None,
        force: bool = False) -> list[RunResult]:
    """Run the chosen notebooks in order. All parameters are checked before the first one starts.

    A chapter whose inputs have not changed since its last good run is not executed again
    (:mod:`lib.course.cache`); ``force`` executes it anyway.
    """
    notebooks = catalog.find(selection)
    plans = [(nb, *catalog.resolve(nb, profile, overrides)) for nb in notebooks]  # refuses bad -p early
    results = []
    total = time.perf_counter()
    for i, (nb, params, changed) in enumerate(plans, 1):
        shown = ", ".join(f"{k}={v}" for k, v in changed.items() if k != "profile")
        head = f"[{i}/{len(plans)}] {nb.stem} ({profile}{'; ' + shown if shown else ''})"
        executed = reports_dir() / f"{nb.stem}.ipynb"
        # the inputs are hashed after the chapters before this one ran (their checkpoints count)
        parts = cache.inputs(nb.path, params)
        why = "forced" if force else cache.stale_reason(nb.stem, parts, executed)
        if not why:
            rec = cache.load(nb.stem).get("record", {})
            log(f"{head} up to date, not run again (--force to rerun); "
                f"{_checks_line(rec)}".rstrip("; "), flush=True)
            _log_not_held(rec, log)
            results.append(RunResult(nb.stem, executed, True, 0.0, rec))
            continue
        log(f"{head} ... ({why})", flush=True)
        res = run_one(nb, params, changed, profile, threads=threads)
        results.append(res)
        if _checks_line(res.record):
            log(f"      {_checks_line(res.record)}", flush=True)
        _log_not_held(res.record, log)
        if res.output == executed:
            cache.save(nb.stem, run_key=cache.key(parts), run_inputs=parts, run_ok=res.ok,
                       executed_hash=cache.file_hash(executed), record=res.record)
        if res.ok:
            log(f"      done in {res.seconds:.1f} s -> {res.output}", flush=True)
        else:
            log(f"      FAILED after {res.seconds:.1f} s: {res.error}\n"
                f"      the partially executed notebook, with the error, is {res.output}", flush=True)
            if not keep_going:
                break
    log(f"{sum(r.ok for r in results)}/{len(plans)} notebooks ran in {time.perf_counter() - total:.1f} s; "
        f"numbers in {reports_dir() / 'results.md'}", flush=True)
    return results


def sweep(selection: str, grid: dict[str, list[Any]], profile: str = "quick", fixed: dict[str, Any] | None = None,
          keep_going: bool = True, log=print, threads: int | None = None) -> tuple[list[RunResult], str]:
    """One run per combination of the swept values, then a comparison table (markdown)."""
    (nb,) = catalog.find([selection])
    names = list(grid)
    combos = [dict(zip(names, values)) for values in itertools.product(*grid.values())]
    plans = [(combo, *catalog.resolve(nb, profile, {**(fixed or {}), **combo})) for combo in combos]
    folder = reports_dir() / "sweeps" / nb.stem
    results = []
    for i, (combo, params, changed) in enumerate(plans, 1):
        label = ",".join(f"{k}={v}" for k, v in combo.items())
        log(f"[{i}/{len(plans)}] {nb.stem} {label} ...", flush=True)
        res = run_one(nb, params, changed, profile, output=folder / f"{_safe(label)}.ipynb", threads=threads)
        log(f"      {'done' if res.ok else 'FAILED'} in {res.seconds:.1f} s{': ' + res.error if res.error else ''}",
            flush=True)
        results.append(res)
        if not res.ok and not keep_going:
            break
    rows, numbers = [], []
    for combo, res in zip(combos, results):
        row = run_row(res.record)
        row.update({k: v for k, v in combo.items()})
        rows.append(row)
        numbers += [k for k in res.record.get("numbers", {}) if k not in numbers]
    table = markdown_table(rows, [*names, "status", "time (s)", *numbers])
    out = reports_dir() / "sweeps" / f"{nb.stem}--{'-'.join(names)}.md"
    out.write_text(f"# Sweep of {nb.stem} over {', '.join(names)} ({profile} profile)\n\n{table}")
    log(table)
    log(f"table written to {out}")
    return results, table


def _safe(label: str) -> str:
    return "".join(c if c.isalnum() or c in "=,.-_" else "_" for c in label)[:120]


def last_runs() -> dict[str, dict]:
    """The newest record of each notebook (used by the PDF step to date the reports)."""
    out: dict[str, dict] = {}
    for rec in load_records():
        if rec.get("output", "").endswith(f"{rec.get('notebook')}.ipynb"):
            out[rec["notebook"]] = rec
    return out


