"""The procedural RGB-D scenes: determinism, exact geometry, textures, shading, thin lens, cache.

Geometry is checked against formulas written here (pinhole back-projection, ray-sphere and
ray-box tests in float64), never against numbers copied from the implementation.
"""
import math

import numpy as np
import pytest
import torch

import lib.data.synthetic as synthetic
from lib.data import cache as data_cache
from lib.data.raycast import (STRIPES_PER_TILE, Box, Camera, Cone, Cylinder, Light, Material, Room,
                              Scene, Sphere, cast_rays, render_linear)
from lib.data.synthetic import (SyntheticRGBD, fibonacci_disk, render_scene, render_thin_lens, sample_closeup,
                                sample_scene, scene_seed, synthetic_scene)

BLACK = Material("plain", tint=(0.0, 0.0, 0.0))
WHITE = Material("plain")
BIG_ROOM = (-1000.0, 1000.0, 0.0, 1000.0, -1.0, 1000.0)


def pixel_rays(cam: Camera) -> np.ndarray:
    """(H,W,3) float64 world directions of the pixel rays, camera-z component 1, built from
    an explicit look-down / turn / roll rotation (independent of Camera.rotation)."""
    H, W = cam.size
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    x, y = (u - cam.cx) / cam.fx, (v - cam.cy) / cam.fy
    c, s = math.cos(cam.roll), math.sin(cam.roll)
    x, y = c * x - s * y, s * x + c * y                       # roll in the image plane
    p, q = math.cos(cam.pitch), math.sin(cam.pitch)
    d = np.stack([x, -y * p - q, -y * q + p], -1)             # y down, tilted down by pitch
    a, b = math.cos(cam.yaw), math.sin(cam.yaw)
    return np.stack([a * d[..., 0] + b * d[..., 2], d[..., 1], -b * d[..., 0] + a * d[..., 2]], -1)


def backproject(cam: Camera, depth: np.ndarray) -> np.ndarray:
    return np.asarray(cam.position) + pixel_rays(cam) * depth[..., None]


def lit_scene(camera, objects=(), light=None, materials=(WHITE,) * 6, bounds=BIG_ROOM):
    return Scene(camera, Room(bounds, materials), tuple(objects),
                 light or Light("directional", direction=(0.0, -1.0, 0.0), intensity=1.0, ambient=0.0))


# ----------------------------------------------------------------------------- determinism, format
def test_same_seed_gives_identical_output_and_different_seeds_differ():
    a, b, c = synthetic_scene(5, (40, 56)), synthetic_scene(5, (40, 56)), synthetic_scene(6, (40, 56))
    for k in ("image", "depth", "valid", "mask", "intrinsics"):
        assert torch.equal(a[k], b[k]), k
    assert not torch.equal(a["image"], c["image"]) and not torch.equal(a["depth"], c["depth"])


@pytest.mark.parametrize("size", [(48, 64), (37, 23), (1, 1), 20])
def test_item_shapes_dtypes_and_ranges(size):
    H, W = (size, size) if isinstance(size, int) else size
    s = synthetic_scene(3, size)
    assert s["image"].shape == (3, H, W) and s["image"].dtype == torch.float32
    assert 0 <= s["image"].min() and s["image"].max() <= 1
    assert torch.equal(s["image"] * 255, (s["image"] * 255).round())      # 8-bit levels, lossless to cache
    assert s["depth"].shape == (1, H, W) and s["depth"].dtype == torch.float32 and (s["depth"] > 0).all()
    assert s["depth"].max() < 20                                            # inside a room of <= 12 m
    assert s["valid"].shape == (1, H, W) and s["valid"].dtype == torch.bool and s["valid"].all()
    assert s["mask"].shape == (1, H, W) and s["mask"].dtype == torch.int64
    n_obj = len(sample_scene(3, (H, W)).objects)
    assert 0 <= s["mask"].min() and s["mask"].max() <= n_obj
    K = s["intrinsics"]
    assert K.shape == (3, 3) and K.dtype == torch.float32 and K[2, 2] == 1 and K[0, 1] == 0
    assert abs(K[0, 2] - (W - 1) / 2) < 0.1 * W + 1 and K[0, 0] > 0
    assert s["name"] == "synthetic/3"


