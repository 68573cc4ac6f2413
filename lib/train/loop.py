"""The training loop of the course: :func:`fit` and :func:`evaluate`.

One loop for every chapter: the chapter brings its model, its data and its loss
(``loss_fn(output, batch) -> scalar``); ``fit`` brings the device, mixed precision, the
learning-rate schedule, gradient clipping, validation, checkpoints that resume exactly, a
progress bar, and the same code under ``torchrun`` on several GPUs or machines.
"""
from __future__ import annotations

import gc
import math
import os
import time
import warnings
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, IterableDataset, RandomSampler, SequentialSampler

from lib.runtime import pick_device, seed_everything
from lib.train.checkpoint import atomic_save, load_checkpoint, rng_state, set_rng_state
from lib.train.history import History

__all__ = ["fit", "evaluate", "depth_val_metrics"]

LossFn = Callable[[dict, dict], torch.Tensor]


def _default_forward(model: nn.Module, batch: dict):
    return model(batch["image"])


# --------------------------------------------------------------------------- validation
def depth_val_metrics(output: dict, batch: dict) -> dict[str, float]:
    """Validation metrics of one batch: ``lib.metrics.depth_metrics`` of ``output["depth"]``
    after per-image median-scale alignment to ``batch["depth"]`` over ``batch["valid"]``,
    plus ``abs_rel_raw``, the AbsRel of the unaligned prediction (metric depth as predicted)."""
    from lib import metrics  # lazily: the metrics module is only needed when validating

    pred = output["depth"].float()
    target, valid = batch["depth"].float(), batch["valid"].bool()
    if hasattr(metrics, "align_median"):
        aligned = metrics.align_median(pred, target, valid)[0]
    else:
        aligned = metrics.align(pred, target, valid, method="median")
        aligned = aligned[0] if isinstance(aligned, tuple) else aligned
    row = {k: float(v) for k, v in metrics.depth_metrics(aligned, target, valid).items()}
    row["abs_rel_raw"] = float(metrics.depth_metrics(pred, target, valid)["abs_rel"])
    return row


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader,
    *,
    device=None,
    metrics_fn: Callable[[dict, dict], dict] | None = None,
    forward: Callable[[nn.Module, dict], dict] | None = None,
    amp_dtype: torch.dtype | None = None,
    max_batches: int | None = None,
) -> dict[str, float]:
    """Average ``metrics_fn(output, batch)`` over ``loader`` (weighted by batch size, i.e. a mean
    over images when the metrics are per-image means), in ``eval()`` mode without gradients.

    ``metrics_fn`` defaults to :func:`depth_val_metrics`; ``forward(model, batch)`` to
    ``model(batch["image"])``. The model's train/eval mode is restored afterwards.
    """
    metrics_fn = metrics_fn or depth_val_metrics
    forward = forward or _default_forward
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    sums: dict[str, float] = {}
    count = 0
    try:
        for i, batch in enumerate(loader):
            if max_batches is not None and i >= max_batches:
                break
            batch = _to_device(batch, device, False)
            with _autocast(device, amp_dtype):
                output = forward(model, batch)
            n = _batch_size(batch)
            for k, v in metrics_fn(output, batch).items():
                sums[k] = sums.get(k, 0.0) + float(v) * n
            count += n
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError("evaluate: the validation loader yielded no batch")
    return {k: v / count for k, v in sums.items()}


# --------------------------------------------------------------------------- small helpers
def _to_device(obj, device: torch.device, channels_last: bool):
    """Move the tensors of a (nested) batch to ``device``; 4-D float tensors to channels-last."""
    if isinstance(obj, torch.Tensor):
        obj = obj.to(device, non_blocking=True)
        if channels_last and obj.ndim == 4 and obj.is_floating_point():
            obj = obj.contiguous(memory_format=torch.channels_last)
        return obj
    if isinstance(obj, dict):
        return {k: _to_device(v, device, channels_last) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)) and any(isinstance(v, torch.Tensor) for v in obj):
        return type(obj)(_to_device(v, device, channels_last) for v in obj)
    return obj


