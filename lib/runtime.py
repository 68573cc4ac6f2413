"""Seeds and devices: the two lines every notebook starts with.

>>> from lib.runtime import seed_everything, pick_device
>>> gen = seed_everything(0)
>>> pick_device("cpu")
device(type='cpu')
"""
from __future__ import annotations

import os
import random

import numpy as np
import torch


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch (CPU and CUDA) and return a torch.Generator seeded alike.

    Pass the returned generator to samplers and data loaders so that a run is reproducible
    without relying on the global state.
    """
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    return torch.Generator().manual_seed(seed)


def pick_device(device: str | torch.device = "auto") -> torch.device:
    """Resolve ``"auto"`` to CUDA when a GPU is present, else CPU; pass anything else through.

    Asking for CUDA on a machine without it is an error, not a silent fallback.
    """
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device={device!r} was asked for but CUDA is not available; use device='auto' or 'cpu'")
    return dev
