"""Tests of the learned depth-of-field models (lib.models.gan, lib.models.vae) and their training
pairs (lib.data.bokeh_pairs): shapes and gradients, the PatchGAN receptive field worked by hand and
checked by perturbing single pixels, the VAE's KL against torch.distributions and Monte Carlo,
training steps that lower the loss, and bad input."""
from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
import torch
from torch.distributions import Normal

import lib.data.bokeh_pairs as bokeh_pairs
import lib.models.gan as gan
import lib.models.vae as vae
from lib.bokeh import coc_radius
from lib.data import BokehPairs
from lib.models import (ConditionalVAE, PatchCritic, UNetGenerator, bokeh_condition, critic_loss, gan_step,
                        generator_loss, kl_divergence, vae_loss)


def make_cond(B=2, H=32, W=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(B, 3, H, W, generator=g)
    disparity = torch.rand(B, 1, H, W, generator=g) * 0.8 + 0.1
    return image, disparity, bokeh_condition(image, disparity, torch.tensor([0.3, 0.6])[:B], torch.tensor([4.0, 9.0])[:B])


def test_doctests():
    for module in (gan, vae, bokeh_pairs):
        assert doctest.testmod(module).failed == 0, module.__name__


# ----------------------------------------------------------------------------- the condition


def test_condition_channels_hand_values_and_coc_matches_lib_bokeh():
    image, disparity, _ = make_cond()
    fd, K = torch.tensor([0.3, 0.6]), torch.tensor([4.0, 9.0])
    c = bokeh_condition(image, disparity, fd, K, scale=8.0)
    assert c.shape == (2, 7, 32, 32)
    assert torch.equal(c[:, :3] + 0.5, image) and torch.equal(c[:, 3:4], disparity)
    assert torch.allclose(c[1, 4], torch.full((32, 32), 0.6)) and torch.allclose(c[1, 5], torch.full((32, 32), 9 / 8))
    assert torch.allclose(c[:, 6:7], coc_radius(disparity, fd, K) / 8.0, atol=1e-6)
    # one hand value: disparity 0.5, focus 0.25, K 8 -> CoC 2 px -> 0.25 after dividing by 8
    one = bokeh_condition(torch.zeros(1, 3, 2, 2), torch.full((1, 1, 2, 2), 0.5), 0.25, 8.0)
    assert one[0, :, 1, 1].tolist() == [-0.5, -0.5, -0.5, 0.5, 0.25, 1.0, 0.25]


@pytest.mark.parametrize("args, match", [
    ((torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8), 0.5, 1.0), "image must be"),
    ((torch.rand(1, 3, 8, 8), torch.rand(1, 2, 8, 8), 0.5, 1.0), "disparity must be"),
    ((torch.rand(1, 3, 8, 8), torch.rand(1, 1, 8, 4), 0.5, 1.0), "do not match"),
    ((torch.rand(2, 3, 8, 8), torch.rand(1, 1, 8, 8), 0.5, 1.0), "do not match"),
    ((torch.rand(1, 3, 8, 8), torch.full((1, 1, 8, 8), float("nan")), 0.5, 1.0), "finite"),
    ((torch.rand(1, 3, 8, 8), torch.rand(1, 1, 8, 8), 0.5, -1.0), "K must be >= 0"),
    ((torch.rand(2, 3, 8, 8), torch.rand(2, 1, 8, 8), 0.5, torch.ones(3)), "K must be"),
    ((torch.rand(1, 3, 8, 8), torch.rand(1, 1, 8, 8), float("inf"), 1.0), "focus_disparity must be finite"),
    ((torch.randint(0, 255, (1, 3, 8, 8)), torch.rand(1, 1, 8, 8), 0.5, 1.0), "floating point"),
])
def test_condition_rejects_bad_input(args, match):
    with pytest.raises((ValueError, TypeError), match=match):
        bokeh_condition(*args)


# ----------------------------------------------------------------------------- generator


def test_generator_shapes_range_and_identity_at_initialisation():
    image, _, cond = make_cond()
    g = UNetGenerator(width=4, depth=3)
    out = g(cond)
    assert out.shape == (2, 3, 32, 32) and out.dtype == torch.float32
    # the head starts at zero: the untrained generator returns the all-in-focus image
    assert torch.allclose(out, image, atol=1e-6)


def test_generator_gradients_reach_every_parameter_and_the_input():
    _, _, cond = make_cond()
    cond.requires_grad_(True)
    g = UNetGenerator(width=4, depth=2)
    torch.nn.init.normal_(g.head.weight, std=0.1)                  # leave the identity start
    (g(cond) * torch.randn(2, 3, 32, 32)).sum().backward()
    for name, p in g.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    assert torch.isfinite(cond.grad).all() and cond.grad[:, 3:].abs().sum() > 0   # depth channels are used


