# %% [markdown]
# # Solutions to chapter 04 · Scale-invariant losses

# %%
import torch

from lib import data, losses, metrics

room = data.SyntheticRGBD(2, size=(32, 32), seed=0, split="test", progress=False)
g = torch.stack([room[i]["depth"] for i in range(2)])
valid = torch.stack([room[i]["valid"] for i in range(2)])
noise = torch.exp(
    0.1 * torch.randn(g.shape, generator=torch.Generator().manual_seed(0))
)
pred = g * noise  # a prediction with 10 % log-normal noise

# %% [markdown]
# ## Exercise 1
#
# *Show that Eigen's loss with $\lambda = 1$ does not change when the prediction is multiplied
# by a constant $c$, and that with $\lambda = 0.5$ it grows by $\tfrac12\log^2 c$, $(1-\lambda)\log^2 c$,
# when the prediction's log errors average to zero.*
#
# With $d_i = \log \hat Z_i - \log Z_i$ the log error at pixel $i$, multiplying the prediction by
# $c$ gives $d_i \to d_i + \log c$ for every pixel. The loss is
# $\mathrm{Var}(d) + (1-\lambda)\bar d^2$; the variance ignores the shift, the mean moves by
# $\log c$. With $\lambda = 1$ the second term vanishes; otherwise it is the only change, and
# for a prediction whose mean log error is already 0 the increase is $(1-\lambda)\log^2 c$.

# %%
centred = pred * torch.exp(-(pred.log() - g.log())[valid].mean())  # mean log error 0
for lam in (1.0, 0.5):
    base = losses.scale_invariant_loss(centred, g, valid, lam=lam).item()
    scaled = losses.scale_invariant_loss(3.0 * centred, g, valid, lam=lam).item()
    expected = base + (1 - lam) * torch.log(torch.tensor(3.0)).item() ** 2
    print(f"lambda {lam}: {base:.5f} -> {scaled:.5f} (predicted {expected:.5f})")
    assert abs(scaled - expected) < 2e-3 * max(1.0, expected)

# %% [markdown]
# ## Exercise 2
#
# *Derive the least-squares scale and shift $\arg\min_{s,t}\sum_i (s p_i + t - g_i)^2$ and check it
# against a generic solver.*
#
# Setting both derivatives to zero gives the normal equations
# $s\sum p^2 + t \sum p = \sum pg$ and $s \sum p + t n = \sum g$; eliminating $t$,
# $s = \mathrm{cov}(p, g)/\mathrm{var}(p)$ and $t = \bar g - s \bar p$. `torch.linalg.lstsq` on
# the design matrix $[p, 1]$ must find the same numbers.

# %%
p1, g1, v1 = pred[:1], g[:1], valid[:1]
_, s, t = metrics.align_scale_shift(p1, g1, v1)
A = torch.stack([p1[v1], torch.ones(int(v1.sum()))], 1).double()
solution = torch.linalg.lstsq(A, g1[v1].double()[:, None]).solution.flatten()
print(f"closed form s={s.item():.5f} t={t.item():.5f}; lstsq {solution.tolist()}")
assert torch.allclose(
    torch.stack([s.flatten()[0], t.flatten()[0]]).double(), solution, atol=1e-4
)

# %% [markdown]
# ## Exercise 3
#
# *The SSI loss forgives any scale and shift, including a negative scale. What does it say about
# a "prediction" that is the truth upside down, $5 - g$?*
#
# The fit finds $s = -1, t = 5$ and the aligned prediction is exactly $g$: loss 0. The loss
# cannot tell a map from its reversal, since it is invariant to $a p + b$ for any $a \ne 0$.
# The gradient-matching term does not help: it compares the gradients of the *aligned* map
# $s p + t$, which is the same for $p$ and $-p$. Nothing in the loss prefers one sign, so a
# network trained with it can learn the reversed order, and an evaluation with least-squares
# alignment cannot notice. Chapter 06's table shows it: look for a WHDR above 0.5 (most pairs
# reversed) next to a respectable AbsRel. WHDR, which fits nothing, does see order.

# %%
flipped = 5.0 - g
print(
    f"SSI loss of the truth {losses.ssi_loss(g, g, valid).item():.2e}, "
    f"of 5 - truth {losses.ssi_loss(flipped, g, valid).item():.2e}"
)
_, s, t = metrics.align_scale_shift(flipped, g, valid)
print(f"fitted scale {s.flatten().tolist()}, shift {t.flatten().tolist()}")
assert losses.ssi_loss(flipped, g, valid).item() < 1e-6
assert torch.allclose(s.flatten(), torch.tensor([-1.0, -1.0]), atol=1e-4)
assert torch.allclose(t.flatten(), torch.tensor([5.0, 5.0]), atol=1e-3)