def _batch_size(batch) -> int:
    if isinstance(batch, dict):
        t = batch.get("image")
        if isinstance(t, torch.Tensor):
            return t.shape[0]
        batch = list(batch.values())
    for t in batch if isinstance(batch, (list, tuple)) else [batch]:
        if isinstance(t, torch.Tensor) and t.ndim > 0:
            return t.shape[0]
    return 1


def _batch_names(batch) -> str:
    names = batch.get("name") if isinstance(batch, dict) else None
    if names is None:
        return ""
    names = list(names) if isinstance(names, (list, tuple)) else [names]
    return f"; batch names: {names}"


def _autocast(device: torch.device, dtype: torch.dtype | None):
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


def _resolve_amp(amp, device: torch.device) -> torch.dtype | None:
    if amp in (None, False, "none", "off"):
        return None
    if amp == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    dtypes = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16,
              torch.bfloat16: torch.bfloat16, torch.float16: torch.float16}
    if amp not in dtypes:
        raise ValueError(f"amp must be 'auto', 'bf16', 'fp16' or None, got {amp!r}")
    return dtypes[amp]


def _lr_schedule(optimizer, scheduler, steps: int, warmup: int | None):
    """``"cosine"``: linear warm-up over ``warmup`` steps, then cosine decay to 0 at ``steps``;
    ``None``/``"constant"``: constant; an LRScheduler instance is used as given."""
    if scheduler is None or scheduler == "constant":
        return None
    if scheduler == "cosine":
        warmup = min(100, steps // 20) if warmup is None else int(warmup)

        def factor(step: int) -> float:  # multiplies the base learning rate
            if step < warmup:
                return (step + 1) / warmup
            return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    if hasattr(scheduler, "step") and hasattr(scheduler, "state_dict"):
        return scheduler
    raise ValueError(f"scheduler must be 'cosine', None or an LRScheduler, got {scheduler!r}")


# --------------------------------------------------------------------------- data order
def _seed_epoch(loader, epoch: int, seed: int) -> None:
    """Make the order of epoch ``epoch`` a function of ``(seed, epoch)`` only: the shuffling
    (RandomSampler / DistributedSampler, both ``randperm`` seeded with ``seed + epoch``, so one
    process and N processes see the same global order) and the worker seeds."""
    sampler = getattr(loader, "sampler", None)
    if isinstance(sampler, DistributedSampler):
        sampler.set_epoch(epoch)
    elif isinstance(sampler, RandomSampler):
        sampler.generator = torch.Generator().manual_seed(seed + epoch)
    if isinstance(loader, DataLoader):
        loader.generator = torch.Generator().manual_seed(seed + epoch)


def _order_is_reproducible(loader) -> bool:
    sampler = getattr(loader, "sampler", None)
    return isinstance(sampler, (RandomSampler, SequentialSampler, DistributedSampler))


def _distribute(loader, rank: int, world: int, seed: int):
    """The same loader, each process reading its 1/world share (DistributedSampler)."""
    if isinstance(getattr(loader, "sampler", None), DistributedSampler):
        return loader
    if not isinstance(loader, DataLoader) or isinstance(loader.dataset, IterableDataset):
        raise ValueError(
            "fit under torch.distributed needs a DataLoader over a map-style Dataset (it shards it with a "
            "DistributedSampler); shard an IterableDataset yourself and pass a DataLoader with a DistributedSampler"
        )
    if loader.batch_size is None or not isinstance(loader.sampler, (RandomSampler, SequentialSampler)):
        raise ValueError("fit under torch.distributed cannot shard a DataLoader with a custom sampler/batch_sampler; "
                         "give it a DistributedSampler yourself")
    sampler = DistributedSampler(loader.dataset, num_replicas=world, rank=rank,
                                 shuffle=isinstance(loader.sampler, RandomSampler), seed=seed, drop_last=loader.drop_last)
    return DataLoader(
        loader.dataset, batch_size=loader.batch_size, sampler=sampler, num_workers=loader.num_workers,
        collate_fn=loader.collate_fn, pin_memory=loader.pin_memory, drop_last=loader.drop_last, timeout=loader.timeout,
        worker_init_fn=loader.worker_init_fn, multiprocessing_context=loader.multiprocessing_context,
        prefetch_factor=loader.prefetch_factor if loader.num_workers > 0 else None,
        persistent_workers=loader.persistent_workers,
    )


# --------------------------------------------------------------------------- distributed
def _setup_distributed(device) -> tuple[int, int, torch.device, bool]:
    """(rank, world, device, created): join the process group torchrun describes (WORLD_SIZE,
    RANK, MASTER_ADDR/PORT in the environment) unless one exists; gloo on CPU, nccl on CUDA."""
    created = False
    if not dist.is_initialized() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        wanted = pick_device(device)
        dist.init_process_group("nccl" if wanted.type == "cuda" else "gloo")
        created = True
    if not dist.is_initialized():
        return 0, 1, pick_device(device), False
    rank, world = dist.get_rank(), dist.get_world_size()
    dev = pick_device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank % torch.cuda.device_count())))
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    return rank, world, dev, created


