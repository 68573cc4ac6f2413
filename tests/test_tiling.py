"""Tiled inference (lib.models.tiling): tile layouts, blending, memory bound, consistency error."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from lib.models import DepthMaskNet
from lib.models.tiling import (
    NaiveTiles,
    blend_weight,
    crop_resize,
    parse_mode,
    peak_memory,
    tile_boxes,
    tile_consistency_error,
    tiled_predict,
)

SIZES = [(128, 192), (131, 197), (37, 100), (5, 7), (4, 4)]
MODES = ["P16", "P49", "R7"]


class Pixelwise(nn.Module):
    """A 'depth network' that maps each pixel on its own: depth = 1 + 2 * (red channel) (metres)."""

    def __init__(self):
        super().__init__()
        self.calls, self.max_batch = 0, 0

    def forward(self, x):
        self.calls += 1
        self.max_batch = max(self.max_batch, x.shape[0])
        return {"depth": 1.0 + 2.0 * x[:, :1]}


class Constant(nn.Module):
    def forward(self, x):
        return torch.full_like(x[:, :1], 2.5)


# ----------------------------------------------------------------------------- layouts
def test_grid_starts_worked_by_hand():
    # H = 10: tile 3 rows, starts round(i * 7 / 3) = 0, 2, 5, 7; W = 8: tile 2, starts 0, 2, 4, 6
    b = tile_boxes(10, 8, "P16")
    assert sorted({int(y) for y in b[:, 0]}) == [0, 2, 5, 7]
    assert sorted({int(x) for x in b[:, 1]}) == [0, 2, 4, 6]
    assert ((b[:, 2] - b[:, 0]) == 3).all() and ((b[:, 3] - b[:, 1]) == 2).all()
    # P49 adds the half-way starts (0+2)//2=1, (2+5)//2=3, (5+7)//2=6 rows and 1, 3, 5 columns
    b49 = tile_boxes(10, 8, "P49")
    assert sorted({int(y) for y in b49[:, 0]}) == [0, 1, 2, 3, 5, 6, 7]
    assert sorted({int(x) for x in b49[:, 1]}) == [0, 1, 2, 3, 4, 5, 6]
    assert len({tuple(r) for r in b49.tolist()}) == 49


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("mode", MODES)
def test_every_pixel_covered_and_tiles_inside(size, mode):
    H, W = size
    boxes = tile_boxes(H, W, mode, seed=3)
    assert len(boxes) == {"P16": 16, "P49": 49, "R7": 56}[mode]
    th, tw = math.ceil(H / 4), math.ceil(W / 4)
    assert ((boxes[:, 2] - boxes[:, 0]) == th).all() and ((boxes[:, 3] - boxes[:, 1]) == tw).all()
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= H).all() and (boxes[:, 3] <= W).all()
    cover = np.zeros((H, W), int)
    for y0, x0, y1, x1 in boxes.tolist():
        cover[y0:y1, x0:x1] += 1
    assert cover.min() >= 1, f"{mode} {size}: uncovered pixels"
    _, info = tiled_predict(Constant(), torch.rand(1, 3, H, W), mode, seed=3, return_info=True)
    assert np.array_equal(info["coverage"].numpy(), cover)


def test_p16_tiles_meet_edge_to_edge_when_4_divides_the_sides():
    boxes = tile_boxes(128, 192, "P16")
    cover = torch.zeros(128, 192, dtype=torch.int32)
    for y0, x0, y1, x1 in boxes.tolist():
        cover[y0:y1, x0:x1] += 1
    assert (cover == 1).all()


def test_random_tiles_are_seeded():
    a, b, c = tile_boxes(100, 150, "R20", seed=1), tile_boxes(100, 150, "R20", seed=1), tile_boxes(100, 150, "R20", seed=2)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(a[:49], tile_boxes(100, 150, "P49"))          # R<n> = P49 + n random tiles


@pytest.mark.parametrize("bad", ["P20", "Q16", "R0", "R", "16", 16, "P16x"])
def test_bad_mode_rejected(bad):
    with pytest.raises(ValueError, match="mode must be"):
        parse_mode(bad)


def test_bad_input_rejected():
    with pytest.raises(ValueError, match=r"\(B,3,H,W\)"):
        tiled_predict(Constant(), torch.rand(3, 32, 32))
    with pytest.raises(TypeError, match="float"):
        tiled_predict(Constant(), torch.zeros(1, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match="tile_batch"):
        tiled_predict(Constant(), torch.rand(1, 3, 32, 32), tile_batch=0)
    with pytest.raises(ValueError, match="at least 4x4"):
        tiled_predict(Constant(), torch.rand(1, 3, 3, 32))
    with pytest.raises(TypeError, match="TilePredictor"):
        tiled_predict(42, torch.rand(1, 3, 32, 32))


# ----------------------------------------------------------------------------- blending
def ref_generatemask(h, w):
    """PatchFusion's ``generatemask`` (estimator/models/utils.py) + the 1e-3 its callers add."""
    mask = np.zeros((h, w), dtype=np.float32)
    sigma = int(h / 16)
    k_size = int(2 * np.ceil(2 * int(h / 16)) + 1)
    mask[int(0.1 * h):h - int(0.1 * h), int(0.1 * w):w - int(0.1 * w)] = 1
    mask = cv2.GaussianBlur(mask, (int(k_size), int(k_size)), sigma)
    mask = (mask - mask.min()) / (mask.max() - mask.min())
    return mask.astype(np.float32) + 1e-3