def test_generated_scenes_have_objects_and_depth_range():
    seen, coverage = 0, []
    for seed in range(8):
        s = synthetic_scene(seed, (48, 64))
        seen += len(torch.unique(s["mask"])) - 1
        coverage.append((s["mask"] > 0).float().mean().item())
        assert s["depth"].max() / s["depth"].min() > 2                    # near floor, far walls
    assert seen >= 16 and np.mean(coverage) > 0.05                        # objects are visible


def test_dataset_item_is_the_scene_of_its_seed_and_split():
    ds = SyntheticRGBD(3, (32, 40), seed=1, split="val", cache=False)
    item = ds[2]
    ref = synthetic_scene(scene_seed(1, "val", 2), (32, 40))
    assert item["name"] == "synthetic/val/000002" and len(ds) == 3
    for k in ("image", "depth", "valid", "mask", "intrinsics"):
        assert torch.equal(item[k], ref[k]), k
    assert torch.equal(ds[-1]["image"], item["image"])
    with pytest.raises(IndexError):
        ds[3]
    assert torch.equal(SyntheticRGBD(3, (32, 40), seed=1, split="val", cache=False)[0]["depth"], ds[0]["depth"])
    assert scene_seed(0, "train", 17) == 17                               # train item i of seed 0 = scene i


def test_splits_and_dataset_seeds_never_share_a_scene():
    seeds = {(s, split, i): scene_seed(s, split, i) for s in range(4) for split in synthetic.SPLITS
             for i in list(range(200)) + [2**32 - 1]}
    assert len(set(seeds.values())) == len(seeds)                         # one-to-one on this range
    for (s, split, i), value in seeds.items():                            # and invertible in general
        block, index = divmod(value, 2**32)
        assert (index, divmod(block, 3)) == (i, (s, synthetic.SPLITS.index(split)))
    items = [SyntheticRGBD(2, (24, 32), seed=0, split=sp, cache=False)[1] for sp in synthetic.SPLITS]
    for a in range(3):
        for b in range(a + 1, 3):
            assert not torch.equal(items[a]["image"], items[b]["image"])


# ----------------------------------------------------------------------------- exact depth and masks
def test_wall_straight_ahead_has_constant_depth_even_with_roll():
    for roll in (0.0, 0.3):
        cam = Camera((0.3, 1.2, 0.0), 40.0, 40.0, 15.5, 11.5, (24, 32), roll=roll)
        scene = lit_scene(cam, bounds=(-100.0, 100.0, -100.0, 100.0, -1.0, 3.7))
        out = synthetic.render_scene(scene)
        np.testing.assert_allclose(out["depth"].numpy(), 3.7, rtol=1e-6)
        assert (out["mask"] == 0).all()


def test_floor_depth_matches_the_pinhole_formula():
    h, pitch = 1.3, 0.35
    cam = Camera((0.0, h, 0.0), 60.0, 60.0, 31.5, 23.5, (48, 64), pitch=pitch)
    depth = synthetic.render_scene(lit_scene(cam))["depth"][0].numpy().astype(np.float64)
    v = np.arange(48, dtype=np.float64)[:, None] * np.ones((1, 64))
    yn = (v - cam.cy) / cam.fy
    denom = yn * math.cos(pitch) + math.sin(pitch)          # -(world y of the ray) per unit depth
    expected = h / np.where(denom > 0, denom, np.nan)
    floor = np.isfinite(expected) & (expected < 300)
    assert floor.sum() > 1000
    np.testing.assert_allclose(depth[floor], expected[floor], rtol=2e-5)


def _t_sphere(o, d, c, r):
    e = o - np.asarray(c)
    a, b, cc = (d * d).sum(-1), (e * d).sum(-1), (e * e).sum() - r * r
    disc = b * b - a * cc
    t = (-b - np.sqrt(np.maximum(disc, 0))) / a
    return np.where((disc >= 0) & (t > 0), t, np.inf)