# --------------------------------------------------------------------------- fit
def fit(
    model: nn.Module,
    train_loader,
    loss_fn: LossFn,
    *,
    steps: int | None = None,
    epochs: int | None = None,
    optimizer: torch.optim.Optimizer | Callable | None = None,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    scheduler="cosine",
    warmup: int | None = None,
    device="auto",
    amp="auto",
    channels_last="auto",
    val_loader=None,
    val_every: int | None = None,
    val_metrics: Callable[[dict, dict], dict] | None = None,
    forward: Callable[[nn.Module, dict], dict] | None = None,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
    progress: bool = True,
    grad_clip: float | None = 1.0,
    log_every: int = 10,
    seed: int = 0,
    tensorboard: bool | str | os.PathLike | None = None,
) -> History:
    """Train ``model`` on ``train_loader`` by minimising ``loss_fn``; return the :class:`History`.

    Each step: move the batch to the device, ``output = forward(model, batch)`` (default
    ``model(batch["image"])``), ``loss = loss_fn(output, batch)``, backward, clip the gradient
    norm to ``grad_clip``, optimiser step, scheduler step.

    Args:
        model: trained in place (moved to ``device``; channels-last on CPU).
        train_loader: a ``DataLoader`` (or any re-iterable of batches) of dict batches.
        loss_fn: ``loss_fn(output, batch) -> scalar tensor``, where ``output`` is what the model
            returns (for :class:`lib.models.DepthMaskNet` a dict ``depth``, ``mask``,
            ``features``) and ``batch`` the collated batch on the device (``image``, ``depth``,
            ``valid``, ``mask``, ...). It runs under autocast when mixed precision is on.
            Example: :func:`lib.train.log_l1_loss`.
        steps / epochs: how long (give one); an epoch is one pass over ``train_loader``.
        forward: ``forward(model, batch) -> output``; default ``model(batch["image"])`` (a
            chapter whose model takes more than the image, e.g. a focal stack, passes its own).
        optimizer: ``None`` (AdamW with ``lr`` and ``weight_decay``), an optimiser over the
            model's parameters, or a callable ``params -> optimiser``.
        scheduler: ``"cosine"`` (linear warm-up over ``warmup`` steps, default ``min(100,
            steps//20)``, then cosine to 0), ``None`` (constant) or an ``LRScheduler``.
        device: ``"auto"`` (CUDA when present, else CPU), ``"cpu"``, ``"cuda"``, ...
        amp: mixed precision: ``"auto"`` (bf16 on CUDA when supported, else fp16 with a
            GradScaler; off on CPU), ``"bf16"``, ``"fp16"``, ``None``.
        channels_last: ``"auto"`` (on CPU), ``True`` or ``False``.
        val_loader, val_every, val_metrics: validate every ``val_every`` steps (default a tenth
            of the run) and at the end with ``val_metrics(output, batch) -> dict`` (default
            :func:`depth_val_metrics`: median-aligned depth metrics + raw AbsRel).
        checkpoint, checkpoint_every: file to save to every ``checkpoint_every`` steps (default
            a tenth of the run) and at the end, atomically.
        resume: continue from ``checkpoint`` when it exists: weights, optimiser, scheduler,
            scaler, step, data order and random states are restored, so the resumed run ends
            with the same weights as an uninterrupted one. A run that is already complete
            just loads its weights and returns its history.
        progress: tqdm bar with the loss and samples/s (rank 0).
        grad_clip: maximal global L2 norm of the gradient (``None``: no clipping).
        log_every: one history row every ``log_every`` steps (mean loss over them).
        seed: seeds Python, NumPy and torch (``seed + rank``) and the data order (``seed + epoch``).
        tensorboard: ``True`` (logs next to the checkpoint, or ``runs/``) or a log folder;
            skipped with a warning when ``torch.utils.tensorboard`` is not installed.

    Data order: ``fit`` owns it. Each epoch's shuffling (``RandomSampler`` or
    ``DistributedSampler``) and the DataLoader's worker seeds are set from ``(seed, epoch)``,
    so a run is reproducible and a resumed run sees the same batches (the batches of the
    interrupted epoch that were already used are loaded again and skipped). Random
    augmentation stays exact when it draws from the global generators (restored from the
    checkpoint) or, in worker processes, from the worker seeds; with ``persistent_workers=True``
    the workers keep the seeds of the epoch they started in, so a resumed run differs there.

    Distributed: under ``torchrun`` (or with a process group already initialised) the model is
    wrapped in DistributedDataParallel, the loader is re-made with a ``DistributedSampler`` (the
    batch size is per process), and only rank 0 shows progress, validates and writes
    checkpoints. N processes with batch b follow one process with batch N*b.

    Errors: a non-finite loss (or gradient, without fp16 loss scaling) stops training with a
    ``FloatingPointError`` naming the step and the batch.

    Returns:
        History: rows ``{"step", "split": "train", "loss", "lr", ...}`` every ``log_every``
        steps and ``{"step", "split": "val", "val_abs_rel", ...}`` at each validation.

    Example:
        >>> from lib.models import DepthMaskNet
        >>> history = fit(DepthMaskNet(width=8), loader, log_l1_loss, steps=100)  # doctest: +SKIP
        >>> history.plot()  # doctest: +SKIP
    """
    from tqdm.auto import tqdm

    if (steps is None) == (epochs is None):
        raise ValueError("give exactly one of steps= or epochs=")
    if resume and checkpoint is None:
        raise ValueError("resume=True needs checkpoint= (the file to resume from)")
    if log_every < 1:
        raise ValueError(f"log_every must be >= 1, got {log_every}")

    rank, world, device, created_group = _setup_distributed(device)
    failed = False
    try:
        seed_everything(seed + rank)
        amp_dtype = _resolve_amp(amp, device)
        channels_last = device.type == "cpu" if channels_last == "auto" else bool(channels_last)
        model.to(device)
        if channels_last:
            model.to(memory_format=torch.channels_last)
        if world > 1:
            train_loader = _distribute(train_loader, rank, world, seed)
        steps = _total_steps(steps, epochs, train_loader)
        every = max(1, steps // 10)
        val_every = val_every or every
        checkpoint_every = checkpoint_every or every

        params = [p for p in model.parameters() if p.requires_grad]
        if optimizer is None:
            optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
        elif not isinstance(optimizer, torch.optim.Optimizer):
            optimizer = optimizer(params)
        sched = _lr_schedule(optimizer, scheduler, steps, warmup)
        run = _Run(model=model, loader=train_loader, loss_fn=loss_fn,
                   forward=forward or _default_forward, params=params, optimizer=optimizer,
                   sched=sched,
                   scaler=torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16),
                   steps=steps, seed=seed, rank=rank, world=world, device=device,
                   amp_dtype=amp_dtype, channels_last=channels_last, grad_clip=grad_clip,
                   ckpt_path=Path(checkpoint) if checkpoint is not None else None,
                   val_loader=val_loader, val_metrics=val_metrics, progress=progress)
        if resume and run.ckpt_path.is_file():
            run.resume()
            if run.step >= steps:
                return run.history
        if world > 1:
            # find_unused_parameters: a chapter's loss may use only some heads (depth but not mask)
            run.net = nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None,
                find_unused_parameters=True)
        if rank == 0:
            run.writer = _tensorboard_writer(tensorboard, run.ckpt_path)

        bar = tqdm(total=steps, initial=run.step, desc="train", dynamic_ncols=True,
                   disable=not (progress and rank == 0))
        saved_generators = _loader_generators(train_loader)
        run.t_start = run.t_log = time.perf_counter()
        try:
            while run.step < steps:
                batches = run.epoch_batches()
                if batches is None:  # the epoch had fewer batches than the checkpoint says
                    continue
                n_before = run.batch_in_epoch
                for batch in batches:
                    batch = _to_device(batch, device, channels_last)
                    lr_used = run.optimise(batch)
                    bar.update(1)
                    step = run.step
                    if step % log_every == 0 or step == steps:
                        row = run.log(lr_used)
                        bar.set_postfix(loss=f"{row['loss']:.4g}",
                                        samples_s=f"{row['samples_per_s']:.1f}")
                    if step % val_every == 0 or step == steps:
                        run.validate()
                    if step % checkpoint_every == 0 or step == steps:
                        run.save()
                    if step >= steps:
                        break
                else:
                    if run.batch_in_epoch == n_before == 0:
                        raise ValueError("the training loader yielded no batch")
                    run.epoch, run.batch_in_epoch = run.epoch + 1, 0
        finally:
            bar.close()
            _restore_loader_generators(train_loader, saved_generators)
            if run.writer is not None:
                run.writer.close()
            run.net = None  # the DDP wrapper's reducer holds the process group: free it first
        return run.history
    except BaseException:
        failed = True
        raise
    finally:
        if created_group:
            _leave_process_group(wait=not failed)


