# %% [markdown]
# # Solutions to chapter 00 · A tour of monocular depth
#
# Each solution states its reasoning, then checks it with code that asserts what it finds, so
# the test suite (`tests/test_solutions.py`) keeps every answer true.

# %%
import torch

from lib import data

# %% [markdown]
# ## Exercise 1
#
# *A chair 0.9 m tall stands 3 m from a pinhole camera with $f = 500$ px. How many pixels tall is
# its image? And a chair twice as large, twice as far away?*
#
# The pinhole projects a height $Y$ at depth $Z$ to $y = fY/Z$ pixels: $500 \cdot 0.9 / 3 = 150$
# px. The larger chair gives $500 \cdot 1.8 / 6 = 150$ px as well: the image only knows $Y/Z$.
# This is the scale ambiguity of the chapter: one image cannot tell a scene from a scaled copy.

# %%
f = 500.0
small, large = f * 0.9 / 3.0, f * 1.8 / 6.0
print(f"small chair {small:.1f} px, large chair {large:.1f} px")
assert small == large == 150.0

# %% [markdown]
# ## Exercise 2
#
# *A stereo rig with focal length $f$ (pixels) and baseline $B$ measures disparity $d = fB/Z$.
# How large is the depth error caused by a disparity error of one pixel, at 2 m and at 8 m, for
# Middlebury's $f = 994.978$ px and $B = 0.193$ m?*
#
# $Z = fB/d$, so $\mathrm{d}Z/\mathrm{d}d = -fB/d^2 = -Z^2/(fB)$: the error grows with the
# **square** of the depth. At 2 m, $4 / 192.0 \approx 0.021$ m; at 8 m, 16 times more, about
# 0.33 m. That is why disparity (not depth) is the natural space of stereo data, and why
# losses and metrics weigh near pixels more in disparity (chapters 04 and 06).

# %%
fB = 994.978 * 0.193
for Z in (2.0, 8.0):
    d = fB / Z
    exact = Z - fB / (d + 1.0)  # one pixel more disparity
    approx = Z**2 / fB
    print(f"Z = {Z} m: exact {exact:.4f} m, Z^2/(fB) = {approx:.4f} m")
    assert abs(exact - approx) / approx < 0.05
exact_ratio = (8.0 - fB / (fB / 8.0 + 1)) / (2.0 - fB / (fB / 2.0 + 1))
print(f"error at 8 m / error at 2 m: {exact_ratio:.1f} (Z^2 predicts 16)")
assert (
    14 < exact_ratio < 16
)  # a little under 16: the exact error grows like Z^2 / (fB + Z)

# %% [markdown]
# ## Exercise 3
#
# *Back-project a synthetic room into 3D points with its intrinsics $K$, project them again, and
# check that you land on the pixels you started from. Then multiply the depth by 2: where do
# the points go, and where do they project?*
#
# A pixel $(u, v)$ with depth $Z$ is the point $X = Z K^{-1} (u, v, 1)^\top$. Projecting,
# $K X / Z = (u, v, 1)^\top$. Doubling $Z$ doubles $X$ (every point twice as far from the
# camera centre, along the same ray) and projects to the same pixel: the image cannot see it.

# %%
sample = data.SyntheticRGBD(1, size=(32, 48), seed=0, split="test", progress=False)[0]
K, Z = sample["intrinsics"].double(), sample["depth"][0].double()
v, u = torch.meshgrid(torch.arange(32.0), torch.arange(48.0), indexing="ij")
pixels = torch.stack([u, v, torch.ones_like(u)]).reshape(3, -1).double()


def back_project(depth):
    return torch.linalg.inv(K) @ pixels * depth.reshape(1, -1)


def project(X):
    p = K @ X
    return p[:2] / p[2:]


points, doubled = back_project(Z), back_project(2 * Z)
assert torch.allclose(project(points), pixels[:2], atol=1e-9)
assert torch.allclose(
    project(doubled), pixels[:2], atol=1e-9
)  # the image cannot see it
ratio = doubled.norm(dim=0) / points.norm(dim=0)
assert torch.allclose(ratio, torch.full_like(ratio, 2.0))  # each point twice as far
print("reprojection exact; doubled depth -> same pixels, points twice as far")
