"""Teacher-student parts (chapter 07): CutMix, the pseudo-label loss, strong perturbation, feature alignment.

Values are checked against straightforward loop/numpy implementations written here."""
from __future__ import annotations

import doctest

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

import lib.cutmix
import lib.pseudo_label_loss
import lib.strong_perturbation
from lib.cutmix import cutmix, cutmix_boxes
from lib.losses import feature_alignment_loss
from lib.pseudo_label_loss import (
    affine_invariant_residual,
    cutmix_pseudo_label_loss,
    ignore_top,
    pseudo_label_loss,
)
from lib.strong_perturbation import strong_perturbation


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------- CutMix boxes
def test_cutmix_box_area_is_uniform_in_its_range_with_exact_area():
    H, W, lo, hi = 64, 64, 0.02, 0.4
    box = cutmix_boxes(3000, (H, W), p=1.0, area=(lo, hi), exact_area=True, generator=gen(1))
    frac = box.float().mean((1, 2, 3)).numpy()
    # rounding the sides to whole pixels moves each area by at most ~ (h + w) / 2 pixels
    assert frac.min() > lo - 0.01 and frac.max() < hi + 0.015
    assert abs(frac.mean() - (lo + hi) / 2) < 0.01
    ks = stats.kstest(frac, stats.uniform(loc=lo, scale=hi - lo).cdf)
    assert ks.statistic < 0.04, ks


def test_cutmix_boxes_are_rectangles_inside_the_image_with_the_asked_aspect():
    H, W = 32, 48
    box = torch.cat([cutmix_boxes(250, (H, W), p=1.0, aspect=(0.5, 2.0), generator=gen(2)),
                     cutmix_boxes(250, (H, W), p=1.0, aspect=(0.5, 2.0), exact_area=True,
                                  generator=gen(2))])[:, 0]
    ratios = []
    for m in box:
        rows = m.any(1).nonzero().flatten()
        cols = m.any(0).nonzero().flatten()
        h, w = len(rows), len(cols)
        assert rows.max() - rows.min() + 1 == h and cols.max() - cols.min() + 1 == w  # contiguous
        assert int(m.sum()) == h * w                                                  # a full rectangle
        ratios.append(h / w)
    ratios = np.array(ratios)
    # sides are rounded to pixels, so allow a little slack around [0.5, 2]
    assert ratios.min() > 0.4 and ratios.max() < 2.5
    assert (ratios < 1).mean() > 0.3 and (ratios > 1).mean() > 0.3                  # both orientations


def test_cutmix_box_probability_and_reproducibility():
    box = cutmix_boxes(2000, (16, 16), p=0.3, generator=gen(3))
    has = box.flatten(1).any(1).float().mean().item()
    assert abs(has - 0.3) < 0.04                                  # binomial sd ~ 0.01
    assert not cutmix_boxes(50, (16, 16), p=0.0, generator=gen(3)).any()
    assert torch.equal(cutmix_boxes(8, (16, 16), generator=gen(4)), cutmix_boxes(8, (16, 16), generator=gen(4)))
    assert not torch.equal(cutmix_boxes(8, (16, 16), generator=gen(4)), cutmix_boxes(8, (16, 16), generator=gen(5)))


@pytest.mark.parametrize("kwargs, match", [
    ({"p": 1.5}, "probability"), ({"area": (0.0, 0.4)}, "area"), ({"area": (0.5, 0.2)}, "area"),
    ({"area": (0.1, 1.2)}, "area"), ({"aspect": (2.0, 3.0)}, "aspect"),
])
def test_cutmix_boxes_rejects_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        cutmix_boxes(2, (16, 16), **kwargs)
    with pytest.raises(ValueError, match="size"):
        cutmix_boxes(2, (16, 0))


