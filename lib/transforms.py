"""Transforms of one RGB-D sample: resize, crop, and joint augmentation that keeps everything aligned.

A sample is the dict of the contract, for ONE scene (no batch dimension)::

    image       float (3, H, W)  sRGB in [0, 1]
    depth       float (1, H, W)  metres, > 0 where valid
    valid       bool  (1, H, W)
    mask        int64 (1, H, W)  instance labels, 0 = background        (optional)
    intrinsics  float (3, 3)     pinhole K, pixels                       (optional)
    anything else                                                         (optional)

Every transform returns a new dict with the same keys and dtypes. Keys that are not per-pixel maps
(``name``, a scene id, ...) pass through untouched. A tensor key we do not know whose last two
dimensions equal the image's (H, W) is treated as a per-pixel map (a disparity, a confidence, a
second label map) and resampled like ``depth``: nearest neighbour, which never invents a value.

Why nearest for depth, valid and mask
-------------------------------------
Bilinear interpolation averages neighbours. Across an occlusion edge (a chair 1 m away in front of
a wall 4 m away) the average is 2.5 m: a "flying pixel" floating in empty air, on no surface at
all. Averaging a valid depth with the 0 of an invalid pixel is just as wrong, and an average of the
labels 2 and 4 is the label 3 of some other object. Nearest neighbour copies one input pixel, so
every output depth is a depth that was measured, and every label is a label that exists. The image,
in contrast, is resampled bilinearly (with anti-aliasing when shrinking): colours do blend at an
edge, exactly as a real lens blends them.

Pixel-centre convention (used for every intrinsics update here)
----------------------------------------------------------------
OpenCV's: the centre of pixel (row i, column j) has coordinates (u, v) = (j, i); the image spans
[-0.5, W-0.5] x [-0.5, H-0.5]. A point X = (x, y, z) in the camera frame projects to
(u, v, 1) ~ K X, and back: X = z * inv(K) (u, v, 1). With this convention

* resize by s_x = W'/W, s_y = H'/H:  fx' = s_x fx,  cx' = s_x (cx + 1/2) - 1/2  (same for y);
  an image-centred principal point, cx = (W-1)/2, stays centred: cx' = (W'-1)/2.
* crop at (top, left):               cx' = cx - left,  cy' = cy - top.
* horizontal flip:                   cx' = W - 1 - cx (the scene is read as mirrored, fx kept).
* any affine warp p' = A p (rotation, zoom about the image centre, all of the above):  K' = A K.

The last line is the general rule the others are special cases of: a 2-D warp of the image does
not move the camera, so depth (the z of the camera frame) is unchanged and the new pixel of a
point is A times its old pixel, i.e. A K X / z. See :class:`JointAugment` for what this means
after a rotation.

>>> import torch
>>> s = {"image": torch.rand(3, 48, 64), "depth": torch.rand(1, 48, 64) + 1,
...      "valid": torch.ones(1, 48, 64, dtype=torch.bool), "name": "demo"}
>>> out = RandomCrop(32, generator=torch.Generator().manual_seed(0))(Rescale(40)(s))
>>> tuple(out["image"].shape), tuple(out["depth"].shape), out["name"]
((3, 32, 32), (1, 32, 32), 'demo')
"""
from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import albumentations as A
import cv2
import numpy as np
import torch
import torch.nn.functional as F

from lib import checks

__all__ = ["Rescale", "RandomCrop", "JointAugment"]

_REQUIRED = ("image", "depth", "valid")
_KNOWN = ("image", "depth", "valid", "mask", "intrinsics")


# ----------------------------------------------------------------------------- checks
def _shape(x: torch.Tensor) -> tuple[int, ...]:
    return tuple(x.shape)


