"""Training pairs for learned depth of field: (all-in-focus image, disparity, focus, K) -> defocused image.

Item ``i`` of ``BokehPairs(n, size, seed, split)`` is the synthetic room
``scene_seed(seed, split, i)`` (the same scene as ``SyntheticRGBD`` item i) seen through a lens
whose focus and aperture are drawn from the item's own random stream:

- focus: on the disparity of one pixel drawn uniformly from the image (as if autofocus picked a
  point of the picture), so something is always sharp;
- aperture: the largest circle of confusion in the image, ``R = K max |d - d_f|`` pixels, is drawn
  uniformly in ``max_blur`` = (R_lo, R_hi); that fixes ``K = R / max |d - d_f|`` (pixels * metres)
  and the aperture radius ``A = K / f_px`` metres. Drawing the blur in pixels, not the aperture in
  metres, keeps every pair inside the range a small network (and a few lens samples) can handle.

The target is ``target="thin_lens"``: the ray-traced thin lens of
:func:`lib.data.synthetic.render_thin_lens` with ``samples`` lens points (the ground truth), or
``target="layered"``: :func:`lib.bokeh.render_bokeh` of the pinhole image (a renderer's
approximation, ~100x cheaper). A thin-lens pair costs about ``samples`` pinhole renders, so pairs
are generated once and cached on disk (:mod:`lib.data.cache`).

>>> ds = BokehPairs(2, size=(32, 32), split="val", samples=4, cache=False)
>>> item = ds[0]
>>> item["image"].shape, item["target"].shape, item["disparity"].shape, item["K"].shape
(torch.Size([3, 32, 32]), torch.Size([3, 32, 32]), torch.Size([1, 32, 32]), torch.Size([]))
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from lib import checks
from lib.data import cache as _cache
from lib.data.formats import _index
from lib.data.raycast import linear_to_srgb8, render_linear
from lib.data.synthetic import (GENERATOR_VERSION, fibonacci_disk, render_arrays, sample_scene,
                                scene_seed)

__all__ = ["BokehPairs", "TARGETS"]

TARGETS = ("thin_lens", "layered")
PAIRS_VERSION = 1    # bump whenever the pairs of given parameters change


def _lens(seed: int, disparity: np.ndarray, max_blur: tuple[float, float]) -> tuple[float, float]:
    """(focus_disparity, K) of pair ``seed``, from its own stream (the scene does not depend on it)."""
    rng = np.random.default_rng([seed, 8])
    focus = float(disparity.flat[int(rng.integers(disparity.size))])
    R = float(rng.uniform(*max_blur))
    spread = float(np.abs(disparity - focus).max())
    return focus, R / max(spread, 1e-6)


class BokehPairs(Dataset):
    """``n`` pairs of ``size`` = (H, W) for learning to render depth of field.

    Args:
        n: number of pairs; size: (H, W) (or one int for a square).
        seed, split: as :class:`~lib.data.SyntheticRGBD` (the same scenes; splits never share one).
        target: ``"thin_lens"`` (ray-traced ground truth) or ``"layered"`` (``lib.bokeh`` renderer).
        samples: lens points of the thin lens (ignored for ``"layered"``); more = smoother big blurs.
        max_blur: (lo, hi) pixels, the range of the largest CoC radius of a pair (see module doc).
        cache: store the pairs under ``data/cache`` (generated once, memory-mapped afterwards).

    Item ``i`` is a dict: ``image`` (3,H,W) the all-in-focus (pinhole) sRGB image in [0,1];
    ``target`` (3,H,W) the defocused sRGB image; ``disparity`` (1,H,W) 1/depth (1/m);
    ``depth`` (1,H,W) metres; ``valid`` (1,H,W) all True; ``focus_disparity`` and ``K``
    scalar float32 tensors (1/m and pixels * metres); ``name``.
    """

    def __init__(self, n: int, size=(64, 64), seed: int = 0, split: str = "train", target: str = "thin_lens",
                 samples: int = 32, max_blur: tuple[float, float] = (1.0, 6.0), cache: bool = True,
                 progress: bool = True):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        if target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
        if isinstance(samples, bool) or int(samples) != samples or samples < 1:
            raise ValueError(f"samples must be a positive integer, got {samples!r}")
        try:
            lo, hi = (float(b) for b in max_blur)
        except (TypeError, ValueError):
            raise ValueError(f"max_blur must be two numbers (lo, hi) in pixels, got {max_blur!r}") from None
        if not 0 <= lo <= hi:
            raise ValueError(f"max_blur must satisfy 0 <= lo <= hi, got {max_blur!r}")
        scene_seed(seed, split, 0)                                  # validates seed and split
        self.n, self.size, self.seed, self.split = int(n), checks.size_pair(size, "size", square_ok=True), int(seed), split
        self.target, self.samples, self.max_blur = target, int(samples), (lo, hi)
        self.params = {"n": self.n, "size": list(self.size), "seed": self.seed, "split": split, "target": target,
                       "samples": self.samples if target == "thin_lens" else 0, "max_blur": [lo, hi],
                       "version": [GENERATOR_VERSION, PAIRS_VERSION]}
        self._arrays = None
        self.cached = bool(cache) and self.n > 0
        if self.cached:
            self._arrays = _cache.load_or_build("bokeh_pairs", self.params, self.n, self._generate, progress)

    def _generate(self, i: int) -> dict[str, np.ndarray]:
        s = scene_seed(self.seed, self.split, i)
        scene = sample_scene(s, self.size)
        sharp = render_arrays(scene)
        disparity = (1.0 / sharp["depth"]).astype(np.float32)
        focus, K = _lens(s, disparity, self.max_blur)
        if self.target == "thin_lens":
            total = np.zeros((*self.size, 3), np.float64)
            aperture = K / scene.camera.fx
            for a in fibonacci_disk(self.samples) * aperture:
                total += render_linear(scene, lens_point=a, focus_distance=1.0 / focus)[0]
            target = linear_to_srgb8((total / self.samples).astype(np.float32)).transpose(2, 0, 1)
        else:
            from lib.bokeh import render_bokeh                      # torch renderer, imported when used
            img = torch.from_numpy(sharp["image"].astype(np.float32) / 255)[None]
            out = render_bokeh(img, torch.from_numpy(disparity)[None, None], focus, K)
            target = (out[0].clamp(0, 1) * 255).round().to(torch.uint8).numpy()
        return {"image": np.ascontiguousarray(sharp["image"]), "target": np.ascontiguousarray(target),
                "depth": sharp["depth"], "lens": np.array([focus, K], np.float32)}

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        i = _index(i, self.n, "BokehPairs")
        if self.cached and self._arrays is None:                   # unpickled in a DataLoader worker
            self._arrays = _cache.load(_cache.cache_path("bokeh_pairs", self.params))
        a = {k: v[i] for k, v in self._arrays.items()} if self.cached else self._generate(i)
        depth = torch.from_numpy(np.array(a["depth"], np.float32))[None]
        return {"image": torch.from_numpy(np.array(a["image"])).float().div_(255),
                "target": torch.from_numpy(np.array(a["target"])).float().div_(255),
                "disparity": 1.0 / depth, "depth": depth, "valid": torch.ones_like(depth, dtype=torch.bool),
                "focus_disparity": torch.tensor(float(a["lens"][0])), "K": torch.tensor(float(a["lens"][1])),
                "name": f"bokeh/{self.split}/{i:06d}"}

    def __getstate__(self):                                         # send paths, not memory maps
        state = dict(self.__dict__)
        state["_arrays"] = None
        return state

    def __repr__(self) -> str:
        return (f"BokehPairs(n={self.n}, size={self.size}, seed={self.seed}, split={self.split!r}, "
                f"target={self.target!r}, samples={self.samples}, max_blur={self.max_blur})")
