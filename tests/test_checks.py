"""lib.checks: the shared input checks, and that no module keeps its own copy."""
from __future__ import annotations

import ast
import doctest
import re
from collections import defaultdict

import numpy as np
import pytest
import torch

from lib import checks
from lib.paths import REPO


def test_doctests():
    assert doctest.testmod(checks).failed == 0


@pytest.mark.parametrize("size, square_ok, expected", [
    ((32, 48), False, (32, 48)), ([8, 8], False, (8, 8)), (torch.Size([4, 6]), False, (4, 6)),
    ((np.int64(3), 5), False, (3, 5)), (16, True, (16, 16)), (np.int32(7), True, (7, 7)),
])
def test_size_pair_accepts_integers(size, square_ok, expected):
    out = checks.size_pair(size, "size", square_ok=square_ok)
    assert out == expected and all(type(v) is int for v in out)


@pytest.mark.parametrize("size, square_ok, error, match", [
    ((10, 2.5), False, TypeError, r"tile must be a pair \(H, W\) of positive integers, got \(10, 2.5\)"),
    (16, False, TypeError, "tile must be a pair"),
    (True, True, TypeError, "an int or a pair"),
    ("64", True, TypeError, "got '64'"),
    ((8,), False, ValueError, "got 1 values"),
    ((0, 4), False, ValueError, r"positive integers, got \(0, 4\)"),
    (-3, True, ValueError, "got -3"),
])
def test_size_pair_refuses_with_the_argument_named(size, square_ok, error, match):
    with pytest.raises(error, match=match):
        checks.size_pair(size, "tile", square_ok=square_ok)


def test_per_image_broadcasts_one_value_or_one_per_image():
    like = torch.zeros(3, 1, 4, 5, dtype=torch.float64)
    one = checks.per_image(2.0, like, "K")
    assert one.shape == () and one.dtype == torch.float64
    each = checks.per_image(torch.tensor([1.0, 2.0, 3.0]), like, "K")
    assert each.shape == (3, 1, 1, 1) and torch.equal((like + each)[:, 0, 0, 0], each.flatten())
    assert checks.per_image(torch.tensor(4.0), torch.zeros(5), "f").shape == ()
    k = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    (checks.per_image(k, like.float(), "K") * 2).sum().backward()  # differentiable through
    assert torch.equal(k.grad, torch.full((3,), 2.0))


@pytest.mark.parametrize("value, error, match", [
    (True, TypeError, "K must be a float or a \\(B,\\) tensor, got bool"),
    ([1.0, 2.0], TypeError, "got list"),
    (torch.tensor([1.0, 2.0]), ValueError, r"B = 3, got shape \(2,\)"),
    (torch.ones(3, 1), ValueError, r"got shape \(3, 1\)"),
    (float("nan"), ValueError, "K must be finite"),
])
def test_per_image_refuses(value, error, match):
    with pytest.raises(error, match=match):
        checks.per_image(value, torch.zeros(3, 1, 2, 2), "K")


def test_depth_maps_messages():
    p = torch.rand(2, 1, 4, 4) + 0.5
    v = torch.ones_like(p, dtype=torch.bool)
    checks.depth_maps(p, p, v, target_positive=True, pred_finite=True)
    cases = [
        ((p.numpy(), p, v), {}, TypeError, "pred must be a torch.Tensor, got ndarray"),
        ((p.long(), p, v), {}, TypeError, "pred must be a floating-point"),
        ((p[0], p[0], v[0]), {}, ValueError, r"pred must have shape \(B,1,H,W\), got \(1, 4, 4\)"),
        ((p, p[..., :3], v), {}, ValueError, "does not match pred shape .*same shape"),
        ((p, p, v.float()), {}, TypeError, "valid must be a bool"),
        ((p, p, v[..., :3]), {}, ValueError, "valid shape"),
        ((p, -p, v), {"target_positive": True}, ValueError, "target must be finite and > 0"),
        ((p * float("inf"), p, v), {"pred_finite": True}, ValueError, "pred has NaN or infinite"),
    ]
    for args, kw, error, match in cases:
        with pytest.raises(error, match=match):
            checks.depth_maps(*args, **kw)
    checks.depth_maps(p, -p, v)  # the losses take any target; only the metrics need depth


def test_no_module_defines_its_own_copy_of_a_shared_check():
    """The checks the modules once wrote each for themselves are gone; no check-like helper is
    defined at the top level of two modules of lib."""
    where = defaultdict(list)
    for path in (REPO / "lib").rglob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef):
                where[node.name].append(path.relative_to(REPO).as_posix())
    for gone in ("_pair", "_size_pair", "_per_image", "_check", "_check_maps", "_check_size"):
        assert gone not in where, f"{gone} is defined again in {where[gone]}: use lib.checks"
    twice = {n: w for n, w in where.items()
             if re.match(r"_?(check|size|pair|per_image)", n) and len(w) > 1}
    assert not twice, f"check helpers defined in several modules: {twice}"