def _check_sample(sample: Any, who: str) -> tuple[int, int]:
    """Validate a one-sample dict and return its (H, W); raise a message naming the culprit."""
    if not isinstance(sample, Mapping):
        raise TypeError(f"{who}: expected a sample dict, got {type(sample).__name__}")
    missing = [k for k in _REQUIRED if k not in sample]
    if missing:
        raise KeyError(f"{who}: sample is missing required key(s) {missing}; it has {sorted(sample)}")
    for k in _KNOWN:
        if k in sample and not isinstance(sample[k], torch.Tensor):
            raise TypeError(f"{who}: sample[{k!r}] must be a torch.Tensor, got {type(sample[k]).__name__}")

    image = sample["image"]
    if image.ndim == 4:
        raise ValueError(
            f"{who}: acts on ONE sample, image (3,H,W); got a batch of shape {_shape(image)}. "
            "Apply it per item in the Dataset, before collation."
        )
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"{who}: image must have shape (3,H,W), got {_shape(image)}")
    if not image.is_floating_point():
        raise TypeError(f"{who}: image must be a float tensor in [0,1], got dtype {image.dtype}")
    H, W = int(image.shape[1]), int(image.shape[2])

    def check_map(key: str, kind: str) -> None:
        x = sample[key]
        if _shape(x) != (1, H, W):
            raise ValueError(f"{who}: {key} must have shape (1,H,W) = (1,{H},{W}) like the image, got {_shape(x)}")
        if kind == "float" and not x.is_floating_point():
            raise TypeError(f"{who}: {key} must be a float tensor (metres), got dtype {x.dtype}")
        if kind == "bool" and x.dtype != torch.bool:
            raise TypeError(f"{who}: {key} must be a bool tensor, got dtype {x.dtype}")
        if kind == "int" and (x.is_floating_point() or x.is_complex() or x.dtype == torch.bool):
            raise TypeError(f"{who}: {key} must be an integer label tensor (int64), got dtype {x.dtype}")

    check_map("depth", "float")
    check_map("valid", "bool")
    if "mask" in sample:
        check_map("mask", "int")
    if "intrinsics" in sample:
        K = sample["intrinsics"]
        if _shape(K) != (3, 3) or not K.is_floating_point():
            raise ValueError(f"{who}: intrinsics must be a float (3,3) matrix, got {_shape(K)} {K.dtype}")
    return H, W


def _is_pixel_map(key: str, value: Any, H: int, W: int) -> bool:
    """Per-pixel maps are resampled: the known ones, and any other tensor ending in (H, W)."""
    if key in ("depth", "valid", "mask"):
        return True
    if key in _KNOWN:
        return False
    return isinstance(value, torch.Tensor) and value.ndim >= 2 and tuple(value.shape[-2:]) == (H, W)


def _check_crop_fits(crop: tuple[int, int], H: int, W: int, who: str) -> None:
    if crop[0] > H or crop[1] > W:
        raise ValueError(
            f"{who}: crop size (H, W) = {crop} is larger than the image (H, W) = ({H}, {W}); "
            "rescale first or ask for a smaller crop"
        )


def _apply_pixel_map(K: torch.Tensor, A3: np.ndarray, right: np.ndarray | None = None) -> torch.Tensor:
    """K' = A K (or A K R), computed in float64 and returned in K's dtype and device."""
    K2 = torch.as_tensor(A3, dtype=torch.float64, device=K.device) @ K.to(torch.float64)
    if right is not None:
        K2 = K2 @ torch.as_tensor(right, dtype=torch.float64, device=K.device)
    return K2.to(K.dtype)


