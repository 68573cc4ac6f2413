"""Online pair sampling vs one training step of the course model.

The structure-guided ranking loss draws fresh pairs inside every training step, so the
sampling must be cheap next to the step itself. This script times, on one batch
(default: 32 synthetic scenes at 128x128, 3000 pairs per image):

- ``random_pairs``, ``edge_guided_pairs``, ``instance_guided_pairs``, and the full mix used by
  ``structure_guided_ranking_loss`` with a mask (sampling only);
- ``ranking_loss`` forward + backward on those pairs;
- one training step of ``DepthMaskNet(width=32)`` (forward, SILog loss, backward, Adam step),
  the baseline; a small stand-in conv net if ``lib.models`` cannot be imported.

and prints each time and its ratio to the training step (target: sampling < 10%).
Timings are medians over repeats, measured in the same run (the machine may be shared).

    python benchmarks/sampling.py [--batch 32] [--size 128] [--pairs 3000] [--device auto] [--threads N]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from lib.losses import ranking_loss, silog_loss
from lib.runtime import pick_device
from lib.sampling import edge_guided_pairs, instance_guided_pairs, random_pairs


def load_batch(batch: int, size: int, device: torch.device) -> dict[str, torch.Tensor]:
    """A batch of synthetic scenes (8 distinct ones, repeated) with image, depth, valid and mask."""
    from lib.data import synthetic_scene

    scenes = [synthetic_scene(seed, size=(size, size)) for seed in range(min(batch, 8))]
    out = {}
    for key in ("image", "depth", "valid", "mask"):
        x = torch.stack([scenes[i % len(scenes)][key] for i in range(batch)])
        out[key] = x.to(device)
    return out


def make_model(device: torch.device) -> tuple[nn.Module, str]:
    try:
        from lib.models import DepthMaskNet

        return DepthMaskNet(width=32).to(device), "DepthMaskNet(width=32)"
    except ImportError:
        net = nn.Sequential(  # stand-in: a small conv net with positive output
            nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.Upsample(scale_factor=2),
            nn.Conv2d(64, 1, 3, padding=1), nn.Softplus())

        class StandIn(nn.Module):
            def __init__(self):
                super().__init__()
                self.net = net

            def forward(self, x):
                return {"depth": self.net(x) + 1e-3}

        return StandIn().to(device), "stand-in conv net (lib.models not importable)"


def timeit(fn, repeats: int, device: torch.device, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--pairs", type=int, default=3000)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--step-repeats", type=int, default=3)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (on an oversubscribed shared CPU, 1 avoids thread-contention stalls)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    torch.manual_seed(0)

    data = load_batch(args.batch, args.size, device)
    image, depth, valid, mask = data["image"], data["depth"], data["valid"], data["mask"]
    n = args.pairs
    g = torch.Generator().manual_seed(0)

    def mix():
        n_inst = n_rand = n // 4
        edge_guided_pairs(image, valid, n - n_inst - n_rand, g, random_fraction=0.0)
        instance_guided_pairs(mask, valid, n_inst, g)
        random_pairs(valid, n_rand, g)

    ia, ib = edge_guided_pairs(image, valid, n, g)
    pred = depth.clone().mul(1.1).requires_grad_(True)

    def rank_fb():
        pred.grad = None
        ranking_loss(pred, depth, ia, ib, valid).backward()

    model, model_name = make_model(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def train_step():
        opt.zero_grad(set_to_none=True)
        out = model(image)["depth"]
        silog_loss(out, depth, valid).backward()
        opt.step()

    step = timeit(train_step, args.step_repeats, device)
    rows = [
        ("random_pairs", timeit(lambda: random_pairs(valid, n, g), args.repeats, device)),
        ("edge_guided_pairs", timeit(lambda: edge_guided_pairs(image, valid, n, g), args.repeats, device)),
        ("instance_guided_pairs", timeit(lambda: instance_guided_pairs(mask, valid, n, g), args.repeats, device)),
        ("edge+instance+random mix", timeit(mix, args.repeats, device)),
        ("ranking_loss fwd+bwd", timeit(rank_fb, args.repeats, device)),
    ]
    print(f"device={device}  threads={torch.get_num_threads()}  batch={args.batch}  "
          f"size={args.size}x{args.size}  pairs/image={n}")
    print(f"training step of {model_name} (fwd + SILog + bwd + Adam): {step * 1e3:9.1f} ms   (baseline, 100%)")
    for name, t in rows:
        print(f"{name:28s} {t * 1e3:9.2f} ms per batch   {100 * t / step:6.2f}% of a step")


if __name__ == "__main__":
    main()
