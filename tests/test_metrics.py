"""Tests of lib.metrics: hand-worked values, independent numpy references, invariances, bad input."""
from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
import torch

import lib.metrics as M
from lib.metrics import (EPS, abs_rel_per_image, align, align_median, align_scale_shift, depth_edges, depth_metrics,
                         flat_map, soft_edge_error, soft_edge_error_map,
                         soft_edge_error_per_image, whdr)

KEYS = ("abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "silog", "delta1", "delta2", "delta3")


def t(rows, dtype=torch.float32):
    """A (1,1,H,W) tensor from a nested list of rows."""
    return torch.tensor(rows, dtype=dtype)[None, None]


def ones_valid(x):
    return torch.ones_like(x, dtype=torch.bool)


def random_batch(b=3, h=7, w=9, seed=0, p_valid=0.7):
    gen = torch.Generator().manual_seed(seed)
    target = 0.5 + 9.5 * torch.rand(b, 1, h, w, generator=gen)
    pred = target * torch.exp(0.3 * torch.randn(b, 1, h, w, generator=gen))
    valid = torch.rand(b, 1, h, w, generator=gen) < p_valid
    return pred, target, valid


# ----------------------------------------------------------------------------- independent references


def ref_metrics_one(p, g):
    """Textbook metrics of one image from 1-D numpy arrays of valid pixels (float64)."""
    p = np.maximum(np.asarray(p, np.float64), EPS)
    g = np.asarray(g, np.float64)
    out = {k: 0.0 for k in KEYS}
    n = len(g)
    e_sum = e2_sum = 0.0
    for pi, gi in zip(p, g):
        out["abs_rel"] += abs(pi - gi) / gi / n
        out["sq_rel"] += (pi - gi) ** 2 / gi / n
        out["rmse"] += (pi - gi) ** 2 / n
        e = math.log(pi) - math.log(gi)
        e_sum += e / n
        e2_sum += e * e / n
        out["log10"] += abs(math.log10(pi) - math.log10(gi)) / n
        r = max(pi / gi, gi / pi)
        out["delta1"] += (r < 1.25) / n
        out["delta2"] += (r < 1.25 ** 2) / n
        out["delta3"] += (r < 1.25 ** 3) / n
    out["rmse"] = math.sqrt(out["rmse"])
    out["rmse_log"] = math.sqrt(e2_sum)
    out["silog"] = 100 * math.sqrt(max(e2_sum - e_sum ** 2, 0.0))
    return out


def ref_metrics(pred, target, valid):
    per = []
    for i in range(pred.shape[0]):
        v = valid[i].numpy().ravel()
        if v.any():
            per.append(ref_metrics_one(pred[i].numpy().ravel()[v], target[i].numpy().ravel()[v]))
    return {k: float(np.mean([d[k] for d in per])) for k in KEYS}


def ref_label(a, b, sigma):
    r = a / b
    return 1 if r >= 1 + sigma else (-1 if r <= 1 / (1 + sigma) else 0)


def ref_whdr(pred, target, ia, ib, valid, sigma=0.03):
    rates = []
    for i in range(pred.shape[0]):
        p = np.maximum(pred[i].double().numpy().ravel(), EPS)
        g = target[i].double().numpy().ravel()
        v = valid[i].numpy().ravel()
        wrong = scored = 0
        for a, b in zip(ia[i].tolist(), ib[i].tolist()):
            if not (v[a] and v[b]):
                continue
            lt = ref_label(g[a], g[b], sigma)
            if lt == 0:
                continue
            scored += 1
            wrong += ref_label(p[a], p[b], sigma) != lt
        if scored:
            rates.append(wrong / scored)
    return float(np.mean(rates))


def ref_edges(target, valid, th, dilation=0):
    """PatchFusion get_boundaries written as loops over pixels (both valid ends of a jump)."""
    b, _, h, w = target.shape
    g = target.double().numpy()[:, 0]
    v = valid.numpy()[:, 0]
    e = np.zeros((b, h, w), bool)
    for i in range(b):
        for y in range(h):
            for x in range(w):
                if not v[i, y, x]:
                    continue
                for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                    yy, xx = y + dy, x + dx
                    if 0 <= yy < h and 0 <= xx < w and v[i, yy, xx] and abs(1 / g[i, y, x] - 1 / g[i, yy, xx]) > th:
                        e[i, y, x] = True
    if dilation:
        a = dilation // 2  # cv2.dilate anchor: dst(x) = max_{k in 0..d-1} src(x + k - a)
        d = np.zeros_like(e)
        for i in range(b):
            for y in range(h):
                for x in range(w):
                    for ky in range(dilation):
                        for kx in range(dilation):
                            yy, xx = y + ky - a, x + kx - a
                            if 0 <= yy < h and 0 <= xx < w and e[i, yy, xx]:
                                d[i, y, x] = True
        e = d
    return e & v


def ref_see(pred, target, valid, th=0.05, r=1):
    e = ref_edges(target, valid, th)
    p, g, v = pred.double().numpy()[:, 0], target.double().numpy()[:, 0], valid.numpy()[:, 0]
    b, h, w = p.shape
    per = []
    for i in range(b):
        errs = []
        for y in range(h):
            for x in range(w):
                if not e[i, y, x]:
                    continue
                errs.append(min(abs(g[i, yy, xx] - p[i, y, x])
                                for yy in range(max(0, y - r), min(h, y + r + 1))
                                for xx in range(max(0, x - r), min(w, x + r + 1)) if v[i, yy, xx]))
        if errs:
            per.append(np.mean(errs))
    return float(np.mean(per))


# ----------------------------------------------------------------------------- depth_metrics


def test_depth_metrics_hand_worked():
    g = t([[1.0, 2.0], [4.0, 8.0]])
    p = t([[1.0, 1.0], [5.0, 8.0]])
    m = depth_metrics(p, g, ones_valid(g))
    # diff = [0, -1, 1, 0]; |diff|/g = [0, 1/2, 1/4, 0]           -> abs_rel = 0.75/4
    assert m["abs_rel"] == pytest.approx(0.1875)
    # diff^2/g = [0, 1/2, 1/4, 0]                                  -> sq_rel = 0.75/4
    assert m["sq_rel"] == pytest.approx(0.1875)
    # mean diff^2 = 2/4                                            -> rmse = sqrt(0.5)
    assert m["rmse"] == pytest.approx(math.sqrt(0.5))
    # e = ln p - ln g = [0, -ln 2, ln 1.25, 0]
    e = [0.0, -math.log(2), math.log(1.25), 0.0]
    assert m["rmse_log"] == pytest.approx(math.sqrt((math.log(2) ** 2 + math.log(1.25) ** 2) / 4))
    assert m["log10"] == pytest.approx((math.log10(2) + math.log10(1.25)) / 4)
    mean_e, mean_e2 = sum(e) / 4, sum(x * x for x in e) / 4
    assert m["silog"] == pytest.approx(100 * math.sqrt(mean_e2 - mean_e ** 2))
    # max(p/g, g/p) = [1, 2, 1.25, 1]: < 1.25 (strict) -> 2 of 4; < 1.5625 -> 3; < 1.953125 -> 3
    assert (m["delta1"], m["delta2"], m["delta3"]) == (0.5, 0.75, 0.75)
    assert all(isinstance(v, float) for v in m.values()) and set(m) == set(KEYS)


def test_depth_metrics_matches_numpy_reference():
    pred, target, valid = random_batch(b=3, seed=1)
    got = depth_metrics(pred, target, valid)
    want = ref_metrics(pred, target, valid)
    for k in KEYS:
        assert got[k] == pytest.approx(want[k], rel=1e-6, abs=1e-9), k


def test_depth_metrics_batch_is_mean_of_images():
    pred, target, valid = random_batch(b=4, seed=2)
    batch = depth_metrics(pred, target, valid)
    singles = [depth_metrics(pred[i:i + 1], target[i:i + 1], valid[i:i + 1]) for i in range(4)]
    for k in KEYS:
        assert batch[k] == pytest.approx(np.mean([s[k] for s in singles]), rel=1e-9), k


def test_depth_metrics_ignore_invalid_pixels():
    pred, target, valid = random_batch(b=2, seed=3)
    before = depth_metrics(pred, target, valid)
    p2, g2 = pred.clone(), target.clone()
    p2[~valid] = float("nan")
    g2[~valid] = -5.0  # garbage that would be rejected (or NaN) at a valid pixel
    assert depth_metrics(p2, g2, valid) == before


def test_deltas_are_fractions_and_silog_scale_invariant():
    pred, target, valid = random_batch(b=3, seed=4)
    m = depth_metrics(pred, target, valid)
    assert all(0.0 <= m[k] <= 1.0 for k in ("delta1", "delta2", "delta3"))
    assert m["delta1"] <= m["delta2"] <= m["delta3"]
    for k in (0.01, 7.3):
        assert depth_metrics(k * pred, target, valid)["silog"] == pytest.approx(m["silog"], rel=1e-6)
    assert depth_metrics(target, target, valid)["abs_rel"] == 0.0


def test_nonpositive_predictions_are_clamped_not_nan():
    g = t([[1.0, 2.0, 3.0]])
    p = t([[0.0, -1.0, 3.0]])
    m = depth_metrics(p, g, ones_valid(g))
    assert all(math.isfinite(v) for v in m.values())
    assert m == depth_metrics(t([[EPS, EPS, 3.0]]), g, ones_valid(g))
    # abs_rel = (|1e-6 - 1|/1 + |1e-6 - 2|/2 + 0) / 3
    assert m["abs_rel"] == pytest.approx(((1 - EPS) + (2 - EPS) / 2) / 3)


def test_all_invalid_raises_and_empty_image_is_skipped_with_warning():
    pred, target, valid = random_batch(b=2, seed=5)
    none = torch.zeros_like(valid)
    with pytest.raises(ValueError, match="no valid pixel"):
        depth_metrics(pred, target, none)
    part = valid.clone()
    part[1] = False
    with pytest.warns(RuntimeWarning, match=r"images \[1\]"):
        m = depth_metrics(pred, target, part)
    assert m == depth_metrics(pred[:1], target[:1], valid[:1])


def test_bad_input_is_rejected():
    pred, target, valid = random_batch(b=1)
    with pytest.raises(ValueError, match="shape"):
        depth_metrics(pred[0], target[0], valid[0])
    with pytest.raises(ValueError, match="does not match"):
        depth_metrics(pred, target[..., :-1], valid)
    with pytest.raises(TypeError, match="bool"):
        depth_metrics(pred, target, valid.float())
    bad = target.clone()
    bad[valid] = 0.0
    with pytest.raises(ValueError, match="target must be finite and > 0"):
        depth_metrics(pred, bad, valid)
    badp = pred.clone()
    badp[valid] = float("inf")
    with pytest.raises(ValueError, match="pred has NaN"):
        depth_metrics(badp, target, valid)


# ----------------------------------------------------------------------------- alignment


def test_align_scale_shift_hand_worked():
    # p = [0, 1, 2], g = [1, 3, 5]: g = 2 p + 1 exactly -> s = 2, t = 1
    p, g = t([[0.0, 1.0, 2.0]]), t([[1.0, 3.0, 5.0]])
    aligned, s, sh = align_scale_shift(p, g, ones_valid(g))
    assert s.shape == (1,) and sh.shape == (1,)
    assert s.item() == pytest.approx(2.0) and sh.item() == pytest.approx(1.0)
    torch.testing.assert_close(aligned, g)
    # p = [0, 1, 2], g = [1, 1, 4]: mean p = 1, mean g = 2; centred p = [-1, 0, 1], g = [-1, -1, 2];
    # cov = (1 + 0 + 2)/3 = 1, var = 2/3 -> s = 1.5, t = 2 - 1.5 * 1 = 0.5; fit = [0.5, 2, 3.5]
    aligned, s, sh = align_scale_shift(p, t([[1.0, 1.0, 4.0]]), ones_valid(g))
    assert s.item() == pytest.approx(1.5) and sh.item() == pytest.approx(0.5)
    torch.testing.assert_close(aligned, t([[0.5, 2.0, 3.5]]))


def test_align_scale_shift_matches_lstsq_and_recovers_affine():
    pred, target, valid = random_batch(b=3, seed=6)
    aligned, s, sh = align_scale_shift(pred, target, valid)
    for i in range(3):
        v = valid[i].numpy().ravel()
        p, g = pred[i].double().numpy().ravel()[v], target[i].double().numpy().ravel()[v]
        (s_ref, t_ref), *_ = np.linalg.lstsq(np.stack([p, np.ones_like(p)], 1), g, rcond=None)
        assert s[i].item() == pytest.approx(s_ref, rel=1e-5)
        assert sh[i].item() == pytest.approx(t_ref, rel=1e-5, abs=1e-5)
    # an exactly affine prediction is made exact, whatever is at invalid pixels
    p = (target - 0.3) / 2.5
    p[~valid] = -100.0
    aligned, s, sh = align_scale_shift(p, target, valid)
    torch.testing.assert_close(aligned[valid], target[valid], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(s, torch.full((3,), 2.5), rtol=1e-5, atol=0)
    torch.testing.assert_close(sh, torch.full((3,), 0.3), rtol=1e-4, atol=1e-5)
    m = depth_metrics(aligned, target, valid)
    assert m["abs_rel"] < 1e-5 and m["delta1"] == 1.0


def test_align_scale_shift_constant_prediction():
    g = t([[1.0, 2.0, 6.0]])
    for c in (0.0, 5.0, 1e6):
        aligned, s, sh = align_scale_shift(torch.full_like(g, c), g, ones_valid(g))
        assert s.item() == 0.0 and sh.item() == pytest.approx(3.0)  # mean target = 9/3
        assert torch.isfinite(aligned).all()


def test_align_median_hand_worked_and_invariance():
    # valid pred [2, 4, 6, 100] -> median (4+6)/2 = 5; valid target [1, 2, 3, 9] -> median 2.5; s = 0.5
    p, g = t([[2.0, 4.0, 6.0, 100.0, -7.0]]), t([[1.0, 2.0, 3.0, 9.0, 1.0]])
    valid = t([[1, 1, 1, 1, 0]], torch.bool)
    aligned, s = align_median(p, g, valid)
    assert s.shape == (1,) and s.item() == pytest.approx(0.5)
    torch.testing.assert_close(aligned, 0.5 * p)
    pred, target, valid = random_batch(b=3, seed=7)
    aligned, s = align_median(3.7 * target, target, valid)
    m = depth_metrics(aligned, target, valid)
    assert m["abs_rel"] < 1e-6 and m["delta1"] == 1.0
    _, s = align_median(pred, target, valid)
    for i in range(3):
        v = valid[i].numpy().ravel()
        want = np.median(target[i].numpy().ravel()[v]) / np.median(pred[i].numpy().ravel()[v])
        assert s[i].item() == pytest.approx(want, rel=1e-6)


def test_align_median_rejects_nonpositive_median():
    g = t([[1.0, 2.0, 3.0]])
    with pytest.raises(ValueError, match="median of pred"):
        align_median(t([[-1.0, -2.0, 3.0]]), g, ones_valid(g))


def test_align_disparity_space():
    pred, target, valid = random_batch(b=2, seed=8)
    # prediction whose disparity is affine in the target disparity: 1/p = 0.4 / g + 0.05
    p = 1.0 / (0.4 / target + 0.05)
    out = align(p, target, valid, method="lstsq", space="disparity")
    torch.testing.assert_close(out[valid], target[valid], rtol=1e-4, atol=1e-5)
    # ... which depth-space least squares cannot undo
    assert depth_metrics(align(p, target, valid, "lstsq", "depth"), target, valid)["abs_rel"] > 1e-3
    # median in disparity space undoes a pure scale: s = median(1/g) / median(1/p)
    out = align(2.0 * target, target, valid, method="median", space="disparity")
    torch.testing.assert_close(out[valid], target[valid])
    assert align(pred, target, valid, method="none") is pred
    torch.testing.assert_close(align(pred, target, valid, "median", "depth"), align_median(pred, target, valid)[0])


def test_align_disparity_clamps_beyond_infinity():
    # pred depths [1, 2, 2, 10] vs target [1, 10, 10, 10], i.e. disparities [1, .5, .5, .1] vs
    # [1, .1, .1, .1]: the fitted line s*dp + t (s = 1.049, t = -0.226) is -0.12 at dp = 0.1.
    # That "beyond infinity" disparity is clamped at 1/depth_cap, never inf, NaN or negative depth.
    p, g = t([[1.0, 2.0, 2.0, 10.0]]), t([[1.0, 10.0, 10.0, 10.0]])
    disp_fit = align_scale_shift(1 / p, 1 / g, ones_valid(g))[0]
    assert (disp_fit <= 0).any()  # the situation the guard is for
    out = align(p, g, ones_valid(g), "lstsq", "disparity")
    assert torch.isfinite(out).all() and (out > 0).all() and out.max().item() == pytest.approx(10.0)
    out = align(p, g, ones_valid(g), "lstsq", "disparity", depth_cap=20.0)
    assert out.max().item() == pytest.approx(20.0)
    assert all(math.isfinite(v) for v in depth_metrics(out, g, ones_valid(g)).values())


def test_align_bad_arguments_and_all_invalid():
    pred, target, valid = random_batch(b=1)
    with pytest.raises(ValueError, match="method"):
        align(pred, target, valid, method="mean")
    with pytest.raises(ValueError, match="space"):
        align(pred, target, valid, space="log")
    none = torch.zeros_like(valid)
    for fn in (align_scale_shift, align_median):
        with pytest.raises(ValueError, match="no valid pixel"):
            fn(pred, target, none)


# ----------------------------------------------------------------------------- whdr


def whdr_fixture():
    # flat pixels 0..5 of a 2x3 image
    g = t([[1.0, 2.0, 4.0], [1.01, 8.0, 8.0]])
    p = t([[2.0, 1.0, 4.0], [5.0, 4.02, 9.0]])
    ia = torch.tensor([[0, 1, 0, 2, 4, 5, 3]])
    ib = torch.tensor([[1, 2, 3, 4, 5, 0, 2]])
    return p, g, ia, ib


def test_whdr_hand_worked():
    p, g, ia, ib = whdr_fixture()
    valid = ones_valid(g)
    # sigma = 0.03, target labels / predicted labels:
    # (0,1): g 1/2 -> -1;  p 2/1 -> +1        wrong
    # (1,2): g 2/4 -> -1;  p 1/4 -> -1        right
    # (0,3): g 1/1.01 = 0.990 -> 0            not scored
    # (2,4): g 4/8 -> -1;  p 4/4.02 = 0.995 -> 0 ("equal")   wrong (a tie is an error)
    # (4,5): g 8/8 -> 0                       not scored
    # (5,0): g 8/1 -> +1;  p 9/2 -> +1        right
    # (3,2): g 1.01/4 -> -1; p 5/4 -> +1      wrong
    assert whdr(p, g, ia, ib, valid) == pytest.approx(3 / 5)
    # pixel 3 invalid: (0,3) and (3,2) drop out -> 2 wrong of 4
    valid[0, 0, 1, 0] = False
    assert whdr(p, g, ia, ib, valid) == pytest.approx(2 / 4)
    # sigma = 0.001: (0,3) target -1, pred 2/5 -> -1 right (but pixel 3 is invalid);
    # (2,4) pred 0.995 <= 1/1.001 -> -1 right; only (0,1) is wrong -> 1 of 4
    assert whdr(p, g, ia, ib, valid, sigma=0.001) == pytest.approx(1 / 4)
    valid[:] = True
    assert whdr(p, g, ia, ib, valid, sigma=0.001) == pytest.approx(2 / 6)  # + (0,3) right, (3,2) wrong


def test_whdr_matches_loop_reference_scale_invariance_and_batch_mean():
    pred, target, valid = random_batch(b=3, h=6, w=6, seed=9)
    gen = torch.Generator().manual_seed(0)
    ia = torch.randint(0, 36, (3, 50), generator=gen)
    ib = torch.randint(0, 36, (3, 50), generator=gen)
    got = whdr(pred, target, ia, ib, valid)
    assert got == pytest.approx(ref_whdr(pred, target, ia, ib, valid), rel=1e-12)
    assert whdr(4.0 * pred, target, ia, ib, valid) == pytest.approx(got)
    singles = [whdr(pred[i:i + 1], target[i:i + 1], ia[i:i + 1], ib[i:i + 1], valid[i:i + 1]) for i in range(3)]
    assert got == pytest.approx(np.mean(singles))
    assert whdr(target, target, ia, ib, valid) == 0.0
    p2 = pred.clone()
    p2[~valid] = float("nan")
    assert whdr(p2, target, ia, ib, valid) == got


def test_whdr_raises_without_ordinal_pairs_and_on_bad_indices():
    g = t([[2.0, 2.0, 2.0]])
    ia, ib = torch.tensor([[0, 1]]), torch.tensor([[1, 2]])
    with pytest.raises(ValueError, match="non-zero target label"):
        whdr(g, g, ia, ib, ones_valid(g))
    g = t([[1.0, 2.0, 4.0]])
    with pytest.raises(ValueError, match="outside"):
        whdr(g, g, ia, torch.tensor([[1, 3]]), ones_valid(g))
    with pytest.raises(TypeError, match="int64"):
        whdr(g, g, ia.float(), ib, ones_valid(g))
    with pytest.raises(ValueError, match="shape"):
        whdr(g, g, ia[0], ib[0], ones_valid(g))


# ----------------------------------------------------------------------------- soft edge error


def step_image(row):
    """An 8x8 image with every row equal to ``row``."""
    return torch.tensor(row, dtype=torch.float32).expand(8, 8).clone()[None, None]


def test_depth_edges_hand_worked_and_against_loops():
    g = t([[1.0, 1.0, 4.0, 4.0]])  # disparity [1, 1, 0.25, 0.25]: the jump 0.75 > 0.05 marks pixels 1, 2
    assert depth_edges(g, ones_valid(g)).flatten().tolist() == [False, True, True, False]
    assert not depth_edges(g, ones_valid(g), threshold=0.8).any()  # 0.75 is not > 0.8
    _, target, valid = random_batch(b=2, h=7, w=8, seed=10)
    for th, dil in ((0.05, 0), (0.2, 0), (0.2, 2), (0.2, 3)):
        got = depth_edges(target, valid, threshold=th, dilation=dil)[:, 0].numpy()
        np.testing.assert_array_equal(got, ref_edges(target, valid, th, dil))


def test_see_perfect_blurred_and_more_blurred():
    g = step_image([1, 1, 1, 1, 4, 4, 4, 4])  # edge pixels: columns 3 and 4 of every row
    v = ones_valid(g)
    assert soft_edge_error(g, g, v) == 0.0
    # box blur of width 3 along the rows: p[3] = (1+1+4)/3 = 2, p[4] = (1+4+4)/3 = 3;
    # nearest target value in the 3x3 window ({1, 4}) is 1 away from both -> SEE = 1
    blur3 = step_image([1, 1, 1, 2, 3, 4, 4, 4])
    assert soft_edge_error(blur3, g, v) == pytest.approx(1.0)
    # width 5: p[3] = (1+1+1+4+4)/5 = 2.2, p[4] = 2.8 -> both 1.2 from {1, 4} -> SEE = 1.2
    blur5 = step_image([1, 1, 1.6, 2.2, 2.8, 3.4, 4, 4])
    assert soft_edge_error(blur5, g, v) == pytest.approx(1.2)
    # an edge one pixel off costs nothing (the "soft" part), a smeared one does
    shifted = step_image([1, 1, 1, 1, 1, 4, 4, 4])
    assert soft_edge_error(shifted, g, v) == 0.0
    # with radius 0 it is the plain absolute error on edge pixels: (|1-1| + |1-4|) / 2
    assert soft_edge_error(shifted, g, v, radius=0) == pytest.approx(1.5)


def test_see_matches_loop_reference_and_batch_mean_and_invalid_invariance():
    pred, target, valid = random_batch(b=3, h=6, w=7, seed=11)
    got = soft_edge_error(pred, target, valid, threshold=0.2)
    assert got == pytest.approx(ref_see(pred, target, valid, th=0.2), rel=1e-6)
    singles = [soft_edge_error(pred[i:i + 1], target[i:i + 1], valid[i:i + 1], threshold=0.2) for i in range(3)]
    assert got == pytest.approx(np.mean(singles), rel=1e-9)
    p2, g2 = pred.clone(), target.clone()
    p2[~valid], g2[~valid] = float("nan"), 0.0
    assert soft_edge_error(p2, g2, valid, threshold=0.2) == got
    m = soft_edge_error_map(pred, target, valid)
    assert m.shape == pred.shape and (m[~valid] == 0).all() and torch.isfinite(m).all()


def test_see_per_image_is_each_image_alone_and_nan_without_edges():
    pred, target, valid = random_batch(b=3, h=6, w=7, seed=12)
    target[1] = 2.5  # a flat image: no depth edge
    per = soft_edge_error_per_image(pred, target, valid, threshold=0.2)
    assert per.shape == (3,) and per.dtype == torch.float64 and math.isnan(per[1])
    for i in (0, 2):
        one = (pred[i:i + 1], target[i:i + 1], valid[i:i + 1])
        assert float(per[i]) == pytest.approx(ref_see(*one, th=0.2), rel=1e-6)
    with pytest.warns(RuntimeWarning, match="no edge pixel"):
        batch = soft_edge_error(pred, target, valid, threshold=0.2)
    assert batch == pytest.approx(float(per[[0, 2]].mean()), rel=1e-12)


def test_see_raises_without_edges():
    g = torch.full((1, 1, 4, 4), 2.0)
    with pytest.raises(ValueError, match="edge pixel"):
        soft_edge_error(g, g, ones_valid(g))
    g2 = step_image([1, 1, 1, 1, 4, 4, 4, 4])
    with pytest.raises(ValueError, match="no valid pixel|edge pixel"):
        soft_edge_error(g2, g2, torch.zeros_like(g2, dtype=torch.bool))


# ----------------------------------------------------------------------------- docs and devices


def test_docstring_examples_run():
    result = doctest.testmod(M, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 10 and result.failed == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    pred, target, valid = random_batch(b=3, h=16, w=16, seed=12)
    gen = torch.Generator().manual_seed(1)
    ia = torch.randint(0, 256, (3, 64), generator=gen)
    ib = torch.randint(0, 256, (3, 64), generator=gen)
    cuda = [x.cuda() for x in (pred, target, valid)]
    a, b = depth_metrics(pred, target, valid), depth_metrics(*cuda)
    for k in KEYS:
        assert b[k] == pytest.approx(a[k], rel=1e-6, abs=1e-9), k
    assert whdr(cuda[0], cuda[1], ia.cuda(), ib.cuda(), cuda[2]) == pytest.approx(whdr(pred, target, ia, ib, valid))
    assert soft_edge_error(*cuda, threshold=0.2) == pytest.approx(soft_edge_error(pred, target, valid, threshold=0.2), rel=1e-6)
    for method in ("median", "lstsq"):
        for space in ("depth", "disparity"):
            torch.testing.assert_close(align(*cuda, method=method, space=space).cpu(),
                                       align(pred, target, valid, method=method, space=space))
    torch.testing.assert_close(depth_edges(cuda[1], cuda[2], 0.2, 3).cpu(), depth_edges(target, valid, 0.2, 3))


def test_flat_map_is_each_images_valid_median_everywhere():
    t = torch.tensor([[1.0, 2.0], [3.0, 100.0]]).view(1, 1, 2, 2).repeat(2, 1, 1, 1)
    t[1] = torch.tensor([[5.0, 6.0], [7.0, 8.0]])
    v = torch.ones_like(t, dtype=torch.bool)
    v[0, 0, 1, 1] = False                              # the 100 m pixel does not count
    out = flat_map(t, v)
    assert out.shape == t.shape
    assert torch.all(out[0] == 2.0)                   # median of 1, 2, 3
    assert torch.all(out[1] == out[1, 0, 0, 0]) and 6.0 <= float(out[1, 0, 0, 0]) <= 7.0


def test_abs_rel_per_image_is_what_depth_metrics_averages():
    g = torch.rand(5, 1, 6, 7, generator=torch.Generator().manual_seed(0)) * 4 + 1
    p = g * (1 + 0.3 * torch.randn(5, 1, 6, 7, generator=torch.Generator().manual_seed(1))).abs()
    v = torch.rand(5, 1, 6, 7, generator=torch.Generator().manual_seed(2)) > 0.3
    v[3] = False                                                    # an image with no valid pixel
    per = abs_rel_per_image(p, g, v)
    assert per.shape == (5,) and per.dtype == torch.float64 and torch.isnan(per[3])
    for i in (0, 1, 2, 4):                       # by hand, over the valid pixels of image i
        by_hand = ((p[i] - g[i]).abs() / g[i])[v[i]].double().mean()
        assert per[i].item() == pytest.approx(by_hand.item(), rel=1e-6)
    keep = [0, 1, 2, 4]
    assert per[keep].mean().item() == pytest.approx(depth_metrics(p[keep], g[keep], v[keep])["abs_rel"])


# --------------------------------------------------------------------------- align_log
def test_align_log_matches_an_independent_least_squares_fit():
    g = torch.Generator().manual_seed(4)
    target = 1 + 5 * torch.rand(3, 1, 6, 7, generator=g, dtype=torch.float64)
    pred = 0.2 + torch.rand(3, 1, 6, 7, generator=g, dtype=torch.float64)
    valid = torch.rand(3, 1, 6, 7, generator=g) > 0.3
    aligned, s = M.align_log(pred, target, valid)
    for i in range(3):
        x, y = pred[i][valid[i]].log(), target[i][valid[i]].log()
        A = torch.stack([x, torch.ones_like(x)], 1)
        coef = torch.linalg.lstsq(A, y[:, None]).solution.flatten()
        assert s[i].item() == pytest.approx(coef[0].item(), rel=1e-9)
        expect = torch.exp(coef[0] * pred[i].log() + coef[1])
        torch.testing.assert_close(aligned[i], expect, rtol=1e-9, atol=0)


def test_align_log_undoes_a_power_and_a_scale_and_ignores_invalid_pixels():
    g = torch.Generator().manual_seed(5)
    target = 1 + 4 * torch.rand(2, 1, 5, 5, generator=g)
    valid = torch.ones_like(target, dtype=torch.bool)
    valid[:, :, 0] = False
    pred = 0.3 * target ** 1.7
    pred[:, :, 0] = -1.0  # not positive, but outside valid: taken as EPS, never read by the fit
    aligned, s = M.align_log(pred, target, valid)
    torch.testing.assert_close(s, torch.full((2,), 1 / 1.7, dtype=torch.float64), rtol=1e-5, atol=0)
    torch.testing.assert_close(aligned[valid], target[valid], rtol=1e-5, atol=0)
    assert aligned.dtype == pred.dtype and torch.isfinite(aligned).all()


def test_align_log_refuses_what_it_cannot_fit():
    t = torch.ones(1, 1, 2, 2) * 2
    v = torch.ones_like(t, dtype=torch.bool)
    with pytest.raises(ValueError, match="pred must be > 0"):
        M.align_log(-t, t, v)
    with pytest.raises(ValueError, match="constant"):
        M.align_log(t, t, v)
    one = torch.zeros_like(v)
    one[..., 0, 0] = True
    with pytest.raises(ValueError, match="fewer than 2 valid"):
        M.align_log(t, t, one)