# ----------------------------------------------------------------------------- Rescale
def _nearest_index(n_in: int, n_out: int, device: torch.device) -> torch.Tensor:
    """Input index nearest to each output pixel centre, for a resize n_in -> n_out.

    Output centre i sits at (i + 1/2) n_in / n_out - 1/2 in input pixels, so the nearest input
    pixel is floor((i + 1/2) n_in / n_out) = ((2i + 1) n_in) // (2 n_out). Integer arithmetic: no
    rounding surprises. (This is torch's ``mode="nearest-exact"``, not the legacy ``"nearest"``,
    which uses floor(i n_in / n_out) and shifts the image by half a pixel.)
    """
    i = torch.arange(n_out, device=device, dtype=torch.int64)
    return ((2 * i + 1) * n_in // (2 * n_out)).clamp_(max=n_in - 1)


class Rescale:
    """Resize a sample: image bilinear with anti-aliasing, depth/valid/mask nearest, K rescaled.

    Args:
        size: an int, the new length of the SHORTER side (aspect ratio kept, the longer side
            rounded to the nearest pixel), or a pair (H', W').

    Per key (H, W -> H', W', s_x = W'/W, s_y = H'/H):

    * ``image``: ``F.interpolate(mode="bilinear", align_corners=False, antialias=True)``; when
      shrinking, the anti-aliasing filter averages all pixels under the footprint instead of
      sampling 4 of them, so no moire.
    * ``depth``, ``valid``, ``mask`` and other per-pixel maps: nearest neighbour with centres aligned
      (see :func:`_nearest_index`); every output value is an input value. Blending depths would
      create flying pixels between foreground and background at occlusion edges, and blending with
      invalid pixels would mix in depths that were never measured (module docstring).
    * ``intrinsics``: ``fx' = s_x fx``, ``fy' = s_y fy``, ``cx' = s_x (cx + 1/2) - 1/2``,
      ``cy' = s_y (cy + 1/2) - 1/2`` (pixel centres at integer coordinates). Depth values are NOT
      changed: resizing is a change of sensor resolution, the scene stays where it was.

    Works on any device; returns new tensors, dtypes preserved.

    >>> s = {"image": torch.rand(3, 480, 640), "depth": torch.ones(1, 480, 640),
    ...      "valid": torch.ones(1, 480, 640, dtype=torch.bool)}
    >>> tuple(Rescale(240)(s)["image"].shape)
    (3, 240, 320)
    """

    def __init__(self, size: int | tuple[int, int]):
        if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
            if size <= 0:
                raise ValueError(f"Rescale: size must be positive, got {size}")
            self.size: int | tuple[int, int] = int(size)
        else:
            self.size = checks.size_pair(size, "Rescale size", square_ok=True)

    def output_size(self, H: int, W: int) -> tuple[int, int]:
        """(H', W') for an input of size (H, W)."""
        if isinstance(self.size, tuple):
            return self.size
        if H <= W:
            return self.size, max(1, int(round(W * self.size / H)))
        return max(1, int(round(H * self.size / W))), self.size

    def __call__(self, sample: Mapping[str, Any]) -> dict[str, Any]:
        H, W = _check_sample(sample, "Rescale")
        H2, W2 = self.output_size(H, W)
        device = sample["image"].device
        rows, cols = _nearest_index(H, H2, device), _nearest_index(W, W2, device)
        out: dict[str, Any] = {}
        for key, value in sample.items():
            if key == "image":
                out[key] = F.interpolate(
                    value[None], size=(H2, W2), mode="bilinear", align_corners=False, antialias=True
                )[0].clamp_(0.0, 1.0)
            elif _is_pixel_map(key, value, H, W):
                r, c = rows.to(value.device), cols.to(value.device)
                out[key] = value.index_select(-2, r).index_select(-1, c)
            elif key == "intrinsics":
                sx, sy = W2 / W, H2 / H
                S = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])
                out[key] = _apply_pixel_map(value, S)
            else:
                out[key] = value
        return out

    def __repr__(self) -> str:
        return f"Rescale(size={self.size})"


# ----------------------------------------------------------------------------- RandomCrop
class RandomCrop:
    """Cut the same random (h, w) window out of every per-pixel map; shift the principal point.

    Args:
        size: int (square crop) or (h, w).
        generator: a ``torch.Generator`` for reproducible offsets; ``None`` uses torch's global RNG.
            ``__call__(sample, generator=g)`` overrides it for one call.

    The offsets are drawn as ``top = randint(0, H - h + 1)`` then ``left = randint(0, W - w + 1)``
    (two ``torch.randint`` calls on the generator, in that order); see :meth:`get_params`. The
    output is ``x[..., top:top+h, left:left+w]`` for image, depth, valid, mask and any other
    per-pixel map (views, no copy), and ``cx' = cx - left``, ``cy' = cy - top``. A crop larger than
    the image raises ``ValueError`` naming both sizes (no silent padding with fake depth).

    >>> s = {"image": torch.rand(3, 48, 64), "depth": torch.ones(1, 48, 64),
    ...      "valid": torch.ones(1, 48, 64, dtype=torch.bool)}
    >>> tuple(RandomCrop((32, 40), torch.Generator().manual_seed(0))(s)["depth"].shape)
    (1, 32, 40)
    """

    def __init__(self, size: int | tuple[int, int], generator: torch.Generator | None = None):
        self.size = checks.size_pair(size, "RandomCrop size", square_ok=True)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"RandomCrop: generator must be a torch.Generator or None, got {type(generator).__name__}")
        self.generator = generator

    def get_params(self, H: int, W: int, generator: torch.Generator | None = None) -> tuple[int, int]:
        """Draw (top, left) for an (H, W) image."""
        h, w = self.size
        _check_crop_fits(self.size, H, W, "RandomCrop")
        g = generator if generator is not None else self.generator
        top = int(torch.randint(0, H - h + 1, (1,), generator=g))
        left = int(torch.randint(0, W - w + 1, (1,), generator=g))
        return top, left

    def __call__(self, sample: Mapping[str, Any], generator: torch.Generator | None = None) -> dict[str, Any]:
        H, W = _check_sample(sample, "RandomCrop")
        top, left = self.get_params(H, W, generator)
        h, w = self.size
        out: dict[str, Any] = {}
        for key, value in sample.items():
            if key == "image" or _is_pixel_map(key, value, H, W):
                out[key] = value[..., top : top + h, left : left + w]
            elif key == "intrinsics":
                T = np.array([[1.0, 0.0, -left], [0.0, 1.0, -top], [0.0, 0.0, 1.0]])
                out[key] = _apply_pixel_map(value, T)
            else:
                out[key] = value
        return out

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size})"


