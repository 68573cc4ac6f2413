"""Learned depth of field, pix2pix style (Isola et al. 2017): a U-Net generator and a PatchGAN critic.

The generator maps the CONDITION (what a renderer gets: the all-in-focus image, its disparity,
the focus disparity and the blur strength K, see :func:`bokeh_condition`) to the defocused
image; the critic looks at (condition, image) pairs and scores every patch "real" (the
thin-lens render) or "fake" (the generator's). Training alternates (:func:`gan_step`)::

    critic:     L_D = 1/2 [ BCE(D(x, y), 1) + BCE(D(x, G(x)), 0) ]
    generator:  L_G = BCE(D(x, G(x)), 1) + lambda * |G(x) - y|_1          (lambda = 100 in pix2pix,
                                                                           on images in [-1, 1])

The L1 term alone would learn the conditional MEDIAN of the target, which is already sharp where
the target is determined by the input; the adversarial term penalises what no real image looks
like (blur where the truth has texture, smeared edges), patch by patch.

::

    condition (B,7,H,W) = [image - 1/2 (3), disparity, focus disparity, K / scale, CoC / scale]
      -> U-Net: `depth` x [3x3 conv -> GroupNorm -> LeakyReLU -> 4x4 stride-2 conv] (skips at each scale)
         bottleneck (+ optional latent channels, for the conditional VAE of :mod:`lib.models.vae`)
         `depth` x [bilinear x2 -> concat skip -> 3x3 conv -> GroupNorm -> ReLU -> 3x3 conv]
      -> 1x1 conv -> residual r; output image + r   (B,3,H,W), about [0,1] (clamp it to show or score it)

The output is a residual on the input and the last layer starts at zero, so the untrained
generator is the identity: it returns the all-in-focus image and learns only what blur changes.

>>> g, d = UNetGenerator(width=8, depth=2), PatchCritic(width=8, layers=2)
>>> cond = bokeh_condition(torch.rand(2, 3, 32, 32), torch.rand(2, 1, 32, 32) + 0.2, 0.5, 4.0)
>>> fake = g(cond)
>>> fake.shape, d(cond, fake).shape, d.receptive_field()
(torch.Size([2, 3, 32, 32]), torch.Size([2, 1, 6, 6]), (34, 4, 11))
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lib import checks
from lib.bokeh import check_image_and_disparity
from lib.models import depth_net

__all__ = ["bokeh_condition", "UNetGenerator", "PatchCritic", "Pix2Pix", "generator_loss", "critic_loss",
           "critic_loss_from_logits", "gan_step", "CONDITION_CHANNELS"]

CONDITION_CHANNELS = 7


def bokeh_condition(image: torch.Tensor, disparity: torch.Tensor, focus_disparity, K,
                    scale: float = 8.0) -> torch.Tensor:
    """The generator's and critic's input: what a depth-of-field renderer is given, as 7 channels.

    Args:
        image: (B,3,H,W) all-in-focus sRGB in [0,1].
        disparity: (B,1,H,W) 1/depth (1/m), finite.
        focus_disparity: float or (B,) tensor, 1/S_f (1/m).
        K: float or (B,) tensor >= 0, blur radius in pixels per 1/m of disparity (``lib.bokeh``).
        scale: pixels; K and the CoC are divided by it so that the channels are about unit size.

    Returns:
        (B,7,H,W): ``image - 1/2`` (3), ``disparity`` (1), ``focus_disparity`` (a constant plane),
        ``K / scale`` (a plane) and the signed circle of confusion ``K (disparity - focus) / scale``.
        The last one is the product of the others: given explicitly because a convolution adds
        its inputs and cannot easily multiply them. ``image = condition[:, :3] + 1/2``.

    >>> c = bokeh_condition(torch.zeros(1, 3, 4, 4), torch.full((1, 1, 4, 4), 0.5), 0.25, 8.0)
    >>> c.shape, c[0, :, 0, 0].tolist()
    (torch.Size([1, 7, 4, 4]), [-0.5, -0.5, -0.5, 0.5, 0.25, 1.0, 0.25])
    """
    check_image_and_disparity(image, disparity)
    if not scale > 0:
        raise ValueError(f"scale must be > 0 pixels, got {scale!r}")
    B, _, H, W = image.shape
    fd = checks.per_image(focus_disparity, image, "focus_disparity")
    k = checks.per_image(K, image, "K")
    if (k < 0).any():
        raise ValueError(f"K must be >= 0 (pixels * metres), got {K!r}")
    disparity = disparity.to(image.dtype)
    plane = torch.ones_like(disparity)
    return torch.cat([image - 0.5, disparity, fd * plane, k / scale * plane, k * (disparity - fd) / scale], 1)


def _group_norm(c: int) -> nn.GroupNorm:
    return depth_net._group_norm(c, max_groups=8)  # at most 8 groups, as in pix2pix-sized nets


class _Down(nn.Module):
    """3x3 conv -> GroupNorm -> LeakyReLU(0.2) at this scale (the skip), then a 4x4 stride-2 conv."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), _group_norm(c_out), nn.LeakyReLU(0.2))
        self.down = nn.Sequential(nn.Conv2d(c_out, 2 * c_out, 4, stride=2, padding=1), _group_norm(2 * c_out),
                                  nn.LeakyReLU(0.2))

    def forward(self, x):
        skip = self.conv(x)
        return skip, self.down(skip)


