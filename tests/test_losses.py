"""Tests of lib.losses against hand-worked numbers and straightforward loop implementations."""
import math

import numpy as np
import pytest
import torch

from lib.losses import (
    gradient_matching_loss,
    ranking_loss,
    scale_invariant_loss,
    silog_loss,
    ssi_loss,
    ssi_trimmed_loss,
    structure_guided_ranking_loss,
)
from lib.sampling import edge_guided_pairs, instance_guided_pairs, random_pairs

torch.set_default_dtype(torch.float32)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def sample(B=3, H=9, W=11, seed=0, holes=True):
    """Positive pred/target with a valid mask that has holes; image 0 fully valid."""
    g = gen(seed)
    target = torch.rand(B, 1, H, W, generator=g, dtype=torch.float64) * 4 + 0.5
    pred = torch.rand(B, 1, H, W, generator=g, dtype=torch.float64) * 4 + 0.5
    valid = torch.ones(B, 1, H, W, dtype=torch.bool)
    if holes:
        valid[1:] = torch.rand(B - 1, 1, H, W, generator=g) > 0.35
    return pred, target, valid


def poison(pred, target, valid):
    """Values that break a careless loss, written only at invalid pixels."""
    p, t = pred.clone(), target.clone()
    inv = ~valid
    p[inv] = torch.tensor([0.0, -1.0, float("nan"), float("inf")], dtype=p.dtype).repeat(inv.sum().item() // 4 + 1)[: inv.sum()]
    t[inv] = torch.tensor([0.0, float("nan"), -2.0, float("inf")], dtype=t.dtype).repeat(inv.sum().item() // 4 + 1)[: inv.sum()]
    return p, t


# --------------------------------------------------------------------------- reference implementations
def ref_ranking(pred, target, ia, ib, valid, sigma=0.03, alpha=1.0):
    B = pred.shape[0]
    P, T, V = pred.flatten(1).tolist(), target.flatten(1).tolist(), valid.flatten(1).tolist()
    per = []
    for b in range(B):
        eq, od = [], []
        for a_, b_ in zip(ia[b].tolist(), ib[b].tolist()):
            if not (V[b][a_] and V[b][b_]) or a_ == b_:
                continue
            r = T[b][a_] / T[b][b_]
            l = 1 if r >= 1 + sigma else (-1 if r <= 1 / (1 + sigma) else 0)
            d = P[b][a_] - P[b][b_]
            if l == 0:
                eq.append(d * d)
            else:
                od.append(math.log(1 + math.exp(-l * d)))
        if eq or od:
            per.append((alpha * sum(eq) + sum(od)) / (len(eq) + len(od)))   # 1/N over all usable pairs
    return sum(per) / len(per) if per else 0.0


def ref_si(pred, target, valid, lam, sqrt_scale=None):
    vals = []
    for p, t, v in zip(pred.numpy(), target.numpy(), valid.numpy()):
        if not v.any():
            continue
        g = np.log(p[v]) - np.log(t[v])
        x = np.mean(g ** 2) - lam * np.mean(g) ** 2
        vals.append(x if sqrt_scale is None else sqrt_scale * np.sqrt(x))
    return float(np.mean(vals)) if vals else 0.0


def ref_silog_pooled(pred, target, valid, lam, scale):
    """AdaBins / ZoeDepth SILogLoss: g = log(input[mask]) - log(target[mask]) pooled over the batch,
    Dg = torch.var(g) (unbiased) + (1 - lam) * mean(g)^2, scale * sqrt(Dg)."""
    v = valid.numpy()
    g = np.log(pred.numpy()[v]) - np.log(target.numpy()[v])
    return float(scale * np.sqrt(np.var(g, ddof=1) + (1 - lam) * np.mean(g) ** 2))


def ref_grad(pred, target, valid, scales):
    """Loops over every pixel, as in the MiDaS reference: sum |dR| over both-valid neighbours / M_k."""
    total = 0.0
    for k in range(scales):
        s = 2 ** k
        R = (pred - target).numpy()[:, 0, ::s, ::s]
        V = valid.numpy()[:, 0, ::s, ::s]
        num, M = 0.0, V.sum()
        for b in range(R.shape[0]):
            for i in range(R.shape[1]):
                for j in range(R.shape[2]):
                    if j + 1 < R.shape[2] and V[b, i, j] and V[b, i, j + 1]:
                        num += abs(R[b, i, j + 1] - R[b, i, j])
                    if i + 1 < R.shape[1] and V[b, i, j] and V[b, i + 1, j]:
                        num += abs(R[b, i + 1, j] - R[b, i, j])
        total += num / M if M > 0 else 0.0
    return total


def ref_ssi_aligned(pred, target, valid):
    """Per-image least squares with numpy.linalg.lstsq; returns the aligned prediction."""
    out = np.zeros(pred.shape)
    for b in range(pred.shape[0]):
        v = valid[b, 0].numpy()
        p, g = pred[b, 0].numpy(), target[b, 0].numpy()
        A = np.stack([p[v], np.ones(v.sum())], 1)
        (s, t), *_ = np.linalg.lstsq(A, g[v], rcond=None)
        out[b, 0] = s * p + t
    return torch.from_numpy(out)


def ref_normalise(x, valid):
    out = np.zeros(x.shape)
    for b in range(x.shape[0]):
        v = valid[b, 0].numpy()
        vals = x[b, 0].numpy()[v]
        med = np.sort(vals)[(len(vals) - 1) // 2]          # lower median, like torch.median
        mad = np.mean(np.abs(vals - med))
        out[b, 0] = (x[b, 0].numpy() - med) / mad
    return torch.from_numpy(out)


def ref_trimmed_data(p_hat, g_hat, valid, trim):
    kept, M = 0.0, 0
    for b in range(p_hat.shape[0]):
        v = valid[b, 0].numpy()
        r = np.sort(np.abs(p_hat[b, 0].numpy()[v] - g_hat[b, 0].numpy()[v]))
        kept += r[: int(len(r) * (1 - trim))].sum()
        M += len(r)
    return kept / (2 * M)


# --------------------------------------------------------------------------- ranking
def test_ranking_loss_hand_worked():
    # one 2x2 image, flat indices 0 1 / 2 3
    t = torch.tensor([2.0, 1.0, 1.0, 1.0, ]).view(1, 1, 2, 2)
    p = torch.tensor([0.5, 0.0, 1.0, 0.0]).view(1, 1, 2, 2)
    v = torch.ones(1, 1, 2, 2, dtype=torch.bool)
    ia, ib = torch.tensor([[0, 2, 1]]), torch.tensor([[1, 3, 3]])
    # pair (0,1): t 2/1 -> l=+1, d=0.5 -> log(1+e^-0.5) = 0.474077
    # pair (2,3): equal, d=1 -> 1 ; pair (1,3): equal, d=0 -> 0
    # alpha=2, N=3 pairs: (2*(1 + 0) + 0.474077) / 3 = 0.824692
    expect = (2 * 1.0 + math.log(1 + math.exp(-0.5))) / 3
    assert ranking_loss(p, t, ia, ib, v, alpha=2.0).item() == pytest.approx(expect, abs=1e-6)
    # swapping the two ends of every pair changes nothing (l and pa-pb both flip)
    assert ranking_loss(p, t, ib, ia, v, alpha=2.0).item() == pytest.approx(expect, abs=1e-6)


def test_ranking_loss_matches_loop_reference_with_invalid_and_degenerate_pairs():
    pred, target, valid = sample(B=4, seed=1)
    valid[3] = False                                   # no usable pair: must not dilute the mean
    target[0, 0, 0, :3] = 1.0                          # some exactly-equal targets
    ia, ib = torch.randint(0, 99, (4, 300), generator=gen(2)), torch.randint(0, 99, (4, 300), generator=gen(3))
    ib[:, :10] = ia[:, :10]                            # degenerate a == b pairs are ignored
    for sigma, alpha in ((0.03, 1.0), (0.2, 0.5)):
        got = ranking_loss(pred, target, ia, ib, valid, sigma=sigma, alpha=alpha).item()
        assert got == pytest.approx(ref_ranking(pred, target, ia, ib, valid, sigma, alpha), rel=1e-10)


def test_ranking_loss_depends_only_on_pair_values():
    pred, target, valid = sample(B=2, seed=4)
    ia, ib = random_pairs(valid, 20, gen(5))
    pred = pred.requires_grad_(True)
    loss = ranking_loss(pred, target, ia, ib, valid)
    loss.backward()
    used = torch.zeros(2, 99, dtype=torch.bool)
    used.scatter_(1, ia, True).scatter_(1, ib, True)
    used = used.view_as(valid)
    assert (pred.grad[~used] == 0).all() and (pred.grad[used] != 0).any()
    other = pred.detach().clone()
    other[~used] = torch.rand(int((~used).sum()), dtype=other.dtype) * 100
    assert ranking_loss(other, target, ia, ib, valid).item() == pytest.approx(loss.item(), rel=1e-12)


def test_ranking_loss_stable_for_large_margins():
    t = torch.tensor([1.0, 2.0]).view(1, 1, 1, 2)
    v = torch.ones(1, 1, 1, 2, dtype=torch.bool)
    p = torch.tensor([1000.0, 0.0]).view(1, 1, 1, 2).requires_grad_(True)  # badly wrong by 1000
    loss = ranking_loss(p, t, torch.tensor([[0]]), torch.tensor([[1]]), v)
    loss.backward()
    assert loss.item() == pytest.approx(1000.0)                            # softplus(1000) = 1000
    assert torch.isfinite(p.grad).all()


def test_structure_guided_ranking_loss_is_ranking_loss_on_guided_pairs():
    g = gen(6)
    image = torch.rand(2, 3, 32, 32, generator=g)
    target = torch.rand(2, 1, 32, 32, generator=g) + 0.5
    pred = torch.rand(2, 1, 32, 32, generator=g)
    valid = torch.rand(2, 1, 32, 32, generator=g) > 0.2
    mask = (torch.rand(2, 1, 32, 32, generator=g) * 3).long()
    got = structure_guided_ranking_loss(pred, target, image, valid, n_pairs=400, generator=gen(7))
    ia, ib = edge_guided_pairs(image, valid, 400, gen(7), random_fraction=0.25)
    assert got.item() == pytest.approx(ranking_loss(pred, target, ia, ib, valid).item(), rel=1e-6)
    # with a mask: 200 edge + 100 instance + 100 random, drawn in that order from one generator
    got_m = structure_guided_ranking_loss(pred, target, image, valid, mask=mask, n_pairs=400, generator=gen(8))
    g8 = gen(8)
    parts = [edge_guided_pairs(image, valid, 200, g8, random_fraction=0.0),
             instance_guided_pairs(mask, valid, 100, g8), random_pairs(valid, 100, g8)]
    ia, ib = torch.cat([x[0] for x in parts], 1), torch.cat([x[1] for x in parts], 1)
    assert got_m.item() == pytest.approx(ranking_loss(pred, target, ia, ib, valid).item(), rel=1e-6)
    # reproducible with a generator
    again = structure_guided_ranking_loss(pred, target, image, valid, mask=mask, n_pairs=400, generator=gen(8))
    assert again.item() == got_m.item()


# --------------------------------------------------------------------------- scale-invariant, SILog
def test_si_and_silog_hand_worked():
    # one image, two pixels, pred/target = (e, 1): g = (1, 0); mean g^2 = 0.5, mean g = 0.5
    t = torch.ones(1, 1, 1, 2)
    p = torch.tensor([math.e, 1.0]).view(1, 1, 1, 2)
    v = torch.ones(1, 1, 1, 2, dtype=torch.bool)
    # SI, lam=0.5: 0.5 - 0.5 * 0.25 = 0.375
    assert scale_invariant_loss(p, t, v).item() == pytest.approx(0.375, rel=1e-6)
    # SILog (reference: unbiased variance of the pooled g + 0.15 mean^2), lam=0.85, scale 10:
    # var_{n-1}(1, 0) = 0.5, 0.15 * 0.25 = 0.0375 -> 10 * sqrt(0.5375) = 7.33144
    assert silog_loss(p, t, v).item() == pytest.approx(10 * math.sqrt(0.5375), rel=1e-6)
    # per image (one image here) the same value
    assert silog_loss(p, t, v, reduction="image").item() == pytest.approx(10 * math.sqrt(0.5375), rel=1e-6)


def test_silog_pools_the_batch_two_images_at_plus_minus_log_scale():
    # image 0 predicts 1.1x the target everywhere, image 1 1/1.1x: g = +-log 1.1, no spread inside
    t = torch.ones(2, 1, 8, 8, dtype=torch.float64)
    p = torch.cat([t[:1] * 1.1, t[1:] / 1.1])
    v = torch.ones_like(t, dtype=torch.bool)
    g = math.log(1.1)
    n = 128
    pooled = 10 * math.sqrt(g * g * n / (n - 1))          # pooled mean 0, unbiased variance
    per_image = 10 * math.sqrt(0.15) * g                  # per image: no variance, 0.15 mean^2
    assert silog_loss(p, t, v).item() == pytest.approx(pooled, rel=1e-9)
    assert silog_loss(p, t, v, reduction="image").item() == pytest.approx(per_image, rel=1e-9)
    assert pooled > 2.5 * per_image
    with pytest.raises(ValueError, match="reduction"):
        silog_loss(p, t, v, reduction="mean")


def test_si_and_silog_match_numpy_reference():
    pred, target, valid = sample(B=4, seed=9)
    valid[2] = False                                   # an empty image does not count
    for lam in (0.0, 0.5, 0.85, 1.0):
        assert scale_invariant_loss(pred, target, valid, lam=lam).item() == pytest.approx(
            ref_si(pred, target, valid, lam), rel=1e-9)
        assert silog_loss(pred, target, valid, lam=lam, scale=3.0).item() == pytest.approx(
            ref_silog_pooled(pred, target, valid, lam, 3.0), rel=1e-9)


def test_scale_invariance_holds_exactly_when_lambda_is_one():
    pred, target, valid = sample(seed=10)
    for c in (0.01, 3.0, 250.0):
        assert scale_invariant_loss(c * pred, target, valid, lam=1.0).item() == pytest.approx(
            scale_invariant_loss(pred, target, valid, lam=1.0).item(), rel=1e-9)
        assert silog_loss(c * pred, target, valid, lam=1.0).item() == pytest.approx(
            silog_loss(pred, target, valid, lam=1.0).item(), rel=1e-9)
    # with lam < 1 a global scale error is penalised: (1 - lam) * (log c)^2 is added per image
    base = scale_invariant_loss(pred, target, valid, lam=0.5).item()
    scaled = scale_invariant_loss(3.0 * pred, target, valid, lam=0.5).item()
    assert scaled != pytest.approx(base, rel=1e-3)
    assert silog_loss(3.0 * pred, target, valid).item() != pytest.approx(silog_loss(pred, target, valid).item(), rel=1e-3)
    # and for a perfect shape with the wrong scale: SI(lam) = (1 - lam) (log c)^2 exactly
    assert scale_invariant_loss(2.0 * target, target, valid, lam=0.5).item() == pytest.approx(0.5 * math.log(2) ** 2)


def test_si_and_silog_zero_for_perfect_prediction_with_finite_gradient():
    _, target, valid = sample(seed=11)
    for fn in (scale_invariant_loss, silog_loss):
        p = target.clone().requires_grad_(True)
        loss = fn(p, target, valid)
        loss.backward()
        assert loss.item() == pytest.approx(0.0, abs=1e-12)
        assert torch.isfinite(p.grad).all()
    # lam = 1 makes any scaled copy perfect too: the sqrt guard keeps SILog's gradient finite
    p = (5.0 * target).requires_grad_(True)
    silog_loss(p, target, valid, lam=1.0).backward()
    assert torch.isfinite(p.grad).all()


# --------------------------------------------------------------------------- gradient matching
def test_gradient_matching_hand_worked():
    # R = pred - target on a 4x4 image, one invalid pixel at (0, 0):
    #  0 1 2 3        x-diffs valid pairs per row: row0 (0,1)x->no, (1,2):1, (2,3):1 -> 2
    #  0 1 2 3        rows 1-3: 3 diffs of 1 each -> 9 ; total x = 11
    #  0 1 2 3        y-diffs all 0
    #  0 1 2 3        scale 0: 11 / 15 valid pixels
    # scale 1 (::2): R = [[0,2],[0,2]], valid [[F,T],[T,T]] -> x: row1 |2-0| = 2 ; y: col1 0 -> 2 / 3
    R = torch.arange(4.0).repeat(4, 1).view(1, 1, 4, 4)
    v = torch.ones(1, 1, 4, 4, dtype=torch.bool)
    v[0, 0, 0, 0] = False
    target = torch.rand(1, 1, 4, 4)
    got = gradient_matching_loss(R + target, target, v, scales=2).item()
    assert got == pytest.approx(11 / 15 + 2 / 3, rel=1e-5)


def test_gradient_matching_matches_loop_reference_and_is_batch_based():
    pred, target, valid = sample(B=3, H=13, W=10, seed=12)
    for scales in (1, 2, 4):
        assert gradient_matching_loss(pred, target, valid, scales).item() == pytest.approx(
            ref_grad(pred, target, valid, scales), rel=1e-10)
    # batch-based: the loss of a batch is NOT the mean of the per-image losses in general
    per_image = [gradient_matching_loss(pred[i:i + 1], target[i:i + 1], valid[i:i + 1], 1).item() for i in range(3)]
    assert gradient_matching_loss(pred, target, valid, 1).item() != pytest.approx(np.mean(per_image), rel=1e-3)


def test_gradient_matching_shift_invariant_and_zero_when_matching():
    pred, target, valid = sample(seed=13)
    assert gradient_matching_loss(pred + 7.5, target, valid).item() == pytest.approx(
        gradient_matching_loss(pred, target, valid).item(), rel=1e-9)
    assert gradient_matching_loss(target - 3.0, target, valid).item() == pytest.approx(0.0, abs=1e-12)


# --------------------------------------------------------------------------- SSI
def test_ssi_loss_matches_lstsq_reference():
    pred, target, valid = sample(B=3, seed=14)
    aligned = ref_ssi_aligned(pred, target, valid)
    r = (aligned - target)[valid]
    data = float((r ** 2).sum() / (2 * valid.sum()))
    assert ssi_loss(pred, target, valid, alpha=0.0).item() == pytest.approx(data, rel=1e-9)
    full = data + 0.5 * ref_grad(aligned, target, valid, 4)
    assert ssi_loss(pred, target, valid).item() == pytest.approx(full, rel=1e-9)


def test_ssi_hand_worked_constant_prediction():
    # constant pred cannot be scaled: s = 0, t = mean(g) = 2.5 for g = 1 2 3 4;
    # data = sum (g - 2.5)^2 / (2 * 4) = (2.25 + 0.25 + 0.25 + 2.25) / 8 = 0.625
    # gradient term (1 scale): R = 2.5 - g: x-diffs |1|,|1| ; y-diffs |2|,|2| -> 6 / 4 = 1.5
    g = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 1, 2, 2)
    v = torch.ones_like(g, dtype=torch.bool)
    p = torch.full_like(g, 0.7).requires_grad_(True)
    loss = ssi_loss(p, g, v, alpha=0.5, scales=1)
    assert loss.item() == pytest.approx(0.625 + 0.5 * 1.5, rel=1e-6)
    loss.backward()
    assert torch.isfinite(p.grad).all()


def test_ssi_invariant_to_scale_and_shift_and_zero_for_affine_prediction():
    pred, target, valid = sample(seed=15)
    base = ssi_loss(pred, target, valid).item()
    for a, b in ((3.0, -2.0), (0.01, 100.0), (-2.0, 0.5)):
        assert ssi_loss(a * pred + b, target, valid).item() == pytest.approx(base, rel=1e-7)
    assert ssi_loss(0.2 * target + 9.0, target, valid).item() == pytest.approx(0.0, abs=1e-12)


def test_ssi_trimmed_matches_numpy_reference():
    pred, target, valid = sample(B=3, seed=16)
    p_hat, g_hat = ref_normalise(pred, valid), ref_normalise(target, valid)
    for trim in (0.0, 0.2, 0.5):
        data = ref_trimmed_data(p_hat, g_hat, valid, trim)
        assert ssi_trimmed_loss(pred, target, valid, trim=trim, alpha=0.0).item() == pytest.approx(data, rel=1e-9)
    full = ref_trimmed_data(p_hat, g_hat, valid, 0.2) + 0.5 * ref_grad(p_hat, g_hat, valid, 4)
    assert ssi_trimmed_loss(pred, target, valid).item() == pytest.approx(full, rel=1e-9)


def test_ssi_trimmed_hand_worked_and_outlier_is_trimmed():
    # g = 1 2 3 4 5 (one row): lower median 3, MAD = (2+1+0+1+2)/5 = 1.2, g^ = (-2,-1,0,1,2)/1.2
    # pred = g except pixel 4 = 100 (outlier): lower median 3, MAD = (2+1+0+1+97)/5 = 20.2
    # p^ = (-2,-1,0,1,97)/20.2 ; |p^ - g^| sorted, keep floor(0.8*5) = 4 smallest, / (2*5)
    g = torch.tensor([1.0, 2, 3, 4, 5], dtype=torch.float64).view(1, 1, 1, 5)
    p = g.clone()
    p[..., 4] = 100.0
    v = torch.ones_like(g, dtype=torch.bool)
    gh = np.array([-2, -1, 0, 1, 2]) / 1.2
    ph = np.array([-2, -1, 0, 1, 97]) / 20.2
    res = np.sort(np.abs(ph - gh))
    expect = res[:4].sum() / 10
    assert ssi_trimmed_loss(p, g, v, alpha=0.0).item() == pytest.approx(expect, rel=1e-12)
    # the outlier's own residual (the largest) is dropped
    assert np.argmax(np.abs(ph - gh)) == 4


def test_ssi_trimmed_invariant_to_positive_scale_and_shift():
    pred, target, valid = sample(seed=17)
    base = ssi_trimmed_loss(pred, target, valid).item()
    for a, b in ((3.0, -2.0), (0.01, 100.0)):
        assert ssi_trimmed_loss(a * pred + b, target, valid).item() == pytest.approx(base, rel=1e-7)
    assert ssi_trimmed_loss(4.0 * target - 1.0, target, valid).item() == pytest.approx(0.0, abs=1e-12)


# --------------------------------------------------------------------------- robustness shared by all
def all_losses():
    def rank(p, t, v):
        ia, ib = random_pairs(v, 50, gen(0))
        return ranking_loss(p, t, ia, ib, v)

    def sgr(p, t, v):
        img = torch.rand(p.shape[0], 3, *p.shape[2:], generator=gen(1), dtype=p.dtype).to(p.device)
        return structure_guided_ranking_loss(p, t, img, v, n_pairs=40, generator=gen(2))

    return {"ranking": rank, "structure_guided": sgr, "si": scale_invariant_loss, "silog": silog_loss,
            "grad": gradient_matching_loss, "ssi": ssi_loss, "ssi_trimmed": ssi_trimmed_loss}


@pytest.mark.parametrize("name", list(all_losses()))
def test_invalid_pixels_never_leak(name):
    fn = all_losses()[name]
    pred, target, valid = sample(B=3, seed=18)
    clean = fn(pred, target, valid).item()
    p, t = poison(pred, target, valid)
    p.requires_grad_(True)
    loss = fn(p, t, valid)
    loss.backward()
    assert math.isfinite(loss.item()) and loss.item() == pytest.approx(clean, rel=1e-9)
    assert torch.isfinite(p.grad).all()
    assert (p.grad[~valid] == 0).all()


@pytest.mark.parametrize("name", list(all_losses()))
def test_all_invalid_batch_gives_zero_that_backpropagates(name):
    fn = all_losses()[name]
    pred, target, valid = sample(B=2, seed=19)
    valid = torch.zeros_like(valid)
    p, t = poison(pred, target, valid)
    p.requires_grad_(True)
    loss = fn(p, t, valid)
    assert loss.ndim == 0 and loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.isfinite(p.grad).all() and (p.grad == 0).all()


@pytest.mark.parametrize("name", list(all_losses()))
def test_zero_variance_images_have_finite_gradients(name):
    fn = all_losses()[name]
    _, target, valid = sample(B=2, seed=20)
    for pred, tgt in ((torch.full_like(target, 2.0), target),          # constant prediction
                      (torch.full_like(target, 2.0), torch.full_like(target, 3.0)),  # both constant
                      (target.clone(), target)):                         # perfect prediction
        p = pred.clone().requires_grad_(True)
        loss = fn(p, tgt, valid)
        loss.backward()
        assert math.isfinite(loss.item()), name
        assert torch.isfinite(p.grad).all(), name
    # one valid pixel only: no variance, no pair
    one = torch.zeros_like(valid)
    one[:, :, 2, 3] = True
    p = target.clone().mul(1.5).requires_grad_(True)
    loss = fn(p, target, one)
    loss.backward()
    assert math.isfinite(loss.item()) and torch.isfinite(p.grad).all()


def test_nonpositive_prediction_on_valid_pixels_is_clamped_not_nan():
    pred, target, valid = sample(seed=21)
    pred[0, 0, 0, 0] = 0.0
    pred[0, 0, 0, 1] = -3.0
    p = pred.requires_grad_(True)
    for fn in (scale_invariant_loss, silog_loss):
        p.grad = None
        loss = fn(p, target, valid)
        loss.backward()
        assert math.isfinite(loss.item()) and torch.isfinite(p.grad).all()


@pytest.mark.parametrize("name", list(all_losses()))
def test_bad_input_raises(name):
    fn = all_losses()[name]
    pred, target, valid = sample(B=2, seed=22)
    with pytest.raises(ValueError, match="shape"):
        fn(pred, target[:, :, :-1], valid)
    with pytest.raises(TypeError, match="bool"):
        fn(pred, target, valid.float())
    with pytest.raises(ValueError, match=r"\(B,1,H,W\)"):
        fn(pred[:, 0], target[:, 0], valid[:, 0])


def test_ranking_loss_rejects_bad_indices():
    pred, target, valid = sample(B=2, seed=23)
    with pytest.raises(ValueError, match="outside"):
        ranking_loss(pred, target, torch.tensor([[0], [99]]), torch.tensor([[1], [2]]), valid)
    with pytest.raises(ValueError, match="B=2"):
        ranking_loss(pred, target, torch.tensor([[0]]), torch.tensor([[1]]), valid)
    with pytest.raises(TypeError, match="int64"):
        ranking_loss(pred, target, torch.tensor([[0.0], [1.0]]), torch.tensor([[1], [2]]), valid)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", list(all_losses()))
def test_cuda_matches_cpu(name):
    fn = all_losses()[name]
    pred, target, valid = sample(B=3, seed=24)
    pred, target = pred.float(), target.float()
    p_cpu = pred.clone().requires_grad_(True)
    p_gpu = pred.cuda().requires_grad_(True)
    l_cpu = fn(p_cpu, target, valid)
    with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):  # exact-ish Sobel for the edge sampler
        l_gpu = fn(p_gpu, target.cuda(), valid.cuda())
    l_cpu.backward()
    l_gpu.backward()
    assert l_gpu.item() == pytest.approx(l_cpu.item(), rel=1e-4, abs=1e-6)
    assert torch.allclose(p_gpu.grad.cpu(), p_cpu.grad, rtol=1e-3, atol=1e-6)