# ----------------------------------------------------------------------------- JointAugment
def _range(value: float | tuple[float, float], what: str, symmetric: bool = False) -> tuple[float, float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        lo, hi = (-float(value), float(value)) if symmetric else (float(value), float(value))
    elif isinstance(value, (tuple, list)) and len(value) == 2:
        lo, hi = float(value[0]), float(value[1])
    else:
        raise TypeError(f"JointAugment: {what} must be a number or a (low, high) pair, got {value!r}")
    if lo > hi:
        raise ValueError(f"JointAugment: {what} range must have low <= high, got {value!r}")
    return lo, hi


def _prob(p: float, what: str) -> float:
    if not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"JointAugment: {what} must be a probability in [0, 1], got {p}")
    return float(p)


def _to_planes(maps: list[torch.Tensor], H: int, W: int) -> list[np.ndarray]:
    """Every per-pixel map, channel by channel, as the HxW float64 planes albumentations warps
    as ``masks``: exact for float32 depths, bools and integer labels below 2**53."""
    planes: list[np.ndarray] = []
    for v in maps:
        v = v.detach().to("cpu")
        planes += [np.ascontiguousarray(p, dtype=np.float64) for p in v.reshape(-1, H, W).numpy()]
    return planes


def _from_planes(planes, like: list[torch.Tensor], H: int, W: int) -> list[torch.Tensor]:
    """The warped planes back as maps of the shapes (leading dims), dtypes and devices of
    ``like``, at the new size H x W; bools from > 0.5, integers rounded."""
    planes, out = iter(planes), []
    for v in like:
        n = int(np.prod(v.shape[:-2])) if v.ndim > 2 else 1
        arr = torch.from_numpy(np.stack([next(planes) for _ in range(n)]))
        arr = arr.reshape(*v.shape[:-2], H, W)
        if v.dtype == torch.bool:
            arr = arr > 0.5
        elif not v.is_floating_point():
            arr = arr.round()
        out.append(arr.to(v.device, v.dtype))
    return out


