"""The real Middlebury motorcycle: depth from disparity with the published calibration."""
import numpy as np
import pytest
import torch
from skimage.data import stereo_motorcycle

from lib.data.middlebury import middlebury_motorcycle

# Middlebury 2014 calib.txt of Motorcycle (full resolution), independent of the module's constants:
# cam0 = [3979.911 0 1244.772; 0 3979.911 1019.507; 0 0 1], doffs = 124.343, baseline = 193.001 mm,
# vmin = 23, vmax = 245 (disparity range). scikit-image ships the images downsampled 4x.
F_FULL, CX_FULL, CY_FULL, DOFFS_FULL, B_MM, VMIN_FULL, VMAX_FULL = 3979.911, 1244.772, 1019.507, 124.343, 193.001, 23, 245


@pytest.fixture(scope="module")
def sample():
    return middlebury_motorcycle()


@pytest.fixture(scope="module")
def raw():
    left, _, disp = stereo_motorcycle()
    return left, disp.astype(np.float64)


def test_shapes_dtypes_name(sample):
    assert sample["image"].shape == (3, 500, 741) and sample["image"].dtype == torch.float32
    assert sample["depth"].shape == (1, 500, 741) and sample["depth"].dtype == torch.float32
    assert sample["valid"].shape == (1, 500, 741) and sample["valid"].dtype == torch.bool
    assert sample["disparity_px"].shape == (1, 500, 741) and sample["disparity_px"].dtype == torch.float32
    assert sample["intrinsics"].shape == (3, 3) and sample["intrinsics"].dtype == torch.float32
    assert sample["name"] == "middlebury/motorcycle"
    for k in ("image", "depth", "disparity_px"):
        assert torch.isfinite(sample[k]).all(), k


def test_image_is_left_view(sample, raw):
    left = raw[0]
    assert torch.equal(sample["image"][:, 123, 456] * 255, torch.tensor(left[123, 456], dtype=torch.float32))
    assert 0.0 <= sample["image"].min() and sample["image"].max() <= 1.0


def test_depth_equals_formula_at_pixels(sample, raw):
    disp = raw[1]
    f, b, doffs = F_FULL / 4, B_MM / 1000, DOFFS_FULL / 4
    rows, cols = np.nonzero(np.isfinite(disp))
    picks = [0, len(rows) // 3, len(rows) // 2, len(rows) - 1]
    for k in picks:
        y, x = rows[k], cols[k]
        expected = f * b / (disp[y, x] + doffs)
        assert sample["depth"][0, y, x].item() == pytest.approx(expected, rel=2e-5)
        assert sample["disparity_px"][0, y, x].item() == pytest.approx(disp[y, x], rel=1e-6)


def test_valid_is_finite_disparity_and_invalid_is_zero(sample, raw):
    finite = torch.from_numpy(np.isfinite(raw[1]))
    assert torch.equal(sample["valid"][0], finite)
    assert 0.05 < 1 - finite.float().mean() < 0.10  # ~7 % occluded pixels have no ground truth
    assert (sample["depth"][~sample["valid"]] == 0).all()
    assert (sample["disparity_px"][~sample["valid"]] == 0).all()
    assert (sample["depth"][sample["valid"]] > 0).all()


def test_depth_range_within_calibrated_disparity_range(sample):
    # Middlebury's calib gives the scene's disparity range vmin..vmax (full-res px); depth must lie in
    # f*B/(vmax/4 + doffs) .. f*B/(vmin/4 + doffs) = 2.08 .. 5.21 m. Measured: 2.11 .. 5.02 m.
    f, b, doffs = F_FULL / 4, B_MM / 1000, DOFFS_FULL / 4
    lo, hi = f * b / (VMAX_FULL / 4 + doffs), f * b / (VMIN_FULL / 4 + doffs)
    d = sample["depth"][sample["valid"]]
    assert lo <= d.min().item() and d.max().item() <= hi
    assert d.min().item() < 2.3 and d.max().item() > 4.5  # the scene really spans that range


def test_intrinsics(sample):
    K = sample["intrinsics"].double()
    expected = torch.tensor([[F_FULL / 4, 0, CX_FULL / 4], [0, F_FULL / 4, CY_FULL / 4], [0, 0, 1]], dtype=torch.float64)
    assert torch.allclose(K, expected, atol=1e-3)


def test_fresh_tensors_each_call():
    a = middlebury_motorcycle()
    a["depth"].zero_()
    a["image"].fill_(0.5)
    b = middlebury_motorcycle()
    assert b["depth"].max() > 2 and b["image"].std() > 0.1