def test_generator_rejects_bad_input():
    g = UNetGenerator(width=4, depth=3)
    with pytest.raises(ValueError, match="condition must be"):
        g(torch.rand(1, 6, 32, 32))
    with pytest.raises(ValueError, match="multiples of 2\\*\\*depth = 8"):
        g(torch.rand(1, 7, 36, 32))
    with pytest.raises(ValueError, match="takes no z"):
        g(torch.rand(1, 7, 32, 32), torch.rand(1, 2, 4, 4))
    with pytest.raises(ValueError, match="width"):
        UNetGenerator(width=0)


# ----------------------------------------------------------------------------- critic


@pytest.mark.parametrize("layers, size", [(1, 16), (2, 34), (3, 70)])
def test_patch_receptive_field_by_hand(layers, size):
    # 4x4 convs, strides 2 (x layers), 1, 1, padding 1. Backwards from one logit: r <- (r - 1) s + k.
    r = 1
    for s in [1, 1] + [2] * layers:
        r = (r - 1) * s + 4
    assert r == size                                           # layers = 3 is pix2pix's "70x70 PatchGAN"
    pad = sum(2 ** min(i, layers) for i in range(layers + 2))  # padding 1 times the jump before each conv
    assert PatchCritic(width=2, layers=layers).receptive_field() == (size, 2 ** layers, pad)


@pytest.mark.parametrize("layers", [1, 2])
def test_patch_receptive_field_by_perturbing_one_pixel(layers):
    torch.manual_seed(layers)
    critic = PatchCritic(width=4, layers=layers, norm="none").double().eval()
    size, stride, pad = critic.receptive_field()
    H = W = 48
    cond, img = torch.rand(1, 7, H, W, dtype=torch.float64), torch.rand(1, 3, H, W, dtype=torch.float64)
    with torch.no_grad():
        base = critic(cond, img)
        h, w = base.shape[-2:]
        for y, x in [(0, 0), (20, 31), (47, 5), (24, 24)]:
            bumped = img.clone()
            bumped[0, 1, y, x] += 1.0
            changed = (critic(cond, bumped) - base).abs()[0, 0] > 0
            # logit (i, j) sees rows i*stride - pad ... i*stride - pad + size - 1, likewise columns
            rows = torch.tensor([i * stride - pad <= y <= i * stride - pad + size - 1 for i in range(h)])
            cols = torch.tensor([j * stride - pad <= x <= j * stride - pad + size - 1 for j in range(w)])
            expected = rows[:, None] & cols[None, :]
            assert expected.any()
            assert torch.equal(changed, expected), (y, x)


def test_critic_shapes_gradients_and_bad_input():
    _, _, cond = make_cond()
    fake = torch.rand(2, 3, 32, 32, requires_grad=True)
    critic = PatchCritic(width=4, layers=2)
    logits = critic(cond, fake)
    assert logits.shape == (2, 1, 6, 6)                        # 32 -> 16 -> 8 -> 7 -> 6
    logits.sum().backward()
    for name, p in critic.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    assert fake.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="expected cond"):
        critic(cond, torch.rand(2, 3, 16, 16))
    with pytest.raises(ValueError, match="expected cond"):
        critic(cond[:, :6], fake)
    with pytest.raises(ValueError, match="too small"):
        PatchCritic(width=2, layers=3)(torch.rand(1, 7, 16, 16), torch.rand(1, 3, 16, 16))


def test_gan_losses_by_hand():
    class Constant(torch.nn.Module):           # a "critic" that answers logit c everywhere
        def __init__(self, c):
            super().__init__()
            self.c = c

        def forward(self, cond, image):
            return torch.full((image.shape[0], 1, 3, 3), self.c) + 0 * image.sum()

    cond, real = torch.rand(1, 7, 8, 8), torch.zeros(1, 3, 8, 8)
    fake = torch.full((1, 3, 8, 8), 0.25)
    c = 0.7
    sp = lambda t: math.log1p(math.exp(t))      # noqa: E731   softplus: BCE(logit t, 1) = sp(-t), BCE(t, 0) = sp(t)
    assert math.isclose(float(critic_loss(Constant(c), cond, fake, real)), 0.5 * (sp(-c) + sp(c)), rel_tol=1e-6)
    out = generator_loss(Constant(c), cond, fake, real, l1_weight=100.0)
    # pix2pix's L1 is on images in [-1, 1]: |(2 * 0.25 - 1) - (2 * 0 - 1)| = 0.5
    assert math.isclose(float(out["l1"]), 0.5, rel_tol=1e-6) and math.isclose(float(out["adv"]), sp(-c), rel_tol=1e-6)
    assert math.isclose(float(out["total"]), sp(-c) + 50.0, rel_tol=1e-6)
    assert float(generator_loss(None, cond, fake, real)["adv"]) == 0.0
    with pytest.raises(ValueError, match="differ in shape"):
        generator_loss(None, cond, fake, real[..., :4])


