# %% [markdown]
# # Solutions to chapter 11 · Learning to render depth of field

# %%
import math

import torch

from lib import metrics
from lib.models.gan import PatchCritic
from lib.models.vae import kl_divergence

gen = torch.Generator().manual_seed(0)

# %% [markdown]
# ## Exercise 1
#
# *Derive the KL divergence of the VAE's posterior $\mathcal N(\mu, \sigma^2)$ from the prior
# $\mathcal N(0, 1)$, one latent value at a time, and check it against `torch.distributions`.*
#
# $\mathrm{KL} = E_q[\log q - \log p]$ with
# $\log q(z) = -\frac12\log(2\pi\sigma^2) - \frac{(z-\mu)^2}{2\sigma^2}$ and
# $\log p(z) = -\frac12\log 2\pi - \frac{z^2}{2}$. Under $q$,
# $E[(z-\mu)^2] = \sigma^2$ and $E[z^2] = \mu^2 + \sigma^2$, so
# $\mathrm{KL} = \frac12(\mu^2 + \sigma^2 - 1 - \log\sigma^2)$: zero only for $\mu = 0$,
# $\sigma = 1$, and it charges both a moved mean and a shrunk or widened spread.

# %%
mu, logvar = torch.randn(4, 8, generator=gen), torch.randn(4, 8, generator=gen)
ours = kl_divergence(mu, logvar)
q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
reference = torch.distributions.kl_divergence(q, p).sum(1)
print(ours, reference)
assert torch.allclose(ours, reference, atol=1e-5)

# %% [markdown]
# ## Exercise 2
#
# *pix2pix calls its critic a "70×70 PatchGAN". Derive the 70 from its layers (three 4×4
# stride-2 convolutions, then two 4×4 stride-1 ones) and measure the receptive field of the
# course's critic (without instance norm, so that each logit depends on its patch only).*
#
# Walking from the input: each layer adds $(k - 1)\cdot j$ pixels, where the jump $j$ is the
# product of the strides before it: $1 + 3(1 + 2 + 4 + 8 + 8) = 70$. To measure it, take the
# gradient of one logit with respect to the input: it is non-zero exactly on the patch that
# logit sees.

# %%
critic = PatchCritic(width=4, layers=3, norm="none")
assert critic.receptive_field()[0] == 70
cond = torch.zeros(1, 7, 160, 160)
image = torch.rand(1, 3, 160, 160, generator=gen, requires_grad=True)
logits = critic(cond, image)
logits[0, 0, logits.shape[2] // 2, logits.shape[3] // 2].backward()
rows = image.grad.abs().sum((0, 1, 3)).nonzero().flatten()
cols = image.grad.abs().sum((0, 1, 2)).nonzero().flatten()
size = (rows.max() - rows.min() + 1).item(), (cols.max() - cols.min() + 1).item()
print(f"one logit sees {size[0]} x {size[1]} input pixels")
assert size == (70, 70)

# %% [markdown]
# ## Exercise 3
#
# *An image in $[0, 1]$ differs from its target by independent noise of standard deviation
# $\sigma$ everywhere. What PSNR do you expect for $\sigma = 0.01$ and $0.1$?*
#
# MSE $= \sigma^2$, so PSNR $= 10\log_{10}(1/\sigma^2) = -20\log_{10}\sigma$: 40 dB and 20 dB. Every
# factor of 10 in error costs 20 dB; a 1 dB gain is an 11 % smaller RMS error; chapter 11's
# renderers differ from each other by a few dB.

# %%
target = torch.rand(1, 3, 64, 64, generator=gen)
for sigma, expected in ((0.01, 40.0), (0.1, 20.0)):
    noisy = target + sigma * torch.randn(target.shape, generator=gen)
    psnr = metrics.psnr_per_image(noisy, target).item()
    print(f"sigma {sigma}: PSNR {psnr:.2f} dB (expected {expected})")
    assert abs(psnr - expected) < 0.1  # 12,288 values: the MSE is within 2 % of sigma^2
assert abs((1 - 10 ** (-1 / 20)) - 0.109) < 1e-3
