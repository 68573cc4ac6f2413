r"""The course's own pretrained models: trained once by the course's recipes, shipped in ``weights/``.

Papers start from pretrained networks (Depth Anything from DINOv2, PatchFusion from a metric depth
model, BokehMe from its own renderer); a chapter that has a minute of CPU cannot train such a
network, but it can load one. Each *entry* of the zoo is a recipe in code (model, data, loss,
schedule) that ``python -m lib.zoo train NAME`` runs, writing

- ``weights/NAME.pt``: the state dict in float16 (read back as float32);
- ``weights/NAME.json``: the *card*: the recipe and its parameters, the input ``size``, steps,
  wall time, machine, git commit, training data, the training curve, the metrics on the synthetic
  test split and on the real motorcycle (with a flat-map baseline), and the file's ``sha256``.

Nothing is ever downloaded. :func:`load` checks the file against the card's sha256 *before*
reading it with ``torch.load(..., weights_only=True)``, so a weights file is never unpickled as
code, and a missing, truncated or tampered file raises an error that names it and says how to
rebuild it. ``python -m lib.zoo verify`` re-evaluates every shipped model on its card's test data
and fails when a metric moved beyond a small tolerance::

    python -m lib.zoo list                 # the entries, and which are shipped
    python -m lib.zoo train depth          # run the recipe (resumable: rerun after a stop)
    python -m lib.zoo verify               # sha256 + metrics of every shipped model

>>> 'depth' in ENTRIES and 'bokeh_gan' in ENTRIES
True
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from lib.paths import REPO, data_dir

__all__ = ["ENTRIES", "Entry", "DepthRecipe", "BokehRecipe", "FusionRecipe", "bokeh_pairs", "recipe", "load", "export_onnx", "card", "train", "verify", "weights_dir", "shipped",
           "ZooError"]


class ZooError(RuntimeError):
    """A zoo file is missing, truncated or does not match its card."""


def weights_dir() -> Path:
    """``weights/`` of the repository (``COURSE_WEIGHTS_DIR`` overrides it, as the tests do)."""
    return Path(os.environ.get("COURSE_WEIGHTS_DIR", REPO / "weights"))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# --------------------------------------------------------------------------- the depth recipe
@dataclass
class DepthRecipe:
    """A :class:`lib.models.DepthMaskNet` trained on synthetic scenes: the course's recipe.

    ``task`` chooses the loss. ``"depth"`` (the base model): the L1 of log depth plus
    ``grad_weight`` times MiDaS's multi-scale gradient matching on log depth (sharper edges).
    ``"ssi"``: MiDaS's scale-and-shift-invariant loss on disparity plus ``grad_weight`` times
    its gradient matching (:func:`lib.losses.ssi_trimmed_loss`, nothing trimmed): relative
    depth, as Depth Anything's teacher learns it. ``"mask"``: binary cross-entropy of the mask
    head against "object or room", the only label: a backbone that knows where the objects
    are, the course's stand-in for a pretrained image encoder. ``init`` names a shipped entry
    whose weights start the run (a fine-tune); "" starts from random weights. ``render``: the
    scenes are rendered at this larger size and the network sees windows of ``size`` cut from
    them (training: random windows; validation and test: the grid of tiles), what the fine
    network of patch fusion sees; ``()`` renders at ``size``.

    AdamW, warm-up and cosine schedule. Every training batch is domain randomised
    (:func:`lib.domain_randomization.random_zoom` and
    :func:`~lib.domain_randomization.camera_effects`) when ``randomize`` is on.
    ``scenes="mixed"`` makes half the training scenes close-ups of cluttered objects
    (:func:`lib.data.synthetic.sample_closeup`); validation and test stay on the rooms that
    the chapters use.
    """
    width: int = 16
    size: tuple[int, int] = (64, 96)
    n_train: int = 12000
    n_val: int = 64
    n_test: int = 128
    batch_size: int = 32
    steps: int = 8000
    lr: float = 2e-3
    weight_decay: float = 1e-4
    grad_weight: float = 0.5
    randomize: bool = True
    scenes: str = "mixed"
    zoom: tuple[float, float] = (0.6, 1.0)
    val_every: int = 500
    seed: int = 0
    task: str = "depth"
    init: str = ""
    render: tuple[int, int] = ()


TASKS = ("depth", "ssi", "mask")


def _depth_model(recipe: DepthRecipe) -> nn.Module:
    from lib.models import DepthMaskNet
    return DepthMaskNet(width=recipe.width)


def _depth_loss(recipe: DepthRecipe) -> Callable:
    import torch.nn.functional as F

    from lib import metrics
    from lib.losses import gradient_matching_loss, ssi_trimmed_loss
    from lib.train.recipe import log_l1_loss

    if recipe.task not in TASKS:
        raise ZooError(f"task must be one of {TASKS}, got {recipe.task!r}")
    if recipe.task == "ssi":
        def ssi(output, batch):
            valid = batch["valid"].bool() & (batch["depth"] > 0)
            return ssi_trimmed_loss(1.0 / output["depth"].float(),
                                    metrics.disparity(batch["depth"], valid), valid, trim=0.0,
                                    alpha=recipe.grad_weight)
        return ssi
    if recipe.task == "mask":
        def mask(output, batch):
            return F.binary_cross_entropy_with_logits(output["mask"].float(),
                                                      (batch["mask"] > 0).float())
        return mask

    def loss_fn(output, batch):
        loss = log_l1_loss(output, batch)
        if recipe.grad_weight:
            valid = batch["valid"].bool() & (batch["depth"] > 0)
            lp = output["depth"].float().clamp_min(1e-6).log()
            lt = torch.where(valid, batch["depth"].float(), torch.ones_like(lp)).log()
            loss = loss + recipe.grad_weight * gradient_matching_loss(lp, lt, valid)
        return loss
    return loss_fn


class _Randomized:
    """A re-iterable of randomised training batches (the same sequence for a given seed)."""

    def __init__(self, loader, recipe: DepthRecipe):
        self.loader, self.recipe = loader, recipe
        self.g = torch.Generator().manual_seed(recipe.seed + 1)

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        from lib.domain_randomization import camera_effects, random_zoom
        for batch in self.loader:
            if self.recipe.render:
                batch = _random_windows(batch, tuple(self.recipe.size), self.g)
            if self.recipe.randomize:
                batch = random_zoom(batch, self.g, self.recipe.zoom)
                batch["image"] = camera_effects(batch["image"], self.g)
            yield batch


def _random_windows(batch: dict, size: tuple[int, int], g: torch.Generator) -> dict:
    """One random ``size`` window of each image of a batch (image, depth, valid, mask)."""
    B, _, H, W = batch["image"].shape
    h, w = size
    top = torch.randint(H - h + 1, (B,), generator=g).tolist()
    left = torch.randint(W - w + 1, (B,), generator=g).tolist()
    out = dict(batch)
    for key in ("image", "depth", "valid", "mask"):
        if key in batch:
            out[key] = torch.stack([batch[key][i, :, t:t + h, l:l + w]
                                    for i, (t, l) in enumerate(zip(top, left))])
    return out


class _Tiles(torch.utils.data.Dataset):
    """The grid of ``size`` tiles of every item of ``base`` (rendered larger), as items."""

    def __init__(self, base, size: tuple[int, int]):
        self.base, (self.h, self.w) = base, size
        H, W = base[0]["image"].shape[-2:]
        self.rows, self.cols = H // self.h, W // self.w

    def __len__(self):
        return len(self.base) * self.rows * self.cols

    def __getitem__(self, k):
        i, r = divmod(k, self.rows * self.cols)
        y, x = divmod(r, self.cols)
        item = self.base[i]
        win = (..., slice(y * self.h, (y + 1) * self.h), slice(x * self.w, (x + 1) * self.w))
        return {key: item[key][win] for key in ("image", "depth", "valid", "mask") if key in item}


def _depth_data(recipe: DepthRecipe, split: str, n: int, progress: bool = False):
    """The recipe's scenes for training; rooms for validation and test (what the chapters use).
    With ``render``: training scenes at that size (cut into windows by the batches), validation
    and test scenes cut into the grid of tiles."""
    from lib.data import SyntheticRGBD
    scenes = recipe.scenes if split == "train" else "rooms"
    size = tuple(recipe.render or recipe.size)
    data = SyntheticRGBD(n, size=size, seed=recipe.seed, split=split, progress=progress,
                         scenes=scenes)
    return _Tiles(data, tuple(recipe.size)) if recipe.render and split != "train" else data


def _align(recipe: DepthRecipe, pred, target, valid):
    """The protocol that suits the task's loss: median scale for metric depth, least squares in
    disparity for scale-and-shift-invariant disparity (chapter 06)."""
    from lib import metrics
    if recipe.task == "ssi":
        return metrics.align(pred, target, valid, method="lstsq", space="disparity")
    return metrics.align_median(pred, target, valid)[0]


def _mask_iou(logits: torch.Tensor, mask: torch.Tensor) -> float:
    """Intersection over union of "object" (logit > 0) against the true objects (mask > 0)."""
    p, t = logits > 0, mask > 0
    return float((p & t).sum()) / max(float((p | t).sum()), 1.0)


def _val_metrics(recipe: DepthRecipe) -> Callable:
    from lib import metrics

    def val(output, batch):
        if recipe.task == "mask":
            return {"iou": _mask_iou(output["mask"].float(), batch["mask"])}
        target, valid = batch["depth"].float(), batch["valid"].bool()
        aligned = _align(recipe, output["depth"].float(), target, valid)
        return {k: float(v) for k, v in metrics.depth_metrics(aligned, target, valid).items()}
    return val


@torch.no_grad()
def evaluate_depth(model: nn.Module, recipe: DepthRecipe, device="cpu") -> dict[str, float]:
    """Scores on the synthetic test split and on the motorcycle, with flat-map baselines.

    Depth tasks: AbsRel and delta1 after the task's alignment (median scale for ``"depth"``,
    least squares in disparity for ``"ssi"``), a flat map beside them (for ``"ssi"`` its
    alignment is a flat map too). ``"mask"``: the object IoU on the test split, and the IoU of
    the best constant answer ("everything is an object") beside it.
    """
    from lib import metrics
    from lib.data import middlebury_motorcycle
    from lib.transforms import Rescale

    model = model.to(device).eval()
    test = _depth_data(recipe, "test", recipe.n_test)
    batch = torch.utils.data.default_collate([test[i] for i in range(len(test))])
    outs = [model(x.to(device)) for x in batch["image"].split(32)]
    if recipe.task == "mask":
        logits = torch.cat([o["mask"].float().cpu() for o in outs])
        return {"test_iou": round(_mask_iou(logits, batch["mask"]), 5),
                "test_all_object_iou": round(_mask_iou(torch.ones_like(logits), batch["mask"]), 5)}
    pred = torch.cat([o["depth"].float().cpu() for o in outs])
    out = {}

    def scores(prefix, p, t, v):
        m = metrics.depth_metrics(_align(recipe, p, t, v), t, v)
        flat = metrics.depth_metrics(metrics.flat_map(t, v), t, v)
        out.update({f"{prefix}_abs_rel": m["abs_rel"], f"{prefix}_delta1": m["delta1"],
                    f"{prefix}_flat_abs_rel": flat["abs_rel"],
                    f"{prefix}_flat_delta1": flat["delta1"]})

    scores("test", pred, batch["depth"], batch["valid"])
    moto = Rescale(tuple(recipe.render or recipe.size))(middlebury_motorcycle())
    tiles = _Tiles([moto], tuple(recipe.size)) if recipe.render else [moto]
    mb = torch.utils.data.default_collate([{k: t[k] for k in ("image", "depth", "valid")}
                                           for t in tiles])
    p = model(mb["image"].to(device))["depth"].float().cpu()
    scores("moto", p, mb["depth"], mb["valid"])
    return {k: round(float(v), 5) for k, v in out.items()}


def _train_depth(entry: "Entry", recipe: DepthRecipe, device, progress: bool):
    """Train (resuming from ``data/zoo/NAME/train.pt`` when it is there); returns (model, curve)."""
    from torch.utils.data import DataLoader

    from lib.runtime import seed_everything
    from lib.train import fit

    train_set = _depth_data(recipe, "train", recipe.n_train, progress)
    val_set = _depth_data(recipe, "val", recipe.n_val)
    seed_everything(recipe.seed)
    if recipe.init:                                     # a fine-tune of a shipped model
        model = load(recipe.init, "cpu").train()
        if model.config["width"] != recipe.width:
            raise ZooError(f"init {recipe.init!r} has width {model.config['width']}, "
                           f"the recipe {recipe.width}")
    else:
        model = _depth_model(recipe)
    order = torch.Generator().manual_seed(recipe.seed)
    loader = DataLoader(train_set, batch_size=recipe.batch_size, shuffle=True, drop_last=True,
                        generator=order)
    ckpt = data_dir() / "zoo" / entry.name / "train.pt"
    history = fit(model, _Randomized(loader, recipe), _depth_loss(recipe), steps=recipe.steps,
                  lr=recipe.lr, weight_decay=recipe.weight_decay, device=device,
                  val_loader=DataLoader(val_set, batch_size=32), val_every=recipe.val_every,
                  val_metrics=_val_metrics(recipe), checkpoint=ckpt,
                  checkpoint_every=recipe.val_every, resume=True, progress=progress,
                  seed=recipe.seed, log_every=50)
    keys = ("step", "val_iou") if recipe.task == "mask" else ("step", "val_abs_rel", "val_delta1")
    curve = [{k: r[k] for k in keys if k in r} for r in history.val]
    return model, curve


# --------------------------------------------------------------------------- the bokeh recipe
@dataclass
class BokehRecipe:
    """A learned depth-of-field renderer (chapter 11) trained on ray-traced thin-lens pairs.

    ``kind="gan"``: :class:`lib.models.Pix2Pix` (U-Net generator and PatchGAN critic) on
    BCE + ``l1_weight`` L1, pix2pix's objective; ``kind="vae"``: :class:`lib.models.ConditionalVAE`
    (the same U-Net as decoder) on the negative ELBO with likelihood ``sigma``. Pairs:
    :class:`lib.data.BokehPairs` of ``size`` with ``samples`` lens points and the largest CoC
    radius uniform in ``max_blur`` pixels; the networks train on random ``crop`` windows
    (:func:`lib.train.renderer.fit_renderer`; both kinds see the same batches).
    """
    kind: str = "gan"
    size: tuple[int, int] = (128, 128)
    n_train: int = 1024
    n_test: int = 32
    samples: int = 128
    max_blur: tuple[float, float] = (4.0, 16.0)
    width: int = 16
    depth: int = 4
    critic_width: int = 16
    critic_layers: int = 3
    critic_norm: str = "instance"
    latent: int = 8
    sigma: float = 0.05
    l1_weight: float = 100.0
    crop: int = 64
    batch_size: int = 16
    steps: int = 3600
    lr: float = 2e-4
    log_every: int = 100
    seed: int = 0


def _bokeh_model(recipe: BokehRecipe) -> nn.Module:
    from lib.models import ConditionalVAE, Pix2Pix
    if recipe.kind == "gan":
        return Pix2Pix(recipe.width, recipe.depth, recipe.critic_width, recipe.critic_layers,
                       recipe.critic_norm)
    if recipe.kind == "vae":
        return ConditionalVAE(recipe.width, recipe.depth, recipe.latent)
    raise ZooError(f"kind must be 'gan' or 'vae', got {recipe.kind!r}")


def bokeh_pairs(recipe: BokehRecipe, split: str, n: int, seed: int | None = None,
                progress: bool = False) -> dict:
    """The recipe's thin-lens pairs of ``split``, stacked: image, target, disparity, depth
    (N,C,H,W) and focus_disparity, K (N,). ``seed`` defaults to the recipe's."""
    from lib.data import BokehPairs
    ds = BokehPairs(n, size=tuple(recipe.size), seed=recipe.seed if seed is None else seed,
                    split=split, samples=recipe.samples, max_blur=tuple(recipe.max_blur),
                    progress=progress)
    keys = ("image", "target", "disparity", "depth", "focus_disparity", "K")
    items = [ds[i] for i in range(len(ds))]
    return {k: torch.stack([it[k] for it in items]) for k in keys}


