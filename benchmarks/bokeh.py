"""How fast and how right is the depth-of-field renderer (lib.bokeh)?

    .venv/bin/python benchmarks/bokeh.py [--quick] [--skip-speed] [--skip-quality]

Prints:
1. speed: seconds per megapixel of ``render_bokeh(method="layered")`` and ``method="scatter"`` on
   a 864x1152 synthetic room whose largest blur radius is 24 px, and the ratio (target: layered
   >= 5x faster). CPU, and CUDA as well when a GPU is present. Timings on a shared machine are
   noisy: both are measured in the same run, by the wall clock and by this process's CPU time
   (less sensitive to other processes); the ratio is what to compare.
2. quality against ray-traced ground truth: ``lib.data.synthetic.render_thin_lens`` averages
   renders from points of a real aperture, so occlusion and partial occlusion are physically
   right. Held-out scenes (seeds never used to tune the renderer), three focus distances each
   (depth quantiles 15/50/85%), an aperture drawn so that the largest blur radius is 10-25 px.
   Both renderers get the pinhole image and the exact depth. PSNR and SSIM (kornia) over the
   image and over a band around depth edges (|Sobel(log depth)| > 0.05, dilated by 4 px): the
   layered renderer must beat the scatter baseline in all four.
"""
import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import kornia  # noqa: E402

from lib.bokeh import render_bokeh  # noqa: E402
from timing import timed  # noqa: E402  (benchmarks/timing.py)

SPEED_SIZE = (864, 1152)
SPEED_RADIUS = 24.0
QUALITY_SIZE = (192, 256)
QUALITY_SEEDS = tuple(range(7100, 7110))                   # tuning used seeds 5000-5005, 6000-6011
QUALITY_SEEDS_QUICK = (7100, 7101, 7102)


def speed(device, repeats_layered=2):
    from lib.data.synthetic import synthetic_scene
    item = synthetic_scene(3, SPEED_SIZE)
    image, depth = item["image"][None].to(device), item["depth"][None].to(device)
    disp = 1.0 / depth
    focus = float(disp.median())
    K = SPEED_RADIUS / float((disp - focus).abs().max())          # largest |CoC| = 24 px
    mp = SPEED_SIZE[0] * SPEED_SIZE[1] / 1e6
    with torch.no_grad():
        render_bokeh(image[..., :64, :64], disp[..., :64, :64], focus, K)          # warm-up
        lay = timed(lambda: render_bokeh(image, disp, focus, K), device, repeats_layered)
        sca = timed(lambda: render_bokeh(image, disp, focus, K, method="scatter"), device)
    print(f"speed on {device.type} ({SPEED_SIZE[0]}x{SPEED_SIZE[1]} = {mp:.2f} MP, max blur radius "
          f"{SPEED_RADIUS:.0f} px, torch threads {torch.get_num_threads()}):")
    for name, (wall, cpu) in (("layered", lay), ("scatter", sca)):
        print(f"  {name:8s} {wall / mp:7.2f} s/MP wall   {cpu / mp:7.2f} s/MP CPU")
    print(f"  layered is {sca[0] / lay[0]:.1f}x faster than scatter by the wall clock, "
          f"{sca[1] / max(lay[1], 1e-9):.1f}x by CPU time (target >= 5x)")


def edge_band(depth, px=4):
    """Bool (1,1,H,W): pixels within px of a depth edge (|Sobel(log depth)| > 0.05)."""
    edges = (kornia.filters.sobel(torch.log(depth)) > 0.05).float()
    kernel = torch.ones(2 * px + 1, 2 * px + 1)
    return kornia.morphology.dilation(edges, kernel) > 0


def scores(out, gt, band):
    """PSNR and SSIM (kornia) over the image and over the band."""
    mse_band = float(((out - gt) ** 2).mean(1, keepdim=True)[band].mean())
    ssim_map = kornia.metrics.ssim(out, gt, 11).mean(1, keepdim=True)
    return (float(kornia.metrics.psnr(out, gt, 1.0)), float(ssim_map.mean()),
            10 * math.log10(1.0 / max(mse_band, 1e-12)), float(ssim_map[band].mean()))


def quality(seeds, samples):
    try:
        from lib.data.synthetic import render_arrays, render_thin_lens, sample_scene
    except ImportError as err:                     # the ground truth comes from lib.data.synthetic
        print(f"quality: SKIPPED, lib.data.synthetic.render_thin_lens is not available ({err})")
        return
    rng = np.random.default_rng(0)
    rows = {"layered": [], "scatter": []}
    seconds = {"layered": 0.0, "scatter": 0.0}
    t0 = time.perf_counter()
    for seed in seeds:
        scene = sample_scene(seed, QUALITY_SIZE)
        disp = 1.0 / render_arrays(scene)["depth"]
        for q in (0.15, 0.5, 0.85):
            focus = float(np.quantile(1.0 / disp, q))
            radius = float(rng.uniform(10, 25))
            aperture = radius / (scene.camera.fx * float(np.abs(disp - 1.0 / focus).max()))
            gt = render_thin_lens(scene, focus_distance=focus, aperture_radius=aperture, samples=samples)
            sharp, depth, target = gt["sharp"][None], gt["depth"][None], gt["image"][None]
            band = edge_band(depth)
            for method in rows:
                t = time.perf_counter()
                out = render_bokeh(sharp, 1.0 / depth, gt["focus_disparity"], gt["K"], method=method)
                seconds[method] += time.perf_counter() - t
                rows[method].append(scores(out, target, band))
    n = len(rows["layered"])
    print(f"quality against thin-lens ground truth ({len(seeds)} held-out scenes x 3 focus distances = {n} "
          f"images of {QUALITY_SIZE[0]}x{QUALITY_SIZE[1]}, {samples} aperture samples, max blur 10-25 px; "
          f"{time.perf_counter() - t0:.0f} s):")
    print(f"  {'':8s} {'PSNR':>7s} {'SSIM':>7s} {'PSNR edge':>10s} {'SSIM edge':>10s}   s/image")
    means = {}
    for method, r in rows.items():
        means[method] = np.mean(np.array(r), 0)
        p, s, pb, sb = means[method]
        print(f"  {method:8s} {p:7.2f} {s:7.4f} {pb:10.2f} {sb:10.4f}   {seconds[method] / n:7.2f}")
    diff = means["layered"] - means["scatter"]
    wins = (np.array(rows["layered"]) > np.array(rows["scatter"])).sum(0)
    print(f"  layered - scatter: PSNR {diff[0]:+.2f} dB, SSIM {diff[1]:+.4f}, edge PSNR {diff[2]:+.2f} dB, "
          f"edge SSIM {diff[3]:+.4f}; layered better on {wins[0]}/{n}, {wins[1]}/{n}, {wins[2]}/{n}, "
          f"{wins[3]}/{n} images")
    print("  layered beats scatter on all four means:", bool((diff > 0).all()))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="three quality scenes, 128 aperture samples")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-quality", action="store_true")
    args = parser.parse_args()
    if not args.skip_speed:
        speed(torch.device("cpu"))
        if torch.cuda.is_available():
            speed(torch.device("cuda"), repeats_layered=3)
        else:
            print("speed on cuda: no GPU here")
    if not args.skip_quality:
        quality(QUALITY_SEEDS_QUICK if args.quick else QUALITY_SEEDS, 128 if args.quick else 256)


if __name__ == "__main__":
    main()
