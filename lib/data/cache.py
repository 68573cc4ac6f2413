"""An on-disk cache of generated datasets: one folder per parameter set, one ``.npy`` per field.

The second construction of a dataset with the same parameters memory-maps the arrays
(``np.load(mmap_mode="r")``) instead of generating them again; DataLoader workers then share
the pages through the OS cache. A folder is written under a temporary name and renamed into
place only when complete, so an interrupted generation never leaves a broken cache.

Where: ``$COURSE_DATA_DIR`` if set, else the ``data/`` folder at the root of the repository.

>>> import numpy as np
>>> arrays = load_or_build("demo", {"n": 2}, 2,                       # doctest: +SKIP
...                        lambda i: {"x": np.full(3, i, np.float32)})
>>> arrays["x"][1]                                                    # doctest: +SKIP
memmap([1., 1., 1.], dtype=float32)
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm.auto import tqdm

from lib.paths import data_dir


def cache_path(kind: str, params: dict) -> Path:
    """Folder of the cache entry for these parameters: a readable prefix plus a hash of all of them.

    ``params`` must be JSON-serialisable; any change in any value gives another folder."""
    text = json.dumps(params, sort_keys=True)
    digest = hashlib.sha1(text.encode()).hexdigest()[:12]
    parts = [kind]
    if "split" in params:
        parts.append(str(params["split"]))
    if "n" in params:
        parts.append(f"n{params['n']}")
    if "size" in params:
        parts.append("x".join(str(s) for s in params["size"]))
    if "seed" in params:
        parts.append(f"seed{params['seed']}")
    return data_dir() / "cache" / "-".join(parts + [digest])


def load(path: Path) -> dict[str, np.ndarray] | None:
    """The memory-mapped fields of a complete entry, or None when there is none."""
    meta = path / "meta.json"
    if not meta.is_file():
        return None
    fields = json.loads(meta.read_text())["fields"]
    return {name: np.load(path / f"{name}.npy", mmap_mode="r") for name in fields}


def load_or_build(kind: str, params: dict, n: int, make: Callable[[int], dict[str, np.ndarray]],
                  progress: bool = True) -> dict[str, np.ndarray]:
    """Load the entry for ``(kind, params)`` or build it by calling ``make(i)`` for i < n.

    ``make(i)`` returns a dict of NumPy arrays with the same shapes and dtypes for every i;
    field ``f`` is stored as ``f.npy`` of shape (n, *shape). Returns read-only memory maps.
    """
    if n < 1:
        raise ValueError(f"load_or_build needs n >= 1 items, got n={n}")
    path = cache_path(kind, params)
    found = load(path)
    if found is not None:
        return found
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".tmp-{path.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        arrays = {}
        bar = tqdm(range(n), desc=f"generating {path.name}", disable=not progress, leave=False)
        for i in bar:
            item = make(i)
            if not arrays:
                arrays = {k: np.lib.format.open_memmap(tmp / f"{k}.npy", mode="w+", dtype=v.dtype,
                                                       shape=(n, *v.shape)) for k, v in item.items()}
            for k, v in item.items():
                arrays[k][i] = v
        for a in arrays.values():
            a.flush()
        del arrays
        (tmp / "meta.json").write_text(json.dumps({"kind": kind, "params": params, "n": n,
                                                   "fields": sorted(p.stem for p in tmp.glob("*.npy"))}))
        try:
            os.rename(tmp, path)                               # atomic: the entry appears whole
        except OSError:                                        # another process finished first
            if load(path) is None:
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return load(path)
