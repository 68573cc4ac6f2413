"""Notebook 02's recipe as a command: the course model, the synthetic scenes, an L1 loss on log depth.

::

    python -m lib.train --steps 200 --size 64 --batch-size 16 --width 16 --lr 1e-3 \\
        --checkpoint reports/runs/x.pt
    torchrun --nproc_per_node 2 -m lib.train --steps 200 ...   # batch size is per process

The model is evaluated on the synthetic ``val`` split during training and on ``test`` at the end
(median-scale aligned metrics plus the raw AbsRel); the checkpoint can be reloaded with
:func:`lib.train.load_model`.
"""
from __future__ import annotations

import argparse
import os

import torch

__all__ = ["log_l1_loss", "main"]


def log_l1_loss(output: dict, batch: dict) -> torch.Tensor:
    r"""Mean absolute error of log depth over the valid pixels of the batch.

    :math:`\frac{1}{|V|} \sum_{i \in V} |\ln \hat d_i - \ln d_i|`, ``V`` the valid pixels of all
    images together (``batch["valid"]`` and target depth > 0). Natural for depth: an error of
    10 % weighs the same at 1 m and at 8 m. With no valid pixel it returns a 0 that still
    backpropagates.

    Args:
        output: dict with ``depth`` ``(B,1,H,W)`` > 0 (metres).
        batch: dict with ``depth`` ``(B,1,H,W)`` metres and ``valid`` ``(B,1,H,W)`` bool.

    Example:
        >>> d = torch.full((1, 1, 2, 2), 2.0)
        >>> b = {"depth": d, "valid": torch.ones_like(d, dtype=torch.bool)}
        >>> round(log_l1_loss({"depth": d * 1.5}, b).item(), 4)  # ln 1.5
        0.4055
    """
    pred, target = output["depth"], batch["depth"]
    if pred.shape != target.shape:
        raise ValueError(f"log_l1_loss: prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    valid = batch["valid"].bool() & (target > 0)
    err = (pred.float().clamp_min(1e-6).log() - target.float().clamp_min(1e-6).log()).abs()
    return torch.where(valid, err, torch.zeros_like(err)).sum() / valid.sum().clamp_min(1)


def _size(text: str) -> tuple[int, int]:
    h, _, w = text.lower().partition("x")
    return int(h), int(w or h)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lib.train", description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--steps", type=int, default=200, help="optimisation steps")
    p.add_argument("--size", type=_size, default=(64, 64), help="image size: 64 or 64x96 (multiples of 16)")
    p.add_argument("--batch-size", type=int, default=16, help="batch size per process")
    p.add_argument("--width", type=int, default=16, help="DepthMaskNet width")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--n-train", type=int, default=1000, help="synthetic training scenes")
    p.add_argument("--n-val", type=int, default=64, help="synthetic validation (and test) scenes")
    p.add_argument("--val-every", type=int, default=None, help="default: a tenth of the run")
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--checkpoint", default=None, help="file to save to (e.g. reports/runs/x.pt)")
    p.add_argument("--checkpoint-every", type=int, default=None)
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint when it exists")
    p.add_argument("--device", default="auto")
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tensorboard", default=None, help="TensorBoard log folder")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: list[str] | None = None):
    """Parse ``argv``, train, print the test metrics; returns the :class:`~lib.train.History`."""
    import torch.distributed as dist
    from torch.utils.data import DataLoader

    from lib.data import SyntheticRGBD
    from lib.models import DepthMaskNet, count_parameters
    from lib.runtime import pick_device, seed_everything
    from lib.train.loop import _leave_process_group, evaluate, fit

    args = _parser().parse_args(argv)
    created = False
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if pick_device(args.device).type == "cuda" else "gloo")
        created = True
    rank = dist.get_rank() if dist.is_initialized() else 0
    failed = False
    try:
        # rank 0 generates (and caches) the scenes first, the others then read the cache
        def datasets():
            kw = dict(size=args.size, seed=args.seed, progress=rank == 0)
            return (SyntheticRGBD(args.n_train, split="train", **kw), SyntheticRGBD(args.n_val, split="val", **kw),
                    SyntheticRGBD(args.n_val, split="test", **kw))

        if rank == 0:
            train_set, val_set, test_set = datasets()
        if dist.is_initialized():
            dist.barrier()
        if rank != 0:
            train_set, val_set, test_set = datasets()

        seed_everything(args.seed)  # the same initial weights on every process
        model = DepthMaskNet(width=args.width)
        loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True, drop_last=True,
                            num_workers=args.workers, persistent_workers=args.workers > 0)
        val_loader = DataLoader(val_set, batch_size=32)
        if rank == 0:
            print(f"DepthMaskNet(width={args.width}): {count_parameters(model):,} parameters; "
                  f"{len(train_set)} training scenes of {args.size[0]}x{args.size[1]}")
        history = fit(model, loader, log_l1_loss, steps=args.steps, lr=args.lr, weight_decay=args.weight_decay,
                      grad_clip=args.grad_clip or None, device=args.device, val_loader=val_loader,
                      val_every=args.val_every, log_every=args.log_every, checkpoint=args.checkpoint,
                      checkpoint_every=args.checkpoint_every, resume=args.resume, progress=not args.no_progress,
                      seed=args.seed, tensorboard=args.tensorboard)
        if rank == 0:
            test = evaluate(model, DataLoader(test_set, batch_size=32))
            print(history.to_markdown("val"))
            print("test split (median-scale aligned; abs_rel_raw unaligned): "
                  + ", ".join(f"{k} {v:.4f}" for k, v in test.items()))
            if args.checkpoint:
                print(f"checkpoint: {args.checkpoint}")
        return history
    except BaseException:
        failed = True
        raise
    finally:
        if created:
            _leave_process_group(wait=not failed)
