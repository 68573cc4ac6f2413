"""Procedural RGB-D rooms with exact depth: the course's built-in data.

A scene is drawn from ``numpy.random.default_rng(seed)`` as a small DESCRIPTION (see
:mod:`lib.data.raycast`): a box-shaped room (floor, ceiling, four walls) seen by a camera of
random height, pitch, a little yaw and roll, and random focal length; two to eight spheres,
boxes, cylinders and cones resting on the floor at 1 to 9 m, often one behind another;
textures (scikit-image photographs and procedural patterns) laid in world units with random
tints; one point or directional light plus ambient. The ray caster then gives the image, the
z-depth (metres) and the instance mask (0 = room, k = object k) of every pixel exactly.
``scenes="mixed"`` makes half of the scenes close-ups instead (:func:`sample_closeup`): one
cluttered object filling a narrow view, a wall close behind it, what photographs of things show.

Cues a network can learn from: perspective (the floor recedes to a horizon, walls converge),
texture gradients (a texture's image period is ``f * period / depth``), the size of objects
and where they touch the floor, occlusion, and shading (and cast shadows with ``shadows=True``).

:func:`render_thin_lens` renders the same scene through a thin lens (ground-truth depth of
field for the bokeh chapter); :class:`SyntheticRGBD` caches generated scenes on disk.

>>> s = synthetic_scene(0, size=(64, 96))
>>> s["image"].shape, s["depth"].shape, s["mask"].dtype
(torch.Size([3, 64, 96]), torch.Size([1, 64, 96]), torch.int64)
>>> ds = SyntheticRGBD(4, size=(64, 64), split="val", cache=False)
>>> ds[3]["name"]
'synthetic/val/000003'
"""
from __future__ import annotations

import colorsys
import math

import numpy as np
import torch
from torch.utils.data import Dataset

from lib import checks
from lib.data import cache as _cache
from lib.data.formats import _index
from lib.data.raycast import (Box, Camera, Cone, Cylinder, Light, Material, Room, Scene, Sphere,
                              linear_to_srgb8, render_linear, texture_library)

GENERATOR_VERSION = 3   # bump whenever the images, depths or masks of a given seed change
SPLITS = ("train", "val", "test")

FLOOR_TEXTURES = ("planks", "planks", "tiles", "checkers", "brick", "gravel", "grass", "noise", "coins", "moon")
WALL_TEXTURES = ("plain", "plain", "plain", "noise", "brick", "stripes", "tiles", "camera", "astronaut",
                 "coffee", "chelsea", "rocket", "text", "immunohistochemistry", "moon")
CEILING_TEXTURES = ("plain", "plain", "noise", "tiles")
OBJECT_TEXTURES = ("plain", "checkers", "stripes", "noise", "planks", "tiles", "brick", "grass", "gravel",
                   "camera", "moon", "coins", "text", "coffee", "astronaut", "chelsea", "rocket",
                   "immunohistochemistry")


# ----------------------------------------------------------------------------- checks
def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def scene_seed(seed: int, split: str, index: int) -> int:
    """The seed of item ``index`` of split ``split`` of the dataset with seed ``seed``.

    ``(3 * seed + split_number) * 2**32 + index``: a one-to-one map of (seed, split, index),
    so that two splits (or two dataset seeds) can never produce the same scene seed.
    ``scene_seed(0, "train", i) == i``: train item i of seed 0 is ``synthetic_scene(i)``.
    """
    seed = _check_seed(seed)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    if not 0 <= index < 2**32:
        raise IndexError(f"index must be in [0, 2**32), got {index}")
    return (3 * seed + SPLITS.index(split)) * 2**32 + int(index)


# ----------------------------------------------------------------------------- the scene draw
def _material(rng, textures, scale, saturation, value) -> Material:
    r, g, b = colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0, saturation), rng.uniform(*value))
    tint = tuple(float(c) ** 2.2 for c in (r, g, b))          # an sRGB colour as a linear multiplier
    return Material(texture=textures[int(rng.integers(len(textures)))], scale=float(rng.uniform(*scale)), tint=tint,
                    offset=(float(rng.uniform(0, 10)), float(rng.uniform(0, 10))))