def _leave_process_group(wait: bool) -> None:
    """Destroy the process group this process created, after (``wait``) every process is done.

    The barrier keeps one process from closing its connections while a peer is still
    finishing its last collective; the garbage collection frees the DDP reducer (which holds
    the group) while the interpreter is fully alive. Without both, gloo's worker threads can
    abort a process at exit (seen once in CI: ``terminate called without an active
    exception``, exit code -6, after a run that had finished). After a failure there is no
    barrier: a peer may be gone and never reach it.
    """
    if wait:
        dist.barrier()
    gc.collect()
    dist.destroy_process_group()


def _total_steps(steps: int | None, epochs: int | None, loader) -> int:
    if epochs is not None:
        try:
            return int(epochs) * len(loader)
        except TypeError:
            raise ValueError("epochs= needs a loader with a length; give steps= instead") from None
    return int(steps)


@dataclass
class _Run:
    """The state of one call of :func:`fit` (what a checkpoint holds) and the steps of its loop,
    one method each: :meth:`resume`, :meth:`epoch_batches`, :meth:`optimise`, :meth:`log`,
    :meth:`validate`, :meth:`save`. Only rank 0 logs to TensorBoard, validates and writes."""

    model: nn.Module
    loader: Any
    loss_fn: LossFn
    forward: Callable
    params: list
    optimizer: torch.optim.Optimizer
    sched: Any
    scaler: torch.amp.GradScaler
    steps: int
    seed: int
    rank: int
    world: int
    device: torch.device
    amp_dtype: torch.dtype | None
    channels_last: bool
    grad_clip: float | None
    ckpt_path: Path | None
    val_loader: Any
    val_metrics: Callable | None
    progress: bool
    net: nn.Module | None = None  # the model, or its DistributedDataParallel wrapper
    writer: Any = None
    history: History = field(default_factory=History)
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    restore_rng: Any = None  # random states to set once the resumed epoch's batches are skipped
    # what the next history row averages: since t_log, over n_logged steps
    t_start: float = 0.0
    t_log: float = 0.0
    loss_sum: float = 0.0
    gn_sum: float = 0.0
    n_logged: int = 0
    samples: int = 0

    def __post_init__(self):
        self.net = self.model

    def resume(self) -> None:
        """Weights, optimiser, scheduler, scaler, position, history and random states from
        the checkpoint; warns where the resumed run cannot follow the interrupted one."""
        ckpt = load_checkpoint(self.ckpt_path, map_location=self.device)
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.sched is not None and ckpt.get("scheduler") is not None:
            self.sched.load_state_dict(ckpt["scheduler"])
        if ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        self.step, self.epoch, self.batch_in_epoch = ckpt["step"], ckpt["epoch"], ckpt["batch_in_epoch"]
        self.history = History(ckpt.get("history", []))
        if ckpt.get("steps") != self.steps and self.step < self.steps:
            warnings.warn(f"resuming a run of {ckpt.get('steps')} steps as a run of {self.steps}: "
                          "the learning-rate schedule changes", stacklevel=3)
        if ckpt.get("world_size", 1) != self.world or not _order_is_reproducible(self.loader):
            warnings.warn("resume: different number of processes or a custom sampler, the data order "
                          "after resuming is not the one of the interrupted run", stacklevel=3)
        states = ckpt.get("rng") or []
        self.restore_rng = states[self.rank] if self.rank < len(states) else None

    def epoch_batches(self):
        """An iterator over the current epoch's batches, in the order ``(seed, epoch)`` fixes,
        past the ``batch_in_epoch`` already used (resuming mid-epoch); None, and the next
        epoch, when the epoch has fewer batches than that."""
        _seed_epoch(self.loader, self.epoch, self.seed)
        batches = iter(self.loader)
        used = 0
        for _ in range(self.batch_in_epoch):  # resuming mid-epoch: skip the batches already used
            if next(batches, None) is None:
                break
            used += 1
        if self.restore_rng is not None:
            set_rng_state(self.restore_rng)
            self.restore_rng = None
        if used < self.batch_in_epoch:
            self.epoch, self.batch_in_epoch = self.epoch + 1, 0
            return None
        return batches

    def optimise(self, batch) -> float:
        """One step on a batch already on the device: forward, loss, backward, clip, optimiser
        and scheduler step; stops on a non-finite loss or gradient. Returns the learning rate
        the step used."""
        with _autocast(self.device, self.amp_dtype):
            output = self.forward(self.net, batch)
            loss = self.loss_fn(output, batch)
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise TypeError(f"loss_fn must return a scalar tensor, got {type(loss).__name__} "
                            f"{tuple(getattr(loss, 'shape', ()))}")
        loss_value = loss.item()
        where = f"at step {self.step + 1} (epoch {self.epoch}, batch {self.batch_in_epoch} of " \
                f"the epoch){_batch_names(batch)}"
        if not math.isfinite(loss_value):
            raise FloatingPointError(
                f"non-finite loss ({loss_value}) {where}; training stopped"
                + (f", last checkpoint: {self.ckpt_path}" if self.ckpt_path else ""))
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        clip = self.grad_clip if self.grad_clip else math.inf
        grad_norm = nn.utils.clip_grad_norm_(self.params, clip).item()
        if not math.isfinite(grad_norm) and not self.scaler.is_enabled():
            raise FloatingPointError(f"non-finite gradient norm {where} although the loss was "
                                     f"{loss_value}; training stopped")
        lr_used = self.optimizer.param_groups[0]["lr"]
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.sched is not None:
            self.sched.step()
        self.step += 1
        self.batch_in_epoch += 1
        self.loss_sum += loss_value
        self.gn_sum += grad_norm if math.isfinite(grad_norm) else 0.0
        self.n_logged += 1
        self.samples += _batch_size(batch) * self.world
        return lr_used

    def log(self, lr_used: float) -> dict:
        """A history row (the mean loss and gradient norm since the last row, over all
        processes), to TensorBoard too; the means start again."""
        mean_loss = self.loss_sum / self.n_logged
        if self.world > 1:  # the logged loss is the mean over all processes
            t = torch.tensor([mean_loss], device=self.device)
            dist.all_reduce(t)
            mean_loss = t.item() / self.world
        now = time.perf_counter()
        row = {"step": self.step, "split": "train", "epoch": self.epoch, "loss": mean_loss,
               "lr": lr_used, "grad_norm": self.gn_sum / self.n_logged,
               "samples_per_s": self.samples / max(now - self.t_log, 1e-9),
               "time_s": now - self.t_start}
        self.history.append(row)
        if self.writer is not None:
            for k in ("loss", "lr", "grad_norm", "samples_per_s"):
                self.writer.add_scalar(f"train/{k}", row[k], self.step)
        self.t_log, self.loss_sum, self.gn_sum, self.n_logged, self.samples = now, 0.0, 0.0, 0, 0
        return row

    def validate(self) -> None:
        """Validation metrics as a history row (rank 0; the others wait)."""
        from tqdm.auto import tqdm

        if self.val_loader is None:
            return
        if self.rank == 0:
            metrics = evaluate(self.model, self.val_loader, device=self.device,
                               metrics_fn=self.val_metrics, forward=self.forward,
                               amp_dtype=self.amp_dtype)
            self.history.append({"step": self.step, "split": "val",
                                 **{f"val_{k}": v for k, v in metrics.items()}})
            if self.writer is not None:
                for k, v in metrics.items():
                    self.writer.add_scalar(f"val/{k}", v, self.step)
            if self.progress:
                tqdm.write(f"step {self.step}: " + ", ".join(f"{k} {v:.4g}"
                                                             for k, v in metrics.items()))
        if self.world > 1:
            dist.barrier()

    def save(self) -> None:
        """Everything :meth:`resume` reads, written atomically by rank 0 (with every
        process's random states)."""
        if self.ckpt_path is None:
            return
        states = [None] * self.world
        if self.world > 1:
            dist.all_gather_object(states, rng_state())
        else:
            states = [rng_state()]
        if self.rank == 0:
            e, b = self.epoch, self.batch_in_epoch
            if _has_len(self.loader) and b >= len(self.loader):
                e, b = e + 1, 0  # the epoch is complete: resume at the start of the next one
            raw = getattr(self.model, "config", None)
            model = self.model
            atomic_save({
                "format": "lib.train/1",
                "model_class": f"{type(model).__module__}.{type(model).__qualname__}",
                "model_kwargs": dict(raw) if isinstance(raw, dict) else None,
                "model": model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.sched.state_dict() if self.sched is not None else None,
                "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
                "step": self.step, "epoch": e, "batch_in_epoch": b, "steps": self.steps,
                "seed": self.seed, "world_size": self.world, "rng": states,
                "history": self.history.rows,
            }, self.ckpt_path)
        if self.world > 1:
            dist.barrier()


def _has_len(loader) -> bool:
    try:
        len(loader)
    except TypeError:
        return False
    return not isinstance(getattr(loader, "dataset", None), IterableDataset)


def _loader_generators(loader):
    sampler = getattr(loader, "sampler", None)
    return getattr(loader, "generator", None), getattr(sampler, "generator", None)


def _restore_loader_generators(loader, saved) -> None:
    """Give the caller's loader back its own generators (fit set them per epoch)."""
    if isinstance(loader, DataLoader):
        loader.generator = saved[0]
    if isinstance(getattr(loader, "sampler", None), RandomSampler):
        loader.sampler.generator = saved[1]


def _tensorboard_writer(tensorboard, ckpt_path: Path | None):
    if not tensorboard:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        warnings.warn("tensorboard logging asked for but the tensorboard package is not installed; skipped",
                      stacklevel=3)
        return None
    if tensorboard is True:
        log_dir = ckpt_path.with_suffix("") if ckpt_path is not None else Path("runs")
    else:
        log_dir = Path(tensorboard)
    return SummaryWriter(log_dir=str(log_dir))