def _t_box(o, d, box):
    """Slab test written out per pixel (loops), in the box's own frame."""
    c, s = math.cos(box.yaw), math.sin(box.yaw)
    half = np.array(box.size) / 2
    centre = np.array([box.center[0], box.y0 + half[1], box.center[1]])
    out = np.full(d.shape[:-1], np.inf)
    for idx in np.ndindex(*d.shape[:-1]):
        e, r = o - centre, d[idx]
        el = np.array([c * e[0] - s * e[2], e[1], s * e[0] + c * e[2]])
        rl = np.array([c * r[0] - s * r[2], r[1], s * r[0] + c * r[2]])
        lo, hi = -np.inf, np.inf
        for k in range(3):
            if rl[k] == 0:
                if abs(el[k]) > half[k]:
                    lo = np.inf
                continue
            t1, t2 = sorted(((-half[k] - el[k]) / rl[k], (half[k] - el[k]) / rl[k]))
            lo, hi = max(lo, t1), min(hi, t2)
        if lo <= hi and lo > 0:
            out[idx] = lo
    return out


def test_mask_and_depth_match_independent_ray_object_tests_with_occlusion():
    cam = Camera((0.0, 1.0, 0.0), 50.0, 50.0, 23.5, 17.5, (36, 48), pitch=0.15)
    sphere = Sphere((0.2, 0.45, 2.5), 0.45, WHITE)                     # in front ...
    box = Box((-0.1, 4.0), (1.2, 0.9, 0.8), yaw=0.5, material=WHITE)   # ... of a turned box
    out = synthetic.render_scene(lit_scene(cam, (sphere, box)))
    d, o = pixel_rays(cam), np.asarray(cam.position)
    ts, tb = _t_sphere(o, d, sphere.center, sphere.radius), _t_box(o, d, box)
    floor_t = o[1] / np.where(d[..., 1] < 0, -d[..., 1], np.nan)
    expected = np.where((ts < tb) & (ts < np.inf), 1, np.where(tb < np.inf, 2, 0))
    mask = out["mask"][0].numpy()
    assert (expected == 1).sum() > 50 and (expected == 2).sum() > 50
    assert ((expected == 1) & (tb < np.inf)).sum() > 10                  # the sphere hides part of the box
    assert (mask != expected).sum() <= 2                                  # silhouettes may round differently
    depth = out["depth"][0].numpy()
    t = np.where(expected == 1, ts, np.where(expected == 2, tb, floor_t))
    agree = (mask == expected) & np.isfinite(t)
    np.testing.assert_allclose(depth[agree], t[agree], rtol=1e-4)


def _on_surface(obj, p):
    """How far the points (N,3) are from the surface of obj (0 on it), metres."""
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    if isinstance(obj, Sphere):
        return np.abs(np.linalg.norm(p - np.asarray(obj.center), axis=1) - obj.radius)
    if isinstance(obj, Box):
        c, s = math.cos(obj.yaw), math.sin(obj.yaw)
        ex, ez = x - obj.center[0], z - obj.center[1]
        hx, hy, hz = (q / 2 for q in obj.size)
        lx, lz, ly = c * ex - s * ez, s * ex + c * ez, y - (obj.y0 + hy)
        return np.abs(np.maximum.reduce([np.abs(lx) - hx, np.abs(ly) - hy, np.abs(lz) - hz]))
    radial = np.hypot(x - obj.center[0], z - obj.center[1])
    top = obj.y0 + obj.height
    if isinstance(obj, Cylinder):
        return np.abs(np.maximum.reduce([radial - obj.radius, y - top, obj.y0 - y]))
    assert isinstance(obj, Cone)
    return np.abs(np.maximum(radial - obj.radius / obj.height * (top - y), obj.y0 - y))


@pytest.mark.parametrize("draw", [sample_scene, sample_closeup])
def test_random_scenes_back_project_onto_the_surfaces_their_mask_names(draw):
    kinds = set()
    for seed in range(10):
        scene = draw(seed, (36, 48))
        s = render_scene(scene)
        p = backproject(scene.camera, s["depth"][0].numpy().astype(np.float64)).reshape(-1, 3)
        mask = s["mask"][0].numpy().reshape(-1)
        x0, x1, y0, y1, z0, z1 = scene.room.bounds
        room = p[mask == 0]
        to_plane = np.min(np.abs(np.stack([room[:, 0] - x0, room[:, 0] - x1, room[:, 1] - y0,
                                           room[:, 1] - y1, room[:, 2] - z0, room[:, 2] - z1])), axis=0)
        assert to_plane.max() < 2e-3
        for k, obj in enumerate(scene.objects, start=1):
            if (mask == k).any():
                kinds.add(type(obj).__name__)
                assert _on_surface(obj, p[mask == k]).max() < 2e-3, (seed, k, obj)
    assert kinds == {"Sphere", "Box", "Cylinder", "Cone"}


