"""Tests of lib.models: shapes, the size check, memory layout, gradients, parameter count and memory."""
from __future__ import annotations

import doctest
import math

import pytest
import torch
from torch import nn

import lib.models.depth_net as depth_net
from lib.models import DepthMaskNet, activation_memory, count_parameters, describe

W = 8  # tiny width keeps every test fast


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return DepthMaskNet(width=W)


def expected_parameters(w: int, coords: bool = False) -> int:
    """Parameter count written out from the architecture (not from the module):
    3x3 conv with bias: 9*cin*cout + cout; 1x1 / 3x3 conv without bias (followed by GroupNorm):
    k*k*cin*cout; GroupNorm: 2*c (weight and bias). The first block sees RGB (+ u, v)."""
    chans = [w, 2 * w, 4 * w, 8 * w]
    total = 0
    for c_in, c in zip([5 if coords else 3] + chans[:-1], chans):  # encoder blocks
        total += 2 * (9 * c_in * c + c)           # 3x3 conv and dilated 3x3 conv, with bias
        total += 2 * c * c + 2 * c                # 1x1 mix (no bias) + GroupNorm
        total += 9 * c * c + 2 * c                # stride-2 3x3 conv (no bias) + GroupNorm
    for c_in, c_skip, c_out in [(8 * w, 8 * w, 4 * w), (4 * w, 4 * w, 2 * w), (2 * w, 2 * w, w), (w, w, w)]:
        total += c_in * 4 * c_out + 4 * c_out      # 1x1 expand with bias (before pixel-shuffle)
        total += 9 * (c_out + c_skip) * c_out + 2 * c_out  # 3x3 fuse (no bias) + GroupNorm
    total += 2 * (9 * w + 1)                       # depth and mask heads
    return total


@pytest.mark.parametrize("shape", [(1, 16, 16), (2, 32, 48), (1, 64, 32)])
def test_output_shapes_and_positive_depth(model, shape):
    b, h, w = shape
    out = model(torch.rand(b, 3, h, w))
    assert set(out) == {"depth", "mask", "features"}
    assert out["depth"].shape == (b, 1, h, w) and out["mask"].shape == (b, 1, h, w)
    assert out["features"].shape == (b, 8 * W, h // 16, w // 16) == (b, model.feature_channels, h // 16, w // 16)
    assert out["depth"].dtype == torch.float32
    assert torch.isfinite(out["depth"]).all() and (out["depth"] > 0).all()
    assert torch.isfinite(out["mask"]).all()


def test_depth_starts_near_depth_init():
    torch.manual_seed(1)
    for d0 in (3.0, 7.0):
        depth = DepthMaskNet(width=W, depth_init=d0)(torch.rand(2, 3, 32, 32))["depth"]
        # head bias = log d0, small head weights: the initial prediction is a rough flat room at d0
        assert abs(depth.median().item() / d0 - 1) < 0.3


def test_bad_sizes_and_inputs_are_rejected(model):
    with pytest.raises(ValueError, match=r"30x45.*32x48"):
        model(torch.rand(1, 3, 30, 45))
    with pytest.raises(ValueError, match=r"multiples of 16.*8x8.*16x16|16x16"):
        model(torch.rand(1, 3, 8, 8))  # too small: the nearest valid size is 16x16
    with pytest.raises(ValueError, match=r"image\[None\]"):
        model(torch.rand(3, 32, 32))
    with pytest.raises(ValueError, match=r"\(B,3,H,W\)"):
        model(torch.rand(1, 1, 32, 32))
    with pytest.raises(TypeError, match="float"):
        model(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match="width"):
        DepthMaskNet(width=0)
    with pytest.raises(ValueError, match="depth_init"):
        DepthMaskNet(depth_init=0.0)


def test_coordinate_channels_hand_worked():
    c = depth_net._coordinates(torch.zeros(2, 7, 2, 3, dtype=torch.float64))
    assert c.shape == (2, 2, 2, 3) and c.dtype == torch.float64
    u = torch.tensor([[-1.0, 0.0, 1.0], [-1.0, 0.0, 1.0]], dtype=torch.float64)   # columns
    v = torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]], dtype=torch.float64)  # rows
    for b in range(2):
        torch.testing.assert_close(c[b, 0], u)
        torch.testing.assert_close(c[b, 1], v)


def test_coords_are_two_extra_input_channels_of_the_first_block():
    """With the u, v weights of the first convolutions zeroed, the coords model computes exactly
    what the plain model with the same RGB weights computes; with them, the output changes."""
    torch.manual_seed(0)
    with_xy, plain = DepthMaskNet(width=W, coords=True).eval(), DepthMaskNet(width=W, coords=False).eval()
    assert with_xy.encoder[0].local[0].in_channels == 5 and plain.encoder[0].local[0].in_channels == 3
    state = {k: (v[:, :3] if k in ("encoder.0.local.0.weight", "encoder.0.dilated.0.weight") else v)
             for k, v in with_xy.state_dict().items()}
    plain.load_state_dict(state)
    x = torch.rand(1, 3, 32, 32)
    assert not torch.allclose(with_xy(x)["depth"], plain(x)["depth"])
    with torch.no_grad():
        for conv in (with_xy.encoder[0].local[0], with_xy.encoder[0].dilated[0]):
            conv.weight[:, 3:] = 0
    for k in ("depth", "mask", "features"):
        torch.testing.assert_close(with_xy(x)[k], plain(x)[k])
    assert with_xy.config["coords"] is True and plain.config["coords"] is False


