"""A conditional VAE (Sohn et al. 2015) for depth of field: the likelihood-model baseline of the GAN.

The model of the defocused image y given the condition x (:func:`lib.models.gan.bokeh_condition`)::

    prior        p(z)        = N(0, I),         z of shape (B, latent, H/2**depth, W/2**depth)
    decoder      p(y | x, z) = N(G(x, z), sigma^2 I)  with G the U-Net of lib.models.gan
    encoder      q(z | x, y) = N(mu(x, y), diag exp(logvar(x, y)))

trained by maximising the evidence lower bound, i.e. minimising per image (D = 3HW values)

    -ELBO = E_q[ |y - G(x, z)|^2 ] / (2 sigma^2) + KL(q(z|x,y) || p(z)) + const,
    KL    = 1/2 sum_j ( mu_j^2 + exp(logvar_j) - 1 - logvar_j )                      (closed form)

with one reparameterised sample ``z = mu + exp(logvar/2) * eps``. :func:`vae_loss` divides both
terms by D (nats per value). The Gaussian likelihood makes the reconstruction an L2 loss: where
the input does not pin the target down (texture under a blur edge, the exact shape of a disc),
the decoder's best answer is the conditional MEAN, a blur of the possibilities: a likelihood
model trades sharpness for coverage. At test time ``forward(cond)`` decodes z = 0, the prior's mode.

>>> vae = ConditionalVAE(width=8, depth=2, latent_channels=2)
>>> cond, y = torch.rand(2, 7, 16, 16), torch.rand(2, 3, 16, 16)
>>> out, mu, logvar = vae(cond, y)
>>> out.shape, mu.shape, float(kl_divergence(torch.zeros(1, 2), torch.zeros(1, 2)))
(torch.Size([2, 3, 16, 16]), torch.Size([2, 2, 4, 4]), 0.0)
"""
from __future__ import annotations

import torch
from torch import nn

from lib.models.gan import CONDITION_CHANNELS, UNetGenerator, _group_norm

