"""Throughput of ``lib.train.fit`` against a plain hand-written PyTorch loop, same model, same data.

For each image size (default 64x64 and 128x128), batch 32, the course model
``DepthMaskNet`` (default width 32) is trained on in-memory scenes by two loops, from the same
initial weights, with the same settings (AdamW, cosine schedule, gradient clipping at 1, the
log-depth L1 loss, channels-last on CPU / autocast on CUDA, as ``fit`` chooses):

- ``reference``: the loop one writes by hand (forward, loss, zero_grad, backward, clip, step,
  scheduler step), nothing else;
- ``fit``: ``lib.train.fit`` with the progress bar on, a history row and a loss check every step.

Every step is timed (``fit``: from its history, ``log_every=1``, which is its most expensive
setting). Runs alternate (reference, fit, reference, ...) after one untimed warm-up of each;
the median step time of each loop gives samples/s and the loop's own overhead
``fit / reference - 1`` (target < 10%). Medians, because the machine may be shared: a burst of
someone else's work slows a few steps, not the median. Also printed: the parameter count, the
activation memory of a 128x128 batch of 32, and (CPU) the reference loop in the contiguous
layout, to show what channels-last buys.

    python benchmarks/train.py [--width 32] [--batch 32] [--sizes 64 128] [--steps 4] [--repeats 3]
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import io
import math
import statistics
import time

import torch
from torch.utils.data import DataLoader, Dataset

from lib.models import DepthMaskNet, activation_memory, count_parameters
from lib.runtime import pick_device
from lib.train import fit, log_l1_loss


class MemoryScenes(Dataset):
    """``n`` random RGB-D items held in memory (data loading is not what is measured)."""

    def __init__(self, n: int, size: int, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.image = torch.rand(n, 3, size, size, generator=g)
        self.depth = 1.0 + 4.0 * torch.rand(n, 1, size, size, generator=g)

    def __len__(self):
        return len(self.image)

    def __getitem__(self, i):
        return {"image": self.image[i], "depth": self.depth[i],
                "valid": torch.ones_like(self.depth[i], dtype=torch.bool), "name": f"mem/{i}"}


def reference_loop(model, loader, steps: int, device: torch.device, channels_last: bool, amp_dtype) -> list[float]:
    """The hand-written loop; returns the duration of every step (seconds, data loading included)."""
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    warmup = min(100, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warmup if s < warmup else 0.5 * (1 + math.cos(math.pi * (s - warmup) / max(1, steps - warmup))))
    times, t = [], time.perf_counter()
    while len(times) < steps:
        for batch in loader:
            image = batch["image"].to(device)
            if channels_last:
                image = image.contiguous(memory_format=torch.channels_last)
            target = {"depth": batch["depth"].to(device), "valid": batch["valid"].to(device)}
            with torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else contextlib.nullcontext():
                loss = log_l1_loss(model(image), target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            now = time.perf_counter()
            times.append(now - t)
            t = now
            if len(times) == steps:
                break
    return times


def fit_call(model, loader, steps: int, device: torch.device) -> list[float]:
    """``fit`` with the progress bar (out of sight); the duration of every step from its history."""
    with contextlib.redirect_stderr(io.StringIO()):
        history = fit(model, loader, log_l1_loss, steps=steps, device=device, progress=True, log_every=1)
    ends = history.column("time_s", "train")[1]
    return [b - a for a, b in zip([0.0] + ends[:-1], ends)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    p.add_argument("--steps", type=int, default=4, help="timed steps per run")
    p.add_argument("--repeats", type=int, default=3, help="timed runs of each loop")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--no-layout", action="store_true", help="skip the contiguous-layout reference run")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    channels_last = device.type == "cpu"  # what fit(device="auto") does
    amp_dtype = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if device.type == "cuda" else None

    torch.manual_seed(0)
    template = DepthMaskNet(width=args.width)
    print(f"device {device} ({torch.get_num_threads()} CPU threads), torch {torch.__version__}; "
          f"DepthMaskNet(width={args.width}), batch {args.batch}, {args.steps} steps x {args.repeats} runs per loop, "
          f"channels_last={channels_last}, amp={amp_dtype}")
    print(f"parameters: {count_parameters(template):,} ({count_parameters(template) * 4 / 2**20:.1f} MiB fp32)")
    mem = activation_memory(template, (32, 3, 128, 128))
    print(f"activation memory (saved for backward) at 32x3x128x128: {mem / 2**20:,.0f} MiB "
          f"({mem / 32 / 128 / 128:.0f} bytes per pixel per image)")

    print("\n| size | reference samples/s | fit samples/s | fit overhead | reference, contiguous layout |")
    print("|---|---:|---:|---:|---:|")
    for size in args.sizes:
        loader = DataLoader(MemoryScenes(2 * args.batch, size), batch_size=args.batch, shuffle=True, drop_last=True)
        reference_loop(copy.deepcopy(template), loader, 1, device, channels_last, amp_dtype)  # warm-up
        fit_call(copy.deepcopy(template), loader, 1, device)
        t_ref, t_fit = [], []
        for _ in range(args.repeats):
            t_ref += reference_loop(copy.deepcopy(template), loader, args.steps, device, channels_last, amp_dtype)
            t_fit += fit_call(copy.deepcopy(template), loader, args.steps, device)
        ref_sps, fit_sps = args.batch / statistics.median(t_ref), args.batch / statistics.median(t_fit)
        layout = ""
        if channels_last and not args.no_layout:
            t = reference_loop(copy.deepcopy(template), loader, args.steps, device, False, amp_dtype)
            layout = f"{args.batch / statistics.median(t):.1f}"
        print(f"| {size}x{size} | {ref_sps:.1f} | {fit_sps:.1f} | {100 * (ref_sps / fit_sps - 1):+.1f}% | {layout} |",
              flush=True)
    print("\nfit overhead = median fit step time / median reference step time - 1 "
          "(a negative value means the difference is within the noise)")


if __name__ == "__main__":
    main()
