# %% [markdown]
# # Solutions to chapter 01 · Data loaders

# %%
import tempfile
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch
import torch.nn.functional as F

from lib import data, transforms
from lib.data.depth_files import save_depth
from lib.data.synthetic import SPLITS, scene_seed

# %% [markdown]
# ## Exercise 1
#
# *Why does `Rescale` resize depth with nearest neighbour while it resizes the image
# bilinearly? Halve a map with a wall at 1 m in front of a wall at 5 m both ways and count the
# pixels whose depth no surface of the scene has.*
#
# Bilinear interpolation (with anti-aliasing even more so) averages the two sides of a depth
# edge: a pixel straddling it gets a depth between 1 m and 5 m, a "flying pixel" floating in
# empty space. A loss then teaches the network to predict surfaces that do not exist. Nearest
# neighbour only ever copies input values. For colour the average is right: a pixel of a camera
# *does* integrate the light of both sides.

# %%
depth = torch.ones(1, 1, 8, 9)
depth[..., 4:] = 5.0  # the near wall left, the far wall right, the edge off the 2x grid
blended = F.interpolate(depth, scale_factor=0.5, mode="bilinear", antialias=True)
sample = {
    "image": torch.rand(3, 8, 9),
    "depth": depth[0],
    "valid": torch.ones(1, 8, 9, dtype=torch.bool),
}
nearest = transforms.Rescale((4, 4))(sample)["depth"]


def flying(d):
    return int(((d > 1.0 + 1e-6) & (d < 5.0 - 1e-6)).sum())


print(f"flying pixels: bilinear {flying(blended)}, Rescale {flying(nearest)}")
assert flying(blended) > 0 and flying(nearest) == 0

# %% [markdown]
# ## Exercise 2
#
# *Can a scene of the test split also appear in the training split, or in the training split of
# another dataset seed?*
#
# No: `scene_seed(seed, split, i) = (3 seed + split number) 2^32 + i` is one-to-one in
# (seed, split, index) for indices below $2^{32}$, so two splits never share a scene seed and
# no test room leaks into training. We check it on the first indices of every split of two seeds.

# %%
seen = {}
for seed in (0, 1):
    for split in SPLITS:
        for i in range(2000):
            s = scene_seed(seed, split, i)
            assert s not in seen, f"{(seed, split, i)} collides with {seen[s]}"
            seen[s] = (seed, split, i)
print(f"{len(seen)} scene seeds, all distinct")

# %% [markdown]
# ## Exercise 3
#
# *Write three synthetic rooms in the plain-folder format (`NAME.png`, `NAME_depth.png` as
# 16-bit millimetres) and read them back with `ImageDepthFolder`. How large is the depth error,
# and why?*
#
# A 16-bit PNG stores `round(1000 Z)`: the error is the rounding, at most half a millimetre,
# at every valid pixel; the colour comes back exactly (8-bit in, 8-bit out).

# %%
rooms = data.SyntheticRGBD(3, size=(32, 32), seed=0, split="val", progress=False)
with tempfile.TemporaryDirectory() as tmp:
    for k in range(3):
        item = rooms[k]
        rgb = (item["image"].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        iio.imwrite(Path(tmp) / f"room{k}.png", rgb)
        save_depth(Path(tmp) / f"room{k}_depth.png", item["depth"])
    folder = data.ImageDepthFolder(tmp)
    for k in range(3):  # the colour: 8-bit in, 8-bit out
        back = (folder[k]["image"] * 255).round()
        assert torch.equal(back, (rooms[k]["image"] * 255).round()), k
    worst = max(
        float((folder[k]["depth"] - rooms[k]["depth"])[rooms[k]["valid"]].abs().max())
        for k in range(3)
    )
print(f"{len(folder)} rooms read back; largest depth error {worst * 1000:.3f} mm")
assert len(folder) == 3 and worst <= 0.0005 + 1e-6