def test_gan_step_lowers_the_l1_on_a_fixed_batch_and_leaves_the_critic_to_its_own_step():
    torch.manual_seed(0)
    image, disparity, cond = make_cond(B=2, H=16, W=16)
    # a target the generator can learn: a 3x3 box blur of the image
    real = torch.nn.functional.avg_pool2d(image, 3, stride=1, padding=1, count_include_pad=False)
    g, d = UNetGenerator(width=4, depth=2), PatchCritic(width=4, layers=1)
    opt_g = torch.optim.Adam(g.parameters(), 5e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), 2e-4, betas=(0.5, 0.999))
    with torch.no_grad():
        before = (g(cond) - real).abs().mean().item()
    first = None
    for _ in range(40):
        r = gan_step(g, d, opt_g, opt_d, cond, real)
        first = first or r
        assert all(math.isfinite(v) for v in r.values())
    with torch.no_grad():
        after = (g(cond) - real).abs().mean().item()
    assert math.isclose(first["l1"], 2 * before, rel_tol=1e-5)      # measured in [-1, 1]
    assert after < 0.8 * before
    assert all(p.requires_grad for p in d.parameters())


# ----------------------------------------------------------------------------- VAE


def test_kl_closed_form_against_torch_distributions_and_monte_carlo():
    g = torch.Generator().manual_seed(3)
    mu, logvar = torch.randn(3, 2, 2, 2, generator=g), torch.randn(3, 2, 2, 2, generator=g) * 0.5
    kl = kl_divergence(mu, logvar)
    assert kl.shape == (3,)
    q, p = Normal(mu, torch.exp(0.5 * logvar)), Normal(torch.zeros_like(mu), torch.ones_like(mu))
    ref = torch.distributions.kl_divergence(q, p).flatten(1).sum(1)
    assert torch.allclose(kl, ref, rtol=1e-5, atol=1e-6)
    # Monte Carlo: KL = E_q[log q(z) - log p(z)], 200k draws
    z = q.sample((200_000,))
    mc = (q.log_prob(z) - p.log_prob(z)).flatten(2).sum(2).mean(0)
    assert torch.allclose(kl, mc, rtol=0.03, atol=0.02)
    # by hand: mu = 1, var = e (logvar = 1): 1/2 (1 + e - 1 - 1) per entry
    assert math.isclose(float(kl_divergence(torch.ones(1, 4), torch.ones(1, 4))), 4 * 0.5 * (math.e - 1), rel_tol=1e-6)
    assert float(kl_divergence(torch.zeros(2, 5), torch.zeros(2, 5)).abs().max()) == 0.0


def test_vae_loss_by_hand_and_bad_input():
    out, target = torch.full((2, 3, 4, 4), 0.5), torch.full((2, 3, 4, 4), 0.4)
    mu, logvar = torch.ones(2, 1, 2, 2), torch.zeros(2, 1, 2, 2)
    loss = vae_loss(out, target, mu, logvar, sigma=0.1, beta=2.0)
    assert math.isclose(float(loss["recon"]), 0.01 / (2 * 0.01), rel_tol=1e-5)    # 0.1^2 / (2 sigma^2)
    assert math.isclose(float(loss["kl"]), 4 * 0.5 / 48, rel_tol=1e-5)            # KL 2 nats over D = 48 values
    assert math.isclose(float(loss["total"]), 0.5 + 2.0 * 2 / 48, rel_tol=1e-5)
    with pytest.raises(ValueError, match="sigma"):
        vae_loss(out, target, mu, logvar, sigma=0.0)
    with pytest.raises(ValueError, match="differ in shape"):
        vae_loss(out, target[:1], mu, logvar)
    with pytest.raises(ValueError, match="same shape"):
        kl_divergence(mu, logvar[:1])


