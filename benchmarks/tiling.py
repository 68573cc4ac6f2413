"""What does tiled inference (lib.models.tiled_predict) cost, per mode and per tile batch?

    .venv/bin/python benchmarks/tiling.py [--quick] [--size H W] [--width 16]

Prints, for an untrained DepthMaskNet (naive tiling) and an untrained PatchFusion pipeline (the
cost does not depend on the weights) on one synthetic room:

1. per mode (coarse single pass, P16, P49, R<n>): seconds per megapixel by the wall clock and
   by this process's CPU time (less sensitive to other processes on a shared machine), the
   ratio to the single coarse pass measured in the same run, and the peak memory of the
   tensors created during the call (``lib.models.tiling.peak_memory``: the CUDA allocator's
   peak on a GPU, tracked tensor storages on the CPU);
2. the tile batch's effect: peak memory for tile_batch = 1, 4, 16, 64 in mode P49. Memory
   should grow with the tile batch and not with the number of tiles; time changes little.

CPU, and CUDA as well when a GPU is present.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from lib.data import synthetic_scene  # noqa: E402
from lib.models import DepthMaskNet  # noqa: E402
from lib.models.fusion import PatchFusion  # noqa: E402
from lib.models.tiling import peak_memory, tile_boxes, tiled_predict  # noqa: E402
from timing import timed  # noqa: E402  (benchmarks/timing.py)


def run(device, size, width, n_random, repeats):
    H, W = size
    P = (-(-H // 4) // 16 * 16 or 16, -(-W // 4) // 16 * 16 or 16)
    torch.manual_seed(0)
    fine = DepthMaskNet(width).to(device).eval()
    fusion = PatchFusion(DepthMaskNet(width), DepthMaskNet(width), P, width=width).to(device).eval()
    image = synthetic_scene(1, size)["image"][None].to(device)
    mp = H * W / 1e6
    modes = ["P16", "P49", f"R{n_random}"]
    print(f"\n{device.type}: {H}x{W} image ({mp:.2f} MP), processing size {P[0]}x{P[1]}, DepthMaskNet width {width}, "
          f"tile_batch 16, torch threads {torch.get_num_threads()}")
    with torch.no_grad():
        jobs = [("coarse (1 pass)", "-", 1, lambda: fusion.coarse_predict(image))]
        for mode in modes:
            n = len(tile_boxes(H, W, mode))
            jobs.append(("naive tiling", mode, n, lambda m=mode: tiled_predict(fine, image, m, process_size=P, progress=False)))
        for mode in modes:
            n = len(tile_boxes(H, W, mode))
            jobs.append(("patch fusion", mode, n, lambda m=mode: tiled_predict(fusion, image, m, progress=False)))
        jobs[0][3]()                                           # warm-up
        base = None
        print(f"  {'pipeline':16s} {'mode':>5s} {'tiles':>5s} {'s/MP wall':>10s} {'s/MP CPU':>9s} {'x coarse':>9s} {'peak MiB':>9s}")
        for name, mode, n, fn in jobs:
            wall, cpu = timed(fn, device, repeats)
            base = base or wall
            _, peak = peak_memory(fn, device)
            print(f"  {name:16s} {mode:>5s} {n:5d} {wall / mp:10.3f} {cpu / mp:9.3f} {wall / base:9.1f} {peak / 2**20:9.1f}")
        print("  tile batch (patch fusion, P49): peak memory and time")
        for batch in (1, 4, 16, 64):
            fn = lambda b=batch: tiled_predict(fusion, image, "P49", tile_batch=b, progress=False)  # noqa: E731
            wall, _ = timed(fn, device, repeats)
            _, peak = peak_memory(fn, device)
            print(f"    tile_batch {batch:3d}: peak {peak / 2**20:8.1f} MiB, {wall / mp:7.3f} s/MP")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a 256x384 image, width 8, one repeat")
    ap.add_argument("--size", type=int, nargs=2, default=None, metavar=("H", "W"))
    ap.add_argument("--width", type=int, default=None)
    ap.add_argument("--random", type=int, default=32, help="n of mode R<n>")
    args = ap.parse_args()
    size = tuple(args.size) if args.size else ((256, 384) if args.quick else (512, 768))
    width = args.width or (8 if args.quick else 16)
    repeats = 1 if args.quick else 3
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    for device in devices:
        run(device, size, width, args.random, repeats)


if __name__ == "__main__":
    main()
