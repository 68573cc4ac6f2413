"""A view of a dataset that keeps only some keys of each item, so that items collate.

Datasets of the course return dicts with extra entries (``name``, ``intrinsics``, ``mask``) that
not every item has or that ``default_collate`` cannot batch; training loops want only a few.

>>> import torch
>>> base = [{"image": torch.zeros(3, 2, 2), "depth": torch.ones(1, 2, 2), "name": "a"}]
>>> view = Fields(base, ("image", "depth"))
>>> len(view), sorted(view[0])
(1, ['depth', 'image'])
"""
from __future__ import annotations

from typing import Sequence

from torch.utils.data import Dataset

__all__ = ["Fields"]


class Fields(Dataset):
    """Items of ``base`` (any indexable dataset of dicts) with only ``keys``, in that order."""

    def __init__(self, base, keys: Sequence[str] = ("image", "depth", "valid")):
        if isinstance(keys, str) or not keys:
            raise ValueError(f"keys must be a non-empty sequence of names, got {keys!r}")
        self.base, self.keys = base, tuple(keys)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict:
        item = self.base[i]
        missing = [k for k in self.keys if k not in item]
        if missing:
            raise KeyError(f"item {i} has no {missing}; it has {sorted(item)}")
        return {k: item[k] for k in self.keys}