def _object(rng, kind: str, x: float, z: float, material: Material):
    if kind == "sphere":
        r = rng.uniform(0.12, 0.5)
        return Sphere((x, r, z), r, material), r
    if kind == "box":
        sx, sy, sz = rng.uniform(0.25, 1.1), rng.uniform(0.2, 1.3), rng.uniform(0.25, 1.1)
        return Box((x, z), (sx, sy, sz), yaw=rng.uniform(0, math.pi / 2), material=material), math.hypot(sx, sz) / 2
    if kind == "cylinder":
        r = rng.uniform(0.1, 0.4)
        return Cylinder((x, z), r, rng.uniform(0.3, 1.6), material=material), r
    r = rng.uniform(0.15, 0.5)
    return Cone((x, z), r, rng.uniform(0.4, 1.4), material=material), r


SCENES = ("rooms", "mixed")
CLOSEUP_FRACTION = 0.5          # of the scenes of the "mixed" variety


def _light(rng, bounds) -> Light:
    u = lambda a, b: float(rng.uniform(a, b))                  # noqa: E731
    height, depth = bounds[3], bounds[5]
    if rng.uniform() < 0.75:
        position = (u(bounds[0] + 0.5, bounds[1] - 0.5), height - 0.15,
                    u(0.5, max(depth - 1.0, 0.6)))
        return Light("point", position=position,
                     intensity=u(1.2, 2.2), ambient=u(0.12, 0.35), falloff=u(3.0, 6.0),
                     exposure=u(1.0, 1.6))
    d = np.array([u(-1, 1), -u(0.6, 1.5), u(-1, 1)])
    d = tuple(float(c) for c in d / np.linalg.norm(d))
    return Light("directional", direction=d,
                 intensity=u(0.6, 1.0), ambient=u(0.15, 0.35), exposure=u(1.0, 1.5))


def _part(rng, kind: str, x: float, y: float, z: float, s: float, material: Material):
    """A primitive of about ``s`` metres centred near height ``y``, above the floor."""
    if kind == "sphere":
        r = s * float(rng.uniform(0.3, 0.6))
        return Sphere((x, max(y, r), z), r, material), r
    h = s * float(rng.uniform(0.4, 1.5))
    y0 = max(y - h / 2, 0.0)
    if kind == "box":
        sx, sz = s * rng.uniform(0.3, 1.0, 2)
        yaw = float(rng.uniform(0, math.pi / 2))
        box = Box((x, z), (float(sx), h, float(sz)), yaw=yaw, y0=y0, material=material)
        return box, math.hypot(sx, sz, h) / 2
    r = s * float(rng.uniform(0.15, 0.5))
    cls = Cylinder if kind == "cylinder" else Cone
    return cls((x, z), r, h, y0=y0, material=material), math.hypot(r, h / 2)