@pytest.mark.parametrize("size", [(30, 41), (64, 96), (128, 192), (17, 15), (12, 20)])
def test_blend_weight_is_patchfusions_generatemask(size):
    np.testing.assert_allclose(blend_weight(*size).numpy(), ref_generatemask(*size), atol=2e-6)


def test_blend_weight_shape_and_profile():
    w = blend_weight(30, 41, floor=0.02)
    assert w.shape == (30, 41) and w.dtype == torch.float32
    assert abs(float(w.min()) - 0.02) < 1e-6 and abs(float(w.max()) - 1.02) < 1e-6
    assert torch.allclose(w, w.flip(0)) and torch.allclose(w, w.flip(1))
    mid = w[15]                                                     # falls from the centre to the edges
    assert (mid[:20].diff() >= -1e-7).all() and (mid[21:].diff() <= 1e-7).all()
    assert float(w[0, 0]) < 0.1 < float(w[15, 20])
    with pytest.raises(ValueError):
        blend_weight(8, 8, inset=0.6)
    # no inset and no blur: nothing to normalise, every weight 1 + floor (the reference divides by 0)
    assert torch.allclose(blend_weight(8, 8, inset=0.0, sigma=0), torch.full((8, 8), 1.001))


class TileIndexed:
    """A TilePredictor whose n-th tile (in call order) is the constant depth exp(values[n])."""

    def __init__(self, values):
        self.values, self.n = values, 0

    def prepare(self, image):
        return image

    def predict_tiles(self, ctx, boxes):
        v = torch.tensor(self.values[self.n:self.n + len(boxes)], dtype=torch.float32)
        self.n += len(boxes)
        return torch.exp(v).view(-1, 1, 1, 1).expand(-1, 1, 5, 5)