def _train_bokeh(entry: "Entry", recipe: BokehRecipe, device, progress: bool):
    from lib.runtime import seed_everything
    from lib.train.renderer import fit_renderer

    pairs = bokeh_pairs(recipe, "train", recipe.n_train, progress=progress)
    seed_everything(recipe.seed)
    model = _bokeh_model(recipe)
    log = fit_renderer(model, pairs, recipe.kind, steps=recipe.steps, batch_size=recipe.batch_size,
                       crop=recipe.crop, lr=recipe.lr, l1_weight=recipe.l1_weight,
                       sigma=recipe.sigma, seed=recipe.seed, device=device,
                       checkpoint=data_dir() / "zoo" / entry.name / "train.pt",
                       checkpoint_every=recipe.log_every * 2, log_every=recipe.log_every,
                       progress=progress)
    return model, log


@torch.no_grad()
def evaluate_bokeh(model: nn.Module, recipe: BokehRecipe, device="cpu") -> dict[str, float]:
    """PSNR and SSIM against the thin lens on the test split, beside the all-in-focus input and
    chapter 09's layered and scatter renderers given the same true disparity; for the GAN the
    critic's mean probability "real" on the true and on the generated test renders, and its loss
    (log 2 = 0.693 is a critic that cannot tell them apart); for the VAE the KL of its code."""
    import kornia

    from lib import metrics
    from lib.bokeh import render_bokeh
    from lib.models.gan import bokeh_condition, critic_loss_from_logits
    from lib.models.vae import vae_loss

    model = model.to(device).eval()
    p = bokeh_pairs(recipe, "test", recipe.n_test)
    cond = bokeh_condition(p["image"], p["disparity"], p["focus_disparity"], p["K"])
    fake = torch.cat([model(c.to(device)).float().cpu() for c in cond.split(8)])
    lens = (p["disparity"], p["focus_disparity"], p["K"])
    outs = {"": fake, "_input": p["image"], "_layered": render_bokeh(p["image"], *lens),
            "_scatter": render_bokeh(p["image"], *lens, method="scatter")}
    out = {}
    for key, img in outs.items():
        img = img.clamp(0, 1)
        out[f"test_psnr{key}"] = float(metrics.psnr_per_image(img, p["target"]).mean())
        out[f"test_ssim{key}"] = float(kornia.metrics.ssim(img, p["target"], 7).mean())
    if recipe.kind == "gan":
        real_logit = model.critic(cond, p["target"])
        fake_logit = model.critic(cond, fake)
        out["test_d_real"] = float(torch.sigmoid(real_logit).mean())
        out["test_d_fake"] = float(torch.sigmoid(fake_logit).mean())
        out["test_critic_loss"] = float(critic_loss_from_logits(real_logit, fake_logit))
    else:
        mu, logvar = model.encode(cond, p["target"])
        out["test_kl"] = float(vae_loss(fake, p["target"], mu, logvar, recipe.sigma)["kl"])
    return {k: round(v, 5) for k, v in out.items()}


