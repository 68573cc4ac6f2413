"""Patch fusion (lib.models.fusion): shapes, frozen parts, global context, consistency loss."""
from __future__ import annotations

import math

import pytest
import torch

from lib.models import DepthMaskNet, tiled_predict
from lib.models.fusion import (
    FusionUNet,
    GlobalContext,
    PatchFusion,
    consistency_loss,
    fusion_pair_loss,
    overlap_difference,
    pair_forward,
    shifted_pairs,
)

P = (16, 32)


def make(width=4):
    torch.manual_seed(0)
    return PatchFusion(DepthMaskNet(4), DepthMaskNet(4), P, width=width, heads=2)


# ----------------------------------------------------------------------------- shapes and freezing
def test_shapes():
    pf = make()
    image = torch.rand(2, 3, 64, 96)
    boxes = torch.tensor([[0.0, 0.0, 16.0, 24.0], [10.0, 20.0, 26.0, 44.0], [48.0, 72.0, 64.0, 96.0]])
    out = pf(image, boxes, index=torch.tensor([0, 1, 1]))
    assert out["depth"].shape == (3, 1, *P) and out["features"].shape == (3, 4, *P)
    assert out["coarse"].shape == out["fine"].shape == out["gate"].shape == (3, 1, *P)
    assert (out["depth"] > 0).all() and torch.isfinite(out["depth"]).all()
    assert pf.coarse_predict(image).shape == (2, 1, 64, 96)
    assert FusionUNet(6, width=3)(torch.rand(2, 5, 8, 12), torch.rand(2, 6, 2, 3))[2].shape == (2, 3, 8, 12)


def test_coarse_and_fine_are_frozen_and_the_rest_learns():
    pf = make().train()
    assert not pf.coarse.training and not pf.fine.training and pf.fusion.training
    assert all(not p.requires_grad for p in list(pf.coarse.parameters()) + list(pf.fine.parameters()))
    before = {k: v.clone() for k, v in pf.state_dict().items()}
    opt = torch.optim.SGD([p for p in pf.parameters() if p.requires_grad], lr=0.1)
    image = torch.rand(2, 3, 32, 64)
    a, b = shifted_pairs(32, 64, (16, 32), 2, generator=torch.Generator().manual_seed(0))
    out = pf(image, torch.cat([a, b]), torch.tensor([0, 1, 0, 1]))
    loss = out["depth"].log().mean() + consistency_loss({k: v[:2] for k, v in out.items()},
                                                         {k: v[2:] for k, v in out.items()}, a, b)
    loss.backward()
    for name, p in pf.named_parameters():
        if name.startswith(("coarse.", "fine.")):
            assert p.grad is None, name
    grads = {n: p.grad for n, p in pf.named_parameters() if p.requires_grad}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    assert any(float(g.abs().sum()) > 0 for n, g in grads.items() if n.startswith("context."))
    assert float(pf.fusion.head.weight.grad.abs().sum()) > 0
    opt.step()
    after = pf.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith(("coarse.", "fine.")))
    assert not torch.equal(before["fusion.head.weight"], after["fusion.head.weight"])


def test_global_context_mixes_every_location():
    torch.manual_seed(0)
    block = GlobalContext(8, heads=2).eval()
    x = torch.randn(1, 8, 3, 4)
    y = block(x)
    x2 = x.clone()
    x2[0, :, 0, 0] += torch.randn(8)             # change one corner
    changed = (block(x2) - y).abs().sum(1)[0]
    assert (changed > 1e-6).all(), "every location must see the changed corner"
    with pytest.raises(ValueError, match="divisible"):
        GlobalContext(10, heads=4)


def test_a_fused_tile_sees_outside_itself_a_naive_one_does_not():
    pf = make().eval()
    image = torch.rand(1, 3, 64, 128)
    box = torch.tensor([[0, 0, 16, 32]])
    far = image.clone()
    far[..., 40:, 80:] = 1.0 - far[..., 40:, 80:]        # change only pixels far from the tile
    with torch.no_grad():
        fused = pf.predict_tiles(pf.prepare(image), box) - pf.predict_tiles(pf.prepare(far), box)
        naive = pf.fine(image[..., :16, :32])["depth"] - pf.fine(far[..., :16, :32])["depth"]
    assert float(fused.abs().max()) > 1e-4 and float(naive.abs().max()) == 0.0