def sample_closeup(seed: int, size: tuple[int, int] = (128, 128)) -> Scene:
    """A close-up: one cluttered object (6 to 18 overlapping parts, some off the floor)
    filling much of a narrow view (30-60 degrees) at 1.2-3.5 m, a wall 0.8-3 m behind.

    What photographs of things look like (the Middlebury motorcycle: 40 degrees, 2-5 m)
    and the rooms of :func:`sample_scene` rarely show: most of the frame near, little
    floor, no horizon. Deterministic in ``seed``.
    """
    seed, (H, W) = _check_seed(seed), checks.size_pair(size, "size", square_ok=True)
    rng = np.random.default_rng([seed, 3])
    u = lambda a, b: float(rng.uniform(a, b))                  # noqa: E731
    hfov = math.radians(u(30.0, 60.0))
    f = (W / 2) / math.tan(hfov / 2)
    dist = u(1.2, 3.5)                                         # to the object's centre
    back = dist + u(0.8, 3.0)                                  # the wall behind it
    half = back * math.tan(hfov / 2)                           # half the view there
    width, height = max(2.6 * half, u(3.0, 6.0)), u(2.4, 3.4)
    bounds = (-width / 2, width / 2, 0.0, height, -1.0, back)
    wall = _material(rng, WALL_TEXTURES, (1.0, 4.0), 0.4, (0.55, 1.0))
    floor = _material(rng, FLOOR_TEXTURES, (0.8, 3.0), 0.5, (0.45, 1.0))
    ceiling = _material(rng, CEILING_TEXTURES, (1.0, 3.0), 0.15, (0.8, 1.0))
    room = Room(bounds, (wall, wall, floor, ceiling, wall, wall))
    cam = (u(-0.2, 0.2) * half, u(0.4, 1.6), u(-0.5, 0.0))
    yaw = u(-0.15, 0.15)
    cx, cz = cam[0] + dist * math.sin(yaw), cam[2] + dist * math.cos(yaw)
    extent = dist * math.tan(hfov / 2) * u(0.5, 1.0)           # the object's half width
    cy = max(u(0.3, 1.1), 0.6 * extent * H / W)
    pitch = math.atan2(cam[1] - cy, dist) + float(rng.normal(0, 0.05))
    principal = ((W - 1) / 2 + float(rng.normal(0, 0.01 * W)),
                 (H - 1) / 2 + float(rng.normal(0, 0.01 * H)))
    camera = Camera(position=cam, fx=f, fy=f, cx=principal[0], cy=principal[1],
                    size=(H, W), pitch=pitch, yaw=yaw, roll=float(rng.normal(0, 0.04)))
    objects = []
    for _ in range(int(rng.integers(6, 19))):
        kind = ("sphere", "box", "cylinder", "cone")[int(rng.integers(4))]
        material = _material(rng, OBJECT_TEXTURES, (0.1, 0.6), 0.9, (0.3, 1.0))
        x, z = cx + u(-0.8, 0.8) * extent, cz + u(-0.6, 0.6) * extent
        y = cy + u(-0.8, 0.8) * extent * H / W
        obj, radius = _part(rng, kind, x, y, z, extent * u(0.3, 0.9), material)
        centre, reach = obj.bounding_sphere()
        clear = math.dist(cam, centre) > reach + 0.3            # the camera is outside
        if clear and z + radius < back - 0.05:
            objects.append(obj)
    return Scene(camera, room, tuple(objects), _light(rng, bounds))


def sample_scene(seed: int, size: tuple[int, int] = (128, 128),
                 scenes: str = "rooms") -> Scene:
    """Draw the description of scene ``seed`` (deterministic) for an image of ``size``.

    ``scenes="rooms"`` (the default): a room with objects on its floor. ``"mixed"``: a
    close-up (:func:`sample_closeup`) for a fraction ``CLOSEUP_FRACTION`` of the seeds,
    the same room as ``"rooms"`` for the others.
    """
    if scenes not in SCENES:
        raise ValueError(f"scenes must be one of {SCENES}, got {scenes!r}")
    seed, (H, W) = _check_seed(seed), checks.size_pair(size, "size", square_ok=True)
    draw = np.random.default_rng([seed, 2]).uniform()
    if scenes == "mixed" and draw < CLOSEUP_FRACTION:
        return sample_closeup(seed, (H, W))
    rng = np.random.default_rng(seed)
    u = lambda a, b: float(rng.uniform(a, b))                  # noqa: E731
    # the room: x in [-w/2, w/2], floor y = 0, camera near the front wall z0 looking towards z1
    width, height, depth = u(3.5, 8.0), u(2.4, 3.4), u(4.5, 12.0)
    bounds = (-width / 2, width / 2, 0.0, height, -1.0, depth)
    wall = _material(rng, WALL_TEXTURES, (1.0, 4.0), 0.4, (0.55, 1.0))
    walls = [wall] * 4 if rng.uniform() < 0.6 else [_material(rng, WALL_TEXTURES, (1.0, 4.0), 0.4, (0.55, 1.0))
                                                     for _ in range(4)]
    floor = _material(rng, FLOOR_TEXTURES, (0.8, 3.0), 0.5, (0.45, 1.0))
    ceiling = _material(rng, CEILING_TEXTURES, (1.0, 3.0), 0.15, (0.8, 1.0))
    room = Room(bounds, (walls[0], walls[1], floor, ceiling, walls[2], walls[3]))
    # the camera
    hfov = math.radians(u(45.0, 80.0))
    f = (W / 2) / math.tan(hfov / 2)
    cam_x, cam_z = u(-0.25, 0.25) * width, u(-0.6, 0.4)
    yaw = u(-0.35, 0.35)
    camera = Camera(position=(cam_x, u(0.6, 1.9), cam_z), fx=f, fy=f,
                    cx=(W - 1) / 2 + float(rng.normal(0, 0.01 * W)), cy=(H - 1) / 2 + float(rng.normal(0, 0.01 * H)),
                    size=(H, W), pitch=u(-0.05, 0.45), yaw=yaw, roll=float(rng.normal(0, 0.03)))
    # objects on the floor inside the horizontal field of view, some right behind others
    objects, footprints = [], []
    reach = min(depth - cam_z - 0.6, 9.0)
    for _ in range(int(rng.integers(2, 9))):
        kind = ("sphere", "box", "cylinder", "cone")[int(np.searchsorted((0.3, 0.6, 0.85), rng.uniform()))]
        material = _material(rng, OBJECT_TEXTURES, (0.25, 1.2), 0.9, (0.45, 1.0))
        for _try in range(30):
            if footprints and rng.uniform() < 0.35:              # hide part of it behind another
                bx, bz, _ = footprints[int(rng.integers(len(footprints)))]
                bearing = math.atan2(bx - cam_x, bz - cam_z) + u(-0.08, 0.08)
                dist = math.hypot(bx - cam_x, bz - cam_z) + u(0.6, 2.5)
            else:
                bearing = yaw + u(-0.85, 0.85) * hfov / 2
                dist = 1.0 + (reach - 1.0) * u(0, 1) ** 1.3
            x, z = cam_x + dist * math.sin(bearing), cam_z + dist * math.cos(bearing)
            obj, radius = _object(rng, kind, x, z, material)
            inside = (bounds[0] + radius + 0.05 < x < bounds[1] - radius - 0.05) and z + radius + 0.05 < depth
            apart = all(math.hypot(x - fx_, z - fz_) > radius + r_ + 0.05 for fx_, fz_, r_ in footprints)
            if inside and apart and math.hypot(x - cam_x, z - cam_z) > radius + 0.4:
                objects.append(obj)
                footprints.append((x, z, radius))
                break
    return Scene(camera, room, tuple(objects), _light(rng, bounds))


