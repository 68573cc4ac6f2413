"""Checkpoints: written atomically, read back safely, and enough to rebuild the model.

A checkpoint is a dict saved with ``torch.save`` and read with ``weights_only=True`` (plain
tensors, numbers, strings, lists and dicts: no pickled code runs on load):

- ``model_class`` (``"lib.models.depth_net.DepthMaskNet"``) and ``model_kwargs`` (the model's
  ``config``, its constructor arguments), so that :func:`load_model` rebuilds the model;
- ``model``, ``optimizer``, ``scheduler``, ``scaler``: state dicts;
- ``step``, ``epoch``, ``batch_in_epoch``, ``steps``, ``seed``, ``world_size``: where the run is;
- ``rng``: the random states of every process (torch CPU and CUDA, NumPy, Python);
- ``history``: the rows of :class:`lib.train.History`.
"""
from __future__ import annotations

import importlib
import os
import random
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

__all__ = ["atomic_save", "load_checkpoint", "load_model", "rng_state", "set_rng_state"]


def atomic_save(obj, path: str | os.PathLike) -> Path:
    """``torch.save(obj, path)`` such that ``path`` is always either the old file or the new one.

    The data goes to a temporary file in the same folder, is flushed and fsync'ed to disk, and
    only then renamed over ``path`` with :func:`os.replace` (atomic on POSIX and Windows when
    both are on one file system). A crash or an exception while writing leaves the previous
    checkpoint untouched and no temporary file behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a checkpoint is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:  # make the rename itself durable (POSIX); harmless where directories cannot be opened
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass
    return path


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Read a checkpoint written by :func:`lib.train.fit` (``weights_only``: no code runs)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated or foreign file
        raise RuntimeError(f"checkpoint {path} could not be read ({type(e).__name__}: {e})") from e


def load_model(path: str | os.PathLike, map_location="cpu", eval: bool = True) -> nn.Module:
    """Rebuild the model stored in a checkpoint: its class, constructor arguments and weights.

    >>> model = load_model("reports/runs/02_baseline.pt")  # doctest: +SKIP
    """
    ckpt = load_checkpoint(path, map_location)
    name, kwargs = ckpt.get("model_class"), ckpt.get("model_kwargs")
    if not name or kwargs is None:
        raise ValueError(
            f"checkpoint {path} does not record how to build its model (model_class={name!r}, "
            f"model_kwargs={kwargs!r}): the model had no `config` dict of constructor arguments; "
            "build it yourself and use model.load_state_dict(load_checkpoint(path)['model'])"
        )
    module_name, _, class_name = name.rpartition(".")
    cls = getattr(importlib.import_module(module_name), class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ValueError(f"checkpoint {path}: {name!r} is not an nn.Module class")
    model = cls(**kwargs)
    model.load_state_dict(ckpt["model"])
    model.to(map_location)
    return model.eval() if eval else model


def rng_state() -> dict:
    """The random states this process uses: torch CPU and CUDA, NumPy, Python."""
    key, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"key": key, "state": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": random.getstate(),
    }


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    n = state["numpy"]
    np.random.set_state((n["key"], n["state"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