class _Up(nn.Module):
    """Bilinear x2 (no checkerboard), concat the skip, two 3x3 convs."""

    def __init__(self, c_in: int, c_skip: int, c_out: int):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(c_in + c_skip, c_out, 3, padding=1), _group_norm(c_out), nn.ReLU(),
                                  nn.Conv2d(c_out, c_out, 3, padding=1), _group_norm(c_out), nn.ReLU())

    def forward(self, x, skip):
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.conv(torch.cat([x, skip], 1))


class UNetGenerator(nn.Module):
    """pix2pix U-Net: condition (B,7,H,W) -> defocused sRGB image (B,3,H,W), ``image + residual``.

    The output is not clamped (a clamp has no gradient outside [0,1]); clamp it to [0,1] to show
    or score it.

    Args:
        width: channels at full resolution; scale k has ``width * 2**k``.
        depth: number of stride-2 downsamplings (H and W must be multiples of ``2**depth``); the
            bottleneck at ``H / 2**depth`` sees about ``2**(depth+2)`` pixels, which must exceed the
            widest blur (diameter) the generator should produce.
        latent_channels: extra channels concatenated at the bottleneck (``forward(cond, z)``, z of
            shape (B, latent_channels, H/2**depth, W/2**depth)); 0 for the GAN.
        in_channels: channels of the condition (``CONDITION_CHANNELS``); the first 3 are ``image - 1/2``.

    pix2pix feeds noise through dropout; it is left out here (the thin-lens target is a function of
    the input, so there is nothing random to model).
    """

    def __init__(self, width: int = 16, depth: int = 3, latent_channels: int = 0,
                 in_channels: int = CONDITION_CHANNELS):
        super().__init__()
        for name, v, lo in (("width", width, 1), ("depth", depth, 1), ("latent_channels", latent_channels, 0),
                            ("in_channels", in_channels, 3)):
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
        self.width, self.depth, self.latent_channels, self.in_channels = width, depth, latent_channels, in_channels
        chans = [width * 2 ** k for k in range(depth + 1)]
        self.downs = nn.ModuleList(_Down(in_channels if k == 0 else chans[k], chans[k]) for k in range(depth))
        c_bottom = chans[depth]
        self.bottleneck = nn.Sequential(nn.Conv2d(c_bottom + latent_channels, c_bottom, 3, padding=1),
                                        _group_norm(c_bottom), nn.LeakyReLU(0.2))
        self.ups = nn.ModuleList(_Up(chans[k + 1], chans[k], chans[k]) for k in reversed(range(depth)))
        self.head = nn.Conv2d(width, 3, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def check(self, cond: torch.Tensor) -> None:
        if not isinstance(cond, torch.Tensor) or cond.dim() != 4 or cond.shape[1] != self.in_channels:
            shape = tuple(cond.shape) if isinstance(cond, torch.Tensor) else type(cond).__name__
            raise ValueError(f"condition must be (B,{self.in_channels},H,W) (see bokeh_condition), got {shape}")
        m = 2 ** self.depth
        if cond.shape[-2] % m or cond.shape[-1] % m:
            raise ValueError(f"H and W must be multiples of 2**depth = {m}, got {tuple(cond.shape[-2:])}")

    def forward(self, cond: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        self.check(cond)
        skips, x = [], cond
        for down in self.downs:
            skip, x = down(x)
            skips.append(skip)
        if self.latent_channels:
            if z is None or z.shape != (x.shape[0], self.latent_channels, *x.shape[-2:]):
                got = None if z is None else tuple(z.shape)
                raise ValueError(f"z must be (B,{self.latent_channels},{x.shape[-2]},{x.shape[-1]}), got {got}")
            x = torch.cat([x, z.to(x.dtype)], 1)
        elif z is not None:
            raise ValueError("this generator has latent_channels=0 and takes no z")
        x = self.bottleneck(x)
        for up, skip in zip(self.ups, reversed(skips)):
            x = up(x, skip)
        return cond[:, :3] + 0.5 + self.head(x)


class PatchCritic(nn.Module):
    """PatchGAN critic: (condition (B,7,H,W), image (B,3,H,W)) -> logits (B,1,h,w), one per patch.

    ``layers`` 4x4 stride-2 convolutions (width, 2 width, ...), then a 4x4 stride-1 one and a 4x4
    stride-1 output convolution, LeakyReLU(0.2) between (the pix2pix C64-C128-C256-C512 design;
    ``layers=3`` is its 70x70 PatchGAN). ``norm="instance"``: an ``InstanceNorm2d`` (no affine,
    no running statistics, as pix2pix's ``--norm instance``) after every convolution but the first
    and the last. pix2pix's default is ``--norm batch``; instance norm is used here so that the
    score of an image does not depend on which other images share its batch (and is the same at
    training and test time). The norm is what lets the critic learn quickly on chapter 11's
    pairs: against a generator that does not blur at all, 150 Adam steps (lr 2e-4) took the
    critic's loss to 0.54 with it and to 0.67 without it (log 2 = 0.69), and inside pix2pix
    training without it the loss stayed at 0.692 for 600 steps. Its price: each channel
    is standardised over the whole image, so every logit feels the whole image a little.
    ``norm="none"``: every logit depends on its patch only, exactly.

    :meth:`receptive_field` gives (size, stride, padding): logit (i, j) sees the input rows
    ``i*stride - padding ... i*stride - padding + size - 1`` (and likewise columns).
    """

    def __init__(self, width: int = 16, layers: int = 2, in_channels: int = CONDITION_CHANNELS + 3,
                 norm: str = "instance"):
        super().__init__()
        for name, v in (("width", width), ("layers", layers), ("in_channels", in_channels)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if norm not in ("instance", "none"):
            raise ValueError(f"norm must be 'instance' or 'none', got {norm!r}")
        self.in_channels, self.norm = in_channels, norm
        chans = [in_channels] + [width * 2 ** k for k in range(layers + 1)]
        mods: list[nn.Module] = []
        for k in range(layers + 1):
            mods.append(nn.Conv2d(chans[k], chans[k + 1], 4, stride=2 if k < layers else 1, padding=1))
            if k > 0 and norm == "instance":
                mods.append(nn.InstanceNorm2d(chans[k + 1], affine=False, track_running_stats=False))
            mods.append(nn.LeakyReLU(0.2))
        mods.append(nn.Conv2d(chans[-1], 1, 4, stride=1, padding=1))
        self.net = nn.Sequential(*mods)

    def receptive_field(self) -> tuple[int, int, int]:
        """(size, stride, padding) in input pixels, from the convolutions: going through the layers,
        ``size += (k - 1) * jump``, ``padding += p * jump``, ``jump *= s`` (jump: input pixels per step)."""
        size, jump, pad = 1, 1, 0
        for m in self.net:
            if isinstance(m, nn.Conv2d):
                size += (m.kernel_size[0] - 1) * m.dilation[0] * jump
                pad += m.padding[0] * jump
                jump *= m.stride[0]
        return size, jump, pad

    def forward(self, cond: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        if not isinstance(cond, torch.Tensor) or not isinstance(image, torch.Tensor):
            raise TypeError("cond and image must be torch tensors")
        if image.dim() != 4 or image.shape[1] != 3 or cond.dim() != 4 or cond.shape[0] != image.shape[0] \
                or cond.shape[-2:] != image.shape[-2:] or cond.shape[1] + 3 != self.in_channels:
            raise ValueError(f"expected cond (B,{self.in_channels - 3},H,W) and image (B,3,H,W), got "
                             f"{tuple(cond.shape)} and {tuple(image.shape)}")
        size = self.receptive_field()[0]
        if min(image.shape[-2:]) < size // 2:
            raise ValueError(f"images of {tuple(image.shape[-2:])} are too small for a critic whose patches are "
                             f"{size} px; use fewer layers")
        return self.net(torch.cat([cond, image], 1))


class Pix2Pix(nn.Module):
    """The pair trained together: ``generator`` (:class:`UNetGenerator`) and ``critic``
    (:class:`PatchCritic`); ``forward(cond)`` is the generator's render, (B,3,H,W).

    One module so that the zoo ships both (the critic shows what it learnt on held-out pairs).

    >>> m = Pix2Pix(width=4, depth=2, critic_width=4, critic_layers=2)
    >>> m(torch.zeros(1, 7, 32, 32)).shape, m.config["depth"]
    (torch.Size([1, 3, 32, 32]), 2)
    """

    def __init__(self, width: int = 16, depth: int = 4, critic_width: int = 16, critic_layers: int = 3,
                 critic_norm: str = "instance"):
        super().__init__()
        self.generator = UNetGenerator(width=width, depth=depth)
        self.critic = PatchCritic(width=critic_width, layers=critic_layers, norm=critic_norm)
        self.config = {"width": width, "depth": depth, "critic_width": critic_width,
                       "critic_layers": critic_layers, "critic_norm": critic_norm}

    def forward(self, cond: torch.Tensor) -> torch.Tensor:
        return self.generator(cond)


def critic_loss_from_logits(logit_real: torch.Tensor, logit_fake: torch.Tensor) -> torch.Tensor:
    """``1/2 [BCE(logit_real, 1) + BCE(logit_fake, 0)]`` averaged over patches: log 2 when the
    critic cannot tell the two apart (every logit 0)."""
    return 0.5 * (F.binary_cross_entropy_with_logits(logit_real, torch.ones_like(logit_real))
                  + F.binary_cross_entropy_with_logits(logit_fake, torch.zeros_like(logit_fake)))


def critic_loss(critic: PatchCritic, cond: torch.Tensor, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """``1/2 [BCE(D(x, y), 1) + BCE(D(x, G(x)), 0)]`` averaged over patches; ``fake`` is detached
    (the critic's step must not move the generator). pix2pix halves it to slow the critic down."""
    return critic_loss_from_logits(critic(cond, real), critic(cond, fake.detach()))


def generator_loss(critic: PatchCritic | None, cond: torch.Tensor, fake: torch.Tensor, real: torch.Tensor,
                   l1_weight: float = 100.0) -> dict[str, torch.Tensor]:
    """pix2pix generator objective: ``BCE(D(x, G(x)), 1) + l1_weight * mean |G'(x) - y'|``.

    The adversarial term is the non-saturating one (maximise log D(x, G(x)) rather than minimise
    log(1 - D)): it still has gradient when the critic confidently rejects the fakes. With
    ``critic=None`` only the L1 term (a plain regression baseline). Returns ``total``, ``adv``, ``l1``.

    Reference: ``junyanz/pytorch-CycleGAN-and-pix2pix``, ``models/pix2pix_model.py``
    (``loss_G = loss_G_GAN + criterionL1(fake_B, real_B) * lambda_L1``, ``lambda_L1 = 100``,
    ``gan_mode="vanilla"``: ``BCEWithLogitsLoss``). Its images are normalised to [-1, 1] (and its
    generator ends in ``tanh``), so its L1 is twice the L1 of the same images in [0, 1]. The course's
    images are in [0, 1]; to keep pix2pix's balance between the two terms, ``l1`` here is measured
    on the images mapped to [-1, 1], ``y' = 2 y - 1`` (i.e. ``2 mean |G(x) - y|``). Difference: the
    generator is a residual U-Net on [0, 1] images without ``tanh`` (it starts as the identity).
    """
    if fake.shape != real.shape:
        raise ValueError(f"fake {tuple(fake.shape)} and real {tuple(real.shape)} differ in shape")
    l1 = 2.0 * (fake - real).abs().mean()             # |(2 fake - 1) - (2 real - 1)|, pix2pix's range
    if critic is None:
        adv = l1.new_zeros(())
    else:
        logits = critic(cond, fake)
        adv = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
    return {"total": adv + l1_weight * l1, "adv": adv, "l1": l1}


def gan_step(generator: UNetGenerator, critic: PatchCritic, opt_g: torch.optim.Optimizer,
             opt_d: torch.optim.Optimizer, cond: torch.Tensor, real: torch.Tensor,
             l1_weight: float = 100.0) -> dict[str, float]:
    """One pix2pix iteration: a critic step on (real, fake) then a generator step. Returns the
    floats ``d`` (critic loss, :func:`critic_loss`), ``adv``, ``l1`` and ``g`` (generator total),
    and ``d_real``, ``d_fake`` (the critic's mean probability "real" on each), before the updates."""
    fake = generator(cond)
    opt_d.zero_grad(set_to_none=True)
    logit_real, logit_fake = critic(cond, real), critic(cond, fake.detach())
    ld = critic_loss_from_logits(logit_real, logit_fake)
    ld.backward()
    opt_d.step()
    opt_g.zero_grad(set_to_none=True)
    for p in critic.parameters():                  # the generator's step leaves the critic as it is
        p.requires_grad_(False)
    lg = generator_loss(critic, cond, fake, real, l1_weight)
    lg["total"].backward()
    for p in critic.parameters():
        p.requires_grad_(True)
    opt_g.step()
    return {"d": ld.item(), "adv": lg["adv"].item(), "l1": lg["l1"].item(), "g": lg["total"].item(),
            "d_real": torch.sigmoid(logit_real).mean().item(),
            "d_fake": torch.sigmoid(logit_fake).mean().item()}
