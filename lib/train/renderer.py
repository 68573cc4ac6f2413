"""Training a learned depth-of-field renderer (chapter 11): pix2pix or a conditional VAE.

The two models see the same stream of training batches: at step ``t`` the generator seeded
``(seed, t)`` picks ``batch_size`` pairs, one random ``crop`` window (the same for the batch)
and a left-right flip, so the stream is reproducible and a resumed run continues it exactly
without storing any random state (the VAE's reparameterisation noise is drawn from a
generator seeded by the step too). The condition of a crop is the crop of the condition
(:func:`lib.models.bokeh_condition` is per pixel), so it is computed per batch.

Schedule: Adam (``betas=(0.5, 0.999)``, pix2pix's), the learning rate constant for the first
half of the steps and then decayed linearly to zero (pix2pix's ``n_epochs`` and
``n_epochs_decay``, here in steps). ``fit_renderer`` checkpoints every ``checkpoint_every``
steps (atomically) and a rerun resumes from the checkpoint.

>>> pairs = {"image": torch.rand(4, 3, 32, 32), "target": torch.rand(4, 3, 32, 32),
...          "disparity": torch.rand(4, 1, 32, 32) + 0.2, "focus_disparity": torch.rand(4),
...          "K": torch.full((4,), 4.0)}
>>> cond, target = renderer_batch(pairs, step=0, batch_size=2, crop=16, seed=0)
>>> tuple(cond.shape), tuple(target.shape)
((2, 7, 16, 16), (2, 3, 16, 16))
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from lib.train.checkpoint import atomic_save, load_checkpoint

__all__ = ["renderer_batch", "fit_renderer", "KINDS"]

KINDS = ("gan", "vae")
PAIR_KEYS = ("image", "target", "disparity", "focus_disparity", "K")


def renderer_batch(pairs: dict, step: int, batch_size: int, crop: int, seed: int = 0,
                   device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Batch ``step`` of the stream: (condition (B,7,crop,crop), target (B,3,crop,crop)).

    ``pairs`` holds stacked tensors ``image`` (N,3,H,W), ``target`` (N,3,H,W), ``disparity``
    (N,1,H,W), ``focus_disparity`` (N,) and ``K`` (N,).
    """
    from lib.models import bokeh_condition

    missing = [k for k in PAIR_KEYS if k not in pairs]
    if missing:
        raise KeyError(f"pairs lack {missing}; they need {PAIR_KEYS}")
    N, _, H, W = pairs["image"].shape
    if not 0 < crop <= min(H, W):
        raise ValueError(f"crop must be in 1..{min(H, W)} pixels, got {crop!r}")
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(step))
    idx = torch.randint(0, N, (batch_size,), generator=g)
    y0 = int(torch.randint(0, H - crop + 1, (), generator=g))
    x0 = int(torch.randint(0, W - crop + 1, (), generator=g))
    flip = bool(torch.rand((), generator=g) < 0.5)
    win = (idx, slice(None), slice(y0, y0 + crop), slice(x0, x0 + crop))
    image, target, disparity = (pairs[k][win].to(device) for k in ("image", "target", "disparity"))
    if flip:
        image, target, disparity = image.flip(-1), target.flip(-1), disparity.flip(-1)
    cond = bokeh_condition(image, disparity, pairs["focus_disparity"][idx].to(device),
                           pairs["K"][idx].to(device))
    return cond, target


def _lr_factor(step: int, steps: int) -> float:
    """1 for the first half, then linear to 0 at ``steps`` (pix2pix's 'linear' policy)."""
    half = steps // 2
    return 1.0 if step < half else max(0.0, 1.0 - (step - half) / max(steps - half, 1))


def fit_renderer(model: nn.Module, pairs: dict, kind: str, *, steps: int, batch_size: int = 16,
                 crop: int = 64, lr: float = 2e-4, l1_weight: float = 100.0, sigma: float = 0.05,
                 seed: int = 0, device="cpu", checkpoint: str | os.PathLike | None = None,
                 checkpoint_every: int = 250, log_every: int = 50,
                 progress: bool = True) -> list[dict]:
    """Train ``model`` in place; return the log (one row per ``log_every`` steps, averaged).

    Args:
        model: ``kind="gan"``: a :class:`lib.models.Pix2Pix` (its ``generator`` and ``critic``
            are trained by :func:`lib.models.gan_step`); ``kind="vae"``: a
            :class:`lib.models.ConditionalVAE` trained on :func:`lib.models.vae_loss`.
        pairs: see :func:`renderer_batch`.
        l1_weight: pix2pix's lambda (GAN only); sigma: the VAE likelihood's standard deviation.
        checkpoint: a file; when it exists the run resumes from it.

    Log rows: ``step``, and for the GAN ``d`` (critic loss), ``adv``, ``l1`` (on [-1, 1]),
    ``d_real`` and ``d_fake`` (mean critic probabilities); for the VAE ``total``, ``recon``,
    ``kl`` (nats per value) and ``l1`` (on [0, 1]).
    """
    from tqdm.auto import tqdm

    from lib.models import gan_step, vae_loss

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if checkpoint is not None and checkpoint_every % log_every:
        raise ValueError(f"checkpoint_every ({checkpoint_every}) must be a multiple of log_every "
                         f"({log_every}), so that a checkpoint holds whole log rows")
    device = torch.device(device)
    model.to(device).train()
    if kind == "gan":
        opts = [torch.optim.Adam(m.parameters(), lr, betas=(0.5, 0.999))
                for m in (model.generator, model.critic)]
    else:
        opts = [torch.optim.Adam(model.parameters(), lr, betas=(0.5, 0.999))]
    start, log = 0, []
    path = Path(checkpoint) if checkpoint is not None else None
    if path is not None and path.exists():
        ckpt = load_checkpoint(path)
        model.load_state_dict(ckpt["model"])
        for opt, state in zip(opts, ckpt["optimizers"]):
            opt.load_state_dict(state)
        start, log = int(ckpt["step"]), list(ckpt["log"])
    rows: list[dict] = []
    bar = tqdm(range(start, steps), initial=start, total=steps, desc=kind, disable=not progress)
    for step in bar:
        for opt in opts:
            for group in opt.param_groups:
                group["lr"] = lr * _lr_factor(step, steps)
        cond, target = renderer_batch(pairs, step, batch_size, crop, seed, device)
        if kind == "gan":
            row = gan_step(model.generator, model.critic, *opts, cond, target, l1_weight=l1_weight)
        else:
            noise = torch.Generator().manual_seed(int(seed) * 1_000_003 + step + 1)
            out, mu, logvar = model(cond, target, noise)
            loss = vae_loss(out, target, mu, logvar, sigma=sigma)
            opts[0].zero_grad(set_to_none=True)
            loss["total"].backward()
            opts[0].step()
            row = {k: v.item() for k, v in loss.items()}
            row["l1"] = (out - target).abs().mean().item()
        rows.append(row)
        done = step + 1
        if done % log_every == 0 or done == steps:
            log.append({"step": done, **{k: round(sum(r[k] for r in rows) / len(rows), 5)
                                         for k in rows[0]}})
            rows = []
            bar.set_postfix({k: v for k, v in log[-1].items() if k != "step"})
        if path is not None and (done % checkpoint_every == 0 or done == steps) and not rows:
            atomic_save({"model": model.state_dict(), "step": done, "log": log,
                         "optimizers": [o.state_dict() for o in opts]}, path)
    model.eval()
    return log
