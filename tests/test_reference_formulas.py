"""The published methods against independent transcriptions of their authors' code.

Each reference below is a few lines written from the official repository named in its docstring
(not from ``lib``), run on small random inputs and compared with the course's default. Where
``lib`` departs from the official code on purpose, the test builds an input on which the two
must agree (e.g. every pixel valid) or checks the documented difference itself.
"""
import math
import random

import numpy as np
import pytest
import torch
from scipy import stats

from lib.cutmix import cutmix_boxes
from lib.losses import ranking_loss, silog_loss, ssi_trimmed_loss, structure_guided_ranking_loss
from lib.models.fusion import consistency_loss
from lib.models.gan import generator_loss
from lib.sampling import edge_guided_pairs, edge_pixel_count, random_pairs
from lib.strong_perturbation import strong_perturbation


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------- SGR ranking loss
def official_ranking(inputs_A, inputs_B, targets_A, targets_B, masks_A, masks_B, sigma=0.03, alpha=1.0):
    """EdgeguidedRankingLoss.forward (KexianHust/Structure-Guided-Ranking-Loss, ranking_loss.py),
    the loss of one image given its pairs: both means run over ALL the pairs."""
    target_ratio = (targets_A + 1e-6) / (targets_B + 1e-6)
    mask_eq = (target_ratio < 1.0 + sigma) & (target_ratio > 1.0 / (1.0 + sigma))
    labels = np.zeros_like(target_ratio)
    labels[target_ratio >= 1.0 + sigma] = 1
    labels[target_ratio <= 1.0 / (1.0 + sigma)] = -1
    consistency_mask = masks_A * masks_B
    equal_loss = (inputs_A - inputs_B) ** 2 * mask_eq * consistency_mask
    unequal_loss = np.log(1 + np.exp((-inputs_A + inputs_B) * labels)) * (~mask_eq) * consistency_mask
    return alpha * equal_loss.mean() + unequal_loss.mean()


@pytest.mark.parametrize("sigma, alpha", [(0.03, 1.0), (0.1, 0.5)])
def test_ranking_loss_is_the_official_loss_when_every_pair_is_usable(sigma, alpha):
    g = gen(1)
    B, H, W = 3, 12, 14
    target = torch.rand(B, 1, H, W, generator=g, dtype=torch.float64) + 0.5
    target[:, :, :4] = 1.0                                     # plenty of "equal" pairs too
    pred = torch.randn(B, 1, H, W, generator=g, dtype=torch.float64)
    valid = torch.ones(B, 1, H, W, dtype=torch.bool)
    ia, ib = random_pairs(valid, 200, gen(2))
    got = ranking_loss(pred, target, ia, ib, valid, sigma=sigma, alpha=alpha).item()
    p, t = pred.flatten(1).numpy(), target.flatten(1).numpy()
    per = [official_ranking(p[b, ia[b]], p[b, ib[b]], t[b, ia[b]], t[b, ib[b]],
                            np.ones(200), np.ones(200), sigma, alpha) for b in range(B)]
    assert got == pytest.approx(sum(per) / B, rel=1e-9)


def test_ranking_loss_counts_only_usable_pairs_where_the_official_counts_all():
    # one ordinal pair and one pair with an invalid end: official 1/2 * softplus, ours softplus
    t = torch.tensor([2.0, 1.0, 1.0, 1.0]).view(1, 1, 2, 2)
    p = torch.zeros(1, 1, 2, 2)
    v = torch.tensor([True, True, True, False]).view(1, 1, 2, 2)
    ia, ib = torch.tensor([[0, 2]]), torch.tensor([[1, 3]])
    ours = ranking_loss(p, t, ia, ib, v).item()
    official = official_ranking(np.zeros(2), np.zeros(2), np.array([2.0, 1.0]), np.array([1.0, 1.0]),
                                np.array([1.0, 1.0]), np.array([1.0, 0.0]))
    assert ours == pytest.approx(math.log(2)) and official == pytest.approx(math.log(2) / 2)


# --------------------------------------------------------------------------- SGR edge sampling
def official_theta(image):
    """getEdge: Sobel on channel 0 with the reference's kernels (F.conv2d correlates), no padding."""
    import torch.nn.functional as F
    a = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]]).view(1, 1, 3, 3)
    b = torch.tensor([[1.0, 2, 1], [0, 0, 0], [-1, -2, -1]]).view(1, 1, 3, 3)
    gx, gy = F.conv2d(image[:, :1], a), F.conv2d(image[:, :1], b)
    return torch.atan2(gy, gx)