def test_mixed_scenes_are_the_rooms_or_closeups_of_the_same_seed():
    size, closeups = (24, 32), 0
    for seed in range(40):
        scene = sample_scene(seed, size, scenes="mixed")
        if scene == sample_closeup(seed, size):
            closeups += 1
            hfov = 2 * math.degrees(math.atan(size[1] / 2 / scene.camera.fx))
            assert 30 <= hfov <= 60 and scene.room.bounds[5] <= 3.5 + 3.0
        else:
            assert scene == sample_scene(seed, size)              # the room of the default
    assert 10 <= closeups <= 30                                    # about half of 40
    near = [float(render_scene(sample_closeup(k, size))["depth"].median()) for k in range(8)]
    far = [float(synthetic_scene(k, size)["depth"].median()) for k in range(8)]
    assert np.median(near) < np.median(far)                        # close-ups are near


def test_mixed_dataset_has_its_own_cache_key_and_the_rooms_keep_theirs():
    rooms = SyntheticRGBD(3, size=(16, 24), split="val", cache=False)
    mixed = SyntheticRGBD(3, size=(16, 24), split="val", cache=False, scenes="mixed")
    assert "scenes" not in rooms.params and mixed.params["scenes"] == "mixed"
    for i in range(3):
        want = render_scene(sample_scene(scene_seed(0, "val", i), (16, 24), "mixed"))
        assert torch.equal(mixed[i]["image"], want["image"]) and torch.equal(mixed[i]["depth"], want["depth"])


def test_object_culling_window_loses_no_hit():
    """The pinhole render only tests rays near each object; casting every ray at every object
    (cast_rays) must give the same picture."""
    for seed in (0, 1, 2):
        scene = sample_scene(seed, (32, 40))
        rgb, t, ids = render_linear(scene)
        rgb2, t2, ids2 = cast_rays(scene, scene.camera.position, pixel_rays(scene.camera).reshape(-1, 3),
                                   footprint=1 / scene.camera.fx)
        assert (ids.reshape(-1) != ids2).sum() <= 1
        same = ids.reshape(-1) == ids2
        np.testing.assert_allclose(t.reshape(-1)[same], t2[same], rtol=1e-4)


# ----------------------------------------------------------------------------- texture and shading
def test_floor_texture_frequency_rises_in_proportion_to_depth():
    """World-space stripes of period p on the floor: at depth Z a row shows them with period
    f p / Z pixels, so the dominant frequency of each row grows linearly with its depth."""
    W, f, scale = 128, 64.0, 1.6
    period = scale / STRIPES_PER_TILE
    cam = Camera((0.0, 1.5, 0.0), f, f, (W - 1) / 2, 47.5, (96, W), pitch=0.5)
    floor = Material("stripes", scale=scale)
    scene = lit_scene(cam, materials=(WHITE, WHITE, floor, WHITE, WHITE, WHITE))
    rgb, depth, _ = render_linear(scene)
    measured, expected = [], []
    for row in range(60, 96, 5):
        z = float(depth[row].mean())
        assert np.ptp(depth[row]) < 1e-3 * z                                # a row of the floor: one depth
        cycles = W * z / (f * period)                                       # expected stripes per row
        if not 4 <= cycles <= W / 3:
            continue
        signal = rgb[row, :, 0] - rgb[row, :, 0].mean()
        spectrum = np.abs(np.fft.rfft(signal * np.hanning(W)))
        measured.append(int(np.argmax(spectrum[1:])) + 1)
        expected.append(cycles)
    assert len(measured) >= 4
    np.testing.assert_allclose(measured, expected, atol=1.01)
    assert np.all(np.diff(measured) <= 0)            # rows lower in the image are nearer: fewer stripes


