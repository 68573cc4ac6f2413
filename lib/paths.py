"""Where the course keeps its notebooks, reports and data (caches and downloads).

``COURSE_REPORTS_DIR`` and ``COURSE_DATA_DIR`` override the defaults (the tests use them to keep
their runs out of the real ``reports/`` and ``data/``); the runner passes them on to the kernels.
"""
from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def notebooks_dir() -> Path:
    return Path(os.environ.get("COURSE_NOTEBOOKS_DIR", REPO / "notebooks"))


def reports_dir() -> Path:
    path = Path(os.environ.get("COURSE_REPORTS_DIR", REPO / "reports"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def runs_dir() -> Path:
    """``reports/runs/``: checkpoints and run records that later chapters read."""
    path = reports_dir() / "runs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir() -> Path:
    path = Path(os.environ.get("COURSE_DATA_DIR", REPO / "data")).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path