# --------------------------------------------------------------------------- mixing
def test_cutmix_takes_b_inside_the_box_and_a_outside_for_every_map():
    g = gen(6)
    a = {"image": torch.rand(4, 3, 16, 16, generator=g), "depth": torch.rand(4, 1, 16, 16, generator=g) + 1,
         "valid": torch.rand(4, 1, 16, 16, generator=g) > 0.2}
    perm = torch.tensor([2, 3, 0, 1])
    box = cutmix_boxes(4, (16, 16), generator=g)
    for key, x in a.items():
        mixed = cutmix(x, x[perm], box)
        for i in range(4):
            for r in range(16):
                for c in range(16):
                    src = perm[i] if box[i, 0, r, c] else i
                    assert torch.equal(mixed[i, :, r, c], x[src, :, r, c]), key


def test_cutmix_rejects_bad_input():
    x = torch.rand(2, 3, 8, 8)
    box = cutmix_boxes(2, (8, 8), generator=gen())
    with pytest.raises(TypeError, match="bool"):
        cutmix(x, x, box.float())
    with pytest.raises(ValueError, match="same shape"):
        cutmix(x, torch.rand(2, 3, 8, 4), box)
    with pytest.raises(ValueError, match="box must have shape"):
        cutmix(x, x, box[:, :, :4])
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        cutmix(x[0], x[0], box)


