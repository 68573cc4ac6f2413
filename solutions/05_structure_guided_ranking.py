# %% [markdown]
# # Solutions to chapter 05 · Structure-guided ranking

# %%
import torch

from lib import data, metrics, sampling

rooms = data.SyntheticRGBD(8, size=(64, 64), seed=0, split="test", progress=False)
keys = ("image", "depth", "valid")
batch = torch.utils.data.default_collate(
    [{k: rooms[i][k] for k in keys} for i in range(8)]
)
gen = torch.Generator().manual_seed(0)

# %% [markdown]
# ## Exercise 1
#
# *Each anchor of `edge_guided_pairs` yields three pairs from four points on the edge normal.
# Which of them crosses the image edge? Check it on the first colour channel, which the
# sampler reads.*
#
# The four points sit at $-d_0, -d_1, +d_2, +d_3$ from the anchor: two on each side. The pairs
# are $(p_0, p_1)$, $(p_1, p_2)$, $(p_2, p_3)$, so only the **middle** pair straddles the edge;
# the outer ones lie on one side and are more often "equal" pairs, which teach the network to
# keep a surface smooth. So, image by image, the middle pairs should show the larger intensity
# difference, and the outer pairs should be labelled "equal" by the true depth more often.
# (Not by a wide margin: the rooms are textured, and texture edges are image edges too.)

# %%
n = 3 * 400  # no random slots (pairs that fall off the image are still replaced)
a, b = sampling.edge_guided_pairs(
    batch["image"], batch["valid"], n, generator=gen, random_fraction=0.0
)
red, depth = batch["image"][:, 0].flatten(1), batch["depth"].flatten(1)
diff = (red.gather(1, a) - red.gather(1, b)).abs()
equal = sampling.ordinal_labels(depth.gather(1, a), depth.gather(1, b)) == 0


def middle_outer(x):
    x = x.float()
    return x[:, 1::3].mean(1), torch.cat([x[:, 0::3], x[:, 2::3]], 1).mean(1)


(dm, do), (em, eo) = middle_outer(diff), middle_outer(equal)
for i in range(8):
    print(
        f"room {i}: |red diff| middle {dm[i]:.3f} outer {do[i]:.3f}; "
        f"equal middle {em[i]:.3f} outer {eo[i]:.3f}"
    )
assert bool((dm > do).all()) and bool((eo > em).all())

# %% [markdown]
# ## Exercise 2
#
# *A fraction $q$ of a room's valid pixels lies within 3 px of a depth edge. What fraction of
# random pairs has at least one end there? Compare with a count.*
#
# Both ends are (nearly) independent and uniform over the valid pixels, so the answer is
# $1 - (1 - q)^2 \approx 2q$ for small $q$. With $q$ around 0.1, four pairs in five never come
# near an edge: that is why random pairs teach global order and little about boundaries.

# %%
near = metrics.depth_edges(batch["depth"], batch["valid"], dilation=3)
q = (near & batch["valid"]).flatten(1).sum(1) / batch["valid"].flatten(1).sum(1)
ra, rb = sampling.random_pairs(batch["valid"], 4000, generator=gen)
flat = near.flatten(1)
measured = (flat.gather(1, ra) | flat.gather(1, rb)).float().mean(1)
predicted = 1 - (1 - q) ** 2
for qi, m, p in zip(q.tolist(), measured.tolist(), predicted.tolist()):
    print(f"q {qi:.3f}: measured {m:.3f}, 1-(1-q)^2 = {p:.3f}")
# 4000 pairs: the binomial standard error is below 0.008, so 0.03 is about 4 of them
assert (measured - predicted).abs().max() < 0.03

# %% [markdown]
# ## Exercise 3
#
# *The soft edge error takes, at each true edge pixel, the smallest error within a $3\times3$
# window. What does it report for a prediction whose edge is one pixel off, and for radius 0?*
#
# A step from 1 m to 3 m predicted one column too late: at the edge pixels the window still
# contains a pixel of the right depth, so SEE (radius 1) is 0, while radius 0 (the plain error
# at the edge pixels) charges the full 2 m at half of them. The window forgives one-pixel
# misplacement, which ground truth itself cannot resolve, but not a blurred edge.

# %%
truth = torch.ones(1, 1, 8, 8)
truth[..., 4:] = 3.0
shifted = torch.ones(1, 1, 8, 8)
shifted[..., 5:] = 3.0
ok = torch.ones_like(truth, dtype=torch.bool)
see1 = metrics.soft_edge_error(shifted, truth, ok, radius=1)
see0 = metrics.soft_edge_error(shifted, truth, ok, radius=0)
print(f"SEE radius 1: {see1:.3f} m, radius 0: {see0:.3f} m")
assert see1 == 0.0 and abs(see0 - 1.0) < 1e-6  # 2 m at one of the two edge columns
