"""Chapter 12's tools: depth files, metric scale from a few points, ONNX export, refocus CLI."""
import math
import struct

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from lib import metrics, zoo
from lib.data.depth_files import colorize, load_depth, save_depth
from lib.refocus import main as refocus_main
from lib.refocus import refocus


# ----------------------------------------------------------------------------- depth files
def _depth():
    g = torch.Generator().manual_seed(0)
    d = torch.rand(1, 12, 17, generator=g) * 9 + 0.3
    d[0, 2, 3] = 0.0                                   # no depth here
    d[0, 5, 7] = float("nan")
    return d


@pytest.mark.parametrize("ext", [".npy", ".pfm"])
def test_float_formats_round_trip_exactly(tmp_path, ext):
    d = _depth()
    save_depth(tmp_path / f"d{ext}", d)
    back, valid = load_depth(tmp_path / f"d{ext}")
    ok = torch.isfinite(d) & (d > 0)
    assert torch.equal(valid, ok)
    assert torch.equal(back[ok], d.float()[ok]) and bool((back[~ok] == 0).all())


def test_png_keeps_millimetres_and_loses_at_most_half_of_one(tmp_path):
    d = _depth()
    save_depth(tmp_path / "d.png", d)
    raw = iio.imread(tmp_path / "d.png")
    assert raw.dtype == np.uint16 and raw[2, 3] == 0 and raw[5, 7] == 0
    assert raw[0, 0] == round(float(d[0, 0, 0]) * 1000)
    back, valid = load_depth(tmp_path / "d.png")
    ok = torch.isfinite(d) & (d > 0)
    assert torch.equal(valid, ok)
    assert float((back[ok] - d[ok]).abs().max()) <= 0.0005 + 1e-7
    # a depth beyond 65.535 m does not fit millimetres: a clear error, and a way out
    far = torch.full((1, 2, 2), 80.0)
    with pytest.raises(ValueError, match="does not fit a 16-bit PNG.*smaller depth_scale"):
        save_depth(tmp_path / "far.png", far)
    save_depth(tmp_path / "far.png", far, depth_scale=500)
    assert load_depth(tmp_path / "far.png", depth_scale=500)[0].flatten().tolist() == [80.0] * 4


def test_pfm_reader_against_a_file_written_by_hand(tmp_path):
    # Middlebury's layout: header, then float32 rows from the BOTTOM, big-endian for scale > 0
    rows = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]            # top row first, as the image shows it
    body = b"".join(struct.pack(">3f", *r) for r in reversed(rows))
    (tmp_path / "h.pfm").write_bytes(b"Pf\n3 2\n1.0\n" + body)
    depth, valid = load_depth(tmp_path / "h.pfm")
    assert depth[0].tolist() == rows and bool(valid.all())
    (tmp_path / "t.pfm").write_bytes(b"Pf\n3 2\n-1.0\n" + body[:10])
    with pytest.raises(ValueError, match="truncated"):
        load_depth(tmp_path / "t.pfm")
    (tmp_path / "x.pfm").write_bytes(b"P6\n3 2\n255\n")
    with pytest.raises(ValueError, match="not a PFM"):
        load_depth(tmp_path / "x.pfm")


def test_depth_files_reject_bad_input(tmp_path):
    with pytest.raises(ValueError, match="unknown depth format"):
        save_depth(tmp_path / "d.jpg", _depth())
    with pytest.raises(ValueError, match="one map"):
        save_depth(tmp_path / "d.npy", torch.rand(2, 4, 4))
    with pytest.raises(FileNotFoundError, match="nope.png"):
        load_depth(tmp_path / "nope.png")
    preview = colorize(_depth())
    assert preview.shape == (12, 17, 3) and preview.dtype == np.uint8
    with pytest.raises(ValueError, match="no valid pixel"):
        colorize(torch.zeros(4, 4))


# ----------------------------------------------------------------------------- points
def test_two_points_fix_the_scale_by_hand():
    pred = torch.tensor([[[1.0, 2.0, 4.0], [0.5, 3.0, 6.0]]])
    depth, s, t = metrics.align_to_points(pred, [(0, 0), (2, 1)], [2.0, 12.0])
    # least squares s = (1*2 + 6*12) / (1 + 36) = 74 / 37 = 2
    assert s == pytest.approx(2.0) and t == 0.0 and torch.allclose(depth, 2 * pred)
    # disparity: the truth is 1/g = 0.5 / p + 0.25, recovered from two points exactly
    truth = 1 / (0.5 / pred + 0.25)
    pts = [(0, 0), (2, 1)]
    depth, s, t = metrics.align_to_points(pred, pts, [float(truth[0, y, x]) for x, y in pts],
                                          space="disparity")
    assert (s, t) == (pytest.approx(0.5), pytest.approx(0.25))
    assert torch.allclose(depth, truth, rtol=1e-5)


