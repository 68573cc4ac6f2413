"""Test-wide settings: keep test runs out of the real reports/ and data/ folders, and be reproducible."""
import os
import tempfile

import pytest

_tmp = tempfile.mkdtemp(prefix="course-tests-")
# Set before anything imports lib, and inherited by the notebook kernels the smoke tests start.
os.environ["COURSE_REPORTS_DIR"] = os.path.join(_tmp, "reports")
os.environ["COURSE_DATA_DIR"] = os.path.join(_tmp, "data")

import matplotlib  # noqa: E402

matplotlib.use("Agg")  # this process only: the notebook kernels the smoke tests start keep the inline backend


@pytest.fixture(autouse=True)
def _seed():
    import torch

    torch.manual_seed(0)


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """The tests use tiny tensors, which gain nothing from threads; on a busy 2-core machine extra
    threads only wait for each other (the notebook kernels the smoke tests start set their own)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
