# %% [markdown]
# # Solutions to chapter 06 · Evaluation

# %%
import torch

from lib import data, metrics, sampling

rooms = data.SyntheticRGBD(4, size=(48, 48), seed=0, split="test", progress=False)
g = torch.stack([rooms[i]["depth"] for i in range(4)])
valid = torch.stack([rooms[i]["valid"] for i in range(4)])

# %% [markdown]
# ## Exercise 1
#
# *Why does median alignment appear only once in the table, although the others come in a depth
# and a disparity version?*
#
# $x \mapsto 1/x$ is decreasing, so it maps the middle value of a set to the middle value of
# the image set: $\mathrm{med}(1/p) = 1/\mathrm{med}(p)$ (exactly for an odd count; `torch`
# takes the lower middle for an even one, so the two can differ by one rank). Scaling disparity
# by $\mathrm{med}(1/g)/\mathrm{med}(1/p)$ is then scaling depth by $\mathrm{med}(g)/\mathrm{med}(p)$:
# the same alignment.

# %%
x = torch.rand(101, generator=torch.Generator().manual_seed(0)) + 0.5
assert torch.isclose(torch.median(1 / x), 1 / torch.median(x))
pred = g * torch.exp(
    0.2 * torch.randn(g.shape, generator=torch.Generator().manual_seed(1))
)
depth_scale = g[valid].median() / pred[valid].median()
disp_scale = (1 / g)[valid].median() / (1 / pred)[valid].median()
print(f"scale from depth {depth_scale:.4f}, from disparity {1 / disp_scale:.4f}")
assert abs(depth_scale - 1 / disp_scale) / depth_scale < 0.01

# %% [markdown]
# ## Exercise 2
#
# *A model outputs disparity, and someone scores it as if it were depth, with least-squares
# scale and shift in depth. What does the fit do, how good does AbsRel look next to a flat map,
# and what does WHDR say?*
#
# Disparity decreases with depth, so the best affine fit has a **negative** scale: it turns
# the map upside down and a good part of the error disappears. AbsRel can then look far better
# than a flat map although the model was scored on the wrong quantity; WHDR, which compares
# orders without fitting anything, reports 1: every pair reversed.

# %%
disparity = 1 / g
aligned, s, _ = metrics.align_scale_shift(disparity, g, valid)
fitted = metrics.depth_metrics(aligned.clamp_min(1e-3), g, valid)["abs_rel"]
flat = metrics.depth_metrics(metrics.flat_map(g, valid), g, valid)["abs_rel"]
a, b = sampling.random_pairs(valid, 2000, generator=torch.Generator().manual_seed(0))
order = metrics.whdr(disparity, g, a, b, valid)
print(
    f"scales {s.flatten().tolist()}; AbsRel fitted {fitted:.3f} vs flat {flat:.3f}; "
    f"WHDR {order:.2f}"
)
assert bool((s < 0).all()) and fitted < flat and order == 1.0

# %% [markdown]
# ## Exercise 3
#
# *Two predictions: every pixel 30 % too far; or half the pixels exact and the other half twice
# too far. Compute AbsRel and δ₁ of each. Which metric prefers which?*
#
# First: $|p - g|/g = 0.3$ everywhere, AbsRel 0.3; but $1.3 > 1.25$ at every pixel, so δ₁ = 0.
# Second: AbsRel $= \frac12 \cdot 0 + \frac12 \cdot 1 = 0.5$, δ₁ = 0.5. AbsRel prefers the first
# (a smaller average error), δ₁ the second (half the pixels are right, none of the first's).
# AbsRel averages the size of errors, δ₁ counts the pixels that are close enough: they rank
# models differently when one spreads a moderate error everywhere and the other concentrates
# large errors on a few pixels, which is why papers report both.

# %%
spread = metrics.depth_metrics(1.3 * g, g, valid)
half = g.clone()
half[..., :, ::2] *= 2.0  # every other column twice too far
half_m = metrics.depth_metrics(half, g, valid)
print(
    {k: round(spread[k], 3) for k in ("abs_rel", "delta1")},
    {k: round(half_m[k], 3) for k in ("abs_rel", "delta1")},
)
assert abs(spread["abs_rel"] - 0.3) < 1e-4 and spread["delta1"] == 0.0
assert abs(half_m["abs_rel"] - 0.5) < 0.01 and abs(half_m["delta1"] - 0.5) < 0.01
assert spread["abs_rel"] < half_m["abs_rel"] and spread["delta1"] < half_m["delta1"]
