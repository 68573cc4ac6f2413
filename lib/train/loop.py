"""The training loop of the course: :func:`fit` and :func:`evaluate`.

One loop for every chapter: the chapter brings its model, its data and its loss
(``loss_fn(output, batch) -> scalar``); ``fit`` brings the device, mixed precision, the
learning-rate schedule, gradient clipping, validation, checkpoints that resume exactly, a
progress bar, and the same code under ``torchrun`` on several GPUs or machines.
"""
from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

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
    try:
        seed_everything(seed + rank)
        amp_dtype = _resolve_amp(amp, device)
        channels_last = device.type == "cpu" if channels_last == "auto" else bool(channels_last)
        model.to(device)
        if channels_last:
            model.to(memory_format=torch.channels_last)
        if world > 1:
            train_loader = _distribute(train_loader, rank, world, seed)

        if epochs is not None:
            try:
                steps = int(epochs) * len(train_loader)
            except TypeError:
                raise ValueError("epochs= needs a loader with a length; give steps= instead") from None
        steps = int(steps)
        every = max(1, steps // 10)
        val_every = val_every or every
        checkpoint_every = checkpoint_every or every

        params = [p for p in model.parameters() if p.requires_grad]
        if optimizer is None:
            optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
        elif not isinstance(optimizer, torch.optim.Optimizer):
            optimizer = optimizer(params)
        sched = _lr_schedule(optimizer, scheduler, steps, warmup)
        scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)

        history = History()
        step = epoch = batch_in_epoch = 0
        restore_rng = None
        ckpt_path = Path(checkpoint) if checkpoint is not None else None
        if resume and ckpt_path.is_file():
            ckpt = load_checkpoint(ckpt_path, map_location=device)
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            if sched is not None and ckpt.get("scheduler") is not None:
                sched.load_state_dict(ckpt["scheduler"])
            if ckpt.get("scaler"):
                scaler.load_state_dict(ckpt["scaler"])
            step, epoch, batch_in_epoch = ckpt["step"], ckpt["epoch"], ckpt["batch_in_epoch"]
            history = History(ckpt.get("history", []))
            if ckpt.get("steps") != steps and step < steps:
                warnings.warn(f"resuming a run of {ckpt.get('steps')} steps as a run of {steps}: "
                              "the learning-rate schedule changes", stacklevel=2)
            if ckpt.get("world_size", 1) != world or not _order_is_reproducible(train_loader):
                warnings.warn("resume: different number of processes or a custom sampler, the data order "
                              "after resuming is not the one of the interrupted run", stacklevel=2)
            states = ckpt.get("rng") or []
            restore_rng = states[rank] if rank < len(states) else None
            if step >= steps:
                return history

        net = model
        if world > 1:
            # find_unused_parameters: a chapter's loss may use only some heads (depth but not mask)
            net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                                      find_unused_parameters=True)
        forward = forward or _default_forward
        is_main = rank == 0
        writer = _tensorboard_writer(tensorboard, ckpt_path) if is_main else None

        def save() -> None:
            if ckpt_path is None:
                return
            states = [None] * world
            if world > 1:
                dist.all_gather_object(states, rng_state())
            else:
                states = [rng_state()]
            if is_main:
                e, b = epoch, batch_in_epoch
                if _has_len(train_loader) and b >= len(train_loader):
                    e, b = e + 1, 0  # the epoch is complete: resume at the start of the next one
                raw = getattr(model, "config", None)
                atomic_save({
                    "format": "lib.train/1",
                    "model_class": f"{type(model).__module__}.{type(model).__qualname__}",
                    "model_kwargs": dict(raw) if isinstance(raw, dict) else None,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": sched.state_dict() if sched is not None else None,
                    "scaler": scaler.state_dict() if scaler.is_enabled() else None,
                    "step": step, "epoch": e, "batch_in_epoch": b, "steps": steps,
                    "seed": seed, "world_size": world, "rng": states,
                    "history": history.rows,
                }, ckpt_path)
            if world > 1:
                dist.barrier()

        def validate() -> None:
            if val_loader is None:
                return
            if is_main:
                metrics = evaluate(model, val_loader, device=device, metrics_fn=val_metrics,
                                   forward=forward, amp_dtype=amp_dtype)
                row = {"step": step, "split": "val", **{f"val_{k}": v for k, v in metrics.items()}}
                history.append(row)
                if writer is not None:
                    for k, v in metrics.items():
                        writer.add_scalar(f"val/{k}", v, step)
                if progress:
                    tqdm.write(f"step {step}: " + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()))
            if world > 1:
                dist.barrier()

        bar = tqdm(total=steps, initial=step, desc="train", disable=not (progress and is_main), dynamic_ncols=True)
        saved_generators = _loader_generators(train_loader)
        t_start = time.perf_counter()
        t_log, loss_sum, gn_sum, n_logged, samples = t_start, 0.0, 0.0, 0, 0
        try:
            while step < steps:
                _seed_epoch(train_loader, epoch, seed)
                batches = iter(train_loader)
                used = 0
                for _ in range(batch_in_epoch):  # resuming mid-epoch: skip the batches already used
                    if next(batches, None) is None:
                        break
                    used += 1
                if restore_rng is not None:
                    set_rng_state(restore_rng)
                    restore_rng = None
                if used < batch_in_epoch:  # the epoch had fewer batches than recorded
                    epoch, batch_in_epoch = epoch + 1, 0
                    continue
                n_before = batch_in_epoch
                for batch in batches:
                    batch = _to_device(batch, device, channels_last)
                    with _autocast(device, amp_dtype):
                        output = forward(net, batch)
                        loss = loss_fn(output, batch)
                    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                        raise TypeError(f"loss_fn must return a scalar tensor, got {type(loss).__name__} "
                                        f"{tuple(getattr(loss, 'shape', ()))}")
                    loss_value = loss.item()
                    if not math.isfinite(loss_value):
                        raise FloatingPointError(
                            f"non-finite loss ({loss_value}) at step {step + 1} (epoch {epoch}, batch "
                            f"{batch_in_epoch} of the epoch){_batch_names(batch)}; training stopped"
                            + (f", last checkpoint: {ckpt_path}" if ckpt_path else ""))
                    optimizer.zero_grad(set_to_none=True)
                    scaler.scale(loss).backward()
                    scaler.unscale_(optimizer)
                    grad_norm = nn.utils.clip_grad_norm_(params, grad_clip if grad_clip else math.inf).item()
                    if not math.isfinite(grad_norm) and not scaler.is_enabled():
                        raise FloatingPointError(
                            f"non-finite gradient norm at step {step + 1} (epoch {epoch}, batch {batch_in_epoch} "
                            f"of the epoch){_batch_names(batch)} although the loss was {loss_value}; training stopped")
                    lr_used = optimizer.param_groups[0]["lr"]
                    scaler.step(optimizer)
                    scaler.update()
                    if sched is not None:
                        sched.step()
                    step += 1
                    batch_in_epoch += 1
                    bar.update(1)
                    loss_sum += loss_value
                    gn_sum += grad_norm if math.isfinite(grad_norm) else 0.0
                    n_logged += 1
                    samples += _batch_size(batch) * world

                    if step % log_every == 0 or step == steps:
                        mean_loss = loss_sum / n_logged
                        if world > 1:  # the logged loss is the mean over all processes
                            t = torch.tensor([mean_loss], device=device)
                            dist.all_reduce(t)
                            mean_loss = t.item() / world
                        now = time.perf_counter()
                        row = {"step": step, "split": "train", "epoch": epoch, "loss": mean_loss,
                               "lr": lr_used, "grad_norm": gn_sum / n_logged,
                               "samples_per_s": samples / max(now - t_log, 1e-9), "time_s": now - t_start}
                        history.append(row)
                        bar.set_postfix(loss=f"{mean_loss:.4g}", samples_s=f"{row['samples_per_s']:.1f}")
                        if writer is not None:
                            for k in ("loss", "lr", "grad_norm", "samples_per_s"):
                                writer.add_scalar(f"train/{k}", row[k], step)
                        t_log, loss_sum, gn_sum, n_logged, samples = now, 0.0, 0.0, 0, 0
                    if step % val_every == 0 or step == steps:
                        validate()
                    if step % checkpoint_every == 0 or step == steps:
                        save()
                    if step >= steps:
                        break
                else:
                    if batch_in_epoch == n_before == 0:
                        raise ValueError("the training loader yielded no batch")
                    epoch, batch_in_epoch = epoch + 1, 0
        finally:
            bar.close()
            _restore_loader_generators(train_loader, saved_generators)
            if writer is not None:
                writer.close()
        return history
    finally:
        if created_group:
            dist.destroy_process_group()


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
