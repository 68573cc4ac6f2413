"""The execution cache: run a chapter again only when something it depends on changed.

A chapter's *key* is a SHA-256 over the content of what decides its result:

- its notebook file;
- every ``.py`` file of ``lib`` (a change anywhere in the shared code may change any chapter);
- its final parameters (defaults, profile and ``-p`` values, resolved);
- the zoo weights it uses: every ``weights/NAME.pt`` and card whose ``NAME`` appears as a quoted
  string in the notebook or as a parameter value (``"depth"`` is also the key of every sample's
  depth map, so every chapter counts the ``depth`` model: the cache errs towards running);
- the checkpoints of earlier chapters it reads: a string literal ``"NN_..."`` (or ``'NN_...'``) naming another
  chapter's run means the files ``reports/runs/NN_*.pt`` are part of the key (chapter 06 reads the
  models of chapters 02 to 05; when one of those is retrained, 06 runs again).

Keys live in ``reports/cache/<stem>.json`` with the inputs they were made from, so that
``python -m lib.course run`` can say *why* a chapter runs again. A PDF is re-rendered only when
its executed notebook (or the renderer, its template or ``references.bib``) changed.
``--force`` ignores the cache.
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from lib.paths import REPO, reports_dir, runs_dir


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_hash(path: Path) -> str:
    return _digest(Path(path).read_bytes()) if Path(path).exists() else "missing"


def tree_hash(paths: list[Path]) -> str:
    """One hash over several files, by name and content (order-independent)."""
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(str(p.relative_to(REPO) if p.is_relative_to(REPO) else p).encode())
        h.update(file_hash(p).encode())
    return h.hexdigest()


def lib_hash() -> str:
    return tree_hash([p for p in (REPO / "lib").rglob("*.py") if "__pycache__" not in p.parts])


def zoo_names(nb_path: Path, parameters: dict[str, Any]) -> list[str]:
    """The zoo entries a notebook uses: shipped names quoted in its source or given as values."""
    from lib.zoo import weights_dir

    shipped = {p.stem for p in weights_dir().glob("*.pt")}
    text = nb_path.read_text()
    quoted = set(re.findall(r'\\?["\']([a-z][a-z0-9_]*)\\?["\']', text))
    values = {v for v in parameters.values() if isinstance(v, str)}
    return sorted(shipped & (quoted | values))


def upstream_chapters(nb_path: Path) -> list[str]:
    """Numbers of the other chapters whose checkpoints this notebook names (``"02_model"``)."""
    own = nb_path.stem[:2]
    found = set(re.findall(r'\\?["\'](\d\d)_[a-z]', nb_path.read_text()))
    return sorted(found - {own})


def inputs(nb_path: Path, parameters: dict[str, Any]) -> dict[str, str]:
    """What the key is made of, one hash per input (so that a changed key can say what changed)."""
    from lib.zoo import weights_dir

    out = {"notebook": file_hash(nb_path), "lib": lib_hash(),
           "parameters": _digest(json.dumps(parameters, sort_keys=True, default=str).encode())}
    for name in zoo_names(nb_path, parameters):
        out[f"weights/{name}"] = tree_hash([weights_dir() / f"{name}.pt", weights_dir() / f"{name}.json"])
    for num in upstream_chapters(nb_path):
        out[f"runs/{num}_*"] = tree_hash(list(runs_dir().glob(f"{num}_*.pt")))
    return out


def key(parts: dict[str, str]) -> str:
    return _digest(json.dumps(parts, sort_keys=True).encode())


def _entry_path(stem: str) -> Path:
    folder = reports_dir() / "cache"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{stem}.json"


def load(stem: str) -> dict:
    p = _entry_path(stem)
    try:
        return json.loads(p.read_text()) if p.exists() else {}
    except json.JSONDecodeError:
        return {}


def save(stem: str, **fields: Any) -> None:
    entry = {**load(stem), **fields}
    _entry_path(stem).write_text(json.dumps(entry, indent=1, sort_keys=True))


def stale_reason(stem: str, parts: dict[str, str], executed: Path) -> str:
    """'' when the executed notebook is up to date; otherwise a few words on why it is not."""
    entry = load(stem)
    if not executed.exists():
        return "not executed yet"
    if not entry.get("run_key"):
        return "no cache entry"
    if entry.get("run_ok") is not True:
        return "the last run failed"
    if entry.get("executed_hash") != file_hash(executed):
        return "the executed notebook was replaced"
    if entry["run_key"] == key(parts):
        return ""
    before = entry.get("run_inputs", {})
    changed = sorted(k for k in set(before) | set(parts) if before.get(k) != parts.get(k))
    return "changed: " + ", ".join(changed)


def render_inputs(executed: Path, extra: list[Path]) -> str:
    """The key of one rendered file: the executed notebook, the renderer, template, bibliography."""
    from lib.course import render

    code = [Path(render.__file__), *Path(render.TEMPLATE).parent.glob("*"), REPO / "references.bib"]
    return tree_hash([executed, *extra, *code])