# ----------------------------------------------------------------------------- rendering
def _dropouts(seed: int, size: tuple[int, int], fraction: float) -> np.ndarray:
    """Bool (H,W), False in a few elliptical holes covering about ``fraction`` of the image
    (what a depth sensor loses on shiny, dark or far surfaces). Its own random stream:
    the image and depth do not depend on it."""
    H, W = size
    valid = np.ones(size, bool)
    if fraction <= 0:
        return valid
    rng = np.random.default_rng([seed, 1])
    k = int(rng.integers(3, 9))
    scale = math.sqrt(fraction * H * W / (k * math.pi))
    v, u = np.mgrid[0:H, 0:W].astype(np.float32)
    for _ in range(k):
        cv, cu, ang = rng.uniform(0, H), rng.uniform(0, W), rng.uniform(0, math.pi)
        a, b = scale * rng.uniform(0.5, 1.5, 2)
        c, s = math.cos(ang), math.sin(ang)
        p, q = (u - cu) * c + (v - cv) * s, -(u - cu) * s + (v - cv) * c
        valid &= (p / a) ** 2 + (q / b) ** 2 > 1
    return valid


def render_arrays(scene: Scene, shadows: bool = False) -> dict[str, np.ndarray]:
    """The pinhole render of a scene as compact NumPy arrays (what the cache stores):
    ``image`` (3,H,W) uint8 sRGB, ``depth`` (H,W) float32 metres, ``mask`` (H,W) int16,
    ``intrinsics`` (3,3) float32."""
    rgb, depth, ids = render_linear(scene, shadows=shadows)
    return {"image": np.ascontiguousarray(linear_to_srgb8(rgb).transpose(2, 0, 1)), "depth": depth,
            "mask": ids, "intrinsics": scene.camera.intrinsics()}