class JointAugment:
    """Albumentations augmentation of a whole RGB-D sample with one geometric draw for all maps.

    Geometric (applied in this order, the same draw to image, depth, valid, mask and any other
    per-pixel map):

    1. horizontal flip with probability ``hflip_p``;
    2. with probability ``affine_p``, ``A.Affine``: a zoom by a factor drawn from ``scale`` and a
       rotation by an angle drawn from ``rotate`` (degrees; a number r means (-r, r); positive is
       counter-clockwise on screen), both about the image centre, output size unchanged;
    3. a random ``crop`` of (h, w) if one is given (``A.RandomCrop``).

    The image is resampled bilinearly; depth, valid, mask go through albumentations' ``masks``
    target with ``mask_interpolation=cv2.INTER_NEAREST`` (checked at construction), so every
    output depth is an input depth and every label an input label. Pixels that the rotation or
    zoom-out brings in from outside the image are filled with depth 0, valid False, mask 0 (and
    image 0, black): they are marked invalid, never given a fake depth. (The image is bilinear, so
    in the one-pixel rim along that border a valid pixel's colour can be partly blended with the
    black fill.)

    Photometric (image only, after the geometry; depth/valid/mask are left bit-identical):
    ``A.ColorJitter`` (brightness, contrast, saturation = ``color_jitter``, hue = ``color_jitter/4``)
    with probability ``color_p``; ``A.RandomGamma`` (exponent in ``gamma``) with ``gamma_p``;
    ``A.GaussianBlur`` (sigma in ``blur_sigma`` pixels) with ``blur_p``; ``A.GaussNoise`` (std in
    ``noise_std``, in image units) with ``noise_p``. The result is clamped to [0, 1].

    Intrinsics: the pixel map of the geometric steps, p' = T p, is not assembled from what each
    step is (no branch per transform): five probe points (the corners and the centre of the
    input, in the pixel-centre convention of this module) travel through the pipeline as
    albumentations *keypoints*, which every geometric transform moves exactly as it moves the
    pixels, and T is the affine map that sends the probes where they landed. So ``intrinsics``
    becomes ``T @ K`` for any chain of flips, zooms, rotations, crops, transposes, or a geometric
    step added with ``extra``; a step whose map is not affine (a perspective warp, an elastic
    distortion) has no camera matrix and is refused with a ``ValueError``. A T with negative
    determinant mirrors the picture (a flip): then ``T @ K`` would map the un-mirrored points; we
    read the flipped photo, as is usual, as a photo of the MIRRORED scene (camera x -> -x) and
    store ``T @ K @ diag(-1, 1, 1)``: for a flip fx is unchanged and cx' = W-1-cx. Depth values
    are never changed. Two consequences to know:

    * After a rotation K' is no longer upper-triangular (it is K premultiplied by an in-plane
      rotation). It is still the exact camera matrix of the new image: ``z * inv(K') @ (u, v, 1)``
      gives the same 3-D point as before augmentation (x negated if the sample was flipped). Code that reads ``fx = K[0, 0]`` or
      ``cx = K[0, 2]`` is only right when ``rotate`` is 0.
    * A zoom by s multiplies the focal length by s while the depth stays put: a network that
      predicts METRIC depth without seeing K cannot tell a zoom from moving closer, so the default
      ``scale`` is (1, 1). Zoom is harmless for relative (ranking, scale-and-shift-invariant)
      depth; Eigen et al. (2014) instead divide depth by s for metric depth.

    Args:
        hflip_p: probability of a horizontal flip.
        scale: zoom range (1 = none, 0.8 = zoom out, borders become invalid).
        rotate: rotation range in degrees, a number r meaning (-r, r).
        affine_p: probability of applying the zoom/rotation.
        crop: None, an int, or (h, w); must fit in the input image.
        color_jitter: strength of colour jitter, 0 disables it.
        color_p, gamma_p, blur_p, noise_p: probabilities of the photometric ops.
        gamma: exponent range of the gamma change.
        blur_sigma: range of the Gaussian blur's sigma, pixels.
        noise_std: range of the additive Gaussian noise's standard deviation (image in [0, 1]).
        seed: seeds the internal random stream: two instances with the same seed produce the same
            sequence of augmentations. ``None`` draws fresh entropy.
        extra: more albumentations transforms, applied after the crop and before the photometric
            ops (e.g. ``A.Rotate`` or ``A.Transpose``); the intrinsics follow them (above).

    Call: ``aug(sample, generator=None)``. With a ``torch.Generator`` the draw of that call depends
    only on the generator (a 63-bit seed is taken from it), not on previous calls: use this inside a
    Dataset (e.g. ``torch.Generator().manual_seed(seed * 1_000_003 + index)``), because DataLoader
    workers each hold a copy of the augmenter with the SAME internal state and would otherwise
    repeat each other's augmentations.

    Tensors in, tensors out, on the input's device (albumentations runs on CPU numpy); dtypes
    preserved. One internal stream is shared by all the albumentations transforms: ``A.Compose(seed=)``
    alone would seed each transform with the same number, making e.g. the flip and the affine
    decisions of a call correlated.

    >>> s = {"image": torch.rand(3, 48, 64), "depth": torch.rand(1, 48, 64) + 1,
    ...      "valid": torch.ones(1, 48, 64, dtype=torch.bool),
    ...      "mask": torch.zeros(1, 48, 64, dtype=torch.int64)}
    >>> out = JointAugment(rotate=10, crop=(32, 32), seed=0)(s)
    >>> tuple(out["depth"].shape), out["valid"].dtype, out["mask"].dtype
    ((1, 32, 32), torch.bool, torch.int64)
    """

    def __init__(
        self,
        hflip_p: float = 0.5,
        scale: float | tuple[float, float] = (1.0, 1.0),
        rotate: float | tuple[float, float] = 5.0,
        affine_p: float = 0.5,
        crop: int | tuple[int, int] | None = None,
        color_jitter: float = 0.2,
        color_p: float = 0.8,
        gamma: tuple[float, float] = (0.8, 1.25),
        gamma_p: float = 0.3,
        blur_sigma: tuple[float, float] = (0.2, 1.5),
        blur_p: float = 0.0,
        noise_std: tuple[float, float] = (0.005, 0.03),
        noise_p: float = 0.0,
        seed: int | None = None,
        extra: list[A.BasicTransform] | tuple = (),
    ):
        self.scale = _range(scale, "scale")
        if self.scale[0] <= 0:
            raise ValueError(f"JointAugment: scale factors must be > 0, got {scale!r}")
        self.rotate = _range(rotate, "rotate", symmetric=True)
        self.crop = None if crop is None else checks.size_pair(crop, "JointAugment crop", square_ok=True)
        if color_jitter < 0:
            raise ValueError(f"JointAugment: color_jitter must be >= 0, got {color_jitter}")
        self.gamma = _range(gamma, "gamma")
        self.blur_sigma = _range(blur_sigma, "blur_sigma")
        self.noise_std = _range(noise_std, "noise_std")
        if self.gamma[0] <= 0 or self.blur_sigma[0] <= 0 or self.noise_std[0] < 0:
            raise ValueError("JointAugment: gamma and blur_sigma must be > 0 and noise_std >= 0")
        self.seed = seed
        nearest = cv2.INTER_NEAREST

        geometric = self._geometric(hflip_p, affine_p, extra)
        photometric = self._photometric(color_jitter, color_p, gamma_p, blur_p, noise_p)
        self.pipeline = A.Compose(
            geometric + photometric, mask_interpolation=nearest, save_applied_params=True, seed=seed,
            keypoint_params=A.KeypointParams(format="xy", remove_invisible=False),
        )
        for t in self.pipeline.transforms:  # the guarantee the whole class rests on
            if hasattr(t, "mask_interpolation") and t.mask_interpolation != nearest:
                raise RuntimeError(f"JointAugment: {type(t).__name__} would not resample masks with nearest")
        self._reseed(seed)

    def _reseed(self, seed: int | None) -> None:
        """One numpy + one python stream shared by every transform of the pipeline."""
        self.pipeline.set_random_state(np.random.default_rng(seed), random.Random(seed))

    def _geometric(self, hflip_p: float, affine_p: float, extra) -> list[A.BasicTransform]:
        """Flip, affine (scale and rotation about the centre), crop, then ``extra``: the steps
        that move pixels, so the intrinsics follow them."""
        nearest = cv2.INTER_NEAREST
        ops: list[A.BasicTransform] = [A.HorizontalFlip(p=_prob(hflip_p, "hflip_p"))]
        if self.scale != (1.0, 1.0) or self.rotate != (0.0, 0.0):
            ops.append(
                A.Affine(
                    scale=self.scale, rotate=self.rotate, keep_ratio=True,
                    interpolation=cv2.INTER_LINEAR, mask_interpolation=nearest,
                    border_mode=cv2.BORDER_CONSTANT, fill=0.0, fill_mask=0.0,
                    p=_prob(affine_p, "affine_p"),
                )
            )
        if self.crop is not None:
            ops.append(A.RandomCrop(height=self.crop[0], width=self.crop[1], pad_if_needed=False, p=1.0))
        for t in extra:
            if not isinstance(t, A.BasicTransform):
                raise TypeError(f"JointAugment: extra must hold albumentations transforms, got "
                                f"{type(t).__name__}")
        return ops + list(extra)

    def _photometric(self, color_jitter: float, color_p: float, gamma_p: float, blur_p: float,
                     noise_p: float) -> list[A.BasicTransform]:
        """Colour jitter, gamma, blur and noise: the image only, after the geometry."""
        ops: list[A.BasicTransform] = []
        if color_jitter > 0:
            cj = float(color_jitter)
            ops.append(
                A.ColorJitter(brightness=cj, contrast=cj, saturation=cj, hue=min(cj / 4, 0.5), p=_prob(color_p, "color_p"))
            )
        lo, hi = self.gamma
        ops.append(A.RandomGamma(gamma_limit=(100 * lo, 100 * hi), p=_prob(gamma_p, "gamma_p")))
        ops.append(A.GaussianBlur(blur_limit=0, sigma_limit=self.blur_sigma, p=_prob(blur_p, "blur_p")))
        ops.append(A.GaussNoise(std_range=self.noise_std, p=_prob(noise_p, "noise_p")))
        return ops

    def __call__(self, sample: Mapping[str, Any], generator: torch.Generator | None = None) -> dict[str, Any]:
        H, W = _check_sample(sample, "JointAugment")
        if H < 2 or W < 2:
            raise ValueError(f"JointAugment: the image must be at least 2x2 pixels, got {H}x{W}")
        if self.crop is not None:
            _check_crop_fits(self.crop, H, W, "JointAugment")
        if generator is not None:
            if not isinstance(generator, torch.Generator):
                raise TypeError(f"JointAugment: generator must be a torch.Generator, got {type(generator).__name__}")
            self._reseed(int(torch.randint(0, 2**63 - 1, (1,), generator=generator)))

        image = sample["image"]
        maps = [k for k, v in sample.items() if _is_pixel_map(k, v, H, W)]
        planes = _to_planes([sample[k] for k in maps], H, W)
        img_np = np.ascontiguousarray(image.detach().to("cpu", torch.float32).permute(1, 2, 0).numpy())
        probes = np.array([[0.0, 0.0], [W - 1.0, 0.0], [0.0, H - 1.0], [W - 1.0, H - 1.0],
                           [(W - 1) / 2, (H - 1) / 2]])
        res = self.pipeline(image=img_np, masks=planes, keypoints=probes)

        out: dict[str, Any] = {}
        new_img = torch.from_numpy(np.ascontiguousarray(res["image"], dtype=np.float32)).permute(2, 0, 1)
        out_image = new_img.clamp_(0.0, 1.0).to(image.device, image.dtype)
        H2, W2 = out_image.shape[-2:]
        warped = dict(zip(maps, _from_planes(res["masks"], [sample[k] for k in maps], H2, W2)))

        for key, value in sample.items():
            if key == "image":
                out[key] = out_image
            elif key in warped:
                out[key] = warped[key]
            elif key == "intrinsics":
                T, flipped = self._pixel_map(probes, np.asarray(res["keypoints"], dtype=np.float64),
                                             res["applied_transforms"])
                # A flipped photo is read as a photo of the mirrored world (camera x -> -x), so
                # K' = T K diag(-1, 1, 1): fx stays positive and cx' = W-1-cx.
                mirror = np.diag([-1.0, 1.0, 1.0]) if flipped else None
                out[key] = _apply_pixel_map(value, T, mirror)
            else:
                out[key] = value
        return out

    @staticmethod
    def _pixel_map(before: np.ndarray, after: np.ndarray, applied) -> tuple[np.ndarray, bool]:
        """The 3x3 affine map p_out = T p_in that sends the probe points ``before`` (N,2) to
        ``after``, and whether it mirrors the picture (negative determinant). Refuses a map that
        is not affine: it has no camera matrix."""
        # the first three probes are (0, 0), (W-1, 0), (0, H-1): they give T exactly (where
        # they go is T's translation and its two columns scaled); the others check it
        (x0, y0), (x1, _), (_, y2) = before[:3]
        T = np.eye(3)
        T[:2, 0] = (after[1] - after[0]) / (x1 - x0)
        T[:2, 1] = (after[2] - after[0]) / (y2 - y0)
        T[:2, 2] = after[0] - T[:2, :2] @ before[0]
        predicted = before @ T[:2, :2].T + T[:2, 2]
        residual = float(np.abs(predicted - after).max())
        if residual > 1e-3 * max(1.0, float(np.abs(before).max())):
            names = ", ".join(name for name, _ in applied)
            raise ValueError(
                f"JointAugment: the transforms applied ({names}) move pixels by a map that is not "
                f"affine (the probe points miss an affine fit by {residual:.3g} px), so no "
                "intrinsics matrix describes the result; leave such a step out")
        return T, bool(np.linalg.det(T[:2, :2]) < 0)

    def __repr__(self) -> str:
        names = ", ".join(type(t).__name__ for t in self.pipeline.transforms)
        return f"JointAugment([{names}], seed={self.seed})"
