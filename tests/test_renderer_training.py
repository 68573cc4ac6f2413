"""lib.train.renderer (the batches and the resumable loop of chapter 11), the bokeh zoo entries
and lib.metrics.psnr_per_image."""
import math

import pytest
import torch

from lib import metrics, models, zoo
from lib.train import renderer
from lib.train.renderer import _lr_factor, fit_renderer, renderer_batch


def _pairs(n=5, h=24, w=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"image": torch.rand(n, 3, h, w, generator=g), "target": torch.rand(n, 3, h, w, generator=g),
            "disparity": torch.rand(n, 1, h, w, generator=g) + 0.2,
            "focus_disparity": torch.rand(n, generator=g) + 0.2, "K": torch.rand(n, generator=g) * 8}


def test_a_batch_is_a_window_of_its_pairs_with_its_own_condition():
    pairs = _pairs()
    seen_flip = set()
    for step in range(12):
        cond, target = renderer_batch(pairs, step, batch_size=3, crop=16, seed=7)
        c2, t2 = renderer_batch(pairs, step, batch_size=3, crop=16, seed=7)
        assert torch.equal(cond, c2) and torch.equal(target, t2)        # reproducible per step
        image = cond[:, :3] + 0.5
        for b in range(3):
            # find the pair, window and flip this item came from, by brute force
            hits = []
            for i in range(5):
                for flip in (False, True):
                    src = pairs["target"][i].flip(-1) if flip else pairs["target"][i]
                    for y in range(24 - 16 + 1):
                        for x in range(32 - 16 + 1):
                            if torch.equal(src[:, y:y + 16, x:x + 16], target[b]):
                                hits.append((i, flip, y, x))
            assert len(hits) == 1
            i, flip, y, x = hits[0]
            seen_flip.add(flip)
            img = pairs["image"][i].flip(-1) if flip else pairs["image"][i]
            disp = pairs["disparity"][i].flip(-1) if flip else pairs["disparity"][i]
            assert torch.allclose(image[b], img[:, y:y + 16, x:x + 16], atol=1e-6)
            want = models.bokeh_condition(img[None, :, y:y + 16, x:x + 16], disp[None, :, y:y + 16, x:x + 16],
                                          pairs["focus_disparity"][i:i + 1], pairs["K"][i:i + 1])
            assert torch.allclose(cond[b:b + 1], want, atol=1e-6)
    assert seen_flip == {False, True}
    a = renderer_batch(pairs, 0, 3, 16, seed=7)[1]
    assert not torch.equal(a, renderer_batch(pairs, 1, 3, 16, seed=7)[1])
    assert not torch.equal(a, renderer_batch(pairs, 0, 3, 16, seed=8)[1])


def test_batches_reject_bad_input():
    with pytest.raises(ValueError, match="crop must be in 1..24"):
        renderer_batch(_pairs(), 0, 2, 25)
    with pytest.raises(KeyError, match="K"):
        renderer_batch({k: v for k, v in _pairs().items() if k != "K"}, 0, 2, 8)


def test_the_learning_rate_is_constant_then_decays_linearly_to_zero():
    assert [_lr_factor(s, 8) for s in range(9)] == [1, 1, 1, 1, 1, 0.75, 0.5, 0.25, 0]


def _tiny(kind):
    torch.manual_seed(0)
    if kind == "gan":
        return models.Pix2Pix(width=4, depth=2, critic_width=4, critic_layers=1)
    return models.ConditionalVAE(width=4, depth=2, latent_channels=2)