def test_textures_and_shading_stick_to_the_world_not_the_view():
    """Lambertian surfaces with world-anchored textures look the same from anywhere: the
    points a camera sees, looked at again from another position, have the same colour."""
    for seed in (1, 6, 11):                                   # all four kinds of object in view
        scene = sample_scene(seed, (40, 48))
        rgb_a, t_a, ids_a = cast_rays(scene, scene.camera.position, pixel_rays(scene.camera).reshape(-1, 3),
                                      shadows=True)
        p = np.asarray(scene.camera.position) + pixel_rays(scene.camera).reshape(-1, 3) * t_a[:, None]
        other = np.asarray(scene.camera.position) + np.array([0.4, 0.3, 0.5])       # still in the room
        rgb_b, t_b, ids_b = cast_rays(scene, other, p - other, shadows=True)
        same = (ids_a == ids_b) & (np.abs(t_b - 1) < 1e-3)                    # B sees the very same point
        assert same.mean() > 0.6
        close = np.all(np.abs(rgb_a - rgb_b) <= 1e-4 + 1e-3 * rgb_a, axis=1)
        for k in np.unique(ids_a[same]):                      # the room and each object on its own
            on_k = same & (ids_a == k)
            if on_k.sum() >= 10:
                assert close[on_k].mean() > 0.9, (seed, k)     # a few texel-border misses


@pytest.mark.parametrize("angle", [0.0, 30.0, 60.0, 80.0, 100.0])
def test_shading_is_lambertian(angle):
    """A white wall facing the camera, lit by a distant light at `angle` from its normal:
    radiance = albedo * (ambient + I cos(angle)), 0 for light from behind."""
    a = math.radians(angle)
    cam = Camera((0.0, 1.0, 0.0), 20.0, 20.0, 7.5, 7.5, (16, 16))
    tint = (0.8, 0.5, 0.25)
    walls = (WHITE,) * 5 + (Material("plain", tint=tint),)
    light = Light("directional", direction=(math.sin(a), 0.0, math.cos(a)), intensity=0.9, ambient=0.05)
    bounds = (-50.0, 50.0, -50.0, 50.0, -1.0, 4.0)
    rgb, _, _ = render_linear(lit_scene(cam, light=light, materials=walls, bounds=bounds))
    expected = np.array(tint) * (0.05 + 0.9 * max(math.cos(a), 0.0))
    np.testing.assert_allclose(rgb.reshape(-1, 3), np.broadcast_to(expected, (256, 3)), rtol=1e-4, atol=1e-6)


def _segment_hits_sphere(p, d, sphere, t_max):
    """Bool: the ray p + t d, 0 < t < t_max, meets the sphere (float64, written out)."""
    e = p - np.asarray(sphere.center)
    a, b, c = (d * d).sum(-1), (e * d).sum(-1), (e * e).sum(-1) - sphere.radius ** 2
    disc = b * b - a * c
    t = (-b - np.sqrt(np.maximum(disc, 0))) / a
    return (disc > 0) & (t > 0) & (t < t_max)


@pytest.mark.parametrize("kind", ["point", "directional"])
def test_cast_shadows_fall_exactly_where_the_light_is_blocked(kind):
    cam = Camera((0.0, 1.6, 0.0), 40.0, 40.0, 23.5, 17.5, (36, 48), pitch=0.45)
    sphere = Sphere((0.0, 0.4, 3.0), 0.4, WHITE)
    above = Sphere((1.75, 3.0, 2.75), 0.3, WHITE)           # beyond the point light: casts nothing
    if kind == "point":
        light = Light("point", position=(1.5, 2.0, 3.5), intensity=1.0, ambient=0.1)
    else:
        light = Light("directional", direction=(-0.4, -1.0, -0.3), intensity=1.0, ambient=0.1)
    objects = (sphere, above) if kind == "point" else (sphere,)
    scene = lit_scene(cam, objects, light=light)
    plain, depth, ids = render_linear(scene)
    shadowed, depth2, _ = render_linear(scene, shadows=True)
    assert np.array_equal(depth, depth2)
    p = backproject(cam, depth.astype(np.float64))
    if kind == "point":
        to_light, t_max = np.asarray(light.position) - p, 1.0
        beyond = (ids == 0) & _segment_hits_sphere(p, to_light, above, np.inf) & ~_segment_hits_sphere(
            p, to_light, above, 1.0)
        assert beyond.sum() > 10                               # these floor points must stay lit
    else:
        to_light, t_max = np.broadcast_to(-np.asarray(light.direction), p.shape), np.inf
    blocked = (ids == 0) & _segment_hits_sphere(p, to_light, sphere, t_max)
    darker = shadowed[..., 0] < plain[..., 0] - 1e-6
    assert blocked.sum() > 20
    assert (darker != blocked).sum() <= 2
    np.testing.assert_allclose(shadowed[darker], 0.1, rtol=1e-4)        # only the ambient term is left