def test_points_reject_bad_input():
    pred = torch.ones(1, 4, 5)
    with pytest.raises(ValueError, match="outside the 5x4 image"):
        metrics.align_to_points(pred, [(5, 0)], [1.0])
    with pytest.raises(ValueError, match="one distance per point"):
        metrics.align_to_points(pred, [(0, 0), (1, 1)], [1.0])
    with pytest.raises(ValueError, match="positive metres"):
        metrics.align_to_points(pred, [(0, 0)], [-1.0])
    with pytest.raises(ValueError, match="two points at different distances"):
        metrics.align_to_points(pred, [(0, 0)], [2.0], space="disparity")


# ----------------------------------------------------------------------------- ONNX
@pytest.mark.slow
def test_onnx_export_matches_torch_at_two_sizes(tmp_path, monkeypatch):
    ort = pytest.importorskip("onnxruntime")
    monkeypatch.delenv("COURSE_WEIGHTS_DIR", raising=False)
    path = zoo.export_onnx("depth", tmp_path / "depth.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    model = zoo.load("depth", "cpu")
    for shape in [(1, 3, 64, 96), (2, 3, 128, 176)]:                 # dynamic batch and size
        x = torch.rand(*shape, generator=torch.Generator().manual_seed(1))
        got = session.run(None, {"image": x.numpy()})[0]
        with torch.no_grad():
            want = model(x)["depth"].numpy()
        assert got.shape == want.shape
        assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()
    with pytest.raises(zoo.ZooError, match="tile by tile"):
        zoo.export_onnx("fusion", tmp_path / "f.onnx")


# ----------------------------------------------------------------------------- refocus
def test_refocus_keeps_the_focus_plane_sharp_and_blurs_the_rest():
    g = torch.Generator().manual_seed(0)
    img = torch.rand(3, 40, 60, generator=g)
    depth = torch.ones(1, 40, 60)
    depth[..., 30:] = 4.0                                   # right half far away
    out = refocus(img, depth, (10, 20), max_blur=6)
    near, far = (out - img)[..., 5:35, 3:25].abs().mean(), (out - img)[..., 5:35, 40:].abs().mean()
    assert near < 0.01 < far
    # the f-number path is chapter 09's renderer with K of the thin-lens formula
    from lib.bokeh import render_bokeh
    K = (26 * 60 / 36) * (26 / (2 * 1.4) * 1e-3)                    # f_px * aperture radius
    want = render_bokeh(img[None], 1 / depth[None], 1.0, K)[0].clamp(0, 1)
    assert torch.allclose(refocus(img, depth, (10, 20), f_number=1.4), want, atol=1e-6)
    # the same with a relative disparity map and a blur in pixels
    disp = torch.where(depth > 2, torch.tensor(10.0), torch.tensor(200.0))
    out2 = refocus(img, disp, (10, 20), max_blur=6, disparity=True)
    assert (out2 - img)[..., 5:35, 3:25].abs().mean() < 0.01 < (out2 - img)[..., 5:35, 40:].abs().mean()


def test_refocus_command_end_to_end_and_its_errors(tmp_path, capsys):
    g = np.random.default_rng(0)
    iio.imwrite(tmp_path / "photo.png", (g.random((40, 60, 3)) * 255).astype(np.uint8))
    depth = np.ones((40, 60))
    depth[:, 30:] = 4.0
    save_depth(tmp_path / "photo_depth.png", depth)
    out = tmp_path / "out.jpg"
    rc = refocus_main([str(tmp_path / "photo.png"), "--depth", str(tmp_path / "photo_depth.png"),
                       "--focus", "10,20", "--f-number", "1.4", "-o", str(out)])
    assert rc == 0 and iio.imread(out).shape == (40, 60, 3)
    phone = np.where(depth > 2, 20, 200).astype(np.uint8)               # larger = nearer
    iio.imwrite(tmp_path / "disp.png", phone)
    assert refocus_main([str(tmp_path / "photo.png"), "--disparity", str(tmp_path / "disp.png"),
                         "--focus", "10,20", "-o", str(tmp_path / "o2.png")]) == 0

    def error(*args):
        rc = refocus_main([str(tmp_path / "photo.png"), *args, "-o", str(tmp_path / "e.jpg")])
        assert rc == 2
        return capsys.readouterr().err

    assert "nope.png does not exist" in error("--depth", str(tmp_path / "nope.png"),
                                              "--focus", "1,1")
    save_depth(tmp_path / "small.png", np.ones((20, 30)))
    assert "must match" in error("--depth", str(tmp_path / "small.png"), "--focus", "1,1")
    save_depth(tmp_path / "empty.png", np.zeros((40, 60)))
    assert "no valid pixel" in error("--depth", str(tmp_path / "empty.png"), "--focus", "1,1")
    assert "outside the 60x40 image" in error("--depth", str(tmp_path / "photo_depth.png"),
                                              "--focus", "70,5")
    with pytest.raises(SystemExit):
        refocus_main([str(tmp_path / "photo.png"), "--predict", "--focus", "a,b", "-o", "x.jpg"])
    assert math.isfinite(float(iio.imread(out).mean()))
