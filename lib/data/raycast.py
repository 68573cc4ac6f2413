"""A vectorised ray caster for small indoor scenes: a box-shaped room and a few convex objects.

A scene is a DESCRIPTION made of small frozen dataclasses (:class:`Camera`, :class:`Room`,
:class:`Sphere`, :class:`Box`, :class:`Cylinder`, :class:`Cone`, :class:`Light`, each surface
with a :class:`Material`). Rendering is plain ray casting, all rays at once in NumPy float32:

1. every ray ``o + t d`` is intersected analytically with the six planes of the room (it leaves
   the room through exactly one of them) and with every object; the nearest hit wins;
2. at the hit point ``P`` the surface gives a normal ``n`` and texture coordinates in METRES
   along the surface, so a texture keeps its world size and shrinks with distance in the image
   (the perspective texture gradient);
3. the colour is Lambertian: ``albedo * (ambient + I * max(0, n.l) * falloff * lit)``, where ``l``
   points to the light and ``lit`` is 0 when a shadow ray from ``P`` to the light hits an object.

Conventions. World: metres, y up; the floor of a generated room is y = 0. Camera: OpenCV axes
(x right, y down, z forward); pixel (row v, column u) has its centre at integer coordinates, so
its ray in camera coordinates is ``((u - cx)/fx, (v - cy)/fy, 1)``. Ray directions are never
normalised: with camera z-component 1, the ray parameter ``t`` of a hit IS its z-depth.

>>> cam = Camera(position=(0.0, 1.0, 0.0), fx=50.0, fy=50.0, cx=31.5, cy=31.5, size=(64, 64))
>>> room = Room(bounds=(-2.0, 2.0, 0.0, 3.0, -1.0, 5.0), materials=(Material("plain"),) * 6)
>>> scene = Scene(cam, room, objects=(), light=Light())
>>> rgb, depth, ids = render_linear(scene)
>>> float(depth[32, 32])        # the back wall is 5 m in front of the camera
5.0
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np

GAMMA = 2.2          # sRGB <-> linear light, as in lib.bokeh: linear = srgb ** 2.2
EPS = 1e-4           # hits closer than this along a ray (in units of t) are ignored
TILE_LOG2 = 9        # a texture tile is 512 x 512 texels, with mip levels 512, 256, ..., 1
TILE = 1 << TILE_LOG2
STRIPES_PER_TILE = 8  # the "stripes" texture repeats 8 times per tile (period = scale / 8 metres)
PHOTOS = ("brick", "grass", "gravel", "camera", "moon", "coins", "text",
          "coffee", "astronaut", "chelsea", "rocket", "immunohistochemistry")
PATTERNS = ("plain", "checkers", "stripes", "noise", "planks", "tiles")
TEXTURES = PATTERNS + PHOTOS


# ----------------------------------------------------------------------------- description
@dataclass(frozen=True)
class Material:
    """How a surface looks: a texture from :data:`TEXTURES` laid in world units.

    ``scale``: metres covered by one texture tile; ``tint``: linear-light RGB multiplier;
    ``offset``: (u, v) shift of the texture on the surface, metres.
    """
    texture: str = "plain"
    scale: float = 1.0
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)
    offset: tuple[float, float] = (0.0, 0.0)


@dataclass(frozen=True)
class Camera:
    """A pinhole camera. ``pitch`` > 0 looks down, ``yaw`` > 0 turns right (towards +x),
    ``roll`` turns the image clockwise, all in radians; ``fx, fy, cx, cy`` in pixels;
    ``size`` = (H, W)."""
    position: tuple[float, float, float]
    fx: float
    fy: float
    cx: float
    cy: float
    size: tuple[int, int]
    pitch: float = 0.0
    yaw: float = 0.0
    roll: float = 0.0

    def rotation(self) -> np.ndarray:
        """(3,3) float64 camera-to-world rotation: its columns are the camera axes in the world."""
        cp, sp = math.cos(self.pitch), math.sin(self.pitch)
        cy, sy = math.cos(self.yaw), math.sin(self.yaw)
        cr, sr = math.cos(self.roll), math.sin(self.roll)
        yaw = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
        pitch = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
        flip = np.diag([1.0, -1.0, 1.0])                  # camera y down -> world y up
        roll = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
        return yaw @ pitch @ flip @ roll

    def intrinsics(self) -> np.ndarray:
        """(3,3) float32 pinhole matrix K, pixels."""
        return np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1]], np.float32)


@dataclass(frozen=True)
class Room:
    """An axis-aligned box seen from inside. ``bounds`` = (x0, x1, y0, y1, z0, z1), metres;
    ``materials`` for the faces in the order x0, x1, y0 (floor), y1 (ceiling), z0 (front), z1 (back)."""
    bounds: tuple[float, float, float, float, float, float]
    materials: tuple[Material, ...]


@dataclass(frozen=True)
class Light:
    """A point light at ``position`` (kind "point") or a distant one shining along ``direction``
    (kind "directional"); ``falloff`` (metres) dims a point light as 1 / (1 + (dist/falloff)^2);
    ``exposure`` scales the final linear image. Shadows are cast by objects only."""
    kind: str = "point"
    position: tuple[float, float, float] = (0.0, 2.5, 2.0)
    direction: tuple[float, float, float] = (0.0, -1.0, 0.0)
    intensity: float = 1.0
    ambient: float = 0.2
    falloff: float = math.inf
    exposure: float = 1.0


# Shapes. Each knows its bounding sphere, how far along rays it is hit (inf where missed) and,
# at hit points, its outward normal and texture coordinates (u, v) in metres.
# Rays come as components: o = (ox, oy, oz) scalars or arrays, d = (dx, dy, dz) arrays.

@dataclass(frozen=True)
class Sphere:
    center: tuple[float, float, float]
    radius: float
    material: Material = field(default_factory=Material)

    def bounding_sphere(self):
        return self.center, self.radius

    def intersect(self, ox, oy, oz, dx, dy, dz):
        cx, cy, cz = self.center
        ex, ey, ez = ox - cx, oy - cy, oz - cz
        a = dx * dx + dy * dy + dz * dz
        b = ex * dx + ey * dy + ez * dz                      # half of the usual b
        c = ex * ex + ey * ey + ez * ez - self.radius ** 2
        disc = b * b - a * c
        t = (-b - np.sqrt(np.maximum(disc, 0.0))) / a       # the near root: rays start outside
        return np.where((disc >= 0) & (t > EPS), t, np.inf)

    def surface(self, px, py, pz):
        r = self.radius
        nx, ny, nz = (px - self.center[0]) / r, (py - self.center[1]) / r, (pz - self.center[2]) / r
        u = r * np.arctan2(nx, nz)                           # arc lengths: longitude, latitude
        v = r * np.arcsin(np.clip(ny, -1.0, 1.0))
        return nx, ny, nz, u, v


@dataclass(frozen=True)
class Box:
    """A box standing on y = ``y0``, footprint centred at ``center`` = (x, z), ``size`` =
    (width x, height y, depth z) metres, turned by ``yaw`` radians about the vertical."""
    center: tuple[float, float]
    size: tuple[float, float, float]
    yaw: float = 0.0
    y0: float = 0.0
    material: Material = field(default_factory=Material)

    def bounding_sphere(self):
        hx, hy, hz = (s / 2 for s in self.size)
        return (self.center[0], self.y0 + hy, self.center[1]), math.sqrt(hx * hx + hy * hy + hz * hz)

    def _local(self, x, z):                                  # world -> box frame (about the centre)
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        return c * x - s * z, s * x + c * z

    def intersect(self, ox, oy, oz, dx, dy, dz):
        hx, hy, hz = (s / 2 for s in self.size)
        ex, ez = self._local(ox - self.center[0], oz - self.center[1])
        ey = oy - (self.y0 + hy)
        lx, lz = self._local(dx, dz)
        with np.errstate(divide="ignore", invalid="ignore"):
            near, far = None, None
            for e, d, h in ((ex, lx, hx), (ey, dy, hy), (ez, lz, hz)):    # slab test
                t1, t2 = (-h - e) / d, (h - e) / d
                lo, hi = np.minimum(t1, t2), np.maximum(t1, t2)
                near = lo if near is None else np.maximum(near, lo)
                far = hi if far is None else np.minimum(far, hi)
        return np.where((far >= near) & (near > EPS), near, np.inf)

    def surface(self, px, py, pz):
        hx, hy, hz = (s / 2 for s in self.size)
        x, z = self._local(px - self.center[0], pz - self.center[1])
        y = py - (self.y0 + hy)
        fx, fy, fz = np.abs(x) / hx, np.abs(y) / hy, np.abs(z) / hz
        on_x, on_y = (fx >= fy) & (fx >= fz), (fy > fx) & (fy >= fz)
        on_z = ~(on_x | on_y)
        lnx, ny, lnz = on_x * np.sign(x), on_y * np.sign(y), on_z * np.sign(z)
        c, s = math.cos(self.yaw), math.sin(self.yaw)          # box frame -> world: transpose
        nx, nz = c * lnx + s * lnz, -s * lnx + c * lnz
        u = np.where(on_x, z, x)
        v = np.where(on_y, z, y)
        return nx.astype(np.float32), ny.astype(np.float32), nz.astype(np.float32), u, v


@dataclass(frozen=True)
class _Upright:
    """A solid of revolution standing on y = ``y0``, axis vertical through ``center`` = (x, z)."""
    center: tuple[float, float]
    radius: float
    height: float
    y0: float = 0.0
    material: Material = field(default_factory=Material)

    def bounding_sphere(self):
        h = self.height / 2
        return (self.center[0], self.y0 + h, self.center[1]), math.hypot(self.radius, h)


@dataclass(frozen=True)
class Cylinder(_Upright):
    """A vertical cylinder standing on y = ``y0`` with axis through ``center`` = (x, z)."""

    def intersect(self, ox, oy, oz, dx, dy, dz):
        ex, ez, top = ox - self.center[0], oz - self.center[1], self.y0 + self.height
        a = dx * dx + dz * dz
        b = ex * dx + ez * dz
        c = ex * ex + ez * ez - self.radius ** 2
        disc = b * b - a * c
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (-b - np.sqrt(np.maximum(disc, 0.0))) / a
            y = oy + t * dy
            side = np.where((disc >= 0) & (t > EPS) & (y >= self.y0) & (y <= top), t, np.inf)
            tc = (top - oy) / dy                               # the top cap
            qx, qz = ex + tc * dx, ez + tc * dz
            cap = np.where((tc > EPS) & (qx * qx + qz * qz <= self.radius ** 2), tc, np.inf)
        return np.minimum(side, cap)

    def surface(self, px, py, pz):
        ex, ez = px - self.center[0], pz - self.center[1]
        cap = py >= self.y0 + self.height - 1e-4
        inv = 1.0 / self.radius
        nx, nz = np.where(cap, 0.0, ex * inv), np.where(cap, 0.0, ez * inv)
        ny = cap.astype(np.float32)
        u = np.where(cap, ex, self.radius * np.arctan2(ex, ez))
        v = np.where(cap, ez, py)
        return nx.astype(np.float32), ny, nz.astype(np.float32), u, v


@dataclass(frozen=True)
class Cone(_Upright):
    """A vertical cone standing on y = ``y0``: base ``radius`` there, apex ``height`` above."""

    def intersect(self, ox, oy, oz, dx, dy, dz):
        # (x-cx)^2 + (z-cz)^2 = k^2 (apex_y - y)^2 with k = radius / height, for y0 <= y <= apex_y
        k2 = (self.radius / self.height) ** 2
        ex, ez, ey = ox - self.center[0], oz - self.center[1], (self.y0 + self.height) - oy
        a = dx * dx + dz * dz - k2 * dy * dy
        b = ex * dx + ez * dz + k2 * ey * dy
        c = ex * ex + ez * ez - k2 * ey * ey
        disc = b * b - a * c
        best = np.inf
        with np.errstate(divide="ignore", invalid="ignore"):
            sq = np.sqrt(np.maximum(disc, 0.0))
            for t in ((-b - sq) / a, (-b + sq) / a):       # a may be < 0: try both roots
                h = ey - t * dy                               # distance below the apex
                ok = (disc >= 0) & (t > EPS) & (h >= 0) & (h <= self.height)
                best = np.minimum(best, np.where(ok, t, np.inf))
        return best

    def surface(self, px, py, pz):
        k = self.radius / self.height
        ex, ez, h = px - self.center[0], pz - self.center[1], (self.y0 + self.height) - py
        ny = k * k * h
        norm = np.sqrt(ex * ex + ez * ez + ny * ny) + 1e-12
        return ex / norm, ny / norm, ez / norm, self.radius * np.arctan2(ex, ez), py


@dataclass(frozen=True)
class Scene:
    camera: Camera
    room: Room
    objects: tuple = ()
    light: Light = field(default_factory=Light)


# ----------------------------------------------------------------------------- textures
@dataclass(frozen=True)
class TextureLibrary:
    """Every texture as a mip pyramid of sRGB texels packed as uint32 (R | G<<8 | B<<16), all
    in one flat array: texel (i, j) of texture ``k`` at level ``L`` (side TILE >> L) is
    ``texels[offsets[k, L] + i * (TILE >> L) + j]``."""
    names: tuple[str, ...]
    texels: np.ndarray
    offsets: np.ndarray


_U8_TO_LINEAR = (np.arange(256, dtype=np.float32) / 255) ** GAMMA


def _srgb_to_linear(x):
    return np.power(np.clip(x, 0.0, 1.0), GAMMA)


def _pattern(name: str) -> np.ndarray:
    """A procedural (TILE, TILE) grey pattern in [0,1], seamless under wrapping."""
    i = np.arange(TILE, dtype=np.float32)
    rng = np.random.default_rng(TEXTURES.index(name))
    if name == "plain":
        return np.ones((TILE, TILE), np.float32)
    if name == "checkers":
        return np.where(((i[:, None] // 64) + (i[None, :] // 64)) % 2 == 0, 0.9, 0.25) * np.ones((TILE, 1))
    if name == "stripes":                                     # soft square wave along u (columns)
        wave = np.tanh(4 * np.sin(2 * np.pi * STRIPES_PER_TILE * i / TILE)) * 0.5 + 0.5
        return np.broadcast_to(0.2 + 0.7 * wave[None, :], (TILE, TILE))
    if name == "noise":                                       # 1/f^1.6 noise: periodic by construction
        fy, fx = np.fft.fftfreq(TILE)[:, None], np.fft.fftfreq(TILE)[None, :]
        spectrum = np.fft.fft2(rng.standard_normal((TILE, TILE))) / np.maximum(np.hypot(fx, fy), 1 / TILE) ** 1.6
        x = np.fft.ifft2(spectrum).real
        return 0.2 + 0.7 * (x - x.min()) / (x.max() - x.min())
    if name == "planks":                                      # boards along v, grain, dark seams
        board = (i[None, :] // 64).astype(int) * np.ones((TILE, 1), int)
        shift = rng.integers(0, TILE, 8)[board]               # boards of staggered length
        level = rng.uniform(0.45, 0.85, 8)[board]
        grain = np.sin(2 * np.pi * (i[None, :] / 9 + 0.3 * np.sin(2 * np.pi * i[:, None] / 256)))
        seam = ((i[None, :] % 64) < 3) | (((i[:, None] + shift) % 256) < 3)
        return np.where(seam, 0.15, level * (0.9 + 0.1 * grain))
    if name == "tiles":
        grout = ((i[:, None] % 128) < 6) | ((i[None, :] % 128) < 6)
        return np.where(grout, 0.3, 0.85) + 0.05 * rng.standard_normal((TILE, TILE))
    raise ValueError(f"unknown pattern {name!r}")


def _photo(name: str) -> np.ndarray:
    """A scikit-image photograph in LINEAR light, centre-cropped, resized to half a tile and
    mirrored into a seamless (TILE, TILE, 3) tile."""
    import skimage.data
    import torch
    import torch.nn.functional as F

    img = np.asarray(getattr(skimage.data, name)())
    img = _U8_TO_LINEAR[img.astype(np.uint8) * 255 if img.dtype == bool else img]
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    img = img[..., :3]
    h, w = img.shape[:2]
    s = min(h, w)
    img = img[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
    x = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None]
    half = F.interpolate(x, size=(TILE // 2, TILE // 2), mode="bilinear", antialias=True, align_corners=False)
    half = half[0].permute(1, 2, 0).clamp(0, 1).numpy()
    top = np.concatenate([half, half[:, ::-1]], axis=1)
    return np.concatenate([top, top[::-1]], axis=0)


@functools.lru_cache(maxsize=1)
def texture_library() -> TextureLibrary:
    """Build (once per process, about a second) the mip pyramids of all :data:`TEXTURES`."""
    chunks, offsets, start = [], np.zeros((len(TEXTURES), TILE_LOG2 + 1), np.int32), 0
    for k, name in enumerate(TEXTURES):
        if name in PHOTOS:
            lin = _photo(name)
        else:
            lin = np.repeat(_srgb_to_linear(np.asarray(_pattern(name), np.float32))[..., None], 3, 2)
        for level in range(TILE_LOG2 + 1):                   # 2x2 box filter in linear light
            if level:
                lin = 0.25 * (lin[0::2, 0::2] + lin[1::2, 0::2] + lin[0::2, 1::2] + lin[1::2, 1::2])
            offsets[k, level] = start
            rgb = linear_to_srgb8(lin.reshape(-1, 3).astype(np.float32)).astype(np.uint32)
            chunks.append(rgb[:, 0] | (rgb[:, 1] << 8) | (rgb[:, 2] << 16))
            start += lin.shape[0] * lin.shape[1]
    return TextureLibrary(TEXTURES, np.concatenate(chunks).astype("<u4"), offsets)


def sample_texture(tex: np.ndarray, u: np.ndarray, v: np.ndarray, level: np.ndarray) -> np.ndarray:
    """Nearest-texel lookup. ``tex``: texture indices (M,) int; ``u, v``: texel coordinates at
    level 0 (any real value: the texture wraps); ``level``: mip level (M,) int32.
    Returns (M,3) float32 linear RGB (texels are stored sRGB, decoded through a table)."""
    lib = texture_library()
    iu, iv = np.floor(u).astype(np.int32) >> level, np.floor(v).astype(np.int32) >> level
    side_log2 = TILE_LOG2 - level
    mask = (1 << side_log2) - 1
    first = np.take(lib.offsets.reshape(-1), tex * (TILE_LOG2 + 1) + level)
    rgbx = np.take(lib.texels, first + (((iv & mask) << side_log2) | (iu & mask)))
    return np.take(_U8_TO_LINEAR, rgbx.view(np.uint8).reshape(-1, 4)[:, :3])  # bytes R, G, B, 0


# ----------------------------------------------------------------------------- casting
def _room_hit(room: Room, ox, oy, oz, dx, dy, dz):
    """Exit of rays starting inside the room: (t, face) with face 0..5 as in :class:`Room`."""
    x0, x1, y0, y1, z0, z1 = room.bounds
    # the wall a ray can reach on each axis is the one it moves towards; signbit sends d = -0.0
    # to the lower wall, so (wall - o) / d is never negative (d = 0 gives +inf)
    up_x, up_y, up_z = (np.signbit(d) ^ True for d in (dx, dy, dz))
    with np.errstate(divide="ignore", invalid="ignore"):
        tx = (up_x * np.float32(x1 - x0) + (x0 - ox)) / dx
        ty = (up_y * np.float32(y1 - y0) + (y0 - oy)) / dy
        tz = (up_z * np.float32(z1 - z0) + (z0 - oz)) / dz
    face = up_x.astype(np.int16)                                # 0 or 1
    closer = ty < tx
    face += closer * (2 + up_y - face)                           # 2 or 3
    t = np.minimum(tx, ty)
    closer = tz < t
    face += closer * (4 + up_z - face)                           # 4 or 5
    np.minimum(t, tz, out=t)
    return t, face


def _window(obj, origin, rot, fx, fy, cx, cy, size):
    """Rows and columns of a pinhole ray grid that can hit ``obj`` (its bounding sphere
    projected conservatively), or None when it is entirely outside the image."""
    (c, radius), (H, W) = obj.bounding_sphere(), size
    px, py, pz = rot.T @ (np.asarray(c, np.float64) - origin)
    if pz - radius <= 1e-3:                                   # reaches the camera plane
        return slice(0, H), slice(0, W)
    near, far = pz - radius, pz + radius
    bounds = []
    for p, f, cc, n in ((px, fx, cx, W), (py, fy, cy, H)):
        lo = min((p - radius) / near, (p - radius) / far)
        hi = max((p + radius) / near, (p + radius) / far)
        a, b = max(int(math.floor(cc + f * lo)), 0), min(int(math.ceil(cc + f * hi)) + 1, n)
        if a >= b:
            return None
        bounds.append(slice(a, b))
    return bounds[1], bounds[0]


def _shadowed(scene: Scene, px, py, pz, nx, ny, nz):
    """Bool (M,): a ray from each point towards the light hits an object."""
    light = scene.light
    ox, oy, oz = px + 1e-3 * nx, py + 1e-3 * ny, pz + 1e-3 * nz   # leave the surface
    out = np.zeros(ox.shape, bool)
    if light.kind == "point":
        lx, ly, lz = light.position
        qx, qy, qz = ox - lx, oy - ly, oz - lz                  # light -> point, unit length
        dist = np.sqrt(qx * qx + qy * qy + qz * qz)
        qx, qy, qz = qx / dist, qy / dist, qz / dist
    else:
        norm = math.sqrt(sum(c * c for c in light.direction))
        lx, ly, lz = (-c / norm for c in light.direction)        # point -> light
    for obj in scene.objects:
        (cx, cy, cz), r = obj.bounding_sphere()
        if light.kind == "point":     # cull: the point must lie in the cone that the bounding
            wx, wy, wz = cx - lx, cy - ly, cz - lz               # sphere casts from the light
            w = math.sqrt(wx * wx + wy * wy + wz * wz)
            if w <= r:                                            # light inside: test all
                cand = np.flatnonzero(~out)
            else:
                cos_half = math.sqrt(w * w - r * r) / w
                cone = (qx * (wx / w) + qy * (wy / w) + qz * (wz / w) >= cos_half) & (dist >= w - r)
                cand = np.flatnonzero(cone)
        else:                         # cull: the line from the point towards the light must
            wx, wy, wz = cx - ox, cy - oy, cz - oz               # pass the bounding sphere
            s = wx * lx + wy * ly + wz * lz
            cand = np.flatnonzero((s > -r) & (wx * wx + wy * wy + wz * wz - s * s <= r * r))
        if cand.size:
            sx, sy, sz = ox[cand], oy[cand], oz[cand]
            if light.kind == "point":                            # segment: t in (0, 1)
                t = obj.intersect(sx, sy, sz, light.position[0] - sx, light.position[1] - sy,
                                  light.position[2] - sz)
                out[cand[t < 1.0]] = True
            else:
                t = obj.intersect(sx, sy, sz, np.full_like(sx, lx), np.full_like(sx, ly), np.full_like(sx, lz))
                out[cand[t < np.inf]] = True
    return out


def _materials(scene: Scene):
    mats = list(scene.room.materials) + [o.material for o in scene.objects]
    tex = np.array([TEXTURES.index(m.texture) for m in mats], np.int32)
    texels_per_m = np.array([TILE / m.scale for m in mats], np.float32)
    offset = np.array([m.offset for m in mats], np.float32) * texels_per_m[:, None]
    tint = np.array([m.tint for m in mats], np.float32)
    return tex, texels_per_m, offset, tint


def shade(scene: Scene, ox, oy, oz, dx, dy, dz, t, ids, face, footprint=None, shadows=False):
    """Linear RGB (M,3) float32 of flat rays (M,) that hit ``ids`` (0 = room, k = object k)
    at ``t``; ``face`` is the room face; ``footprint`` (scalar or (M,)) the width of the ray's
    pixel per unit t on a surface facing it (1/f for a camera), for mip-mapping (None: finest)."""
    px, py, pz = ox + t * dx, oy + t * dy, oz + t * dz
    # room faces: normals point into the room, (u, v) are the two world coordinates along the face
    axis = face >> 1
    on_x, on_y = axis == 0, axis == 1
    sign = (1 - 2 * (face & 1)).astype(np.float32)
    nx, ny, nz = on_x * sign, on_y * sign, (axis == 2) * sign
    u = px + on_x * (pz - px)                                     # x walls: (z, y)
    v = py + on_y * (pz - py)                                     # floor, ceiling: (x, z)
    mat = face.astype(np.intp)
    for k, obj in enumerate(scene.objects, start=1):
        sel = np.flatnonzero(ids == k)
        if sel.size:
            snx, sny, snz, su, sv = obj.surface(px[sel], py[sel], pz[sel])
            nx[sel], ny[sel], nz[sel], u[sel], v[sel], mat[sel] = snx, sny, snz, su, sv, 5 + k
    tex, texels_per_m, offset, tint = _materials(scene)
    tpm = np.take(texels_per_m, mat)
    if footprint is None:
        level = np.zeros(mat.shape, np.int32)
    else:                                    # texels under the pixel -> mip level ~ log2(texels)
        cos = np.abs(nx * dx + ny * dy + nz * dz) / np.sqrt(dx * dx + dy * dy + dz * dz)
        texels = t * footprint * tpm / np.sqrt(np.maximum(cos, 0.05))
        texels *= 1.4142135                                      # round log2 to the nearest level:
        level = (texels.view(np.int32) >> 23) - 127               # floor(log2 x), read from the
        np.clip(level, 0, TILE_LOG2, out=level)                   # float32 exponent bits
    albedo = sample_texture(np.take(tex, mat), u * tpm + np.take(offset[:, 0], mat),
                            v * tpm + np.take(offset[:, 1], mat), level)
    albedo *= np.take(tint, mat, axis=0)
    light = scene.light
    if light.kind == "point":
        lx, ly, lz = light.position[0] - px, light.position[1] - py, light.position[2] - pz
        dist2 = lx * lx + ly * ly + lz * lz
        cos = (nx * lx + ny * ly + nz * lz) / np.sqrt(dist2)
        gain = light.intensity / (1.0 + dist2 * (1.0 / light.falloff ** 2))
    elif light.kind == "directional":
        lx, ly, lz = (-c / math.sqrt(sum(c * c for c in light.direction)) for c in light.direction)
        cos = nx * lx + ny * ly + nz * lz
        gain = light.intensity
    else:
        raise ValueError(f"unknown light kind {light.kind!r} (use 'point' or 'directional')")
    diffuse = np.maximum(cos, 0.0)
    diffuse *= gain
    if shadows and scene.objects:
        lit = np.flatnonzero(diffuse)
        hidden = _shadowed(scene, px[lit], py[lit], pz[lit], nx[lit], ny[lit], nz[lit])
        diffuse[lit[hidden]] = 0.0
    diffuse += light.ambient
    diffuse *= light.exposure
    albedo *= diffuse[:, None]
    return albedo


def cast_rays(scene: Scene, origins, directions, footprint=None, shadows=False):
    """Cast arbitrary rays. ``origins``: (3,) or (M,3); ``directions``: (M,3), not necessarily
    unit. Returns (rgb (M,3) linear float32, t (M,) float32 distance in units of |d|,
    ids (M,) int16: 0 = room, k = object k). Rays must start inside the room."""
    d = np.asarray(directions, np.float32).reshape(-1, 3)
    o = np.asarray(origins, np.float32)
    o = np.broadcast_to(o, d.shape) if o.ndim == 1 else o.reshape(-1, 3)
    ox, oy, oz = (np.ascontiguousarray(o[:, i]) for i in range(3))
    dx, dy, dz = (np.ascontiguousarray(d[:, i]) for i in range(3))
    t, face = _room_hit(scene.room, ox, oy, oz, dx, dy, dz)
    ids = np.zeros(t.shape, np.int16)
    for k, obj in enumerate(scene.objects, start=1):
        tk = obj.intersect(ox, oy, oz, dx, dy, dz)
        closer = tk < t
        t[closer], ids[closer] = tk[closer], k
    fp = None if footprint is None else np.broadcast_to(np.asarray(footprint, np.float32), t.shape)
    return shade(scene, ox, oy, oz, dx, dy, dz, t, ids, face, fp, shadows), t, ids


def render_linear(scene: Scene, shadows: bool = False, lens_point=(0.0, 0.0), focus_distance=None):
    """Render the camera's image in linear light.

    With ``lens_point`` = (a_x, a_y) metres (camera coordinates) and ``focus_distance`` S_f, the
    rays start at that point of the lens plane and every pixel's ray passes through the same
    point of the plane z = S_f as the pinhole ray: one sample of a thin lens. Each ray is again
    a pinhole grid, ``d = ((u - cx')/fx, (v - cy')/fy, 1)`` with cx' = cx + fx a_x / S_f.

    Returns (rgb (H,W,3) float32 linear, t (H,W) float32 z-depth from the lens plane,
    ids (H,W) int16).
    """
    cam = scene.camera
    H, W = cam.size
    rot = cam.rotation()
    ax, ay = float(lens_point[0]), float(lens_point[1])
    origin = np.asarray(cam.position, np.float64) + rot @ np.array([ax, ay, 0.0])
    cx, cy = cam.cx, cam.cy
    if ax or ay:
        if not focus_distance or focus_distance <= 0:
            raise ValueError("a lens point off the axis needs focus_distance > 0")
        cx, cy = cx + cam.fx * ax / focus_distance, cy + cam.fy * ay / focus_distance
    xn = (np.arange(W, dtype=np.float32) - np.float32(cx)) / np.float32(cam.fx)
    yn = (np.arange(H, dtype=np.float32) - np.float32(cy)) / np.float32(cam.fy)
    r = rot.astype(np.float32)
    dx, dy, dz = (r[i, 0] * xn[None, :] + (r[i, 1] * yn + r[i, 2])[:, None] for i in range(3))
    ox, oy, oz = (float(c) for c in origin)
    t, face = _room_hit(scene.room, ox, oy, oz, dx, dy, dz)
    ids = np.zeros((H, W), np.int16)
    for k, obj in enumerate(scene.objects, start=1):
        win = _window(obj, origin, rot, cam.fx, cam.fy, cx, cy, (H, W))
        if win is None:
            continue
        tk = obj.intersect(ox, oy, oz, dx[win], dy[win], dz[win])
        closer = tk < t[win]
        t[win][closer], ids[win][closer] = tk[closer], k
    flat = [a.reshape(-1) for a in (dx, dy, dz, t, ids, face)]
    rgb = shade(scene, ox, oy, oz, *flat, footprint=1.0 / math.sqrt(cam.fx * cam.fy), shadows=shadows)
    return rgb.reshape(H, W, 3), t, ids


_ENCODE = np.round(255 * (np.arange(65536, dtype=np.float64) / 65535) ** (1 / GAMMA)).astype(np.uint8)


def linear_to_srgb8(rgb: np.ndarray) -> np.ndarray:
    """Linear light in [0, inf) -> uint8 sRGB (gamma 2.2), clipping at 1, through a 16-bit table."""
    x = np.minimum(rgb, 1.0)
    x *= 65535
    x += 0.5
    return np.take(_ENCODE, x.astype(np.uint16))