__all__ = ["ConditionalVAE", "kl_divergence", "vae_loss"]


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, diag exp(logvar)) || N(0, I))`` in nats, summed over all but the first dimension.

    Args:
        mu, logvar: (B, ...) the mean and log-variance of a diagonal Gaussian.

    Returns:
        (B,) ``1/2 sum (mu^2 + exp(logvar) - 1 - logvar)``: >= 0, and 0 only when mu = 0, logvar = 0.

    >>> kl_divergence(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 0.0]]))
    tensor([0.5000])
    """
    if not isinstance(mu, torch.Tensor) or not isinstance(logvar, torch.Tensor):
        raise TypeError("mu and logvar must be torch tensors")
    if mu.shape != logvar.shape or mu.dim() < 2:
        raise ValueError(f"mu and logvar must have the same shape (B, ...), got {tuple(mu.shape)} and "
                         f"{tuple(logvar.shape)}")
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).flatten(1).sum(1)


def vae_loss(out: torch.Tensor, target: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
             sigma: float = 0.05, beta: float = 1.0) -> dict[str, torch.Tensor]:
    """Negative ELBO per output value: ``mean (out - target)^2 / (2 sigma^2) + beta * KL / D``.

    ``sigma`` is the likelihood's standard deviation (sRGB units): smaller trusts the pixels more
    and the latent code less. ``beta = 1`` is the true bound (beta-VAE otherwise). Returns
    ``total``, ``recon`` and ``kl`` (both already per value, without beta). The constant
    ``log(sigma sqrt(2 pi))`` of the Gaussian is left out.
    """
    if out.shape != target.shape:
        raise ValueError(f"out {tuple(out.shape)} and target {tuple(target.shape)} differ in shape")
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma!r}")
    D = out[0].numel()
    recon = (out - target).pow(2).mean() / (2 * sigma ** 2)
    kl = kl_divergence(mu, logvar).mean() / D
    return {"total": recon + beta * kl, "recon": recon, "kl": kl}


class ConditionalVAE(nn.Module):
    """Conditional VAE: condition (B,7,H,W) [+ target (B,3,H,W)] -> image (B,3,H,W) (image + residual, as the GAN).

    ``forward(cond, target, generator=None)`` (training) encodes ``q(z | x, y)``, draws one
    reparameterised z (with ``generator`` when given) and returns ``(image, mu, logvar)``; ``forward(cond)`` (inference) decodes ``z = 0`` and returns the
    image only; ``sample(cond, generator)`` decodes z drawn from the prior.

    The decoder is :class:`~lib.models.gan.UNetGenerator` (the GAN's generator, with the latent
    channels added at its bottleneck); the encoder is ``depth`` stride-2 4x4 convolutions on
    (condition, target) down to the bottleneck's size, then a 1x1 convolution to (mu, logvar).
    """

    def __init__(self, width: int = 16, depth: int = 3, latent_channels: int = 4,
                 in_channels: int = CONDITION_CHANNELS):
        super().__init__()
        if isinstance(latent_channels, bool) or not isinstance(latent_channels, int) or latent_channels < 1:
            raise ValueError(f"latent_channels must be a positive integer, got {latent_channels!r}")
        self.decoder = UNetGenerator(width, depth, latent_channels, in_channels)
        self.latent_channels, self.depth = latent_channels, depth
        self.config = {"width": width, "depth": depth, "latent_channels": latent_channels}
        mods: list[nn.Module] = []
        c = in_channels + 3
        for k in range(depth):
            c_out = width * 2 ** (k + 1)
            mods += [nn.Conv2d(c, c_out, 4, stride=2, padding=1), _group_norm(c_out), nn.LeakyReLU(0.2)]
            c = c_out
        self.encoder = nn.Sequential(*mods)
        self.to_stats = nn.Conv2d(c, 2 * latent_channels, 1)
        nn.init.zeros_(self.to_stats.weight)          # q starts at the prior: KL = 0 at initialisation
        nn.init.zeros_(self.to_stats.bias)

    def encode(self, cond: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, logvar), each (B, latent, H/2**depth, W/2**depth)."""
        self.decoder.check(cond)
        if not isinstance(target, torch.Tensor) or target.shape != (cond.shape[0], 3, *cond.shape[-2:]):
            got = tuple(target.shape) if isinstance(target, torch.Tensor) else type(target).__name__
            raise ValueError(f"target must be (B,3,H,W) matching the condition {tuple(cond.shape)}, got {got}")
        mu, logvar = self.to_stats(self.encoder(torch.cat([cond, target.to(cond.dtype)], 1))).chunk(2, 1)
        return mu, logvar.clamp(-10.0, 10.0)

    def _latent_shape(self, cond: torch.Tensor) -> tuple[int, ...]:
        m = 2 ** self.depth
        return (cond.shape[0], self.latent_channels, cond.shape[-2] // m, cond.shape[-1] // m)

    def forward(self, cond: torch.Tensor, target: torch.Tensor | None = None,
                generator: torch.Generator | None = None):
        if target is None:
            self.decoder.check(cond)
            return self.decoder(cond, cond.new_zeros(self._latent_shape(cond)))
        mu, logvar = self.encode(cond, target)
        if generator is None:
            eps = torch.randn_like(mu)
        else:                                 # a CPU generator: reproducible on any device
            eps = torch.randn(mu.shape, generator=generator).to(mu.device, mu.dtype)
        z = mu + torch.exp(0.5 * logvar) * eps
        return self.decoder(cond, z), mu, logvar

    @torch.no_grad()
    def sample(self, cond: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Decode z ~ N(0, I) (drawn on the CPU with ``generator``, for reproducibility)."""
        self.decoder.check(cond)
        z = torch.randn(self._latent_shape(cond), generator=generator).to(cond.device, cond.dtype)
        return self.decoder(cond, z)
