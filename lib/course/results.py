"""The numbers of every run: ``record()`` inside a notebook, ``reports/results.md`` outside.

Each run executed by the runner has a JSON file in ``reports/runs/records/``; the runner names it in
the environment variable ``COURSE_RECORD`` before the kernel starts, and ``record()`` adds numbers to
it. Run a notebook by hand (no runner) and ``record()`` still shows the numbers and keeps them in
memory (``recorded()``), it just has no file to write.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from lib.paths import reports_dir, runs_dir

_memory: dict[str, Any] = {}
_checks: list[dict[str, Any]] = []


def _plain(value: Any) -> Any:
    """Tensors, numpy scalars and the like -> JSON-friendly Python values."""
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if isinstance(value, (bool, int, str)) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


def write_json(path: Path, data: dict) -> None:
    """Write atomically: a crash never leaves half a record."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)


def record(**numbers: Any) -> None:
    """Store numbers of this run (``record(abs_rel=0.1, delta1=0.9)``) and show them as a table.

    Values may be floats, ints, strings, 0-d tensors or numpy scalars. Later calls add to (or
    overwrite) earlier ones; ``recorded()`` returns everything recorded so far in this kernel.
    """
    if not numbers:
        raise ValueError("record() needs at least one name=value")
    clean = {k: _plain(v) for k, v in numbers.items()}
    _memory.update(clean)
    target = os.environ.get("COURSE_RECORD")
    if target:
        path = Path(target)
        data = json.loads(path.read_text()) if path.exists() else {}
        data.setdefault("numbers", {}).update(clean)
        write_json(path, data)
    _show(clean)


def recorded() -> dict[str, Any]:
    return dict(_memory)


def check(claim: str, held: bool, **evidence: Any) -> None:
    """A claim of the chapter about this run's results, and whether the run bears it out.

    ``check("edge pairs lower WHDR across edges", whdr_edge < whdr_random, edge=0.21, random=0.33)``
    stores ``{"claim", "held", "evidence"}`` in the run's record (its ``checks`` list), shows one
    line with a tick or a cross, the claim and the evidence (it returns nothing, so that a check
    at the end of a cell prints no stray value; :func:`checked` lists the outcomes). A claim that
    does not hold is a finding, not an error: the chapter goes on, the runner counts it
    (``checks: N/M held``) and ``reports/results.md`` shows the count. Write the claim as the
    sentence the chapter states; pass the numbers that decide it as evidence.
    """
    if not isinstance(claim, str) or not claim.strip():
        raise ValueError("check() needs the claim as a non-empty sentence")
    if hasattr(held, "item"):
        held = held.item()
    if not isinstance(held, (bool, int)) or isinstance(held, int) and held not in (0, 1):
        raise TypeError(f"held must be a bool (the outcome of a comparison), got {held!r}")
    entry = {"claim": claim.strip(), "held": bool(held), "evidence": {k: _plain(v) for k, v in evidence.items()}}
    _checks.append(entry)
    target = os.environ.get("COURSE_RECORD")
    if target:
        path = Path(target)
        data = json.loads(path.read_text()) if path.exists() else {}
        data.setdefault("checks", []).append(entry)
        write_json(path, data)
    _display("**Check.** " + check_line(entry))


def checked() -> list[dict[str, Any]]:
    """The checks made so far in this kernel (``check()``), in order."""
    return [dict(c) for c in _checks]


def check_line(entry: dict[str, Any]) -> str:
    """One Markdown line: a tick or a cross, the claim, the evidence."""
    mark = "\u2713" if entry["held"] else "\u2717 **not held:**"
    ev = ", ".join(f"{k} = {_fmt(v)}" for k, v in entry.get("evidence", {}).items())
    return f"{mark} {entry['claim']}" + (f" ({ev})" if ev else "")





