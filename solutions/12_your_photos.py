# %% [markdown]
# # Solutions to chapter 12 · From the course to your own photographs

# %%
import tempfile
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from lib import data, metrics
from lib.data.depth_files import load_depth, save_depth

# %% [markdown]
# ## Exercise 1
#
# *Save a metric map as an 8-bit PNG over 0-10 m and read it back: how large is the error at
# 3 m? And how does `ImageDepthFolder` read such a file?*
#
# 256 levels over 10 m are steps of $10/255 = 39.2$ mm, so the rounding error is up to 19.6 mm
# anywhere, 3 m included (3 m is level 76.5, rounded to 76 and read back as 2.980 m).
# `ImageDepthFolder` divides integer PNGs by 1000 (millimetres): the stored 76 is read as
# 0.076 m. An 8-bit depth PNG is a preview, not data: nothing in the file says its range.

# %%
depth = torch.tensor([[3.0, 2.99, 3.01, 9.9]])
levels = np.round(depth.numpy() / 10 * 255).astype(np.uint8)
back = levels.astype(np.float32) / 255 * 10
error = np.abs(back - depth.numpy())
print(
    f"levels {levels.tolist()}, read back {back.round(3).tolist()}, "
    f"largest error {error.max() * 1000:.1f} mm"
)
assert error.max() <= 10 / 255 / 2 + 1e-6
with tempfile.TemporaryDirectory() as tmp:
    iio.imwrite(Path(tmp) / "a.png", np.zeros((1, 4, 3), np.uint8))
    iio.imwrite(Path(tmp) / "a_depth.png", levels)
    read = data.ImageDepthFolder(tmp)[0]["depth"]
print(f"ImageDepthFolder reads 3 m as {read[0, 0, 0]:.3f} m")
assert abs(read[0, 0, 0].item() - levels[0, 0] / 1000) < 1e-6

# %% [markdown]
# ## Exercise 2
#
# *A 16-bit PNG in millimetres: what is the farthest depth it holds, and what do you do for an
# outdoor scene at 300 m?*
#
# $65535$ mm $= 65.5$ m at 1 mm steps. `save_depth` refuses a larger depth rather than
# clipping it silently; pass `depth_scale=100` (centimetres) for 655 m at 1 cm steps, an error of
# at most 5 mm, and read it back with the same scale. (Or save float32 `.npy` / PFM: exact.)

# %%
with tempfile.TemporaryDirectory() as tmp:
    far = torch.tensor([[1.0037, 70.1234], [300.123, 2.5049]])  # not whole centimetres
    with pytest.raises(ValueError, match="16-bit"):
        save_depth(Path(tmp) / "far.png", far)
    save_depth(Path(tmp) / "far.png", far, depth_scale=100)
    back, valid = load_depth(Path(tmp) / "far.png", depth_scale=100)
worst = (back.flatten() - far.flatten()).abs().max().item()
print(f"centimetre PNG: largest error {worst * 1000:.2f} mm")
assert bool(valid.all()) and worst <= 0.005 + 1e-5

# %% [markdown]
# ## Exercise 3
#
# *A scale-and-shift fit in disparity from two measured points: why can it go badly wrong, and
# which two points would you measure?*
#
# Two points fix a line through two values of $1/p$; a small error at either is multiplied by
# $1/(\text{their separation in disparity})$ when the line is extrapolated to the rest of the
# image. Two points at nearly the same distance leave the slope almost free; two points far
# apart (the nearest and the farthest thing you can measure) pin it down. Below, the model's
# disparity is exactly affine in the true one except for a 1 % error at the measured points.

# %%
g = torch.linspace(1.0, 8.0, 64).repeat(48, 1)  # a floor receding from 1 m to 8 m
pred = 1 / (2.0 / g + 0.1)  # the model's "depth": an affine map of the true disparity
valid = torch.ones(1, 1, 48, 64, dtype=torch.bool)


def fitted_abs_rel(cols):
    noisy = pred.clone()
    noisy[0, cols[0]] *= 1.01
    noisy[0, cols[1]] *= 0.99
    points, dists = [(c, 0) for c in cols], [g[0, c].item() for c in cols]
    metric, _, _ = metrics.align_to_points(noisy, points, dists, space="disparity")
    return metrics.depth_metrics(metric[None, None], g[None, None], valid)["abs_rel"]


close, apart = fitted_abs_rel((20, 22)), fitted_abs_rel((0, 63))
print(f"AbsRel with two points 0.2 m apart: {close:.3f}; at 1 m and 8 m: {apart:.3f}")
assert close > 3 * apart

# %% [markdown]
# ## Exercise 4 (an experiment)
#
# *Time `onnx_sizes` with one and with all CPU threads (`torch.set_num_threads`,
# `ort.SessionOptions().intra_op_num_threads`).*
#
# `python -m lib.course run 12 --threads 1` sets the thread count of PyTorch (through
# `OMP_NUM_THREADS`) but not of ONNX Runtime, whose session uses all physical cores unless told
# otherwise: for the ONNX side, create the session with
# `opts = ort.SessionOptions(); opts.intra_op_num_threads = 1` and pass `sess_options=opts`
# (and `intra_op_num_threads = 0`, the default, for all cores). What to look for: on a small model and small images, one thread is often *not* much slower, because
# each convolution is too small to split well across cores and the threads mostly wait for each
# other; the gain grows with the image size. The numbers depend on the machine, which is why
# the chapter measures them rather than quoting them.

# %% [markdown]
# ## Exercise 5 (an experiment)
#
# *Refocus a photograph of your own with `python -m lib.refocus IMAGE --predict --focus X,Y`.*
#
# The zoo model has seen only synthetic rooms and close-ups: expect the layout of an indoor
# scene to come out roughly right and fine structures (hair, railings) to be blurred with their
# background. Where the depth is wrong the blur is wrong, which is the lesson of chapter 09's
# "refocused with a predicted depth" figure; a phone's own depth map (`--depth`) usually fares
# better at edges.
