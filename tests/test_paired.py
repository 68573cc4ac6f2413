"""lib.course.paired: the paired difference over test images and the 2-SE verdict."""
from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
import torch

from lib.course import paired
from lib.course.paired import paired_difference, verdict


def test_doctests():
    assert doctest.testmod(paired).failed == 0


def test_hand_worked_mean_and_standard_error():
    # d = (1, 2, 3, 4): mean 2.5, sample variance ((1.5^2 + 0.5^2) * 2) / 3 = 5/3
    mean, se = paired_difference(np.array([2.0, 4.0, 6.0, 8.0]), np.array([1.0, 2.0, 3.0, 4.0]))
    assert mean == 2.5
    assert se == pytest.approx(math.sqrt(5 / 3) / 2, rel=1e-12)


def test_torch_and_numpy_agree_and_b_none_is_the_difference_itself():
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(50, generator=g, dtype=torch.float64), torch.rand(50, generator=g,
                                                                       dtype=torch.float64)
    t = paired_difference(a, b)
    n = paired_difference(a.numpy(), b.numpy())
    assert t == pytest.approx(n, rel=1e-12)
    assert paired_difference(a - b) == t


def test_keeps_the_dtype_of_its_inputs():
    # the chapters' recorded numbers came from float32 arithmetic; the helper must not change it
    d = torch.rand(64, generator=torch.Generator().manual_seed(1))
    assert paired_difference(d) == (float(d.mean()), float(d.std() / len(d) ** 0.5))


def test_non_finite_images_are_left_out():
    a = torch.tensor([1.0, float("nan"), 3.0, 5.0])
    assert paired_difference(a) == paired_difference(torch.tensor([1.0, 3.0, 5.0]))
    assert paired_difference(np.array([1.0, np.inf, 3.0])) == paired_difference(np.array([1.0, 3.0]))


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="same images"):
        paired_difference(torch.zeros(3), torch.zeros(4))
    with pytest.raises(ValueError, match="no image has a finite difference"):
        paired_difference(torch.tensor([float("nan"), float("inf")]))
    with pytest.raises(ValueError, match="no image has a finite difference"):
        paired_difference(np.array([]))
    with pytest.raises(ValueError, match="words"):
        verdict(1.0, 0.1, ("lower", "higher"))
    with pytest.raises(ValueError, match="standard error"):
        verdict(1.0, -0.1)


def test_one_image_has_no_standard_error_and_so_no_difference():
    mean, se = paired_difference(torch.tensor([0.5, float("nan")]))
    assert mean == 0.5 and math.isnan(se)
    mean, se = paired_difference(np.array([-3.0]))
    assert mean == -3.0 and math.isnan(se)
    assert verdict(-3.0, se) == "no different"


def test_verdict_boundaries_within_two_se_is_no_difference():
    assert verdict(-0.21, 0.1) == "lower"
    assert verdict(-0.2, 0.1) == "no different"  # exactly 2 SE: not beyond it
    assert verdict(0.2, 0.1) == "no different"
    assert verdict(0.21, 0.1) == "higher"
    assert verdict(0.0, 0.0) == "no different"
    assert verdict(-1.0, 0.1, ("better", "no difference", "worse")) == "better"