# ----------------------------------------------------------------------------- thin lens
def _second_moment(img):
    H, W = img.shape
    v, u = np.mgrid[0:H, 0:W]
    m = img.sum()
    cu, cv = (img * u).sum() / m, (img * v).sum() / m
    return (img * ((u - cu) ** 2 + (v - cv) ** 2)).sum() / m


@pytest.mark.parametrize("S", [1.0, 4.0])
def test_thin_lens_blur_radius_is_K_times_disparity_difference(S):
    """A small white sphere at depth S on black, lens focused at 2 m: the defocused image is
    the sharp one spread over a disc of radius R = f A |1/S - 1/S_f|. The spread adds R^2/2
    to the second moment of the image (uniform disc), so R = sqrt(2 (M2_blur - M2_sharp))."""
    cam = Camera((0.0, 0.0, 0.0), 200.0, 200.0, 47.5, 47.5, (96, 96))
    scene = Scene(cam, Room((-50.0, 50.0, -50.0, 50.0, -1.0, 100.0), (BLACK,) * 6),
                  (Sphere((0.02 * S, -0.01 * S, S), 0.01 * S, WHITE),),
                  Light("directional", intensity=0.0, ambient=1.0))                 # flat, self-lit
    out = render_thin_lens(scene, focus_distance=2.0, aperture_radius=0.08, samples=64)
    assert out["K"] == pytest.approx(200.0 * 0.08) and out["focus_disparity"] == pytest.approx(0.5)
    blurred = out["linear"][0].numpy().astype(np.float64)
    sharp = out["sharp"][0].numpy().astype(np.float64) ** 2.2
    radius = math.sqrt(2 * (_second_moment(blurred) - _second_moment(sharp)))
    expected = out["K"] * abs(1 / S - 1 / 2.0)
    assert expected > 3
    assert abs(radius - expected) < 1.0
    assert blurred.max() < 0.5 * sharp.max()                              # the energy did spread
    assert blurred.sum() == pytest.approx(sharp.sum(), rel=0.2)          # and was kept


def test_thin_lens_keeps_the_focal_plane_sharp_and_zero_aperture_is_the_pinhole():
    out = render_thin_lens(4, (32, 40), focus_distance=2.5, aperture_radius=0.0, samples=3)
    ref = synthetic_scene(4, (32, 40))
    assert torch.equal(out["image"], ref["image"]) and torch.equal(out["sharp"], ref["image"])
    assert torch.equal(out["depth"], ref["depth"]) and torch.equal(out["mask"], ref["mask"])
    wide = render_thin_lens(4, (32, 40), focus_distance=2.5, aperture_radius=0.05, samples=8)
    assert not torch.equal(wide["image"], ref["image"])
    assert wide["K"] == pytest.approx(float(ref["intrinsics"][0, 0]) * 0.05)


def test_fibonacci_disk_points_are_spread_like_a_uniform_disk():
    pts = fibonacci_disk(64)
    r2 = (pts ** 2).sum(1)
    assert r2.max() <= 1 and r2.mean() == pytest.approx(0.5)             # E r^2 of the uniform disk
    assert np.linalg.norm(pts.mean(0)) < 0.05
    assert np.min(np.linalg.norm(pts[:, None] - pts[None], axis=-1) + 9 * np.eye(64)) > 0.1


# ----------------------------------------------------------------------------- dropouts, cache
def test_dropout_cuts_invalid_holes_without_changing_the_scene():
    clean, holes = synthetic_scene(2, (64, 64)), synthetic_scene(2, (64, 64), dropout=0.2)
    frac = 1 - holes["valid"].float().mean().item()
    assert 0.05 < frac < 0.35
    assert torch.equal(clean["image"], holes["image"]) and torch.equal(clean["mask"], holes["mask"])
    assert (holes["depth"][~holes["valid"]] == 0).all()
    assert torch.equal(holes["depth"][holes["valid"]], clean["depth"][holes["valid"]])