def test_edge_sampling_crosses_a_diagonal_edge_where_the_official_normal_runs_along_it():
    H = W = 48
    yy, xx = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    img = (xx + yy >= 48).float().expand(1, 3, H, W).clone()     # bright lower-right half, 45 degrees
    # the official direction on the edge: atan2(gy_ref, gx) = -45 degrees, i.e. (cos, sin) ~ (1, -1):
    # a step along it changes x + y by 0, so all four points stay on the edge line
    theta = official_theta(img)[0, 0]
    on_edge = theta[theta.abs() > 0]
    assert torch.allclose(on_edge, torch.full_like(on_edge, -math.pi / 4))
    # ours follows the true gradient (1, 1): the middle pair crosses the edge
    valid = torch.ones(1, 1, H, W, dtype=torch.bool)
    a, b = edge_guided_pairs(img, valid, 600, gen(3), random_fraction=0.0, max_dist=10)
    fa, fb = random_pairs(valid, 600, gen(3))                     # what failed pairs are replaced by
    guided = ~((a == fa) & (b == fb))[:, 1::3]
    ra, ca, rb, cb = a // W, a % W, b // W, b % W
    crossing = ((ra + ca < 48) != (rb + cb < 48))[:, 1::3][guided]
    assert guided.float().mean() > 0.7 and bool(crossing.all())


def test_edge_sampling_distances_are_four_independent_uniform_draws_in_2_30():
    H, W = 8, 200
    img = torch.zeros(1, 3, H, W)
    img[..., 100:] = 1.0                                          # edge pixels in columns 99 and 100
    valid = torch.ones(1, 1, H, W, dtype=torch.bool)
    a, b = edge_guided_pairs(img, valid, 3 * 4000, gen(4), random_fraction=0.0)
    col_a, col_b = a[0] % W, b[0] % W
    p1, p2 = col_a[1::3], col_b[1::3]                             # the crossing pair (p1, p2)
    anchor = torch.where(p1 < 99, 99, 100)                        # its anchor is 99 or 100
    # p1 = anchor - d1 with d1 in 2..30; p2 = anchor + d2: over the two anchors the offsets of
    # p2 - p1 = d1 + d2 follow the triangle law of the sum of two uniform integers on 2..30
    s = (p2 - p1).numpy()
    assert s.min() >= 4 and s.max() <= 60
    counts = np.bincount(s, minlength=61)[4:61]
    expect = np.array([29 - abs(k - 32) for k in range(4, 61)], float)
    expect = expect / expect.sum() * len(s)
    assert stats.chisquare(counts, expect).pvalue > 1e-3
    # the two outer distances are independent of each other (either order is as likely)
    d0 = (col_a[0::3] - col_b[0::3]).float()
    assert abs((d0 > 0).float().mean() - (d0 < 0).float().mean()) < 0.05


def test_structure_guided_default_pair_count_is_four_per_edge_pixel():
    img = torch.zeros(2, 3, 16, 16)
    img[0, :, :, 8:] = 1.0                                        # 32 edge pixels
    img[1, :, 8:, :] = 1.0                                        # 32 as well
    valid = torch.ones(2, 1, 16, 16, dtype=torch.bool)
    assert edge_pixel_count(img, valid).tolist() == [32, 32]
    pred = torch.rand(2, 1, 16, 16, generator=gen(5), dtype=torch.float64)
    target = torch.rand(2, 1, 16, 16, generator=gen(6), dtype=torch.float64) + 0.5
    got = structure_guided_ranking_loss(pred, target, img, valid, generator=gen(7))
    ia, ib = edge_guided_pairs(img, valid, 128, gen(7), random_fraction=0.25)
    assert got.item() == pytest.approx(ranking_loss(pred, target, ia, ib, valid).item(), rel=1e-12)


# --------------------------------------------------------------------------- SILog
def test_silog_is_adabins_silogloss():
    g = gen(8)
    pred = torch.rand(3, 1, 6, 7, generator=g, dtype=torch.float64) + 0.2
    target = torch.rand(3, 1, 6, 7, generator=g, dtype=torch.float64) + 0.2
    mask = torch.rand(3, 1, 6, 7, generator=g) > 0.3
    # AdaBins loss.py SILogLoss: input[mask], torch.var (unbiased) + 0.15 mean^2, 10 sqrt
    gg = torch.log(pred[mask]) - torch.log(target[mask])
    official = 10 * torch.sqrt(torch.var(gg) + 0.15 * torch.pow(torch.mean(gg), 2))
    assert silog_loss(pred, target, mask).item() == pytest.approx(official.item(), rel=1e-12)