# --------------------------------------------------------------------------- pseudo-label loss
def _normalise_np(x):
    med = np.sort(x)[(len(x) - 1) // 2]                          # lower median
    mad = max(np.abs(x - med).mean(), 1e-6)
    return (x - med) / mad


def _loss_loop(pred, target, valid, fraction):
    """(sum of kept residuals, number kept) per image, with numpy and a Python sort."""
    total, count = 0.0, 0
    for b in range(pred.shape[0]):
        m = valid[b, 0].numpy().ravel()
        if m.sum() == 0:
            continue
        p = pred[b, 0].double().numpy().ravel()[m]
        t = target[b, 0].double().numpy().ravel()[m]
        rho = np.abs(_normalise_np(p) - _normalise_np(t))
        n_drop = int(np.floor(fraction * len(rho) + 1e-9))
        kept = sorted(rho)[: len(rho) - n_drop]
        total += sum(kept)
        count += len(kept)
    return total, count


def test_ignore_top_drops_exactly_the_largest_tenth_of_each_image():
    g = gen(7)
    res = torch.rand(3, 1, 10, 10, generator=g)
    valid = torch.rand(3, 1, 10, 10, generator=g) > 0.25
    keep = ignore_top(res, valid, 0.1)
    for b in range(3):
        v = valid[b].flatten()
        r = res[b].flatten()[v]
        n_drop = int(np.floor(0.1 * len(r) + 1e-9))
        threshold = r.sort(descending=True).values[n_drop - 1] if n_drop else float("inf")
        expect = v.clone()
        expect[v] = r < threshold                                # distinct values: the top n_drop go
        assert torch.equal(keep[b].flatten(), expect)
        assert int((v & ~keep[b].flatten()).sum()) == n_drop
    assert not (keep & ~valid).any()


def test_ignore_top_count_is_exact_with_ties_and_float_rounding():
    res = torch.ones(1, 1, 10, 10)                               # all tied
    valid = torch.ones_like(res, dtype=torch.bool)
    assert int((~ignore_top(res, valid, 0.29)).sum()) == 29      # 0.29 * 100 = 28.999999999999996
    assert int((~ignore_top(res, valid, 0.0)).sum()) == 0


def test_pseudo_label_loss_matches_a_loop_implementation():
    g = gen(8)
    pseudo = torch.rand(3, 1, 12, 12, generator=g) + 0.1
    pred = 2 * pseudo + 0.3 * torch.randn(3, 1, 12, 12, generator=g)
    valid = torch.rand(3, 1, 12, 12, generator=g) > 0.2
    total, count = _loss_loop(pred, pseudo, valid, 0.1)
    assert pseudo_label_loss(pred, pseudo, valid, ignore=0.1).item() == pytest.approx(total / count, rel=1e-5)
    total0, count0 = _loss_loop(pred, pseudo, valid, 0.0)
    assert pseudo_label_loss(pred, pseudo, valid, ignore=0.0).item() == pytest.approx(total0 / count0, rel=1e-5)
    assert count0 - count == sum(int(np.floor(0.1 * int(valid[b].sum()) + 1e-9)) for b in range(3))


def test_pseudo_label_loss_drops_the_outliers_first():
    # a prediction equal to the pseudo-label except at k far-off pixels: the k outliers have the
    # largest residuals, so they are dropped first; with k = 10% of the pixels exactly they are
    # exactly the dropped set
    g = gen(9)
    pseudo = torch.rand(1, 1, 10, 10, generator=g) + 0.5
    valid = torch.ones_like(pseudo, dtype=torch.bool)
    outliers = torch.randperm(100, generator=g)
    for k in (5, 10, 20):
        pred = pseudo.clone().flatten()
        pred[outliers[:k]] += 10.0
        res = affine_invariant_residual(pred.view_as(pseudo), pseudo, valid)
        dropped = set((~ignore_top(res, valid, 0.1)).flatten().nonzero().flatten().tolist())
        assert len(dropped) == 10
        if k <= 10:
            assert set(outliers[:k].tolist()) <= dropped
        else:
            assert dropped <= set(outliers[:k].tolist())
        if k == 10:
            assert dropped == set(outliers[:k].tolist())


def test_pseudo_label_loss_is_affine_invariant_and_gradients_are_finite():
    g = gen(10)
    pseudo = torch.rand(2, 1, 8, 8, generator=g) + 0.2
    pred = torch.rand(2, 1, 8, 8, generator=g) + 0.2
    valid = torch.ones_like(pred, dtype=torch.bool)
    base = pseudo_label_loss(pred, pseudo, valid)
    assert pseudo_label_loss(3 * pred + 2, pseudo, valid).item() == pytest.approx(base.item(), rel=1e-4)
    assert pseudo_label_loss(pred, 0.5 * pseudo - 1, valid).item() == pytest.approx(base.item(), rel=1e-4)
    p = pred.clone().requires_grad_()
    pseudo_label_loss(p, pseudo, valid).backward()
    assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
    p = pred.clone().requires_grad_()
    out = pseudo_label_loss(p, pseudo, torch.zeros_like(valid))                # nothing valid
    out.backward()
    assert out.item() == 0.0 and torch.isfinite(p.grad).all()
    with pytest.raises(ValueError, match="shape"):
        pseudo_label_loss(pred, pseudo[:, :, :4], valid)
    with pytest.raises(ValueError, match="fraction"):
        pseudo_label_loss(pred, pseudo, valid, ignore=1.0)


def test_cutmix_loss_aligns_each_region_to_its_own_pseudo_label():
    g = gen(11)
    pa = torch.rand(4, 1, 16, 16, generator=g) + 0.2
    pb = pa[torch.tensor([1, 2, 3, 0])]
    box = cutmix_boxes(4, (16, 16), generator=g)
    valid = torch.ones_like(pa, dtype=torch.bool)
    # a student that got each region right up to its own scale and shift: no loss, region by region
    pred = cutmix(2 * pa + 1, 0.5 * pb + 3, box)
    assert cutmix_pseudo_label_loss(pred, pa, pb, box, valid).item() < 1e-5
    # ... but one alignment of the mixed label cannot fit both regions
    assert pseudo_label_loss(pred, cutmix(pa, pb, box), valid).item() > 1e-2
    # against a loop over the two regions
    noisy = pred + 0.1 * torch.randn(pred.shape, generator=g)
    sa, na = _loss_loop(noisy, pa, valid & ~box, 0.1)
    sb, nb = _loss_loop(noisy, pb, valid & box, 0.1)
    got = cutmix_pseudo_label_loss(noisy, pa, pb, box, valid, ignore=0.1)
    assert got.item() == pytest.approx((sa + sb) / (na + nb), rel=1e-5)
    # no box anywhere: the plain loss
    empty = torch.zeros_like(box)
    assert cutmix_pseudo_label_loss(noisy, pa, pb, empty, valid).item() == pytest.approx(
        pseudo_label_loss(noisy, pa, valid).item(), rel=1e-6)
    p = noisy.clone().requires_grad_()
    cutmix_pseudo_label_loss(p, pa, pb, box, valid).backward()
    assert torch.isfinite(p.grad).all()
    with pytest.raises(ValueError, match="box"):
        cutmix_pseudo_label_loss(noisy, pa, pb, box.float(), valid)


# --------------------------------------------------------------------------- feature alignment
def _alignment_loop(s, t, margin):
    terms = []
    B, C, h, w = s.shape
    for b in range(B):
        for i in range(h):
            for j in range(w):
                u, v = s[b, :, i, j].double(), t[b, :, i, j].double()
                d = 1 - float(u @ v) / (float(u.norm()) * float(v.norm()))
                if margin == 0 or d >= margin:
                    terms.append(d)
    return sum(terms) / len(terms) if terms else 0.0, len(terms)


@pytest.mark.parametrize("margin", [0.0, 0.15, 0.5])
def test_feature_alignment_matches_a_loop_and_the_margin_removes_exactly_the_close_locations(margin):
    g = gen(12)
    t = torch.randn(3, 16, 4, 5, generator=g)
    # mix of close and far locations: distances 1 - cos spread over [0, ~1.5]
    s = t + torch.randn(3, 16, 4, 5, generator=g) * torch.rand(3, 1, 4, 5, generator=g) * 2
    expect, n_kept = _alignment_loop(s, t, margin)
    assert 0 < n_kept <= 60
    if margin > 0:
        assert n_kept < 60                                       # the margin did remove some
    s = s.clone().requires_grad_()
    loss = feature_alignment_loss(s, t, margin=margin)
    assert loss.item() == pytest.approx(expect, rel=1e-5)
    loss.backward()
    assert torch.isfinite(s.grad).all()
    # excluded locations get exactly no gradient, kept ones do
    d = 1 - torch.nn.functional.cosine_similarity(s.detach(), t, dim=1)
    has_grad = s.grad.abs().sum(1) > 0
    assert torch.equal(has_grad, d >= margin) if margin > 0 else bool(has_grad.all())


def test_feature_alignment_all_within_margin_is_zero_and_teacher_gets_no_gradient():
    t = torch.randn(2, 8, 3, 3, requires_grad=True)
    s = (2.0 * t.detach()).requires_grad_()                      # cos = 1 everywhere
    loss = feature_alignment_loss(s, t, margin=0.15)
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(s.grad).all() and t.grad is None
    # opposite features: d = 2 everywhere
    assert feature_alignment_loss(-t.detach(), t.detach()).item() == pytest.approx(2.0)


def test_feature_alignment_projection_and_resizing():
    g = gen(13)
    s = torch.randn(2, 8, 3, 3, generator=g)
    t = torch.randn(2, 16, 6, 6, generator=g)
    with pytest.raises(ValueError, match="projection"):
        feature_alignment_loss(s, t)
    proj = nn.Conv2d(8, 16, 1)
    loss = feature_alignment_loss(s, t, projection=proj)
    loss.backward()
    assert torch.isfinite(loss) and proj.weight.grad is not None and torch.isfinite(proj.weight.grad).all()
    # the teacher grid is resized to the student's: the same as resizing it by hand
    t_small = torch.nn.functional.interpolate(t, size=(3, 3), mode="bilinear", align_corners=False)
    with torch.no_grad():
        assert feature_alignment_loss(s, t, projection=proj).item() == pytest.approx(
            feature_alignment_loss(proj(s), t_small).item(), rel=1e-6)


def test_feature_alignment_rejects_bad_input():
    s = torch.randn(2, 8, 3, 3)
    with pytest.raises(ValueError, match="batch size"):
        feature_alignment_loss(s, torch.randn(3, 8, 3, 3))
    with pytest.raises(ValueError, match=r"\(B,C,h,w\)"):
        feature_alignment_loss(s[0], s[0])
    with pytest.raises(ValueError, match="margin"):
        feature_alignment_loss(s, s, margin=-0.1)
    with pytest.raises(ValueError, match="float"):
        feature_alignment_loss(s.long(), s.long())


# --------------------------------------------------------------------------- strong perturbation
def test_strong_perturbation_stages():
    g = gen(14)
    x = torch.rand(6, 3, 24, 24, generator=g)
    none = strong_perturbation(x, gen(1), p_jitter=0, p_gray=0, p_blur=0)
    assert torch.allclose(none, x, atol=1e-6)                     # nothing drawn: identity
    gray = strong_perturbation(x, gen(1), p_jitter=0, p_gray=1, p_blur=0)
    assert torch.allclose(gray[:, 0], gray[:, 1]) and torch.allclose(gray[:, 1], gray[:, 2])
    expect = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])
    assert torch.allclose(gray[:, 0], expect, atol=1e-5)
    blur = strong_perturbation(x, gen(1), p_jitter=0, p_gray=0, p_blur=1, blur_sigma=(1.0, 1.5))
    assert (blur.std((2, 3)) < x.std((2, 3))).all()               # blur smooths white noise
    assert torch.allclose(blur.mean((2, 3)), x.mean((2, 3)), atol=0.02)
    out = strong_perturbation(x, gen(2))
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    assert torch.equal(out, strong_perturbation(x, gen(2)))       # reproducible
    assert not torch.equal(out, strong_perturbation(x, gen(3)))
    xr = x.clone().requires_grad_()
    strong_perturbation(xr, gen(2)).sum().backward()
    assert torch.isfinite(xr.grad).all()