def test_channels_last_gives_the_same_output():
    torch.manual_seed(0)
    model = DepthMaskNet(width=W).eval()
    x = torch.rand(2, 3, 32, 48)
    ref = model(x)
    model_cl = model.to(memory_format=torch.channels_last)
    for inp in (x, x.contiguous(memory_format=torch.channels_last)):
        out = model_cl(inp)
        for k in ref:
            torch.testing.assert_close(out[k], ref[k], rtol=1e-4, atol=1e-5)
    assert model_cl.encoder[0].local[0].weight.is_contiguous(memory_format=torch.channels_last)


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    model = DepthMaskNet(width=W)
    out = model(torch.rand(2, 3, 32, 32))
    (out["depth"].log().mean() + out["mask"].sigmoid().mean()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"no gradient reaches {name}"


@pytest.mark.parametrize("w, coords", [(8, False), (32, False), (8, True)])
def test_parameter_count_matches_the_architecture(w, coords):
    model = DepthMaskNet(width=w, coords=coords)
    assert count_parameters(model) == expected_parameters(w, coords)
    # and the state dict (which holds exactly the parameters: no running statistics) agrees
    assert count_parameters(model) == sum(v.numel() for v in model.state_dict().values())


def test_count_parameters_counts_shared_once_and_trainable_only():
    lin = nn.Linear(4, 3)  # 12 + 3
    assert count_parameters(nn.Sequential(lin, lin)) == 15
    frozen = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))  # 15 + 8
    frozen[0].requires_grad_(False)
    assert count_parameters(frozen) == 23 and count_parameters(frozen, trainable_only=True) == 8


def test_activation_memory_hand_worked():
    # Conv2d saves its input (2*3*8*8 floats), ReLU its output (2*4*8*8 floats); weights are not counted.
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
    assert activation_memory(net, (2, 3, 8, 8)) == 4 * (2 * 3 * 64 + 2 * 4 * 64)
    assert activation_memory(net, (2, 3, 8, 8), device=None) == 4 * (2 * 3 * 64 + 2 * 4 * 64)
    # a tensor saved twice counts once: ReLU output is saved by ReLU and by the next conv
    net2 = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 1))
    assert activation_memory(net2, (2, 3, 8, 8)) == 4 * (2 * 3 * 64 + 2 * 4 * 64)


def test_activation_memory_scales_with_batch_and_side(model):
    m11 = activation_memory(model, (1, 3, 32, 32))
    m21 = activation_memory(model, (2, 3, 32, 32))
    m12 = activation_memory(model, (1, 3, 64, 64))
    assert m11 > 0
    assert 1.9 < m21 / m11 < 2.1   # linear in batch
    assert 3.8 < m12 / m11 < 4.2   # quadratic in side
    # the meta-device measurement equals the real one, and the model is left as it was
    model.eval()
    assert activation_memory(model, (1, 3, 32, 32), device=None) == m11
    assert not model.training and next(model.parameters()).device.type == "cpu"
    # lower bound worked by hand: at least the input image and, per encoder block, the
    # concatenated branches (2c channels) at full block resolution, in float32
    chans = [W, 2 * W, 4 * W, 8 * W]
    floor = 4 * (3 * 32 * 32 + sum(2 * c * (32 >> i) ** 2 for i, c in enumerate(chans)))
    assert m11 > floor


def test_describe_lists_layers_with_shapes(model):
    table = describe(model, (1, 3, 32, 32))
    lines = table.splitlines()
    assert lines[0].startswith("| layer | type | output shape | parameters |")
    row = next(line for line in lines if line.startswith("| encoder.3.down |"))
    assert f"(1, {8 * W}, 2, 2)" in row
    row = next(line for line in lines if line.startswith("| decoder.3.shuffle |"))
    assert f"(1, {W}, 32, 32)" in row  # pixel-shuffle doubles the side
    assert f"{count_parameters(model):,}" in lines[-1]
    # call order, parents before children
    names = [line.split("|")[1].strip() for line in lines[2:-1]]
    assert names.index("encoder.0") < names.index("encoder.0.local") < names.index("decoder.0") < names.index("depth_head")
    # depth=2: the 4 encoder blocks, 4 decoder blocks and 2 heads (a ModuleList is never called itself)
    assert len(describe(model, (1, 3, 32, 32), depth=2).splitlines()) == 2 + 4 + 4 + 2 + 1


def test_docstring_examples():
    failures, _ = doctest.testmod(depth_net, optionflags=doctest.ELLIPSIS)
    assert failures == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    torch.manual_seed(0)
    model = DepthMaskNet(width=W).eval()
    x = torch.rand(2, 3, 32, 32)
    ref = model(x)
    out = model.cuda()(x.cuda())
    for k in ref:
        torch.testing.assert_close(out[k].cpu(), ref[k], rtol=1e-3, atol=1e-4)
    assert math.isfinite(activation_memory(model, (2, 3, 32, 32), device=None))
