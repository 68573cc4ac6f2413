# %% [markdown]
# # Solutions to chapter 08 · Patch fusion and tiled inference

# %%
import math

import torch
import torch.nn.functional as F

from lib import metrics
from lib.models.tiling import tile_boxes

# %% [markdown]
# ## Exercise 1
#
# *Why does P49 have 49 tiles? How many tiles cover a corner pixel, and at most how many cover
# any pixel?*
#
# The $4\times4$ grid (16), the grid shifted half a tile down ($3\times4 = 12$), across
# ($4\times3 = 12$) and both ($3\times3 = 9$): $16 + 12 + 12 + 9 = 49$. A corner pixel lies only in
# the corner tile of the plain grid: 1. A pixel inside lies in one tile of each of the four
# grids at most, so at most 4 tiles overlap there, and their blending is what hides the seams.

# %%
H, W = 64, 96
boxes = tile_boxes(H, W, "P49")
cover = torch.zeros(H, W, dtype=torch.long)
for y0, x0, y1, x1 in boxes.tolist():
    cover[y0:y1, x0:x1] += 1
print(
    f"{len(boxes)} tiles; corner covered {cover[0, 0].item()}x, "
    f"coverage from {cover.min().item()} to {cover.max().item()}"
)
assert len(boxes) == 49 and cover[0, 0] == 1 and cover.min() == 1 and cover.max() == 4

# %% [markdown]
# ## Exercise 2
#
# *Two tiles predict 2 m and 8 m for a pixel at 4 m: each is off by a factor of 2. Which
# average is right, the mean of the depths or of the log-depths? And on average, when each
# tile's scale error is log-normal?*
#
# $(2 + 8)/2 = 5$ m, 25 % too far; $\exp\frac{\log 2 + \log 8}{2} = 4$ m, exact. Scale errors
# are multiplicative, so they are symmetric in $\log$: averaging log-depths cancels them,
# averaging depths is biased towards the larger one ($E[e^X] = e^{\sigma^2/2} > 1$ for
# $X \sim N(0, \sigma^2)$, Jensen's inequality). The log average is unbiased in log-depth (the
# mean of $\log(\text{fused}/\text{true})$ is 0), and its ratio is off only by
# $e^{\sigma^2/8}$ for four tiles, since averaging shrinks the spread.

# %%
assert (2 + 8) / 2 == 5.0 and abs(
    torch.tensor([2.0, 8.0]).log().mean().exp() - 4.0
) < 1e-6
gen = torch.Generator().manual_seed(0)
scale_errors = torch.exp(
    0.3 * torch.randn(100_000, 4, generator=gen)
)  # 4 tiles per pixel
depth_mean = scale_errors.mean(1).mean().item()
log_mean = scale_errors.log().mean(1).exp().mean().item()
print(
    f"mean over pixels of the fused/true ratio: depths {depth_mean:.4f}, "
    f"logs {log_mean:.4f}"
)
by_depth, by_log = scale_errors.mean(1), scale_errors.log().mean(1).exp()
se = max(by_depth.std().item(), by_log.std().item()) / len(by_depth) ** 0.5
assert abs(depth_mean - math.exp(0.3**2 / 2)) < 4 * se  # Jensen: e^(sigma^2 / 2)
assert (
    abs(log_mean - math.exp(0.3**2 / 8)) < 4 * se
)  # the mean of 4 logs: e^(sigma^2 / 8)
assert abs(log_mean - 1) < abs(depth_mean - 1)
assert abs(scale_errors.log().mean(1).mean().item()) < 0.002

# %% [markdown]
# ## Exercise 3
#
# *The coarse network sees the image at a quarter of its resolution. What does upsampling its
# output do to a depth edge, as the soft edge error measures it?*
#
# Downsampling averages the two sides of the edge into intermediate depths, and bilinear
# upsampling spreads them over several pixels: at the true edge, no pixel within one step has
# the right depth, and the soft edge error (whose $3\times3$ window forgives one pixel of
# misplacement) charges the difference. A fine prediction at full resolution keeps the step.

# %%
truth = torch.ones(1, 1, 64, 64)
truth[..., 30:] = 4.0
coarse = F.interpolate(
    F.interpolate(truth, size=(16, 16), mode="area"),
    size=(64, 64),
    mode="bilinear",
    align_corners=False,
)
ok = torch.ones_like(truth, dtype=torch.bool)
see_coarse = metrics.soft_edge_error(coarse, truth, ok)
see_fine = metrics.soft_edge_error(truth, truth, ok)
print(
    f"soft edge error: coarse upsampled {see_coarse:.3f} m, "
    f"full resolution {see_fine:.3f} m"
)
assert see_fine == 0.0 and see_coarse > 0.5
