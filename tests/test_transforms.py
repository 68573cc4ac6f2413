"""Tests of lib.transforms: Rescale, RandomCrop, JointAugment.

The key fixture is a "coded" sample: depth = 1 + (y*W + x)/(H*W) is unique per pixel, so every
output depth tells which input pixel it was copied from; the image's red/green channels are linear
ramps of x and y, so a bilinear resampling tells the continuous source position; the mask is a
thresholding of depth and `valid` a known pattern of (y, x). Alignment is then checked pixel by pixel.
"""
from __future__ import annotations

import math

import numpy as np
import albumentations as A
import cv2
import pytest
import torch

from lib.transforms import JointAugment, RandomCrop, Rescale

H, W = 40, 56


def coded_sample(H: int = H, W: int = W) -> dict:
    y, x = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    idx = (y * W + x).float()
    depth = (1.0 + idx / (H * W))[None].float()
    image = torch.stack([(x + 1.0) / (W + 1), (y + 1.0) / (H + 1), torch.full((H, W), 0.5)]).float()
    valid = (((y // 5) + (x // 7)) % 3 != 0)[None]
    mask = bucket(depth)
    K = torch.tensor([[60.0, 0.0, 25.0], [0.0, 55.0, 21.0], [0.0, 0.0, 1.0]])
    return {"image": image, "depth": depth, "valid": valid, "mask": mask, "intrinsics": K,
            "disparity": 1.0 / depth, "name": "coded", "meta": torch.arange(5)}


def bucket(depth: torch.Tensor) -> torch.Tensor:
    """Instance labels as a thresholding of depth: 4 bands 1..4 (0 where depth is 0 = fill)."""
    lab = torch.clamp(((depth - 1.0) * 4).floor().long() + 1, 1, 4)
    return torch.where(depth > 0, lab, torch.zeros_like(lab))


def decode(depth: torch.Tensor, H: int = H, W: int = W) -> tuple[torch.Tensor, torch.Tensor]:
    """Source (row, col) of each output pixel from its depth value (meaningless where depth = 0)."""
    idx = torch.round((depth.double() - 1.0) * H * W).long().clamp(0, H * W - 1)
    return idx // W, idx % W


def valid_pattern(ys: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
    return ((ys // 5) + (xs // 7)) % 3 != 0


def no_photometric(**kw) -> JointAugment:
    base = dict(hflip_p=0.0, rotate=0.0, color_jitter=0.0, gamma_p=0.0, blur_p=0.0, noise_p=0.0)
    base.update(kw)
    return JointAugment(**base)


def unproject(K: torch.Tensor, u: torch.Tensor, v: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    pix = torch.stack([u.double(), v.double(), torch.ones_like(u, dtype=torch.float64)])
    return torch.linalg.inv(K.double()) @ pix * z.double()


# ============================================================================ Rescale
def test_rescale_bilinear_antialias_hand_values():
    # 1x4 -> 1x2, a factor 2 shrink with anti-aliasing: PIL-style triangle filter of half-width 2
    # input pixels centred at 1 and 3 (in "edge" coordinates): weights 0.75, 0.75, 0.25 (renormalised
    # at the border), so out0 = (0.75*0 + 0.75*1 + 0.25*2)/1.75 = 5/7, out1 = (0.25*1+0.75*2+0.75*3)/1.75 = 16/7.
    row = torch.tensor([0.0, 1.0, 2.0, 3.0]) / 3
    s = {"image": row.expand(3, 1, 4).clone(), "depth": torch.tensor([[[10.0, 20.0, 30.0, 40.0]]]),
         "valid": torch.tensor([[[True, False, True, True]]]), "mask": torch.tensor([[[0, 1, 2, 3]]])}
    out = Rescale((1, 2))(s)
    torch.testing.assert_close(out["image"][0, 0], torch.tensor([5 / 7, 16 / 7]) / 3)
    # nearest with aligned centres: output centres 0.5*2 - 0.5 = 0.5 -> input 1, and 2.5 -> input 3
    assert out["depth"].tolist() == [[[20.0, 40.0]]]
    assert out["valid"].tolist() == [[[False, True]]]
    assert out["mask"].tolist() == [[[1, 3]]]


def test_rescale_upsample_hand_values():
    # 1x2 -> 1x4: centres map to -0.25, 0.25, 0.75, 1.25 -> bilinear 0, .25, .75, 1 (clamped at edges)
    s = {"image": torch.tensor([0.0, 1.0]).expand(3, 1, 2).clone(), "depth": torch.tensor([[[2.0, 5.0]]]),
         "valid": torch.tensor([[[True, False]]]), "mask": torch.tensor([[[7, 9]]])}
    out = Rescale((1, 4))(s)
    torch.testing.assert_close(out["image"][1, 0], torch.tensor([0.0, 0.25, 0.75, 1.0]))
    assert out["depth"].tolist() == [[[2.0, 2.0, 5.0, 5.0]]]
    assert out["valid"].tolist() == [[[True, True, False, False]]]
    assert out["mask"].tolist() == [[[7, 7, 9, 9]]]


def test_rescale_nearest_never_blends_across_an_occlusion_edge():
    g = torch.Generator().manual_seed(0)
    depth = torch.where(torch.rand(1, 30, 50, generator=g) > 0.5, 1.0, 4.0)  # foreground / wall
    depth[0, 10:20, 10:30] = 2.5
    s = {"image": torch.rand(3, 30, 50, generator=g), "depth": depth, "valid": depth < 3,
         "mask": (depth * 2).long()}
    for size in [(13, 17), (61, 95), 7]:
        out = Rescale(size)(s)
        assert set(out["depth"].unique().tolist()) <= {1.0, 2.5, 4.0}
        assert set(out["mask"].unique().tolist()) <= {2, 5, 8}
        # the three nearest maps sample the same pixel: valid and mask still agree with depth
        assert torch.equal(out["valid"], out["depth"] < 3)
        assert torch.equal(out["mask"], (out["depth"] * 2).long())


def test_rescale_matches_independent_nearest_loop():
    s = coded_sample()
    out = Rescale((17, 23))(s)
    d = s["depth"][0]
    for i in range(17):
        for j in range(23):
            si = min(int(math.floor((i + 0.5) * H / 17)), H - 1)
            sj = min(int(math.floor((j + 0.5) * W / 23)), W - 1)
            assert out["depth"][0, i, j] == d[si, sj]
            assert out["disparity"][0, i, j] == s["disparity"][0, si, sj]


def test_rescale_shorter_side_and_dtypes():
    s = coded_sample()  # 40 x 56
    out = Rescale(20)(s)
    assert out["image"].shape == (3, 20, 28) and out["depth"].shape == (1, 20, 28)
    assert Rescale(20)(coded_sample(56, 40))["depth"].shape == (1, 28, 20)  # portrait: width is shorter
    assert Rescale(20)(coded_sample(30, 47))["mask"].shape == (1, 20, 31)  # 47 * 20/30 = 31.3 -> 31
    assert Rescale(20)(coded_sample(30, 47))["image"].shape == (3, 20, 31)
    assert out["depth"].dtype == torch.float32 and out["valid"].dtype == torch.bool
    assert out["mask"].dtype == torch.int64 and out["intrinsics"].dtype == torch.float32
    assert out["name"] == "coded" and out["meta"] is s["meta"]


def test_rescale_intrinsics_by_hand():
    K = torch.tensor([[100.0, 0.0, 31.5], [0.0, 80.0, 23.5], [0.0, 0.0, 1.0]])
    s = {"image": torch.zeros(3, 48, 64), "depth": torch.ones(1, 48, 64),
         "valid": torch.ones(1, 48, 64, dtype=torch.bool), "intrinsics": K}
    out = Rescale((12, 32))(s)["intrinsics"]  # s_x = 1/2, s_y = 1/4
    # fx' = 50, fy' = 20; centred principal point stays centred: (31.5+.5)/2-.5 = 15.5 = (32-1)/2,
    # (23.5+.5)/4-.5 = 5.5 = (12-1)/2
    torch.testing.assert_close(out, torch.tensor([[50.0, 0.0, 15.5], [0.0, 20.0, 5.5], [0.0, 0.0, 1.0]]))
    K2 = K.clone()
    K2[0, 2] = 10.0
    assert Rescale((12, 32))(dict(s, intrinsics=K2))["intrinsics"][0, 2].item() == pytest.approx(4.75)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_rescale_and_crop_on_cuda():
    s = {k: (v.cuda() if isinstance(v, torch.Tensor) else v) for k, v in coded_sample().items()}
    out = RandomCrop(16, torch.Generator().manual_seed(0))(Rescale(20)(s))
    ref = RandomCrop(16, torch.Generator().manual_seed(0))(Rescale(20)(coded_sample()))
    for k in ("image", "depth", "valid", "mask", "intrinsics"):
        assert out[k].device.type == "cuda"
        torch.testing.assert_close(out[k].cpu(), ref[k], rtol=1e-5, atol=1e-5)


# ============================================================================ RandomCrop
def test_random_crop_equals_slicing_at_drawn_offsets():
    s = coded_sample()
    out = RandomCrop((24, 30), generator=torch.Generator().manual_seed(7))(s)
    g = torch.Generator().manual_seed(7)  # documented order: top, then left
    top = int(torch.randint(0, H - 24 + 1, (1,), generator=g))
    left = int(torch.randint(0, W - 30 + 1, (1,), generator=g))
    ys, xs = decode(out["depth"][0, 0, 0])
    assert (int(ys), int(xs)) == (top, left)  # independent check through the coded depth
    for k in ("image", "depth", "valid", "mask", "disparity"):
        assert torch.equal(out[k], s[k][..., top:top + 24, left:left + 30]), k
    K = s["intrinsics"]
    torch.testing.assert_close(out["intrinsics"], torch.tensor(
        [[60.0, 0.0, 25.0 - left], [0.0, 55.0, 21.0 - top], [0.0, 0.0, 1.0]]))
    assert torch.equal(s["intrinsics"], K) and out["name"] == "coded"


def test_random_crop_reproducible_and_varies():
    s = coded_sample()
    a = RandomCrop(16, torch.Generator().manual_seed(3))
    b = RandomCrop(16, torch.Generator().manual_seed(3))
    offsets = set()
    for _ in range(6):
        oa, ob = a(s), b(s)
        assert torch.equal(oa["depth"], ob["depth"]) and torch.equal(oa["image"], ob["image"])
        offsets.add(tuple(int(v) for v in decode(oa["depth"][0, 0, 0])))
    assert len(offsets) > 1
    # a per-call generator overrides the stored one
    o1 = a(s, generator=torch.Generator().manual_seed(11))
    o2 = b(s, generator=torch.Generator().manual_seed(11))
    assert torch.equal(o1["depth"], o2["depth"])


def test_random_crop_full_size_is_identity_and_too_large_raises():
    s = coded_sample()
    out = RandomCrop((H, W))(s)
    assert torch.equal(out["depth"], s["depth"])
    with pytest.raises(ValueError) as e:
        RandomCrop((H + 1, W))(s)
    assert f"({H + 1}, {W})" in str(e.value) and f"({H}, {W})" in str(e.value)


# ============================================================================ JointAugment
def check_alignment(src: dict, out: dict, interior_image_check: bool = True) -> int:
    """Pixel-wise agreement of every output map with the input pixel its depth came from."""
    depth = out["depth"][0]
    fill = depth == 0
    assert set(depth[~fill].tolist()) <= set(src["depth"].flatten().tolist())  # nearest: input values only
    ys, xs = decode(depth)
    assert set(out["mask"].unique().tolist()) <= set(src["mask"].unique().tolist()) | {0}
    assert torch.equal(out["mask"], bucket(out["depth"]))  # mask still thresholds depth
    assert torch.equal(out["valid"][0][~fill], valid_pattern(ys, xs)[~fill])
    assert not out["valid"][0][fill].any() and (out["mask"][0][fill] == 0).all()
    torch.testing.assert_close(out["disparity"][0][~fill], 1.0 / depth[~fill])
    assert (out["disparity"][0][fill] == 0).all()
    if interior_image_check:
        # bilinear reproduces linear ramps exactly away from the fill: the image's continuous
        # source is within half a pixel (per axis) of the pixel the depth was copied from
        near_fill = torch.nn.functional.max_pool2d(fill[None, None].float(), 3, 1, 1)[0, 0] > 0
        inner = ~near_fill & (xs > 0) & (xs < W - 1) & (ys > 0) & (ys < H - 1)
        x_img = out["image"][0] * (W + 1) - 1
        y_img = out["image"][1] * (H + 1) - 1
        assert inner.sum() > 50
        assert (x_img[inner] - xs[inner]).abs().max() <= 0.5 + 1e-3
        assert (y_img[inner] - ys[inner]).abs().max() <= 0.5 + 1e-3
    return int(fill.sum())


def test_joint_flip_really_flips():
    s = coded_sample()
    out = no_photometric(hflip_p=1.0)(s)
    for k in ("image", "depth", "valid", "mask", "disparity"):
        assert torch.equal(out[k], torch.flip(s[k], dims=[-1])), k
    K = s["intrinsics"]
    expect = K.clone()
    expect[0, 2] = W - 1 - K[0, 2]  # cx' = W-1-cx, focal lengths unchanged
    torch.testing.assert_close(out["intrinsics"], expect)
    check_alignment(s, out)


def test_joint_flip_intrinsics_unproject_to_mirrored_points():
    s = coded_sample()
    out = no_photometric(hflip_p=1.0)(s)
    v, u = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    p_out = unproject(out["intrinsics"], u.flatten(), v.flatten(), out["depth"].flatten())
    ys, xs = decode(out["depth"][0])
    p_src = unproject(s["intrinsics"], xs.flatten(), ys.flatten(), out["depth"].flatten())
    # the flipped photo is a photo of the mirrored scene: same points with x negated
    p_src[0] = -p_src[0]
    torch.testing.assert_close(p_out, p_src)


def test_joint_rotation_out_of_image_pixels_invalid_against_own_rotation():
    s = coded_sample()
    deg = 30.0
    out = no_photometric(rotate=(deg, deg), affine_p=1.0)(s)
    # independent nearest rotation about the image centre; positive = counter-clockwise on screen,
    # i.e. p_out - c = R (p_src - c) with R = [[cos, sin], [-sin, cos]] in (x right, y down)
    c, sn = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    cx, cy = (W - 1) / 2, (H - 1) / 2
    v, u = torch.meshgrid(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), indexing="ij")
    du, dv = u - cx, v - cy
    xsrc = c * du - sn * dv + cx  # R^T (p - c) + c
    ysrc = sn * du + c * dv + cy
    m = 0.01
    outside = (xsrc < -0.5 - m) | (xsrc > W - 0.5 + m) | (ysrc < -0.5 - m) | (ysrc > H - 0.5 + m)
    inside = (xsrc > -0.5 + m) & (xsrc < W - 0.5 - m) & (ysrc > -0.5 + m) & (ysrc < H - 0.5 - m)
    assert outside.float().mean() > 0.1 and inside.float().mean() > 0.5
    assert not out["valid"][0][outside].any()
    assert (out["depth"][0][outside] == 0).all() and (out["mask"][0][outside] == 0).all()
    assert (out["depth"][0][inside] > 0).all()
    ys, xs = decode(out["depth"][0])
    assert (xs[inside] - xsrc[inside]).abs().max() <= 0.5 + 1e-6
    assert (ys[inside] - ysrc[inside]).abs().max() <= 0.5 + 1e-6
    assert check_alignment(s, out) == int((out["depth"] == 0).sum())


def test_joint_random_geometry_keeps_alignment_and_intrinsics_exact():
    s = coded_sample()
    aug = no_photometric(hflip_p=0.5, rotate=25.0, scale=(0.7, 1.4), affine_p=1.0, crop=(32, 44), seed=123)
    n_fill = 0
    for _ in range(6):
        out = aug(s)
        assert out["image"].shape == (3, 32, 44) and out["depth"].shape == (1, 32, 44)
        n_fill += check_alignment(s, out)
        # intrinsics: the 3-D point of each output pixel (K', depth') is the 3-D point of the
        # source pixel it was copied from (K, depth), up to nearest rounding (< 0.71 source px)
        keep = out["depth"][0] > 0
        v, u = torch.meshgrid(torch.arange(32), torch.arange(44), indexing="ij")
        z = out["depth"][0][keep]
        ys, xs = decode(out["depth"][0])
        p_out = unproject(out["intrinsics"], u[keep], v[keep], z)
        p_src = unproject(s["intrinsics"], xs[keep], ys[keep], z)
        mirrored = p_src * torch.tensor([[-1.0], [1.0], [1.0]], dtype=torch.float64)
        err_px = min(  # in source pixels (f >= 55); the scene is mirrored when the sample was flipped
            float(((p_out - p) / z.double()).norm(dim=0).max() * 55.0) for p in (p_src, mirrored))
        assert err_px <= 0.75, err_px
        assert out["intrinsics"][0, 0] * out["intrinsics"][1, 1] > 0  # no negative focal length
    assert n_fill > 0  # rotations did bring pixels in from outside


def points_agree(src: dict, out: dict) -> float:
    """Largest gap, in source pixels, between the 3-D point of each output pixel (its K' and
    depth) and that of the source pixel it was copied from (mirrored when the map flips)."""
    h, w = out["depth"].shape[-2:]
    keep = out["depth"][0] > 0
    v, u = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    z = out["depth"][0][keep]
    ys, xs = decode(out["depth"][0])
    p_out = unproject(out["intrinsics"], u[keep], v[keep], z)
    p_src = unproject(src["intrinsics"], xs[keep], ys[keep], z)
    mirrored = p_src * torch.tensor([[-1.0], [1.0], [1.0]], dtype=torch.float64)
    return min(float(((p_out - p) / z.double()).norm(dim=0).max() * 55.0) for p in (p_src, mirrored))


@pytest.mark.parametrize("extra", [
    [A.Rotate(limit=(17, 17), border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=0, p=1.0)],
    [A.Transpose(p=1.0)],
    [A.VerticalFlip(p=1.0), A.Rotate(limit=(-40, -40), border_mode=cv2.BORDER_CONSTANT, fill=0,
                                     fill_mask=0, p=1.0)],
], ids=["rotate", "transpose", "vflip+rotate"])
def test_joint_intrinsics_follow_a_geometric_op_it_has_no_branch_for(extra):
    """The intrinsics come from where the pipeline sends probe points, so a step added with
    ``extra`` is accounted for: projected 3-D points land on the transformed pixels."""
    s = coded_sample()
    out = no_photometric(hflip_p=0.5, seed=3, extra=extra)(s)
    assert out["depth"].shape[-2:] == ((W, H) if isinstance(extra[0], A.Transpose) else (H, W))
    assert (out["depth"] > 0).float().mean() > 0.5
    assert points_agree(s, out) <= 0.75  # nearest resampling: < 0.71 source px
    check_alignment(s, out, interior_image_check=False)


def test_joint_refuses_a_step_without_a_camera_matrix():
    aug = no_photometric(extra=[A.Perspective(scale=(0.1, 0.1), p=1.0)], seed=0)
    with pytest.raises(ValueError, match="Perspective.*not affine"):
        aug(coded_sample())
    with pytest.raises(TypeError, match="albumentations transforms"):
        no_photometric(extra=["rotate"])


def test_joint_default_masks_are_resampled_nearest():
    # with bilinear for masks this would create depths between 1 and 4 and labels between 2 and 8
    g = torch.Generator().manual_seed(1)
    depth = torch.where(torch.rand(1, 32, 32, generator=g) > 0.5, 1.0, 4.0)
    s = {"image": torch.rand(3, 32, 32, generator=g), "depth": depth, "valid": depth > 0,
         "mask": (depth * 2).long()}
    out = JointAugment(rotate=20.0, scale=(0.8, 1.3), affine_p=1.0, seed=0)(s)
    assert set(out["depth"].unique().tolist()) <= {0.0, 1.0, 4.0}
    assert set(out["mask"].unique().tolist()) <= {0, 2, 8}
    assert torch.equal(out["valid"], out["depth"] > 0)


def test_joint_photometric_changes_image_only():
    s = coded_sample()
    aug = JointAugment(hflip_p=0.0, rotate=0.0, color_jitter=0.4, color_p=1.0, gamma_p=1.0, blur_p=1.0,
                       noise_p=1.0, seed=0)
    out = aug(s)
    assert (out["image"] - s["image"]).abs().max() > 0.02
    assert out["image"].min() >= 0 and out["image"].max() <= 1 and out["image"].dtype == torch.float32
    for k in ("depth", "valid", "mask", "intrinsics", "disparity", "meta"):
        assert torch.equal(out[k], s[k]) and out[k].dtype == s[k].dtype, k
    assert out["name"] == "coded"


def test_joint_crop_is_a_slice_and_too_large_raises():
    s = coded_sample()
    out = no_photometric(crop=(24, 32), seed=5)(s)
    top, left = (int(t) for t in decode(out["depth"][0, 0, 0]))
    for k in ("image", "depth", "valid", "mask"):
        assert torch.equal(out[k], s[k][..., top:top + 24, left:left + 32]), k
    K = out["intrinsics"]
    assert K[0, 2].item() == pytest.approx(25.0 - left) and K[1, 2].item() == pytest.approx(21.0 - top)
    with pytest.raises(ValueError) as e:
        no_photometric(crop=(24, W + 8))(s)
    assert f"(24, {W + 8})" in str(e.value) and f"({H}, {W})" in str(e.value)


def test_joint_reproducible_with_seed_and_generator():
    s = coded_sample()
    kw = dict(hflip_p=0.5, rotate=15.0, scale=(0.8, 1.2), affine_p=0.7, crop=30, color_p=1.0, noise_p=0.5)
    a, b, c = JointAugment(seed=42, **kw), JointAugment(seed=42, **kw), JointAugment(seed=43, **kw)
    differs = False
    for _ in range(3):
        oa, ob, oc = a(s), b(s), c(s)
        for k in ("image", "depth", "valid", "mask", "intrinsics"):
            assert torch.equal(oa[k], ob[k]), k
        differs |= not torch.equal(oa["image"], oc["image"])
    assert differs
    # a per-call generator makes the draw independent of what came before
    a(s)
    g1, g2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    o1, o2 = a(s, generator=g1), c(s, generator=g2)
    assert torch.equal(o1["image"], o2["image"]) and torch.equal(o1["depth"], o2["depth"])


def test_joint_draws_vary():
    s = coded_sample()
    aug = no_photometric(hflip_p=0.5, seed=0)
    flipped = [bool(decode(aug(s)["depth"][0, 0, 0])[1] == W - 1) for _ in range(30)]
    assert 5 <= sum(flipped) <= 25


def test_joint_dtypes_and_device_preserved():
    s = coded_sample()
    out = JointAugment(rotate=10.0, affine_p=1.0, seed=1)(s)
    for k in ("image", "depth", "valid", "mask", "intrinsics", "disparity"):
        assert out[k].dtype == s[k].dtype and out[k].device == s[k].device, k
    assert out["meta"] is s["meta"]


# ============================================================================ bad input
@pytest.mark.parametrize("make", [lambda: Rescale(20), lambda: RandomCrop(8), lambda: JointAugment(seed=0)])
def test_bad_samples_raise_clear_errors(make):
    t = make()
    s = coded_sample()
    with pytest.raises(KeyError, match="valid"):
        t({k: v for k, v in s.items() if k != "valid"})
    with pytest.raises(ValueError, match="ONE sample"):
        t(dict(s, image=s["image"][None]))
    with pytest.raises(ValueError, match=r"depth must have shape \(1,H,W\)"):
        t(dict(s, depth=s["depth"][..., :-1]))
    with pytest.raises(ValueError, match=r"image must have shape \(3,H,W\)"):
        t(dict(s, image=s["image"][:1]))
    with pytest.raises(TypeError, match="valid must be a bool"):
        t(dict(s, valid=s["valid"].float()))
    with pytest.raises(TypeError, match="mask must be an integer"):
        t(dict(s, mask=s["mask"].float()))
    with pytest.raises(ValueError, match="intrinsics"):
        t(dict(s, intrinsics=torch.eye(4)))
    with pytest.raises(TypeError, match="sample dict"):
        t(s["image"])


def test_bad_constructor_arguments():
    with pytest.raises(ValueError):
        Rescale(0)
    with pytest.raises(TypeError):
        Rescale((10, 2.5))
    with pytest.raises(ValueError):
        RandomCrop((0, 4))
    with pytest.raises(ValueError, match="hflip_p"):
        JointAugment(hflip_p=1.5)
    with pytest.raises(ValueError, match="scale"):
        JointAugment(scale=(1.2, 0.8))