# --------------------------------------------------------------------------- the fusion recipe
@dataclass
class FusionRecipe:
    """Patch fusion's fusion network (chapter 08) on two frozen shipped models, ``coarse`` and
    ``fine``: :class:`lib.models.PatchFusion` trained on pairs of shifted tile crops of
    ``size`` scenes (rooms) with :func:`lib.models.fusion.fusion_pair_loss` (log-depth L1 plus
    PatchFusion's consistency term), AdamW with a cosine schedule (:func:`lib.train.fit`)."""
    coarse: str = "depth"
    fine: str = "fine"
    size: tuple[int, int] = (256, 384)
    process: tuple[int, int] = (64, 96)
    width: int = 8
    n_train: int = 400
    n_test: int = 16
    batch_size: int = 4
    steps: int = 2000
    lr: float = 3e-3
    consistency_weight: float = 0.1
    consistency_depth: float = 0.1
    feature_weight: float = 1.0
    max_shift: float = 0.5
    val_every: int = 250
    seed: int = 0


def _fusion_model(recipe: FusionRecipe) -> nn.Module:
    from lib.models import PatchFusion
    return PatchFusion(load(recipe.coarse, "cpu"), load(recipe.fine, "cpu"), tuple(recipe.process),
                       width=recipe.width)


def _fusion_tile(recipe: FusionRecipe) -> tuple[int, int]:
    H, W = recipe.size
    return (-(-H // 4), -(-W // 4))                                  # the P16 tile


def _train_fusion(entry: "Entry", recipe: FusionRecipe, device, progress: bool):
    from torch.utils.data import DataLoader

    from lib.data import Fields, SyntheticRGBD
    from lib.models.fusion import fusion_pair_loss, pair_forward
    from lib.runtime import seed_everything
    from lib.train import fit

    scenes = SyntheticRGBD(recipe.n_train, size=tuple(recipe.size), seed=recipe.seed,
                           split="train", progress=progress)
    keep = ("image", "depth", "valid")
    seed_everything(recipe.seed)
    model = _fusion_model(recipe)
    pairs = torch.Generator().manual_seed(recipe.seed)
    tile = _fusion_tile(recipe)
    loader = DataLoader(Fields(scenes, keep), batch_size=recipe.batch_size, shuffle=True,
                        drop_last=True, generator=torch.Generator().manual_seed(recipe.seed))

    def loss(out, batch):
        return fusion_pair_loss(out, batch, tuple(recipe.process),
                                consistency_weight=recipe.consistency_weight,
                                depth_weight=recipe.consistency_depth,
                                feature_weight=recipe.feature_weight)

    history = fit(model, loader, loss, steps=recipe.steps, lr=recipe.lr, device=device,
                  seed=recipe.seed, forward=lambda m, b: pair_forward(m, b, tile, recipe.max_shift, pairs),
                  checkpoint=data_dir() / "zoo" / entry.name / "train.pt",
                  checkpoint_every=recipe.val_every, resume=True, progress=progress, log_every=50)
    curve = [{"step": r["step"], "loss": round(r["loss"], 5)} for r in history.train]
    return model, curve


@torch.no_grad()
def evaluate_fusion(model: nn.Module, recipe: FusionRecipe, device="cpu") -> dict[str, float]:
    """P49 on the test rooms (and the motorcycle) at ``size``, after median scaling: AbsRel,
    soft edge error and tile consistency error of the fusion, beside the coarse pass alone and
    naive fine tiling; and the fusion's mean gate."""
    from lib import metrics
    from lib.data import SyntheticRGBD, middlebury_motorcycle
    from lib.models import tile_consistency_error, tiled_predict
    from lib.transforms import Rescale

    model = model.to(device).eval()
    size, P = tuple(recipe.size), tuple(recipe.process)
    test = SyntheticRGBD(recipe.n_test, size=size, seed=recipe.seed, split="test")
    items = [test[i] for i in range(len(test))] + [Rescale(size)(middlebury_motorcycle())]
    methods = {"": lambda x: tiled_predict(model, x, "P49", progress=False, return_info=True),
               "_coarse": lambda x: (model.coarse_predict(x), None),
               "_naive": lambda x: tiled_predict(model.fine, x, "P49", process_size=P,
                                                 progress=False, return_info=True)}
    out = {}
    for key, predict in methods.items():
        preds, tces = [], []
        for it in items:
            depth, info = predict(it["image"][None].to(device))
            preds.append(depth.float().cpu())
            if info is not None:
                tces.append(tile_consistency_error(info["log_tiles"], info["boxes"], size))
        for prefix, sl in (("test", slice(0, -1)), ("moto", slice(-1, None))):
            p = torch.cat(preds[sl])
            t = torch.stack([it["depth"] for it in items[sl]])
            v = torch.stack([it["valid"] for it in items[sl]])
            a = metrics.align_median(p, t, v)[0]
            out[f"{prefix}_abs_rel{key}"] = metrics.depth_metrics(a, t, v)["abs_rel"]
            if prefix == "test":
                out[f"test_see{key}"] = metrics.soft_edge_error(a, t, v)
                if tces:
                    out[f"test_tce{key}"] = float(sum(tces[:-1]) / len(tces[:-1]))
    return {k: round(float(v), 5) for k, v in out.items()}


# --------------------------------------------------------------------------- entries
@dataclass
class Entry:
    """One model of the zoo: how to build it, train it and score it."""
    name: str
    description: str
    recipe: Any
    build: Callable[[Any], nn.Module]
    train: Callable
    evaluate: Callable[[nn.Module, Any, Any], dict]
    data: str
    tolerance: float = 0.005            # largest change of any card metric that verify accepts
    outputs: str = "dict with depth (B,1,H,W) metres"
    extra: dict = field(default_factory=dict)


ENTRIES: dict[str, Entry] = {
    "depth": Entry(
        name="depth",
        description="the course's base depth model: DepthMaskNet(width 16) trained on domain-randomised "
                    "synthetic rooms and close-ups at 64x96 with log-L1 + gradient matching",
        recipe=DepthRecipe(), build=_depth_model, train=_train_depth, evaluate=evaluate_depth,
        data="lib.data.SyntheticRGBD, split train, seed 0, scenes 'mixed' (procedural rooms and "
             "close-ups); never the motorcycle"),
    "teacher": Entry(
        name="teacher",
        description="an affine-invariant teacher (as Depth Anything's): the depth model fine-tuned "
                    "with MiDaS's scale-and-shift-invariant loss on disparity",
        recipe=DepthRecipe(task="ssi", init="depth", steps=1500, lr=1e-3, n_train=12000),
        build=_depth_model, train=_train_depth, evaluate=evaluate_depth,
        data="lib.data.SyntheticRGBD, split train, seed 0, scenes 'mixed'; never the motorcycle",
        outputs="dict with depth (B,1,H,W) whose inverse is disparity up to scale and shift"),
    "fine": Entry(
        name="fine",
        description="patch fusion's fine network: the depth model fine-tuned on 64x96 windows of "
                    "256x384 renders (a quarter of each side at full resolution, the P16 tile)",
        recipe=DepthRecipe(init="depth", render=(256, 384), n_train=1200, n_val=8, n_test=32,
                           steps=1500, lr=1e-3, zoom=(0.8, 1.0)),
        build=_depth_model, train=_train_depth, evaluate=evaluate_depth,
        data="lib.data.SyntheticRGBD at 256x384, split train, seed 0, scenes 'mixed', random "
             "64x96 windows; test: the 4x4 grid of tiles of 32 test rooms and of the motorcycle"),
    "encoder": Entry(
        name="encoder",
        description="a backbone that knows where the objects are: DepthMaskNet(width 8) trained "
                    "on instance masks only (object or room), the course's stand-in for DINOv2",
        recipe=DepthRecipe(task="mask", width=8, steps=2000, n_train=12000),
        build=_depth_model, train=_train_depth, evaluate=evaluate_depth,
        data="lib.data.SyntheticRGBD, split train, seed 0, scenes 'mixed', masks only",
        outputs="dict with mask (B,1,H,W) logits of 'object' and features (B,64,H/16,W/16)"),
    "bokeh_gan": Entry(
        name="bokeh_gan",
        description="pix2pix for depth of field: a U-Net generator (width 16, 4 levels) and a "
                    "70x70 PatchGAN critic trained on ray-traced thin-lens pairs at 128x128 "
                    "with blur radii up to 16 px",
        recipe=BokehRecipe(kind="gan"), build=_bokeh_model, train=_train_bokeh,
        evaluate=evaluate_bokeh, tolerance=0.02,
        data="lib.data.BokehPairs, split train, seed 0, 128x128, 128 lens samples, largest CoC "
             "radius uniform in 4-16 px; test: 32 pairs of the test split",
        outputs="Pix2Pix: forward(condition (B,7,H,W)) -> (B,3,H,W) sRGB; .critic(cond, image)"),
    "bokeh_vae": Entry(
        name="bokeh_vae",
        description="a conditional VAE for depth of field: the same U-Net as decoder (8 latent "
                    "channels at 1/16) trained on the negative ELBO on the same pairs",
        recipe=BokehRecipe(kind="vae"), build=_bokeh_model, train=_train_bokeh,
        evaluate=evaluate_bokeh, tolerance=0.02,
        data="lib.data.BokehPairs, split train, seed 0, 128x128, 128 lens samples, largest CoC "
             "radius uniform in 4-16 px; test: 32 pairs of the test split",
        outputs="ConditionalVAE: forward(condition (B,7,H,W)) -> (B,3,H,W) sRGB (z = 0)"),
    "fusion": Entry(
        name="fusion",
        description="patch fusion's fusion network (width 8) on the frozen zoo models 'depth' "
                    "(coarse) and 'fine', trained on shifted pairs of P16 tiles of 256x384 rooms "
                    "with log-depth L1 and PatchFusion's consistency loss",
        recipe=FusionRecipe(), build=_fusion_model, train=_train_fusion, evaluate=evaluate_fusion,
        data="lib.data.SyntheticRGBD at 256x384, split train, seed 0, rooms; test: 16 test "
             "rooms and the motorcycle at 256x384, P49",
        outputs="PatchFusion: tiled_predict(model, image, 'P49') -> depth (B,1,H,W) metres"),
}


def _recipe_from_card(entry: Entry, c: dict):
    fields = {f.name for f in dataclasses.fields(entry.recipe)}
    params = {k: (tuple(v) if isinstance(v, list) else v) for k, v in c["recipe"].items() if k in fields}
    return dataclasses.replace(entry.recipe, **params)


def _entry(name: str) -> Entry:
    if name not in ENTRIES:
        raise ZooError(f"no zoo entry {name!r}; the entries are: {', '.join(sorted(ENTRIES))}")
    return ENTRIES[name]


def _paths(name: str) -> tuple[Path, Path]:
    return weights_dir() / f"{name}.pt", weights_dir() / f"{name}.json"


def _retrain_hint(name: str) -> str:
    return f"rebuild it with `python -m lib.zoo train {name}` (or restore it with `git checkout weights/`)"


def shipped() -> list[str]:
    """The entries whose weights and card are in ``weights/``."""
    return [n for n in sorted(ENTRIES) if all(p.exists() for p in _paths(n))]


def card(name: str) -> dict:
    """The card of a shipped model (a dict read from ``weights/NAME.json``)."""
    _entry(name)
    _, card_path = _paths(name)
    if not card_path.exists():
        raise ZooError(f"{card_path} is missing: {_retrain_hint(name)}")
    try:
        return json.loads(card_path.read_text())
    except json.JSONDecodeError as e:
        raise ZooError(f"{card_path} is not a readable card ({e}): {_retrain_hint(name)}") from None


def recipe(name: str):
    """The recipe a shipped model was trained with (from its card), e.g. to draw more data."""
    return _recipe_from_card(_entry(name), card(name))


def load(name: str, device="auto") -> nn.Module:
    """The shipped model ``name`` in eval mode on ``device`` (float32; weights checked by sha256)."""
    from lib.runtime import pick_device

    entry = _entry(name)
    c = card(name)
    weights, _ = _paths(name)
    if not weights.exists():
        raise ZooError(f"{weights} is missing: {_retrain_hint(name)}")
    digest = _sha256(weights)
    if digest != c.get("sha256"):
        raise ZooError(f"{weights} does not match its card (sha256 {digest[:12]}... but the card says "
                       f"{str(c.get('sha256'))[:12]}...): the file is truncated or was changed; "
                       f"{_retrain_hint(name)}")
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same error to the user
        raise ZooError(f"{weights} could not be read ({type(e).__name__}: {e}): {_retrain_hint(name)}") from None
    model = entry.build(_recipe_from_card(entry, c))
    model.load_state_dict({k: v.float() for k, v in state.items()})
    return model.to(pick_device(device)).eval()


class _Output(nn.Module):
    """A zoo model with one tensor output, for ONNX: ``depth`` of a depth network."""

    def __init__(self, model: nn.Module, key: str | None):
        super().__init__()
        self.model, self.key = model, key

    def forward(self, x):
        out = self.model(x)
        return out[self.key] if self.key else out


def export_onnx(name: str, path, opset: int = 17) -> Path:
    """Write the shipped model ``name`` as an ONNX file (for onnxruntime on any CPU).

    Depth entries take ``image`` (B,3,H,W) sRGB in [0,1], H and W any multiples of 16, and
    return ``depth`` (B,1,H,W) metres; the bokeh entries take ``condition`` (B,7,H,W)
    (:func:`lib.models.bokeh_condition`) and return ``image``. ``fusion`` runs tile by tile and
    is not exported (export ``depth`` and ``fine`` and tile in Python). Uses the TorchScript
    exporter (``dynamo=False``), which needs no extra package; batch, height and width are
    dynamic axes.
    """
    entry = _entry(name)
    recipe = _recipe_from_card(entry, card(name))
    model = load(name, "cpu")
    if isinstance(recipe, DepthRecipe):
        wrapped, key_in, key_out = _Output(model, "depth"), "image", "depth"
        example = torch.rand(1, 3, *recipe.size)
    elif isinstance(recipe, BokehRecipe):
        wrapped, key_in, key_out = _Output(model, None), "condition", "image"
        example = torch.rand(1, 7, *recipe.size)
    else:
        raise ZooError(f"{name!r} runs tile by tile and is not exported; export 'depth' and "
                       "'fine' and tile in Python (lib.models.tiled_predict)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    axes = {0: "batch", 2: "height", 3: "width"}
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")              # the tracer's notes on shape checks
        torch.onnx.export(wrapped.eval(), (example,), str(path), input_names=[key_in],
                          output_names=[key_out], dynamic_axes={key_in: axes, key_out: axes},
                          opset_version=opset, dynamo=False)
    return path


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def _machine(device: torch.device) -> dict:
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return {"device": device.type, "gpu": gpu, "cpu_cores": os.cpu_count(), "threads": torch.get_num_threads(),
            "processor": platform.processor() or platform.machine(), "torch": torch.__version__,
            "python": platform.python_version()}


def train(name: str, device="auto", progress: bool = True, resume: bool = True, **overrides) -> dict:
    """Run the recipe of ``name`` (``overrides`` change its parameters), write weights and card.

    Resumable: the run checkpoints under ``data/zoo/NAME/`` and a rerun continues from there.
    Returns the card.
    """
    from lib.runtime import pick_device

    entry = _entry(name)
    recipe = dataclasses.replace(entry.recipe, **overrides)
    device = pick_device(device)
    recipe_dict = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(recipe).items()}
    run_dir = data_dir() / "zoo" / name
    state = run_dir / "run.json"             # the recipe and the seconds spent, for resuming
    before = json.loads(state.read_text()) if state.exists() else None
    if not resume or before is None or before.get("recipe") != recipe_dict:
        if before is not None and resume:
            print(f"the stopped run in {run_dir} used another recipe: starting over", file=sys.stderr)
        for f in run_dir.glob("*"):
            f.unlink()
        before = {"recipe": recipe_dict, "seconds": 0.0}
    run_dir.mkdir(parents=True, exist_ok=True)
    state.write_text(json.dumps(before))
    t0 = time.perf_counter()
    model, curve = entry.train(entry, recipe, device, progress)
    previous = float(before["seconds"])
    seconds = time.perf_counter() - t0
    state.write_text(json.dumps({"recipe": recipe_dict, "seconds": previous + seconds}))
    model = model.float().cpu().eval()
    weights, card_path = _paths(name)
    weights.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}, weights)
    # score the model as it will be loaded: from the float16 file
    loaded = entry.build(recipe)
    loaded.load_state_dict({k: v.float() for k, v in torch.load(weights, weights_only=True).items()})
    metrics = entry.evaluate(loaded, recipe, "cpu")
    c = {"name": name, "description": entry.description, "recipe": recipe_dict,
         "size": list(getattr(recipe, "size", [])), "steps": getattr(recipe, "steps", None),
         "parameters": sum(p.numel() for p in loaded.parameters()),
         "wall_time_s": round(previous + seconds, 1), "machine": _machine(device), "git_commit": _git_commit(),
         "trained": dt.datetime.now().isoformat(timespec="seconds"), "training_data": entry.data,
         "outputs": entry.outputs, "curve": curve, "metrics": metrics, "tolerance": entry.tolerance,
         "command": f"python -m lib.zoo train {name}", "sha256": _sha256(weights), **entry.extra}
    card_path.write_text(json.dumps(c, indent=1) + "\n")
    return c