def _item(arrays: dict[str, np.ndarray], valid: np.ndarray, name: str) -> dict:
    depth = np.where(valid, arrays["depth"], np.float32(0))    # a sensor reports 0 in its holes
    return {"image": torch.from_numpy(np.array(arrays["image"])).float().div_(255),
            "depth": torch.from_numpy(depth[None].astype(np.float32)),
            "valid": torch.from_numpy(np.array(valid, bool)[None]),
            "mask": torch.from_numpy(np.array(arrays["mask"], np.int64)[None]),
            "intrinsics": torch.from_numpy(np.array(arrays["intrinsics"], np.float32)),
            "name": name}


def render_scene(scene: Scene, shadows: bool = False, name: str = "synthetic/custom") -> dict:
    """Render a (possibly hand-built) scene as a dataset item (see :func:`synthetic_scene`)."""
    arrays = render_arrays(scene, shadows)
    return _item(arrays, np.ones(arrays["depth"].shape, bool), name)


def synthetic_scene(seed: int, size: tuple[int, int] = (128, 128), shadows: bool = False,
                    dropout: float = 0.0) -> dict:
    """One procedural RGB-D scene, deterministic in ``seed`` (bit-identical output).

    Returns a dict: ``image`` (3,H,W) float32 sRGB in [0,1] (8-bit levels); ``depth`` (1,H,W)
    float32 z-depth in metres; ``valid`` (1,H,W) bool, all True unless ``dropout`` > 0 cuts
    holes covering about that fraction (depth is 0 there, as a sensor reports); ``mask``
    (1,H,W) int64, 0 = room, k = k-th object; ``intrinsics`` (3,3) float32 pixels; ``name``.
    ``shadows=True`` adds cast shadows (slower).
    """
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    arrays = render_arrays(sample_scene(seed, size), shadows)
    return _item(arrays, _dropouts(seed, arrays["depth"].shape, dropout), f"synthetic/{seed}")


def fibonacci_disk(n: int) -> np.ndarray:
    """(n,2) well-spread points in the unit disk: radius sqrt((k+0.5)/n), golden-angle turns.
    The mean squared radius is exactly 1/2, as for the uniform disk."""
    k = np.arange(n) + 0.5
    r, theta = np.sqrt(k / n), np.pi * (3 - math.sqrt(5)) * np.arange(n)
    return np.stack([r * np.cos(theta), r * np.sin(theta)], 1)


def render_thin_lens(seed: int | Scene, size: tuple[int, int] | None = None, focus_distance: float = 2.0,
                     aperture_radius: float = 0.02, samples: int = 64, shadows: bool = False) -> dict:
    """Ground-truth depth of field: the scene of ``synthetic_scene(seed, size)`` (or a hand-built
    :class:`~lib.data.raycast.Scene`) through a thin lens of aperture radius A =
    ``aperture_radius`` metres focused on the plane z = S_f = ``focus_distance`` metres.

    The image is the average, in LINEAR light (gamma 2.2, as ``lib.bokeh``), of ``samples``
    renders from points ``a`` of the aperture disk (:func:`fibonacci_disk`), each pixel's ray
    aimed from ``a`` through the point of the focal plane that the pinhole ray of that pixel
    meets. A point at depth S is then spread over a disc of radius, in pixels,
    ``K * |1/S - 1/S_f|`` with ``K = f_px * A``; points at S_f stay sharp.

    Returns ``image`` (3,H,W) defocused sRGB (8-bit levels), ``linear`` (3,H,W) the defocused
    image in linear light, ``sharp`` (3,H,W) the pinhole image, ``depth``, ``valid``, ``mask``,
    ``intrinsics``, ``K`` (float, f_px * A: blur radius in pixels per 1/m of disparity) and
    ``focus_disparity`` = 1/S_f (1/m).
    """
    if isinstance(seed, Scene):
        scene = seed
        if size is not None and checks.size_pair(size, "size", square_ok=True) != tuple(scene.camera.size):
            raise ValueError(f"size {size} differs from the scene's camera size {scene.camera.size}")
        name = "synthetic/custom"
    else:
        scene, name = sample_scene(seed, size or (128, 128)), f"synthetic/{seed}"
    if not focus_distance > 0:
        raise ValueError(f"focus_distance must be > 0 metres, got {focus_distance!r}")
    if not aperture_radius >= 0:
        raise ValueError(f"aperture_radius must be >= 0 metres, got {aperture_radius!r}")
    if int(samples) != samples or samples < 1:
        raise ValueError(f"samples must be a positive integer, got {samples!r}")
    sharp = render_arrays(scene, shadows)
    total = np.zeros((*scene.camera.size, 3), np.float64)
    for a in fibonacci_disk(int(samples)) * aperture_radius:
        total += render_linear(scene, shadows, lens_point=a, focus_distance=focus_distance)[0]
    linear = (total / samples).astype(np.float32)
    item = _item(sharp, np.ones(sharp["depth"].shape, bool), name)
    item["sharp"] = item["image"]
    item["image"] = torch.from_numpy(linear_to_srgb8(linear).transpose(2, 0, 1).copy()).float().div_(255)
    item["linear"] = torch.from_numpy(linear.transpose(2, 0, 1).copy())
    item["K"] = float(scene.camera.fx * aperture_radius)
    item["focus_disparity"] = 1.0 / float(focus_distance)
    return item


