"""How fast are the synthetic scenes made and loaded, compared with training on them?

    .venv/bin/python benchmarks/data.py [--grid /tmp/synthetic_grid.png]

Prints, on ONE core (numpy and torch single-threaded):
1. generation: scenes/s at 128x128, without and with cast shadows (target >= 200 without);
2. the cache: time to build an entry of n scenes, and to open it again (it must not regenerate);
3. loading: samples/s of the cached SyntheticRGBD through a DataLoader (batch 32, 0 and 2 workers);
4. training: samples/s of a forward + backward + Adam step of DepthMaskNet(width=32) on a batch of
   32 at 128x128 (L1 on log depth), and the ratio loading / training (target >= 10).
Timings are the best of a few repeats: the machine is shared, and the minimum is the least noisy.
"""
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"                                     # before numpy is imported

import argparse  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

torch.set_num_threads(1)

from lib.data import raycast  # noqa: E402
from lib.data import synthetic  # noqa: E402

SIZE = (128, 128)


def best_rate(fn, count, repeats=3):
    """Items per second of ``fn()`` (which handles ``count`` items), best of ``repeats``:
    (wall clock, CPU time of this process). Single-threaded, the CPU-time rate is what one
    dedicated core gives; it is much less sensitive than the wall clock to other processes."""
    wall = cpu = float("inf")
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall, cpu = min(wall, time.perf_counter() - t), min(cpu, time.process_time() - c)
    return count / wall, count / cpu


def generation(n=50):
    raycast.texture_library()                                  # built once per process (~1-3 s)
    rates = {}
    for shadows in (False, True):
        synthetic.synthetic_scene(0, SIZE, shadows=shadows)
        wall, cpu = best_rate(lambda: [synthetic.synthetic_scene(s, SIZE, shadows=shadows) for s in range(n)], n, 6)
        rates[shadows] = cpu
        print(f"generation  128x128, shadows={str(shadows):5s}: {cpu:7.0f} scenes/s per CPU second "
              f"({wall:.0f} by the wall clock)")
    return rates


def loading(n=384):
    t = time.perf_counter()
    ds = synthetic.SyntheticRGBD(n, SIZE, seed=0, split="train", progress=False)
    build = time.perf_counter() - t
    t = time.perf_counter()
    ds = synthetic.SyntheticRGBD(n, SIZE, seed=0, split="train", progress=False)
    reopen = time.perf_counter() - t
    print(f"cache       built {n} scenes in {build:.2f} s, reopened in {1e3 * reopen:.1f} ms")
    rates = {}
    for workers in (0, 2):
        loader = DataLoader(ds, batch_size=32, shuffle=True, num_workers=workers, persistent_workers=workers > 0,
                            generator=torch.Generator().manual_seed(0))
        for _ in loader:                                       # start the workers, warm the page cache
            pass
        rates[workers] = best_rate(lambda: [None for _ in loader], n, repeats=2)[0]   # wall: workers
        print(f"loading     DataLoader batch 32, num_workers={workers}: {rates[workers]:7.0f} samples/s")
    return rates


def training(batch=32, steps=1):
    try:
        from lib.models import DepthMaskNet
    except Exception as exc:                                   # the model is written elsewhere
        print(f"training    skipped: lib.models.DepthMaskNet does not import ({type(exc).__name__}: {exc})")
        return None
    model = DepthMaskNet(width=32)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    items = [synthetic.synthetic_scene(s, SIZE) for s in range(batch)]
    image = torch.stack([it["image"] for it in items])
    depth = torch.stack([it["depth"] for it in items])
    valid = torch.stack([it["valid"] for it in items])

    def step(b=batch):
        pred = model(image[:b])["depth"]
        loss = (pred.log() - depth[:b].clamp_min(1e-6).log()).abs()[valid[:b]].mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step(4)                                                    # warm-up on a small batch
    wall, rate = best_rate(lambda: [step() for _ in range(steps)], batch * steps, repeats=1)
    print(f"training    DepthMaskNet(width=32), batch {batch} at 128x128, fwd+bwd+Adam: {rate:7.1f} samples/s "
          f"per CPU second ({wall:.1f} by the wall clock)")
    return wall


def grid(path, seeds=range(6)):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(seeds), 3, figsize=(9, 2.6 * len(seeds)))
    for row, seed in zip(axes, seeds):
        s = synthetic.synthetic_scene(seed, (192, 256), shadows=True)
        row[0].imshow(s["image"].permute(1, 2, 0).numpy())
        row[0].set_title(f"synthetic_scene({seed})")
        im = row[1].imshow(s["depth"][0].numpy(), cmap="turbo")
        fig.colorbar(im, ax=row[1], label="depth (m)")
        row[2].imshow(s["mask"][0].numpy(), cmap="tab10", interpolation="nearest")
        row[2].set_title("instance mask")
        for ax in row:
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    print(f"grid        saved to {path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", help="also save a PNG grid of image / depth / mask for 6 seeds")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["COURSE_DATA_DIR"] = tmp                    # leave the real data/ cache alone
        gen = generation()
        load = loading()
    train = training()
    if train:
        print(f"ratio       loading / training (wall clock) = {load[0] / train:.0f}x with 0 workers, "
              f"{load[2] / train:.0f}x with 2 (target >= 10x)")
    if gen[False] < 200:
        print(f"note        generation below the 200 scenes/s target ({gen[False]:.0f})")
    if args.grid:
        grid(args.grid)


if __name__ == "__main__":
    main()