def verify(names: list[str] | None = None, log=print) -> bool:
    """Check every shipped model (or ``names``): sha256, loadable, metrics within the card's tolerance."""
    names = names or shipped()
    ok = True
    if not names:
        log("no zoo model is shipped in " + str(weights_dir()))
    for name in names:
        entry = _entry(name)
        try:
            model = load(name, "cpu")
        except ZooError as e:
            log(f"{name}: FAILED: {e}")
            ok = False
            continue
        c = card(name)
        got = entry.evaluate(model, _recipe_from_card(entry, c), "cpu")
        tol = float(c.get("tolerance", entry.tolerance))
        bad = {k: (v, got.get(k)) for k, v in c["metrics"].items()
               if k not in got or abs(float(got[k]) - float(v)) > tol}
        if bad:
            ok = False
            log(f"{name}: FAILED: metrics differ from the card beyond {tol}: "
                + ", ".join(f"{k} card {a} now {b}" for k, (a, b) in bad.items()))
        else:
            log(f"{name}: ok (sha256 {c['sha256'][:12]}..., {len(c['metrics'])} metrics within {tol} of the card)")
    return ok


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lib.zoo", description="The course's pretrained models.")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="the entries and whether each is shipped")
    t = sub.add_parser("train", help="run an entry's recipe and write weights/NAME.pt and .json")
    t.add_argument("name")
    t.add_argument("--device", default="auto")
    t.add_argument("--fresh", action="store_true", help="start over instead of resuming a stopped run")
    t.add_argument("--no-progress", action="store_true")
    t.add_argument("--set", nargs=2, action="append", default=[], metavar=("PARAM", "VALUE"),
                   help="change a recipe parameter (JSON value), e.g. --set steps 200")
    x = sub.add_parser("export", help="write a shipped model as ONNX (for onnxruntime)")
    x.add_argument("name")
    x.add_argument("--onnx", required=True, metavar="OUT.onnx")
    v = sub.add_parser("verify", help="sha256 and metrics of the shipped models against their cards")
    v.add_argument("names", nargs="*")
    args = p.parse_args(argv)
    if args.cmd == "list":
        have = set(shipped())
        for name, e in sorted(ENTRIES.items()):
            print(f"{name:12s} {'shipped' if name in have else 'not trained'}  {e.description}")
        return 0
    if args.cmd == "train":
        entry = _entry(args.name)
        fields = {f.name: f for f in dataclasses.fields(entry.recipe)}
        overrides = {}
        for k, v in args.set:
            if k not in fields:
                p.error(f"unknown parameter {k!r} of {args.name}; valid: {', '.join(fields)}")
            value = json.loads(v)
            overrides[k] = tuple(value) if isinstance(value, list) else value
        c = train(args.name, args.device, progress=not args.no_progress, resume=not args.fresh, **overrides)
        print(json.dumps(c["metrics"], indent=1))
        return 0
    if args.cmd == "export":
        try:
            out = export_onnx(args.name, args.onnx)
        except ZooError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB)")
        return 0
    return 0 if verify(args.names or None) else 1


if __name__ == "__main__":
    sys.exit(main())