# ----------------------------------------------------------------------------- the dataset
class SyntheticRGBD(Dataset):
    """``n`` procedural scenes of ``size`` = (H, W); item ``i`` is
    ``synthetic_scene(scene_seed(seed, split, i), size, shadows, dropout)`` renamed
    ``"synthetic/<split>/<i:06d>"``, so it is deterministic in (seed, split, i) and the splits
    never share a scene (:func:`scene_seed` is one-to-one).

    ``scenes="mixed"`` makes half of them close-ups (:func:`sample_scene`).

    With ``cache=True`` the scenes are generated once (with a progress bar) and stored under
    ``data/cache`` (see :mod:`lib.data.cache`); later constructions memory-map them.
    """

    def __init__(self, n: int, size: tuple[int, int] = (128, 128), seed: int = 0, split: str = "train",
                 shadows: bool = False, dropout: float = 0.0, cache: bool = True, progress: bool = True,
                 scenes: str = "rooms"):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        scene_seed(seed, split, 0)                              # validates seed and split
        if scenes not in SCENES:
            raise ValueError(f"scenes must be one of {SCENES}, got {scenes!r}")
        if n > 2**32:
            raise ValueError(f"n must be at most 2**32, got {n}")
        self.n, self.size, self.seed, self.split = int(n), checks.size_pair(size, "size", square_ok=True), int(seed), split
        self.shadows, self.dropout = bool(shadows), float(dropout)
        self.params = {"n": self.n, "size": list(self.size), "seed": self.seed, "split": split,
                       "shadows": self.shadows, "dropout": self.dropout, "version": GENERATOR_VERSION}
        self.scenes = scenes
        if scenes != "rooms":                     # (so that the caches of the rooms keep their key)
            self.params["scenes"] = scenes
        self.cached = bool(cache) and self.n > 0
        self._arrays = None
        if self.cached:
            self._path = _cache.cache_path("synthetic", self.params)
            self._arrays = _cache.load_or_build("synthetic", self.params, self.n, self._generate, progress)
        elif self.n:
            texture_library()                 # build it now, so forked DataLoader workers share it

    def _generate(self, i: int) -> dict[str, np.ndarray]:
        s = scene_seed(self.seed, self.split, i)
        arrays = render_arrays(sample_scene(s, self.size, self.scenes), self.shadows)
        arrays["mask"] = arrays["mask"].astype(np.int16)
        arrays["valid"] = _dropouts(s, self.size, self.dropout)
        return arrays

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        i = _index(i, self.n, "SyntheticRGBD")
        if self.cached:
            if self._arrays is None:                            # reopened in a spawned worker
                self._arrays = _cache.load(self._path)
            arrays = {k: v[i] for k, v in self._arrays.items()}
        else:
            arrays = self._generate(i)
        return _item(arrays, arrays["valid"], f"synthetic/{self.split}/{i:06d}")

    def __getstate__(self):                                     # send paths, not memory maps
        state = dict(self.__dict__)
        state["_arrays"] = None
        return state

    def __repr__(self) -> str:
        return (f"SyntheticRGBD(n={self.n}, size={self.size}, seed={self.seed}, split={self.split!r}, "
                f"shadows={self.shadows}, dropout={self.dropout}, scenes={self.scenes!r}, "
                f"cache={self.cached})")