# --------------------------------------------------------------------------- MiDaS trimmed loss
def gist_trimmed_loss(prediction, target, mask, trim=0.2):
    """The gist's ssitrim path (normalize_prediction_robust + trimmed_mae_loss + batch reduction),
    with its two bugs: the median over mask * target, and the sort tuple sliced instead of its values."""
    def normalize(x, m):
        ssum = m.sum((1, 2))
        med = torch.median((m * x).view(x.shape[0], -1), dim=1).values
        x = x - med.view(-1, 1, 1)
        s = torch.clamp((m * x.abs()).sum((1, 2)) / ssum, min=1e-6)
        return x / s.view(-1, 1, 1)
    p, t = normalize(prediction, mask), normalize(target, mask)
    M = mask.sum((1, 2))
    res = (p - t)[mask.bool()].abs()
    trimmed, _ = torch.sort(res.view(-1), descending=False)[: int(len(res) * (1.0 - trim))]
    return trimmed.sum() / (2 * M.sum())


def test_the_gist_trims_nothing_and_equals_our_untrimmed_loss():
    g = gen(9)
    pred = torch.rand(2, 1, 9, 10, generator=g, dtype=torch.float64)
    target = torch.rand(2, 1, 9, 10, generator=g, dtype=torch.float64)
    valid = torch.ones(2, 1, 9, 10, dtype=torch.bool)
    gist = gist_trimmed_loss(pred[:, 0], target[:, 0], valid[:, 0].double()).item()
    ours_untrimmed = ssi_trimmed_loss(pred, target, valid, trim=0.0, alpha=0.0).item()
    ours = ssi_trimmed_loss(pred, target, valid, alpha=0.0).item()
    assert gist == pytest.approx(ours_untrimmed, rel=1e-9)         # trim=0.2 had no effect there
    assert ours < 0.9 * gist                                       # the paper's 20 % trim does


def test_the_gists_median_counts_masked_pixels_as_zeros():
    g = gen(16)
    pred = torch.rand(1, 1, 8, 8, generator=g, dtype=torch.float64) + 1.0   # values in [1, 2]
    target = torch.rand(1, 1, 8, 8, generator=g, dtype=torch.float64) + 1.0
    valid = torch.ones(1, 1, 8, 8, dtype=torch.bool)
    valid[..., :5, :] = False                            # most of the image is a hole
    gist = gist_trimmed_loss(pred[:, 0], target[:, 0], valid[:, 0].double()).item()
    ours = ssi_trimmed_loss(pred, target, valid, trim=0.0, alpha=0.0).item()
    # the gist's median of mask * x is 0 (40 of 64 zeros): its shift is wrong and so is its loss
    assert torch.median((valid * pred).view(1, -1), dim=1).values.item() == 0.0
    assert abs(gist - ours) > 0.05 * ours


# --------------------------------------------------------------------------- UniMatch CutMix
def official_cutmix_box(img_size, p=0.5, size_min=0.02, size_max=0.4, ratio_1=0.3, ratio_2=1 / 0.3):
    """obtain_cutmix_box (LiheYoung/UniMatch, dataset/transform.py), returning (h, w) or None."""
    if random.random() > p:
        return None
    size = np.random.uniform(size_min, size_max) * img_size * img_size
    while True:
        ratio = np.random.uniform(ratio_1, ratio_2)
        cutmix_w = int(np.sqrt(size / ratio))
        cutmix_h = int(np.sqrt(size * ratio))
        x = np.random.randint(0, img_size)
        y = np.random.randint(0, img_size)
        if x + cutmix_w <= img_size and y + cutmix_h <= img_size:
            break
    return cutmix_h, cutmix_w


def box_sides(box):
    m = box[:, 0]
    return m.any(2).sum(1).numpy(), m.any(1).sum(1).numpy()       # heights, widths (0: no box)


def test_cutmix_boxes_follow_the_official_distribution():
    S, n = 64, 4000
    random.seed(0)
    np.random.seed(0)
    ref = [official_cutmix_box(S) for _ in range(n)]
    ref_h = np.array([r[0] for r in ref if r]); ref_w = np.array([r[1] for r in ref if r])
    h, w = box_sides(cutmix_boxes(n, (S, S), generator=gen(10)))
    has = h > 0
    assert abs(has.mean() - len(ref_h) / n) < 0.04                 # p = 0.5 both
    h, w = h[has], w[has]
    tall, ref_tall = (h > w).mean(), (ref_h > ref_w).mean()
    assert abs(tall - ref_tall) < 0.04 and 0.65 < tall < 0.8      # ~73 % taller than wide
    for ours, theirs in ((h, ref_h), (w, ref_w), (h * w, ref_h * ref_w)):
        assert stats.ks_2samp(ours, theirs).pvalue > 1e-3
    # the exact-area variant is another distribution: tall and wide boxes equally likely
    h2, w2 = box_sides(cutmix_boxes(n, (S, S), p=1.0, exact_area=True, generator=gen(11)))
    assert abs((h2 > w2).mean() - (h2 < w2).mean()) < 0.06