@pytest.mark.parametrize("kind", ["gan", "vae"])
def test_a_stopped_run_resumes_to_the_same_weights(kind, tmp_path, monkeypatch):
    pairs = _pairs(h=32, w=32)
    kw = dict(steps=6, batch_size=2, crop=16, checkpoint_every=2, log_every=2, progress=False)
    straight = _tiny(kind)
    log = fit_renderer(straight, pairs, kind, checkpoint=tmp_path / "a.pt", **kw)
    assert [r["step"] for r in log] == [2, 4, 6]
    keys = {"gan": {"d", "adv", "l1", "g", "d_real", "d_fake"}, "vae": {"total", "recon", "kl", "l1"}}
    assert set(log[0]) == {"step"} | keys[kind]
    real = renderer.renderer_batch

    def stop_at_step_5(pairs, step, *a, **k):
        if step == 5:
            raise KeyboardInterrupt
        return real(pairs, step, *a, **k)

    monkeypatch.setattr(renderer, "renderer_batch", stop_at_step_5)
    stopped = _tiny(kind)
    with pytest.raises(KeyboardInterrupt):
        fit_renderer(stopped, pairs, kind, checkpoint=tmp_path / "b.pt", **kw)
    assert torch.load(tmp_path / "b.pt", weights_only=True)["step"] == 4
    monkeypatch.setattr(renderer, "renderer_batch", real)
    resumed = _tiny(kind)
    log2 = fit_renderer(resumed, pairs, kind, checkpoint=tmp_path / "b.pt", **kw)
    assert log2 == log
    for (k, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k
    with pytest.raises(ValueError, match="multiple of log_every"):
        fit_renderer(_tiny(kind), pairs, kind, steps=2, checkpoint_every=3, log_every=2, progress=False,
                     checkpoint=tmp_path / "c.pt")
    with pytest.raises(ValueError, match="kind must be one of"):
        fit_renderer(_tiny(kind), pairs, "diffusion", steps=2, progress=False)


def test_gan_step_reports_the_critic_probabilities_before_its_update():
    torch.manual_seed(0)
    m = _tiny("gan")
    cond, real = renderer_batch(_pairs(h=32, w=32), 0, 2, 16)
    with torch.no_grad():
        p_real = torch.sigmoid(m.critic(cond, real)).mean().item()
        p_fake = torch.sigmoid(m.critic(cond, m.generator(cond))).mean().item()
    opts = [torch.optim.Adam(x.parameters(), 1e-2) for x in (m.generator, m.critic)]
    row = models.gan_step(m.generator, m.critic, *opts, cond, real)
    assert row["d_real"] == pytest.approx(p_real, abs=1e-6)
    assert row["d_fake"] == pytest.approx(p_fake, abs=1e-6)
    sp = lambda x: math.log1p(math.exp(x))                     # noqa: E731 - softplus
    assert 0 < row["d"] < 2 * sp(10)


def test_psnr_per_image_by_hand_with_and_without_a_mask():
    a = torch.zeros(2, 3, 2, 2)
    b = a.clone()
    b[0] += 0.1                                          # MSE 0.01: 20 dB
    b[1, :, 0, 0] = 0.5                                  # MSE over 4 pixels: 0.25 / 4
    out = metrics.psnr_per_image(a, b)
    assert out[0].item() == pytest.approx(20.0) and out[1].item() == pytest.approx(10 * math.log10(16))
    mask = torch.zeros(2, 1, 2, 2, dtype=torch.bool)
    mask[:, :, 0, 0] = True
    masked = metrics.psnr_per_image(a, b, mask)
    assert masked[1].item() == pytest.approx(10 * math.log10(4))     # only the bad pixel
    mask[0] = False
    assert math.isnan(metrics.psnr_per_image(a, b, mask)[0].item())
    assert metrics.psnr_per_image(a * 255, b * 255, peak=255.0)[0].item() == pytest.approx(20.0, abs=1e-4)
    with pytest.raises(ValueError, match="one shape"):
        metrics.psnr_per_image(a, b[:, :2])
    with pytest.raises(ValueError, match="bool"):
        metrics.psnr_per_image(a, b, mask.float())


@pytest.fixture
def tiny_bokeh(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "data"))
    for kind in ("gan", "vae"):
        base = zoo.ENTRIES[f"bokeh_{kind}"]
        recipe = zoo.BokehRecipe(kind=kind, size=(32, 32), n_train=6, n_test=3, samples=2,
                                 max_blur=(2.0, 4.0), width=4, depth=2, critic_width=4,
                                 critic_layers=1, latent=2, crop=16, batch_size=2, steps=4,
                                 log_every=2)
        monkeypatch.setitem(zoo.ENTRIES, f"tiny_{kind}", zoo.Entry(
            name=f"tiny_{kind}", description="test", recipe=recipe, build=base.build,
            train=base.train, evaluate=base.evaluate, data="test", tolerance=base.tolerance))
    return tmp_path


@pytest.mark.slow
def test_bokeh_entries_train_load_and_verify(tiny_bokeh):
    gan = zoo.train("tiny_gan", device="cpu", progress=False)
    vae = zoo.train("tiny_vae", device="cpu", progress=False)
    assert [r["step"] for r in gan["curve"]] == [2, 4] and "d_real" in gan["curve"][0]
    assert {"test_d_real", "test_d_fake", "test_critic_loss"} <= set(gan["metrics"])
    assert "test_kl" in vae["metrics"] and vae["metrics"]["test_kl"] >= 0
    # the input's PSNR on the card, by hand from the test pairs
    recipe = zoo.ENTRIES["tiny_gan"].recipe
    p = zoo.bokeh_pairs(recipe, "test", 3)
    mse = ((p["image"] - p["target"]) ** 2).flatten(1).mean(1)
    assert gan["metrics"]["test_psnr_input"] == pytest.approx(float((10 * torch.log10(1 / mse)).mean()),
                                                              abs=1e-4)
    assert vae["metrics"]["test_psnr_layered"] == gan["metrics"]["test_psnr_layered"]
    model = zoo.load("tiny_gan", "cpu")
    assert isinstance(model, models.Pix2Pix) and not model.training
    assert isinstance(zoo.load("tiny_vae", "cpu"), models.ConditionalVAE)
    assert zoo.verify(["tiny_gan", "tiny_vae"], log=lambda *a: None)
