"""The real Middlebury 2014 "Motorcycle" scene that scikit-image ships, with metric depth.

A rectified stereo pair gives, for each left-image pixel, the disparity ``d`` (pixels) to its
match in the right image. With focal length ``f`` (pixels), baseline ``B`` (metres) and the
x-offset of the two principal points ``doffs = cx_right - cx_left`` (pixels), triangulation gives

    Z = f * B / (d + doffs)        (metres)

Calibration (scikit-image's ``stereo_motorcycle`` docstring, for its 4x downsampled images;
it is Middlebury's ``calib.txt`` for Motorcycle divided by 4: f = 3979.911/4, cx = 1244.772/4,
cy = 1019.507/4, doffs = 124.343/4, baseline 193.001 mm, 2964x2000 -> 741x500):

    f = 994.978 px, B = 0.193001 m, doffs = 31.086 px, principal point (311.193, 254.877) px.

The disparity holds +inf where Middlebury has no ground truth (occlusions, ~7 % of pixels; the
docstring says NaN, the array holds inf): those pixels are invalid.

>>> s = middlebury_motorcycle()
>>> s["image"].shape, s["depth"].shape, s["name"]
(torch.Size([3, 500, 741]), torch.Size([1, 500, 741]), 'middlebury/motorcycle')
"""
from __future__ import annotations

import functools

import numpy as np
import torch

FOCAL_PX = 994.978  #: focal length of the downsampled images, pixels
BASELINE_M = 0.193001  #: stereo baseline, metres
DOFFS_PX = 31.086  #: x-difference of the right and left principal points, pixels
PRINCIPAL_POINT_PX = (311.193, 254.877)  #: (cx, cy) of the left camera, pixels


@functools.lru_cache(maxsize=1)
def _load() -> tuple[np.ndarray, np.ndarray]:
    """(left image uint8 (H,W,3), disparity float32 (H,W) with inf where unknown), read once."""
    from skimage.data import stereo_motorcycle

    left, _right, disp = stereo_motorcycle()
    left, disp = np.asarray(left), np.asarray(disp, dtype=np.float32)
    left.setflags(write=False)
    disp.setflags(write=False)
    return left, disp


def middlebury_motorcycle() -> dict:
    """The left image of Middlebury 2014 Motorcycle (500x741) with metric depth from its disparity.

    Returns a dict of fresh tensors (the arrays are cached, the tensors are new each call):

    - ``image``: float32 (3,500,741), sRGB in [0,1];
    - ``depth``: float32 (1,500,741), ``f*B / (disparity + doffs)`` metres where valid, 0 elsewhere
      (about 2.1 to 5.0 m);
    - ``valid``: bool (1,500,741), where the ground-truth disparity is finite;
    - ``disparity_px``: float32 (1,500,741), stereo disparity in pixels, 0 where invalid
      (not the contract's 1/depth: ``1/depth = (disparity_px + doffs) / (f*B)``);
    - ``intrinsics``: float32 (3,3) ``[[f,0,cx],[0,f,cy],[0,0,1]]``;
    - ``name``: ``"middlebury/motorcycle"``.
    """
    left, disp = _load()
    valid = np.isfinite(disp)
    disp64 = np.where(valid, disp, 0.0).astype(np.float64)
    depth = np.where(valid, FOCAL_PX * BASELINE_M / (disp64 + DOFFS_PX), 0.0)
    cx, cy = PRINCIPAL_POINT_PX
    return {
        "image": torch.tensor(left, dtype=torch.float32).permute(2, 0, 1).contiguous() / 255.0,
        "depth": torch.tensor(depth, dtype=torch.float32)[None],
        "valid": torch.tensor(valid)[None],
        "disparity_px": torch.tensor(disp64, dtype=torch.float32)[None],
        "intrinsics": torch.tensor([[FOCAL_PX, 0.0, cx], [0.0, FOCAL_PX, cy], [0.0, 0.0, 1.0]], dtype=torch.float32),
        "name": "middlebury/motorcycle",
    }