def test_cache_round_trip_loads_instead_of_regenerating(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    kw = dict(size=(24, 32), seed=3, split="test", dropout=0.1, progress=False)
    first = SyntheticRGBD(4, **kw)
    fresh = [SyntheticRGBD(4, cache=False, **kw)[i] for i in range(4)]     # generated on the fly
    entry = next((tmp_path / "cache").iterdir())
    assert {p.name for p in entry.glob("*.npy")} == {"image.npy", "depth.npy", "mask.npy", "valid.npy",
                                                     "intrinsics.npy"}
    assert np.load(entry / "image.npy", mmap_mode="r").dtype == np.uint8

    def boom(*args, **kwargs):
        raise AssertionError("the generator ran although the scenes are cached")

    monkeypatch.setattr(synthetic, "render_arrays", boom)
    second = SyntheticRGBD(4, **kw)
    assert isinstance(second._arrays["depth"], np.memmap)
    for i in range(4):
        a, b, c = first[i], second[i], fresh[i]
        for k in ("image", "depth", "valid", "mask", "intrinsics"):
            assert torch.equal(a[k], b[k]) and torch.equal(a[k], c[k]), (i, k)
            assert a[k].dtype == c[k].dtype
        assert a["name"] == c["name"]
    with pytest.raises(AssertionError, match="generator ran"):            # other parameters: new entry
        SyntheticRGBD(4, **{**kw, "seed": 4})
    assert len(list((tmp_path / "cache").iterdir())) == 1                 # the failed build left nothing


def test_interrupted_generation_leaves_no_cache_entry(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    real = synthetic.render_arrays
    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(synthetic, "render_arrays", flaky)
    with pytest.raises(KeyboardInterrupt):
        SyntheticRGBD(5, size=(16, 16), progress=False)
    assert not any((tmp_path / "cache").iterdir())
    monkeypatch.setattr(synthetic, "render_arrays", real)
    ds = SyntheticRGBD(5, size=(16, 16), progress=False)
    assert torch.equal(ds[4]["depth"], synthetic_scene(4, (16, 16))["depth"])
    assert data_cache.load(data_cache.cache_path("synthetic", ds.params)) is not None


def test_cached_dataset_batches_through_dataloader_workers(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    ds = SyntheticRGBD(6, size=(16, 24), seed=2, progress=False)
    batches = [b for b in torch.utils.data.DataLoader(ds, batch_size=3, num_workers=2)]
    assert batches[0]["image"].shape == (3, 3, 16, 24) and batches[1]["mask"].shape == (3, 1, 16, 24)
    assert torch.equal(batches[1]["depth"][2], ds[5]["depth"])
    assert batches[0]["name"][1] == "synthetic/train/000001"


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("call, match", [
    (lambda: synthetic_scene(0, size=(0, 10)), "size"),
    (lambda: synthetic_scene(0, size=(-4, 10)), "size"),
    (lambda: synthetic_scene(0, size=(8,)), "size"),
    (lambda: synthetic_scene(-1), "seed"),
    (lambda: synthetic_scene(1.5), "seed"),
    (lambda: synthetic_scene(0, dropout=1.0), "dropout"),
    (lambda: SyntheticRGBD(-1, cache=False), "n must be"),
    (lambda: SyntheticRGBD(2, split="training", cache=False), "split"),
    (lambda: SyntheticRGBD(2, size=(0, 0), cache=False), "size"),
    (lambda: SyntheticRGBD(2, cache=False, scenes="closeups"), "scenes"),
    (lambda: sample_scene(0, scenes="rooms+"), "scenes"),
    (lambda: render_thin_lens(0, (8, 8), focus_distance=0.0), "focus_distance"),
    (lambda: render_thin_lens(0, (8, 8), aperture_radius=-0.1), "aperture_radius"),
    (lambda: render_thin_lens(0, (8, 8), samples=0), "samples"),
])
def test_bad_arguments_raise_clear_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_empty_dataset_is_allowed():
    assert len(SyntheticRGBD(0, size=(8, 8))) == 0
