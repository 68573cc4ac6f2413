# %% [markdown]
# # Solutions to chapter 02 · The model and the training loop

# %%
import torch
import torch.nn as nn

from lib import metrics, models

# %% [markdown]
# ## Exercise 1
#
# *Work out by hand what `nn.PixelShuffle(2)` does to a tensor of four channels holding $a, b,
# c, d$ at a single position, then check it.*
#
# Input channel $k$ goes to position $(k \,\mathrm{div}\, 2, k \bmod 2)$ of the $2\times2$
# block: the output is $\begin{pmatrix} a & b \\ c & d \end{pmatrix}$, one channel, twice the
# size. No weights, no overlap: every output pixel comes from exactly one input value, which is
# why a pixel shuffle cannot make the checkerboards of a transposed convolution.

# %%
x = torch.tensor([1.0, 2.0, 3.0, 4.0]).reshape(1, 4, 1, 1)
y = nn.PixelShuffle(2)(x)
print(y[0, 0])
assert y.shape == (1, 1, 2, 2) and y[0, 0].tolist() == [[1.0, 2.0], [3.0, 4.0]]

# %% [markdown]
# ## Exercise 2
#
# *A prediction $p = (1, 2, 4)$ m of a truth $g = (1, 1, 4)$ m: compute AbsRel and
# δ₁ by hand.*
#
# AbsRel $= \frac13\left(\frac{0}{1} + \frac{1}{1} + \frac{0}{4}\right) = \frac13$; the ratios
# $\max(p/g, g/p)$ are $1, 2, 1$, and two of three are below 1.25: δ₁ $= 2/3$. One bad pixel
# in three costs AbsRel a third here, and more if its error were larger; for δ₁ it costs a third
# however large the error is, as long as it exceeds 25 %.

# %%
p = torch.tensor([1.0, 2.0, 4.0]).reshape(1, 1, 1, 3)
g = torch.tensor([1.0, 1.0, 4.0]).reshape(1, 1, 1, 3)
m = metrics.depth_metrics(p, g, torch.ones_like(g, dtype=torch.bool))
print(f"AbsRel {m['abs_rel']:.4f}, delta1 {m['delta1']:.4f}")
assert abs(m["abs_rel"] - 1 / 3) < 1e-6 and abs(m["delta1"] - 2 / 3) < 1e-6

# %% [markdown]
# ## Exercise 3
#
# *How does the number of parameters grow with `width`? Predict the ratio between widths 8 and
# 16, then count.*
#
# Almost every parameter sits in a convolution from $c_\text{in}$ to $c_\text{out}$ channels,
# $k^2 c_\text{in} c_\text{out}$ weights, and both channel counts are proportional to `width`:
# doubling it multiplies the count by about 4 (a little less: biases, norms and the first
# convolution, whose input is the 3 colour channels, grow only linearly).

# %%
n8 = models.count_parameters(models.DepthMaskNet(width=8))
n16 = models.count_parameters(models.DepthMaskNet(width=16))
print(f"width 8: {n8:,} parameters, width 16: {n16:,}, ratio {n16 / n8:.2f}")
assert 3.6 < n16 / n8 < 4.0

# %% [markdown]
# ## Exercise 4
#
# *The encoder's dilated branch: which input pixels does one output pixel of a $3\times3$
# convolution with dilation 2 depend on?*
#
# Its nine taps sit two pixels apart, at offsets $\{-2, 0, 2\}^2$: a $5\times5$ footprint with
# only nine weights. We ask autograd: the gradient of one output pixel with respect to the
# input is non-zero exactly at those nine pixels.

# %%
conv = nn.Conv2d(1, 1, 3, padding=2, dilation=2, bias=False)
nn.init.constant_(conv.weight, 1.0)
image = torch.zeros(1, 1, 9, 9, requires_grad=True)
conv(image)[0, 0, 4, 4].backward()
rows, cols = torch.nonzero(image.grad[0, 0], as_tuple=True)
print(sorted(set(rows.tolist())), sorted(set(cols.tolist())))
assert len(rows) == 9 and set(rows.tolist()) == set(cols.tolist()) == {2, 4, 6}
