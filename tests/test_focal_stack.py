"""FocalStackNet: shapes, invariance to the order and multiplicity of slices, the slice code,
gradients, bad input."""
import pytest
import torch

from lib.models import FocalStackNet, slice_code


def _net(width=4, seed=0):
    torch.manual_seed(seed)
    net = FocalStackNet(width=width).eval()
    with torch.no_grad():                       # make the FiLM modulation strong, so that codes matter
        net.film[-1].weight.normal_(0, 0.5)
        net.film[-1].bias.normal_(0, 0.2)
    return net


def test_slice_code_by_hand():
    code = slice_code(torch.tensor([[0.5, 0.25, 0.8]]), torch.tensor([[20.0, 40.0, 0.0]]), code_scale=10.0)
    expected = torch.tensor([[[1.0, 2.0, 0.0], [1.0, 4.0, 0.0], [0.0, 0.0, 1.0]]])
    assert torch.allclose(code, expected)


@pytest.mark.parametrize("S", [1, 2, 3, 5])
def test_shapes_and_positive_depth_for_any_number_of_slices(S):
    net = _net()
    out = net(torch.rand(2, S, 3, 32, 48), torch.linspace(0.2, 0.5, S), K=25.0)
    assert out["depth"].shape == (2, 1, 32, 48)
    assert out["features"].shape == (2, 16 * 4, 2, 3)
    assert torch.isfinite(out["depth"]).all() and (out["depth"] > 0).all()


def test_initial_depth_is_depth_init():
    net = FocalStackNet(width=4, depth_init=2.5)
    with torch.no_grad():
        net.depth_head.weight.zero_()
    d = net(torch.rand(1, 2, 3, 16, 16), torch.tensor([0.3, 0.4]), 10.0)["depth"]
    assert torch.allclose(d, torch.full_like(d, 2.5))


def test_permutation_invariant_over_slices():
    net = _net()
    g = torch.Generator().manual_seed(1)
    stack = torch.rand(2, 4, 3, 32, 32, generator=g)
    fd = torch.rand(2, 4, generator=g) * 0.5
    K = torch.rand(2, 4, generator=g) * 40
    ref = net(stack, fd, K)["depth"]
    perm = torch.tensor([2, 0, 3, 1])
    out = net(stack[:, perm], fd[:, perm], K[:, perm])["depth"]
    assert torch.allclose(out, ref, rtol=1e-5, atol=1e-6)
    # ...but the code travels with its slice: permuting the codes alone changes the answer
    wrong = net(stack, fd[:, perm], K[:, perm])["depth"]
    assert (wrong - ref).abs().max() > 1e-4


def test_a_repeated_slice_adds_nothing():
    """Mean and max over {a, a} equal those over {a}: a stack of one slice twice is that slice."""
    net = _net()
    a = torch.rand(1, 1, 3, 32, 32)
    one = net(a, torch.tensor([0.3]), 20.0)["depth"]
    two = net(a.expand(-1, 2, -1, -1, -1), torch.tensor([0.3, 0.3]), 20.0)["depth"]
    assert torch.allclose(one, two, rtol=1e-5, atol=1e-6)


def test_images_of_a_batch_do_not_interact():
    net = _net()
    stack, fd = torch.rand(3, 2, 3, 16, 32), torch.rand(3, 2)
    batch = net(stack, fd, 15.0)["depth"]
    for i in range(3):
        alone = net(stack[i:i + 1], fd[i:i + 1], 15.0)["depth"]
        assert torch.allclose(batch[i:i + 1], alone, rtol=1e-5, atol=1e-6)


def test_all_in_focus_slice_ignores_its_focus_distance_but_a_blurred_one_does_not():
    net = _net()
    x = torch.rand(1, 1, 3, 32, 32)
    pin_a = net(x, 0.1, K=0.0)["depth"]
    pin_b = net(x, 0.7, K=0.0)["depth"]
    assert torch.equal(pin_a, pin_b)
    lens_a = net(x, 0.1, K=30.0)["depth"]
    lens_b = net(x, 0.7, K=30.0)["depth"]
    assert (lens_a - lens_b).abs().max() > 1e-4


def test_focus_and_K_accept_float_per_slice_per_image_and_full_forms():
    net = _net()
    stack = torch.rand(2, 3, 3, 16, 16)
    full = net(stack, torch.tensor([[0.2, 0.3, 0.4]] * 2), torch.full((2, 3), 12.0))["depth"]
    assert torch.allclose(net(stack, torch.tensor([0.2, 0.3, 0.4]), 12.0)["depth"], full)
    assert torch.allclose(net(stack, torch.tensor([0.2, 0.3, 0.4]), torch.tensor([12.0, 12.0]))["depth"], full)


def test_gradients_are_finite_for_weights_and_stack():
    net = _net().train()
    stack = torch.rand(2, 3, 3, 32, 32, requires_grad=True)
    out = net(stack, torch.tensor([0.2, 0.3, 0.45]), torch.tensor([0.0, 30.0, 30.0]))["depth"]
    torch.log(out).mean().backward()
    assert stack.grad is not None and torch.isfinite(stack.grad).all() and stack.grad.abs().sum() > 0
    grads = [p.grad for p in net.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert net.film[0].weight.grad.abs().sum() > 0          # the code reaches the loss


def test_rebuilds_from_its_config():
    net = _net()
    twin = FocalStackNet(**net.config)
    twin.load_state_dict(net.state_dict())
    x = torch.rand(1, 2, 3, 16, 16)
    assert torch.equal(twin.eval()(x, torch.tensor([0.2, 0.4]), 10.0)["depth"], net(x, torch.tensor([0.2, 0.4]), 10.0)["depth"])


def test_bad_input_is_rejected():
    net = _net()
    with pytest.raises(ValueError, match=r"\(B,S,3,H,W\).*stack of one slice"):
        net(torch.rand(1, 3, 32, 32), 0.3, 10.0)
    with pytest.raises(ValueError, match=r"\(B,S,3,H,W\)"):
        net(torch.rand(1, 2, 4, 32, 32), 0.3, 10.0)
    with pytest.raises(ValueError, match="multiples of 16"):
        net(torch.rand(1, 2, 3, 30, 32), 0.3, 10.0)
    with pytest.raises(TypeError, match="float"):
        net(torch.zeros(1, 2, 3, 32, 32, dtype=torch.uint8), 0.3, 10.0)
    with pytest.raises(ValueError, match="K must be >= 0"):
        net(torch.rand(1, 2, 3, 32, 32), 0.3, -1.0)
    with pytest.raises(ValueError, match="focus_disparity must be"):
        net(torch.rand(1, 2, 3, 32, 32), torch.tensor([0.1, 0.2, 0.3]), 10.0)
    with pytest.raises(ValueError, match="finite"):
        net(torch.rand(1, 2, 3, 32, 32), torch.tensor([0.1, float("nan")]), 10.0)
    with pytest.raises(ValueError, match="at least one"):
        net(torch.rand(1, 0, 3, 32, 32), torch.zeros(0), 10.0)
    with pytest.raises(ValueError, match="width"):
        FocalStackNet(width=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    net = _net()
    x, fd = torch.rand(1, 2, 3, 32, 32), torch.tensor([0.2, 0.4])
    ref = net(x, fd, 20.0)["depth"]
    out = net.cuda()(x.cuda(), fd.cuda(), 20.0)["depth"].cpu()
    assert torch.allclose(out, ref, rtol=1e-3, atol=1e-4)
