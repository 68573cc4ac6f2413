"""Test-wide settings: keep test runs out of the real reports/ and data/ folders, and be reproducible."""
import os
import tempfile

import pytest

_tmp = tempfile.mkdtemp(prefix="course-tests-")
# Set before anything imports lib, and inherited by the notebook kernels the smoke tests start.
os.environ["COURSE_REPORTS_DIR"] = os.path.join(_tmp, "reports")
os.environ["COURSE_DATA_DIR"] = os.path.join(_tmp, "data")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(autouse=True)
def _seed():
    import torch

    torch.manual_seed(0)