@pytest.mark.parametrize("blend", ["depth", "log"])
@pytest.mark.parametrize("mode", ["P16", "P49", "R5"])
def test_blend_matches_an_independent_weighted_mean(mode, blend):
    H, W = 23, 30
    boxes = tile_boxes(H, W, mode, seed=0).numpy()
    logs = np.random.default_rng(0).normal(size=len(boxes))
    out = tiled_predict(TileIndexed(logs), torch.rand(1, 3, H, W), mode, tile_batch=4, seed=0,
                        blend=blend)
    values = logs if blend == "log" else np.exp(logs)      # PatchFusion averages depth itself
    w = blend_weight(int(boxes[0, 2] - boxes[0, 0]), int(boxes[0, 3] - boxes[0, 1])).double().numpy()
    num, den = np.zeros((H, W)), np.zeros((H, W))
    for (y0, x0, y1, x1), v in zip(boxes, values):
        num[y0:y1, x0:x1] += w * v
        den[y0:y1, x0:x1] += w
    # the normalised weights w_t / sum_s w_s sum to 1 at every pixel
    total = np.zeros((H, W))
    for (y0, x0, y1, x1) in boxes:
        total[y0:y1, x0:x1] += w / den[y0:y1, x0:x1]
    np.testing.assert_allclose(total, 1.0, atol=1e-12)
    got = out[0, 0].double().numpy()
    np.testing.assert_allclose(np.log(got) if blend == "log" else got, num / den, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("size", [(64, 96), (131, 197), (37, 100)])
@pytest.mark.parametrize("mode", MODES)
def test_constant_model_gives_a_seamless_constant(size, mode):
    out = tiled_predict(Constant(), torch.rand(2, 3, *size), mode, tile_batch=7)
    assert out.shape == (2, 1, *size)
    assert torch.allclose(out, torch.full_like(out, 2.5), rtol=1e-6)


@pytest.mark.parametrize("size", [(64, 96), (131, 197)])
@pytest.mark.parametrize("mode", MODES)
def test_tiles_land_where_they_were_cut(size, mode):
    """A pixelwise network at the tile size must give back exactly its full-image answer."""
    image = torch.rand(1, 3, *size)
    th, tw = math.ceil(size[0] / 4), math.ceil(size[1] / 4)
    out = tiled_predict(Pixelwise(), image, mode, process_size=(th, tw))
    assert torch.allclose(out, 1.0 + 2.0 * image[:, :1], atol=1e-5)


def test_tile_batch_bounds_the_network_batch():
    image = torch.rand(2, 3, 40, 60)
    for mode, n in (("P16", 16), ("P49", 49), ("R11", 60)):
        for batch in (1, 5, 64):
            net = Pixelwise()
            _, info = tiled_predict(net, image, mode, tile_batch=batch, return_info=True)
            assert net.max_batch == min(batch, n)
            assert net.calls == info["calls"] == 2 * math.ceil(n / batch)


def test_default_process_size_is_a_multiple_of_the_model():
    seen = []

    class Spy(nn.Module):
        multiple = 16

        def forward(self, x):
            seen.append(tuple(x.shape[-2:]))
            return torch.ones_like(x[:, :1])

    tiled_predict(Spy(), torch.rand(1, 3, 70, 101), "P16")       # tiles 18 x 26 -> 32 x 32
    assert set(seen) == {(32, 32)}


def test_real_network_any_size():
    net = DepthMaskNet(width=4).eval()
    out = tiled_predict(net, torch.rand(1, 3, 50, 77), "R3", tile_batch=16)
    assert out.shape == (1, 1, 50, 77) and torch.isfinite(out).all() and (out > 0).all()


# ----------------------------------------------------------------------------- consistency error
def _tce_by_loops(log_tiles, boxes, H, W):
    vals = [[[] for _ in range(W)] for _ in range(H)]
    for t, (y0, x0, y1, x1) in enumerate(boxes.tolist()):
        for y in range(y0, y1):
            for x in range(x0, x1):
                vals[y][x].append(float(log_tiles[t, 0, y - y0, x - x0]))
    per = []
    for y in range(H):
        for x in range(W):
            v = vals[y][x]
            if len(v) >= 2:
                d = [abs(a - b) for i, a in enumerate(v) for b in v[i + 1:]]
                per.append(sum(d) / len(d))
    return sum(per) / len(per)


def test_tile_consistency_error_against_loops():
    H, W = 13, 18
    boxes = tile_boxes(H, W, "R4", seed=5)
    th, tw = int(boxes[0, 2] - boxes[0, 0]), int(boxes[0, 3] - boxes[0, 1])
    tiles = torch.randn(len(boxes), 1, th, tw)
    assert abs(tile_consistency_error(tiles, boxes, (H, W)) - _tce_by_loops(tiles, boxes, H, W)) < 1e-6
    # batch of two images: the mean of the two
    tiles2 = torch.randn(len(boxes), 1, th, tw)
    both = tile_consistency_error(torch.stack([tiles, tiles2]), boxes, (H, W))
    assert abs(both - 0.5 * (_tce_by_loops(tiles, boxes, H, W) + _tce_by_loops(tiles2, boxes, H, W))) < 1e-6


def test_tile_consistency_error_of_tiled_predict():
    image = torch.rand(1, 3, 48, 64)
    _, info = tiled_predict(Pixelwise(), image, "P49", process_size=(12, 16), return_info=True)
    assert tile_consistency_error(info["log_tiles"], info["boxes"], (48, 64)) < 1e-6   # tiles agree exactly
    _, info = tiled_predict(TileIndexed([0.0] * 16 + [0.1] * 33), image, "P49", return_info=True)
    tce = tile_consistency_error(info["log_tiles"], info["boxes"], (48, 64))
    assert 0.0 < tce < 0.1 + 1e-6                                   # grid vs shifted tiles disagree by 0.1
    _, info = tiled_predict(Constant(), image, "P16", return_info=True)
    with pytest.raises(ValueError, match="covered by two tiles"):
        tile_consistency_error(info["log_tiles"], info["boxes"], (48, 64))
    with pytest.raises(ValueError, match="boxes"):
        tile_consistency_error(info["log_tiles"], info["boxes"][:3], (48, 64))


# ----------------------------------------------------------------------------- crops
def test_crop_resize_slices_and_interpolates_linear_maps_exactly():
    m = torch.randn(2, 3, 9, 11)
    box = torch.tensor([[2.0, 3.0, 7.0, 10.0]])
    assert torch.allclose(crop_resize(m[1:], box, (5, 7)), m[1:, :, 2:7, 3:10], atol=1e-5)
    assert torch.allclose(crop_resize(m, box.repeat(2, 1), (5, 7)), m[:, :, 2:7, 3:10], atol=1e-5)
    # a linear ramp sampled at a fractional box, and a stride-4 map of the same ramp
    H, W = 32, 48
    ys, xs = torch.meshgrid(torch.arange(H) + 0.5, torch.arange(W) + 0.5, indexing="ij")
    ramp = (0.3 * ys + 0.1 * xs).view(1, 1, H, W)
    small = torch.nn.functional.avg_pool2d(ramp, 4)                 # the same ramp, one value per 4x4 cell
    box = torch.tensor([[6.5, 10.25, 20.5, 30.25]])
    oh, ow = 7, 10
    cy = 6.5 + (torch.arange(oh) + 0.5) * 14.0 / oh
    cx = 10.25 + (torch.arange(ow) + 0.5) * 20.0 / ow
    expect = 0.3 * cy[:, None] + 0.1 * cx[None, :]
    assert torch.allclose(crop_resize(ramp, box, (oh, ow))[0, 0], expect, atol=1e-4)
    assert torch.allclose(crop_resize(small, box, (oh, ow), image_size=(H, W))[0, 0], expect, atol=1e-4)
    with pytest.raises(ValueError, match="index"):
        crop_resize(m, box.repeat(3, 1), (2, 2))


def test_naive_tiles_resize_to_the_processing_size():
    seen = []

    def net(x):
        seen.append(tuple(x.shape))
        return torch.ones_like(x[:, :1])

    p = NaiveTiles(net, (16, 32))
    out = p.predict_tiles(p.prepare(torch.rand(1, 3, 40, 60)), torch.tensor([[0, 0, 10, 15], [5, 5, 15, 20]]))
    assert seen == [(2, 3, 16, 32)] and out.shape == (2, 1, 16, 32)


# ----------------------------------------------------------------------------- memory
def test_peak_memory_grows_with_the_tile_batch():
    net = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 1, 3, padding=1), nn.Softplus())
    image = torch.rand(1, 3, 64, 64)
    _, small = peak_memory(lambda: tiled_predict(net, image, "P16", tile_batch=1, process_size=(16, 16)))
    _, large = peak_memory(lambda: tiled_predict(net, image, "P16", tile_batch=16, process_size=(16, 16)))
    if small < 0:
        pytest.skip("no memory tracker in this torch build")
    # one 32-channel 16x16 activation is 32 KiB: 16 tiles at once keep ~15 more of them alive
    assert large - small > 10 * 32 * 16 * 16 * 4


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    net = DepthMaskNet(width=4).eval()
    image = torch.rand(1, 3, 70, 90)
    cpu = tiled_predict(net, image, "P49")
    gpu = tiled_predict(net.cuda(), image.cuda(), "P49")
    assert gpu.device.type == "cuda" and torch.allclose(cpu, gpu.cpu(), rtol=1e-3)
    _, peak = peak_memory(lambda: tiled_predict(net, image.cuda(), "P49", tile_batch=4), "cuda")
    assert peak > 0
