# %% [markdown]
# # Solutions to chapter 07 · Teacher and student

# %%
import torch

from lib import cutmix, losses
from lib.pseudo_label_loss import ignore_top, pseudo_label_loss

gen = torch.Generator().manual_seed(0)

# %% [markdown]
# ## Exercise 1
#
# *With UniMatch's defaults ($p = 0.5$, area fraction uniform in $[0.02, 0.4]$), what share of
# the pixels of a CutMixed batch comes from the second image? Predict, then count.*
#
# Half the images get no box; the others a box of expected area $(0.02 + 0.4)/2 = 0.21$ of the
# image. So $0.5 \cdot 0.21 = 0.105$, slightly less in practice because both sides are rounded
# down to whole pixels: $w = \lfloor\sqrt{A/r}\rfloor$, $h = \lfloor\sqrt{A r}\rfloor$. The
# expected rounded area, averaged over the drawn area and ratio (below, by sampling the formula),
# is about 0.1025 on 96-pixel images. With 16,000 boxes the standard error of the measured share
# is about 0.001 (a box covers 0 or about 0.21 of its image: standard deviation about 0.13).

# %%
H = W = 96
boxes = cutmix.cutmix_boxes(16000, (H, W), generator=gen)
share = boxes.float().mean().item()
rng = torch.Generator().manual_seed(1)
a = 0.02 + 0.38 * torch.rand(400_000, generator=rng, dtype=torch.float64)
r = 0.3 + (1 / 0.3 - 0.3) * torch.rand(400_000, generator=rng, dtype=torch.float64)
rounded = torch.floor((a * H * W / r).sqrt()) * torch.floor((a * H * W * r).sqrt())
predicted = 0.5 * (rounded / (H * W)).mean().item()
se = boxes.flatten(1).float().mean(1).std().item() / 16000**0.5
print(
    f"share of pasted pixels: {share:.4f} (predicted {predicted:.4f}, "
    f"standard error {se:.4f})"
)
assert abs(share - predicted) < 3 * se and share < 0.105

# %% [markdown]
# ## Exercise 2
#
# *`ignore_top` with fraction 0.1: how many pixels does it drop from an image with 37 valid
# pixels, and which ones?*
#
# $\lfloor 0.1 \cdot 37 \rfloor = 3$: the three largest residuals, whatever their size. It is a
# rank rule, not a threshold: an image the teacher labelled well loses its three least-good
# pixels all the same.

# %%
residual = torch.arange(64.0).view(1, 1, 8, 8)
valid = torch.zeros(1, 1, 8, 8, dtype=torch.bool)
valid.view(-1)[:37] = True
kept = ignore_top(residual, valid, fraction=0.1)
dropped = (valid & ~kept).view(-1).nonzero().flatten().tolist()
print(f"dropped pixels {dropped}")
assert dropped == [34, 35, 36]

# %% [markdown]
# ## Exercise 3
#
# *The pseudo-label loss normalises both maps by their median and mean absolute deviation.
# Is it invariant to $a \cdot \text{pseudo} + b$? For every $a$?*
#
# Subtracting the median removes $b$; dividing by the MAD removes $|a|$. But a negative $a$
# flips the normalised map, so the loss changes: unlike the least-squares SSI loss of chapter
# 04, which fits a signed scale, the median/MAD form keeps the order of near and far.

# %%
pred = torch.rand(2, 1, 16, 16, generator=gen) + 0.2
pseudo = pred + 0.05 * torch.randn(2, 1, 16, 16, generator=gen)
ok = torch.ones_like(pred, dtype=torch.bool)
base = pseudo_label_loss(pred, pseudo, ok).item()
affine = pseudo_label_loss(pred, 3.0 * pseudo + 7.0, ok).item()
flipped = pseudo_label_loss(pred, -pseudo, ok).item()
print(f"loss {base:.4f}; after 3x + 7 {affine:.4f}; after -x {flipped:.4f}")
assert abs(base - affine) < 1e-5 and flipped > 5 * base

# %% [markdown]
# ## Exercise 4
#
# *Feature alignment with margin $m = 0.15$: what loss and what gradient does a student get
# whose features already have cosine similarity above $1 - m$ with the frozen encoder's
# everywhere?*
#
# Every location has $d_i = 1 - \cos < m$ and is left out: loss 0, gradient 0. The student's
# features are free to differ from the encoder's within the margin, which is the point: depth
# needs them to differ where semantics do not.

# %%
teacher = torch.randn(2, 16, 4, 4, generator=gen)
student = (teacher + 0.1 * torch.randn(2, 16, 4, 4, generator=gen)).requires_grad_()
cos = torch.nn.functional.cosine_similarity(student, teacher, dim=1)
assert bool((1 - cos < 0.15).all())
loss = losses.feature_alignment_loss(student, teacher, margin=0.15)
loss.backward()
grad = 0.0 if student.grad is None else student.grad.abs().max().item()
print(f"loss {loss.item():.4f}, largest gradient {grad:.2e}")
assert loss.item() == 0.0 and grad == 0.0
far = losses.feature_alignment_loss(-teacher, teacher, margin=0.15).item()
assert abs(far - 2.0) < 1e-5  # opposite features: d = 2 everywhere, all counted