# --------------------------------------------------------------------------- ColorJitter order
def rgb_to_gray(x):
    return 0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2]


def jitter_ops(b, c, s, h):
    """torchvision.transforms.functional adjust_* (blend-and-clamp form), numpy, one image (3,H,W)."""
    import colorsys

    def hue(x):
        out = np.empty_like(x)
        for i in range(x.shape[1]):
            for j in range(x.shape[2]):
                hh, ss, vv = colorsys.rgb_to_hsv(*x[:, i, j])
                out[:, i, j] = colorsys.hsv_to_rgb((hh + h) % 1.0, ss, vv)
        return out
    return [lambda x: np.clip(x * b, 0, 1),
            lambda x: np.clip((x - rgb_to_gray(x).mean()) * c + rgb_to_gray(x).mean(), 0, 1),
            lambda x: np.clip(rgb_to_gray(x) + (x - rgb_to_gray(x)) * s, 0, 1),
            hue]


def test_strong_perturbation_jitters_in_each_images_own_random_order():
    B = 6
    x = torch.rand(B, 3, 5, 6, generator=gen(12), dtype=torch.float64)
    out = strong_perturbation(x, gen(13), p_jitter=1.0, p_gray=0.0, p_blur=0.0)
    # replay the documented draws: jitter flags, one permutation per image, then the factors
    g = gen(13)
    torch.rand(B, generator=g)
    orders = [torch.randperm(4, generator=g).tolist() for _ in range(B)]
    fac = [0.5 + torch.rand(B, generator=g) for _ in range(3)]
    hue = -0.25 + 0.5 * torch.rand(B, generator=g)
    assert len({tuple(o) for o in orders}) > 1
    for i in range(B):
        ops = jitter_ops(float(fac[0][i]), float(fac[1][i]), float(fac[2][i]), float(hue[i]))
        y = x[i].numpy()
        for k in orders[i]:
            y = ops[k](y)
        np.testing.assert_allclose(out[i].numpy(), y, atol=2e-4)


# --------------------------------------------------------------------------- PatchFusion consistency
def test_consistency_loss_is_the_original_mse_for_an_integer_shift():
    g = gen(14)
    depth = torch.rand(1, 1, 30, 40, generator=g) + 1.0
    feats = torch.randn(1, 4, 30, 40, generator=g)
    h, w, sh, sw = 16, 24, 5, 7
    box_a = torch.tensor([[2.0, 3, 2 + h, 3 + w]])
    box_b = box_a + torch.tensor([[sh, sw, sh, sw]])
    crop = lambda x, b: x[..., int(b[0, 0]):int(b[0, 2]), int(b[0, 1]):int(b[0, 3])]  # noqa: E731
    noise = lambda x: x + 0.1 * torch.randn(x.shape, generator=g)                    # noqa: E731
    out_a = {"depth": noise(crop(depth, box_a)), "features": noise(crop(feats, box_a))}
    out_b = {"depth": noise(crop(depth, box_b)), "features": noise(crop(feats, box_b))}
    # the original ConsistencyLoss (PatchFusion 0181da7): common areas by slicing the known shift,
    # F.mse_loss on depth and on the features, w_p * pred + feat, times w_consistency
    mse = lambda a, b: float(((a - b) ** 2).mean())                                   # noqa: E731
    pred = mse(out_a["depth"][..., sh:, sw:], out_b["depth"][..., :-sh, :-sw])
    feat = mse(out_a["features"][..., sh:, sw:], out_b["features"][..., :-sh, :-sw])
    official = 0.1 * (0.1 * pred + feat)
    got = consistency_loss(out_a, out_b, box_a, box_b, size=(h - sh, w - sw))
    assert float(got) == pytest.approx(official, rel=1e-5)


# --------------------------------------------------------------------------- pix2pix
def test_generator_loss_keeps_pix2pix_balance_on_images_in_minus_one_one():
    class Critic(torch.nn.Module):
        def forward(self, cond, image):
            return image.mean(1, keepdim=True) * 3 - 1

    g = gen(15)
    cond = torch.rand(2, 7, 8, 8, generator=g)
    fake, real = torch.rand(2, 3, 8, 8, generator=g), torch.rand(2, 3, 8, 8, generator=g)
    # pix2pix_model.py: loss_G = BCEWithLogits(D(fake), 1) + L1(fake_B, real_B) * 100, images in [-1, 1]
    logits = Critic()(cond, fake)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
    official = bce + 100 * torch.nn.functional.l1_loss(2 * fake - 1, 2 * real - 1)
    assert float(generator_loss(Critic(), cond, fake, real)["total"]) == pytest.approx(float(official), rel=1e-6)