def test_strong_perturbation_rejects_bad_input():
    with pytest.raises(ValueError, match=r"\(B,3,H,W\)"):
        strong_perturbation(torch.rand(3, 8, 8))
    with pytest.raises(TypeError, match="float"):
        strong_perturbation(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="probability"):
        strong_perturbation(torch.rand(1, 3, 8, 8), p_blur=2)


@pytest.mark.parametrize("module", [lib.cutmix, lib.pseudo_label_loss, lib.strong_perturbation])
def test_docstring_examples(module):
    failures, _ = doctest.testmod(module)
    assert failures == 0


def test_feature_alignment_docstring_example():
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner()
    for test in finder.find(feature_alignment_loss, "feature_alignment_loss", globs={"torch": torch,
                                                                                  "feature_alignment_loss":
                                                                                  feature_alignment_loss}):
        runner.run(test)
    assert runner.failures == 0 and runner.tries > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_everything_runs_on_cuda():
    dev = torch.device("cuda")
    x = torch.rand(4, 3, 16, 16, device=dev)
    box = cutmix_boxes(4, (16, 16), generator=gen(), device=dev)
    assert box.device.type == "cuda"
    mixed = strong_perturbation(cutmix(x, x.flip(0), box), gen())
    assert mixed.device.type == "cuda"
    d = torch.rand(4, 1, 16, 16, device=dev) + 0.1
    valid = torch.ones_like(d, dtype=torch.bool)
    assert torch.isfinite(cutmix_pseudo_label_loss(d, d, d.flip(0), box, valid))
    s = torch.randn(4, 8, 2, 2, device=dev)
    assert torch.isfinite(feature_alignment_loss(s, s + 0.5 * torch.randn_like(s)))