def check_count(rec: dict) -> str:
    """``"held/made"`` for a run record ("" when it made no check)."""
    checks = rec.get("checks", [])
    return f"{sum(c.get('held', False) for c in checks)}/{len(checks)}" if checks else ""


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _display(markdown: str) -> None:
    """Markdown in a notebook, plain text elsewhere."""
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display

        if get_ipython() is not None:
            display(Markdown(markdown))
            return
    except ImportError:
        pass
    print(markdown)


def recorded_table(numbers: dict[str, Any]) -> str:
    """The recorded numbers as a compact markdown table: up to three name/value pairs per row
    (two when a name is long), filled column by column, so a run's numbers take a few lines;
    names left-aligned, values right-aligned as in the chapters' own tables."""
    items = [(f"`{k}`", _fmt(v)) for k, v in numbers.items()]
    if not items:
        return ""
    per_row = 1 if len(items) <= 3 else 2 if max(len(k) for k in numbers) > 18 else 3
    rows = -(-len(items) // per_row)
    per_row = -(-len(items) // rows)  # no column pair left empty (4 numbers: 2 rows of 2)
    cols = [items[c * rows:(c + 1) * rows] for c in range(per_row)]
    head = "| " + " | ".join(["recorded", "value"] * per_row) + " |\n"
    head += "|" + "---|---:|" * per_row + "\n"
    body = ""
    for r in range(rows):
        cells = [x for c in cols for x in (c[r] if r < len(c) else ("", ""))]
        body += "| " + " | ".join(cells) + " |\n"
    return head + body


def _show(numbers: dict[str, Any]) -> None:
    _display(recorded_table(numbers))


def records_dir() -> Path:
    path = runs_dir() / "records"
    path.mkdir(parents=True, exist_ok=True)
    return path


def load_records() -> list[dict]:
    rows = []
    for p in sorted(records_dir().glob("*.json")):
        try:
            rows.append(json.loads(p.read_text()))
        except json.JSONDecodeError:
            continue
    return sorted(rows, key=lambda r: (r.get("notebook", ""), r.get("started", "")))


def markdown_table(rows: list[dict], columns: list[str]) -> str:
    out = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    for r in rows:
        out += "| " + " | ".join(_fmt(r.get(c, "")).replace("|", "/") for c in columns) + " |\n"
    return out


def run_row(rec: dict) -> dict:
    changed = ", ".join(f"{k}={v}" for k, v in rec.get("overrides", {}).items()) or "(defaults)"
    seconds = rec.get("seconds")
    return {
        "run": rec.get("run_id", ""),
        "profile": rec.get("profile", ""),
        "parameters": changed,
        "status": rec.get("status", ""),
        "time (s)": f"{seconds:.0f}" if isinstance(seconds, (int, float)) else "",
        "checks held": check_count(rec),
        **rec.get("numbers", {}),
    }


def write_results_md() -> Path:
    """``reports/results.md``: one section per notebook, one row per run, newest last."""
    records = load_records()
    lines = ["# Recorded results", "",
             "Every run of the course runner, one row per run: its profile, the parameters that differ from",
             "the notebook's defaults, how it ended, how long it took, and the numbers it recorded.", ""]
    by_nb: dict[str, list[dict]] = {}
    for rec in records:
        by_nb.setdefault(rec.get("notebook", "?"), []).append(rec)
    for nb, recs in by_nb.items():
        rows = [run_row(r) for r in recs]
        numbers = []
        for r in recs:
            numbers += [k for k in r.get("numbers", {}) if k not in numbers]
        lines += [f"## {nb}: {recs[-1].get('title', '')}", "",
                  markdown_table(rows, ["run", "profile", "parameters", "status", "time (s)", "checks held",
                                        *numbers])]
        failed = [c for c in recs[-1].get("checks", []) if not c.get("held")]
        if failed:
            lines += ["Checks of the newest run that did not hold:", ""]
            lines += [f"- {check_line(c)}" for c in failed] + [""]
    path = reports_dir() / "results.md"
    path.write_text("\n".join(lines))
    return path