def test_tiled_fusion_any_size_and_constant_model():
    pf = make().eval()
    out = tiled_predict(pf, torch.rand(1, 3, 70, 101), "R3", tile_batch=8)
    assert out.shape == (1, 1, 70, 101) and (out > 0).all()

    class Flat(torch.nn.Module):                # a 'network' that says 3 m everywhere
        multiple, feature_channels = 16, 8

        def forward(self, x):
            B, _, h, w = x.shape
            return {"depth": torch.full((B, 1, h, w), 3.0), "features": torch.zeros(B, 8, h // 16, w // 16)}

    pf = PatchFusion(Flat(), Flat(), P, width=4, heads=2).eval()
    torch.nn.init.zeros_(pf.fusion.head.weight)  # no residual: coarse + gate * (fine - coarse) = 3 m
    out = tiled_predict(pf, torch.rand(1, 3, 61, 99), "P49")
    assert torch.allclose(out, torch.full_like(out, 3.0), rtol=1e-5)


def test_bad_input_rejected():
    with pytest.raises(ValueError, match="multiples of 16"):
        PatchFusion(DepthMaskNet(4), DepthMaskNet(4), (20, 32))
    pf = make()
    with pytest.raises(ValueError, match=r"\(B,3,H,W\)"):
        pf(torch.rand(3, 32, 32), torch.tensor([[0.0, 0.0, 16.0, 16.0]]))
    with pytest.raises(ValueError, match="index"):
        pf(torch.rand(2, 3, 32, 64), torch.tensor([[0.0, 0.0, 16.0, 32.0]] * 3))
    with pytest.raises(ValueError, match=r"\(N,4\)"):
        pf(torch.rand(1, 3, 32, 64), torch.tensor([0.0, 0.0, 16.0, 32.0]))


# ----------------------------------------------------------------------------- pairs and consistency
def test_shifted_pairs():
    g = torch.Generator().manual_seed(1)
    a, b = shifted_pairs(50, 70, (20, 30), 200, max_shift=0.5, generator=g)
    for boxes in (a, b):
        assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= 50).all() and (boxes[:, 3] <= 70).all()
        assert ((boxes[:, 2] - boxes[:, 0]) == 20).all() and ((boxes[:, 3] - boxes[:, 1]) == 30).all()
    d = (b - a)[:, :2]
    assert (d[:, 0].abs() <= 10).all() and (d[:, 1].abs() <= 15).all() and (d != 0).any()
    a2, _ = shifted_pairs(50, 70, (20, 30), 200, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, a2)
    with pytest.raises(ValueError, match="does not fit"):
        shifted_pairs(10, 10, (20, 5), 1)
    with pytest.raises(ValueError, match="max_shift"):
        shifted_pairs(50, 70, (20, 30), 1, max_shift=1.0)


def test_overlap_difference_by_hand():
    a = torch.tensor([[[[1.0, 2.0, 3.0, 4.0]]]])          # covers columns 0..3
    b = torch.tensor([[[[10.0, 20.0, 30.0, 40.0]]]])      # covers columns 2..5: overlap = columns 2, 3
    ba, bb = torch.tensor([[0.0, 0.0, 1.0, 4.0]]), torch.tensor([[0.0, 2.0, 1.0, 6.0]])
    # a's columns 2, 3 are 3, 4; b's are 10, 20: (|3-10| + |4-20|) / 2 = 11.5
    assert abs(float(overlap_difference(a, b, ba, bb, size=(1, 2))) - 11.5) < 1e-5
    # maps at twice the box resolution: the overlap is sampled at the same points of both
    a2, b2 = a.repeat_interleave(2, -1).repeat(1, 1, 2, 1), b.repeat_interleave(2, -1).repeat(1, 1, 2, 1)
    assert abs(float(overlap_difference(a2, b2, ba, bb, size=(2, 4))) - 11.5) < 1e-5


def test_consistency_loss_zero_for_identical_overlaps_and_hand_value():
    torch.manual_seed(0)
    scene = torch.rand(2, 1, 40, 60) + 0.5                    # one depth map per image
    feats = torch.randn(2, 3, 40, 60)
    a, b = shifted_pairs(40, 60, (16, 24), 2, generator=torch.Generator().manual_seed(3))

    def crops(boxes):
        return {"depth": torch.stack([scene[i, :, y0:y1, x0:x1] for i, (y0, x0, y1, x1) in enumerate(boxes.long().tolist())]),
                "features": torch.stack([feats[i, :, y0:y1, x0:x1] for i, (y0, x0, y1, x1) in enumerate(boxes.long().tolist())])}

    ca, cb = crops(a), crops(b)
    assert float(consistency_loss(ca, cb, a, b)) < 1e-6
    # PatchFusion's default: 0.1 * (0.1 * MSE(depth) + MSE(features)); b 1 m farther everywhere
    # and its features shifted by 1: 0.1 * (0.1 * 1 + 1) = 0.11
    cb1 = {"depth": cb["depth"] + 1.0, "features": cb["features"] + 1.0}
    assert abs(float(consistency_loss(ca, cb1, a, b)) - 0.11) < 1e-5
    # the log-L1 variant: doubling b's depth costs log 2 on the overlap, the features 1 * weight
    cb2 = {"depth": 2.0 * cb["depth"], "features": cb["features"] + 1.0}
    got = consistency_loss(ca, cb2, a, b, space="log", distance="l1", depth_weight=1.0,
                           feature_weight=0.25, weight=1.0)
    assert abs(float(got) - (math.log(2) + 0.25)) < 1e-4
    with pytest.raises(ValueError, match="space"):
        consistency_loss(ca, cb2, a, b, space="disparity")
    with pytest.raises(ValueError, match="distance"):
        consistency_loss(ca, cb2, a, b, distance="huber")


def test_consistency_loss_without_overlap_is_a_differentiable_zero():
    x = torch.rand(1, 1, 4, 4, requires_grad=True)
    loss = consistency_loss({"depth": x + 1}, {"depth": x + 2}, torch.tensor([[0.0, 0, 4, 4]]),
                            torch.tensor([[10.0, 10, 14, 14]]), feature_weight=0)
    loss.backward()
    assert float(loss.detach()) == 0.0 and x.grad is not None and torch.isfinite(x.grad).all()
    with pytest.raises(ValueError, match="one shape"):
        overlap_difference(torch.rand(1, 1, 4, 4), torch.rand(1, 1, 4, 5), torch.zeros(1, 4), torch.zeros(1, 4))


# ----------------------------------------------------------------------------- pair training
def test_pair_forward_and_its_loss_by_hand():
    pf = make()
    g = torch.Generator().manual_seed(0)
    depth = torch.rand(2, 1, 64, 96, generator=g) + 1.0
    valid = torch.rand(2, 1, 64, 96, generator=g) > 0.2
    batch = {"image": torch.rand(2, 3, 64, 96, generator=g), "depth": depth, "valid": valid}
    out = pair_forward(pf, batch, (16, 32), generator=torch.Generator().manual_seed(1))
    a, b = shifted_pairs(64, 96, (16, 32), 2, generator=torch.Generator().manual_seed(1))
    assert torch.equal(out["box_a"], a) and torch.equal(out["box_b"], b)
    assert out["depth"].shape == (4, 1, *P) and out["index"].tolist() == [0, 1, 0, 1]
    # the depth term by hand: boxes are integer and the tile 16x32 is P, so each crop is a slice
    errs, n = 0.0, 0
    for k, box in enumerate(torch.cat([a, b]).long().tolist()):
        i = k % 2
        y0, x0, y1, x1 = box
        t, v = depth[i, 0, y0:y1, x0:x1], valid[i, 0, y0:y1, x0:x1]
        e = (out["depth"][k, 0].log() - t.log()).abs()
        errs, n = errs + float(e[v].sum()), n + int(v.sum())
    plain = fusion_pair_loss(out, batch, P, consistency_weight=0.0)
    assert float(plain) == pytest.approx(errs / n, rel=1e-5)
    half = [{k: out[k][i * 2:(i + 1) * 2] for k in ("depth", "features")} for i in (0, 1)]
    full = fusion_pair_loss(out, batch, P, consistency_weight=0.3, depth_weight=0.2,
                            feature_weight=0.5)
    cons = consistency_loss(half[0], half[1], a, b, depth_weight=0.2, feature_weight=0.5, weight=0.3)
    assert float(full) == pytest.approx(float(plain + cons), rel=1e-6)
    full.backward()
    grads = [p.grad for p in pf.fusion.parameters()]
    assert all(gr is not None and torch.isfinite(gr).all() for gr in grads)