def test_vae_shapes_gradients_inference_and_bad_input():
    _, _, cond = make_cond(B=2, H=16, W=16)
    target = torch.rand(2, 3, 16, 16)
    m = ConditionalVAE(width=4, depth=2, latent_channels=3)
    out, mu, logvar = m(cond, target)
    assert out.shape == (2, 3, 16, 16) and mu.shape == logvar.shape == (2, 3, 4, 4)
    assert kl_divergence(mu, logvar).abs().max().item() == 0.0      # q starts at the prior
    torch.nn.init.normal_(m.decoder.head.weight, std=0.1)
    torch.nn.init.normal_(m.to_stats.weight, std=0.1)
    out, mu, logvar = m(cond, target)
    vae_loss(out, target, mu, logvar)["total"].backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    with torch.no_grad():
        assert m(cond).shape == (2, 3, 16, 16)
        a = m.sample(cond, torch.Generator().manual_seed(1))
        assert torch.equal(a, m.sample(cond, torch.Generator().manual_seed(1)))
    with pytest.raises(ValueError, match="target must be"):
        m(cond, target[..., :8])
    with pytest.raises(ValueError, match="z must be"):
        m.decoder(cond, torch.zeros(2, 3, 2, 2))
    with pytest.raises(ValueError, match="latent_channels"):
        ConditionalVAE(latent_channels=0)


def test_vae_training_lowers_the_negative_elbo_on_a_fixed_batch():
    torch.manual_seed(0)
    image, _, cond = make_cond(B=2, H=16, W=16)
    target = torch.nn.functional.avg_pool2d(image, 3, stride=1, padding=1, count_include_pad=False)
    m = ConditionalVAE(width=4, depth=2, latent_channels=2)
    opt = torch.optim.Adam(m.parameters(), 5e-3)

    def loss_at(seed):
        torch.manual_seed(seed)                         # the same reparameterisation noise each time
        out, mu, logvar = m(cond, target)
        return vae_loss(out, target, mu, logvar, sigma=0.1)["total"]

    with torch.no_grad():
        before = loss_at(123).item()
    for step in range(40):
        loss = loss_at(step)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = loss_at(123).item()
    assert math.isfinite(after) and after < 0.6 * before


# ----------------------------------------------------------------------------- the pairs


def test_pairs_fields_lens_draw_and_determinism():
    ds = BokehPairs(3, size=(16, 24), split="val", samples=2, max_blur=(2.0, 3.0), cache=False)
    again = BokehPairs(3, size=(16, 24), split="val", samples=2, max_blur=(2.0, 3.0), cache=False)
    for i in range(3):
        a, b = ds[i], again[i]
        assert a["image"].shape == a["target"].shape == (3, 16, 24) and a["disparity"].shape == (1, 16, 24)
        assert torch.equal(a["target"], b["target"]) and float(a["K"]) == float(b["K"])
        assert torch.allclose(a["disparity"], 1 / a["depth"])
        # focus on one of the image's own disparities; the largest CoC inside max_blur
        assert (a["disparity"] - a["focus_disparity"]).abs().min() < 1e-6
        R = float((a["K"] * (a["disparity"] - a["focus_disparity"])).abs().max())
        assert 2.0 - 1e-3 <= R <= 3.0 + 1e-3
    assert ds[-1]["name"] == "bokeh/val/000002"
    with pytest.raises(IndexError):
        ds[3]


@pytest.mark.parametrize("target", ["thin_lens", "layered"])
def test_pairs_with_zero_aperture_are_the_pinhole_image(target):
    ds = BokehPairs(2, size=(16, 16), split="test", samples=3, max_blur=(0.0, 0.0), target=target, cache=False)
    for i in range(2):
        item = ds[i]
        assert float(item["K"]) == 0.0
        assert (item["target"] - item["image"]).abs().max() <= 1 / 255 + 1e-6


def test_pairs_cache_gives_the_same_items():
    kw = dict(size=(16, 16), split="train", seed=5, samples=2, max_blur=(1.0, 2.0))
    cached, fresh = BokehPairs(2, progress=False, **kw), BokehPairs(2, cache=False, **kw)
    for i in range(2):
        a, b = cached[i], fresh[i]
        for k in ("image", "target", "disparity", "focus_disparity", "K"):
            assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("kwargs, match", [
    (dict(n=-1), "n must be"), (dict(target="magic"), "target must be"), (dict(samples=0), "samples"),
    (dict(max_blur=(3.0, 1.0)), "max_blur"), (dict(max_blur=5), "max_blur"), (dict(split="dev"), "split"),
    (dict(size=(0, 8)), "size"),
])
def test_pairs_reject_bad_arguments(kwargs, match):
    args = dict(n=2, size=(8, 8), cache=False) | kwargs
    with pytest.raises(ValueError, match=match):
        BokehPairs(**args)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    _, _, cond = make_cond()
    g, d = UNetGenerator(width=4, depth=2), PatchCritic(width=4, layers=2)
    torch.nn.init.normal_(g.head.weight, std=0.1)
    with torch.no_grad():
        out = g(cond)
        assert torch.allclose(g.cuda()(cond.cuda()).cpu(), out, atol=1e-4)
        assert torch.allclose(d.cuda()(cond.cuda(), out.cuda()).cpu(), d.cpu()(cond, out), atol=1e-4)
    assert np.isfinite(out.numpy()).all()
