"""Readers of the on-disk formats: files are written here in the real layouts, then read back."""
import pickle

import h5py
import imageio.v3 as iio
import numpy as np
import pytest
import scipy.io
import torch
from torch.utils.data import DataLoader

from lib.data.formats import DIODE, ImageDepthFolder, NYUv2Labeled, ReDWeb, nyu_instance_mask

H, W = 6, 8  # small, non-square: a transposed or flipped read cannot pass


def pattern_rgb(h=H, w=W, seed=0):
    """uint8 (h,w,3) with every pixel different per channel and position."""
    y, x = np.mgrid[:h, :w]
    return np.stack([(y * w + x + 1) % 256, (3 * y + 17 * x + 40 + seed) % 256, (200 - 5 * y - x) % 256], -1).astype(np.uint8)


def truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def check_item(item, h=H, w=W):
    assert item["image"].shape == (3, h, w) and item["image"].dtype == torch.float32
    assert item["depth"].shape == (1, h, w) and item["depth"].dtype == torch.float32
    assert item["valid"].shape == (1, h, w) and item["valid"].dtype == torch.bool
    assert isinstance(item["name"], str)
    assert torch.isfinite(item["depth"]).all() and (item["depth"][~item["valid"]] == 0).all()
    assert (item["depth"][item["valid"]] > 0).all()


# ------------------------------------------------------------------------------------------ NYUv2
N = 3


def nyu_arrays():
    """MATLAB-side arrays (H,W,3,N), (H,W,N): what MATLAB users see."""
    images = np.stack([pattern_rgb(seed=10 * n) for n in range(N)], -1)  # (H,W,3,N)
    y, x = np.mgrid[:H, :W]
    depths = np.stack([1.0 + 0.1 * y + 0.01 * x + n for n in range(N)], -1).astype(np.float32)
    depths[0, 1, 1] = np.nan
    depths[2, 3, 1] = np.inf
    depths[4, 5, 1] = 0.0
    depths[5, 7, 1] = -2.0
    labels = np.zeros((H, W, N), np.uint16)
    instances = np.zeros((H, W, N), np.uint8)
    labels[:, :4, :] = 7  # class 7 on the left ...
    instances[:3, :4, :] = 1  # ... two instances of it
    instances[3:, :4, :] = 2
    labels[:2, 5:, :] = 3  # class 3, instance 1, top right
    instances[:2, 5:, :] = 1
    instances[4:, 6:, :] = 9  # instance number but label 0 -> background
    return images, depths, labels, instances


def write_nyu(path, images, depths, labels=None, instances=None):
    """As MATLAB -v7.3 writes: column-major, so h5py sees every axis order reversed."""
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=images.transpose(3, 2, 1, 0))  # (N,3,W,H)
        f.create_dataset("depths", data=depths.transpose(2, 1, 0))  # (N,W,H)
        if labels is not None:
            f.create_dataset("labels", data=labels.transpose(2, 1, 0))
            f.create_dataset("instances", data=instances.transpose(2, 1, 0))
        f.create_dataset("rawDepths", data=depths.transpose(2, 1, 0))
    return path


@pytest.fixture
def nyu(tmp_path):
    arrays = nyu_arrays()
    path = write_nyu(tmp_path / "nyu_depth_v2_labeled.mat", *arrays)
    return path, arrays


def test_nyu_layout_is_as_documented(nyu):
    path, _ = nyu
    with h5py.File(path, "r") as f:
        assert f["images"].shape == (N, 3, W, H) and f["images"].dtype == np.uint8
        assert f["depths"].shape == (N, W, H)


def test_nyu_values_round_trip(nyu):
    path, (images, depths, labels, instances) = nyu
    ds = NYUv2Labeled(path)
    assert len(ds) == N
    for n in range(N):
        item = ds[n]
        check_item(item)
        assert item["name"] == f"nyuv2/{n + 1:04d}"
        expected_rgb = torch.from_numpy(images[..., n].astype(np.float32) / 255).permute(2, 0, 1)
        assert torch.equal(item["image"], expected_rgb)
        d = depths[..., n]
        ok = np.isfinite(d) & (d > 0)
        assert torch.equal(item["valid"][0], torch.from_numpy(ok))
        assert torch.equal(item["depth"][0], torch.from_numpy(np.where(ok, d, 0).astype(np.float32)))
    # a known pixel, by hand: row 2, column 5 of frame 1 -> 1 + 0.2 + 0.05 + 1
    assert ds[1]["depth"][0, 2, 5].item() == pytest.approx(2.25)
    assert ds[1]["image"][0, 2, 5].item() * 255 == pytest.approx((2 * W + 5 + 1) % 256)
    assert "intrinsics" not in ds[0]  # only known for the real 480x640 frames


def test_nyu_invalid_depths_become_invalid_pixels(nyu):
    item = NYUv2Labeled(nyu[0])[1]
    for y, x in [(0, 1), (2, 3), (4, 5), (5, 7)]:  # NaN, inf, 0, -2
        assert not item["valid"][0, y, x] and item["depth"][0, y, x] == 0
    assert item["valid"].sum() == H * W - 4


def test_nyu_instance_mask(nyu):
    path, (_, _, labels, instances) = nyu
    mask = NYUv2Labeled(path)[0]["mask"]
    assert mask.shape == (1, H, W) and mask.dtype == torch.int64
    # independent: sorted distinct (label, instance) pairs over labelled pixels, numbered from 1
    lab, ins = labels[..., 0], instances[..., 0]
    pairs = sorted({(int(lab[y, x]), int(ins[y, x])) for y in range(H) for x in range(W) if lab[y, x] > 0})
    expected = np.zeros((H, W), np.int64)
    for y in range(H):
        for x in range(W):
            if lab[y, x] > 0:
                expected[y, x] = pairs.index((int(lab[y, x]), int(ins[y, x]))) + 1
    assert torch.equal(mask[0], torch.from_numpy(expected))
    assert pairs == [(3, 1), (7, 1), (7, 2)]
    assert mask[0, 0, 0] == 2 and mask[0, 5, 0] == 3 and mask[0, 0, 6] == 1 and mask[0, 5, 7] == 0


def test_nyu_instance_mask_by_hand():
    labels = np.array([[0, 5, 5, 2], [2, 0, 5, 5]])
    instances = np.array([[3, 1, 2, 1], [1, 4, 1, 2]])
    assert nyu_instance_mask(labels, instances).tolist() == [[0, 2, 3, 1], [1, 0, 2, 3]]


def test_nyu_without_labels_has_no_mask(tmp_path):
    images, depths, _, _ = nyu_arrays()
    item = NYUv2Labeled(write_nyu(tmp_path / "x.mat", images, depths))[0]
    assert "mask" not in item


def test_nyu_splits_are_one_based(nyu):
    path, (images, _, _, _) = nyu
    scipy.io.savemat(path.with_name("splits.mat"), {"trainNdxs": np.array([[1.0], [3.0]]), "testNdxs": np.array([[2.0]])})
    train, test = NYUv2Labeled(path, split="train"), NYUv2Labeled(path, split="test")
    assert [train[i]["name"] for i in range(len(train))] == ["nyuv2/0001", "nyuv2/0003"]
    assert [test[i]["name"] for i in range(len(test))] == ["nyuv2/0002"]
    assert torch.equal(test[0]["image"] * 255, torch.from_numpy(images[..., 1].astype(np.float32)).permute(2, 0, 1))
    assert torch.equal(train[1]["image"], NYUv2Labeled(path)[2]["image"])
    assert torch.equal(train[-1]["image"], train[1]["image"])
    with pytest.raises(IndexError):
        train[2]


def test_nyu_splits_path_elsewhere(nyu, tmp_path):
    other = tmp_path / "meta" / "my_splits.mat"
    other.parent.mkdir()
    scipy.io.savemat(other, {"trainNdxs": np.array([[2], [3]], np.uint16), "testNdxs": np.array([[1]], np.uint16)})
    ds = NYUv2Labeled(nyu[0], split="train", splits_path=other)
    assert [ds[i]["name"] for i in range(len(ds))] == ["nyuv2/0002", "nyuv2/0003"]


def test_nyu_split_without_splits_file_is_a_clear_error(nyu):
    with pytest.raises(FileNotFoundError, match="splits.mat") as e:
        NYUv2Labeled(nyu[0], split="test")
    assert str(nyu[0].with_name("splits.mat")) in str(e.value)
    assert len(NYUv2Labeled(nyu[0], split="all")) == N  # "all" needs no splits file


def test_nyu_split_indices_out_of_range(nyu):
    sp = nyu[0].with_name("splits.mat")
    scipy.io.savemat(sp, {"trainNdxs": np.array([[0], [1]]), "testNdxs": np.array([[4]])})  # 0-based by mistake
    for split in ("train", "test"):
        with pytest.raises(ValueError, match="1-based") as e:
            NYUv2Labeled(nyu[0], split=split)
        assert str(sp) in str(e.value)


def test_nyu_bad_inputs(tmp_path, nyu):
    with pytest.raises(ValueError, match="split"):
        NYUv2Labeled(nyu[0], split="val")
    missing = tmp_path / "nope.mat"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        NYUv2Labeled(missing)
    v5 = tmp_path / "old.mat"  # MATLAB v5, not HDF5
    scipy.io.savemat(v5, {"images": np.zeros((2, 2))})
    with pytest.raises(ValueError, match=str(v5)):
        NYUv2Labeled(v5)
    nodepth = tmp_path / "nodepth.mat"
    with h5py.File(nodepth, "w") as f:
        f.create_dataset("images", data=np.zeros((1, 3, W, H), np.uint8))
    with pytest.raises(ValueError, match="depths") as e:
        NYUv2Labeled(nodepth)
    assert str(nodepth) in str(e.value)
    wrong = tmp_path / "wrong.mat"  # depths stored (N,H,W) instead of (N,W,H)
    with h5py.File(wrong, "w") as f:
        f.create_dataset("images", data=np.zeros((1, 3, W, H), np.uint8))
        f.create_dataset("depths", data=np.ones((1, H, W), np.float32))
    with pytest.raises(ValueError, match=str(wrong)):
        NYUv2Labeled(wrong)


def test_nyu_truncated_file(nyu):
    path = nyu[0]
    truncate(path, 0.6)
    with pytest.raises(ValueError, match=str(path)):
        ds = NYUv2Labeled(path)
        for i in range(len(ds)):
            ds[i]


def test_nyu_pickles_and_loads_in_workers(nyu):
    ds = NYUv2Labeled(nyu[0])
    first = ds[0]  # opens the file in this process
    clone = pickle.loads(pickle.dumps(ds))
    assert torch.equal(clone[0]["depth"], first["depth"])
    batches = list(DataLoader(ds, batch_size=3, num_workers=2))
    assert len(batches) == 1 and batches[0]["image"].shape == (3, 3, H, W)
    assert batches[0]["name"] == ["nyuv2/0001", "nyuv2/0002", "nyuv2/0003"]
    assert torch.equal(batches[0]["depth"][2], ds[2]["depth"])


def test_nyu_full_size_frame_has_intrinsics(tmp_path):
    images = np.zeros((480, 640, 3, 1), np.uint8)
    images[10, 20, 1, 0] = 200
    depths = np.full((480, 640, 1), 2.0, np.float32)
    item = NYUv2Labeled(write_nyu(tmp_path / "full.mat", images, depths))[0]
    check_item(item, 480, 640)
    assert item["image"][1, 10, 20].item() == pytest.approx(200 / 255)
    K = item["intrinsics"]
    assert K.shape == (3, 3) and K[0, 0].item() == pytest.approx(518.858, abs=1e-3)
    assert K[1, 1].item() == pytest.approx(519.470, abs=1e-3)
    assert (K[0, 2].item(), K[1, 2].item()) == (pytest.approx(325.582, abs=1e-3), pytest.approx(253.736, abs=1e-3))


# ------------------------------------------------------------------------------------------ ReDWeb


@pytest.fixture
def redweb(tmp_path):
    root = tmp_path / "ReDWeb_V1"
    (root / "Imgs").mkdir(parents=True)
    (root / "RDs").mkdir()
    y, x = np.mgrid[:H, :W]
    rds = {"b": ((y * W + x) * 5).astype(np.uint8), "a": (255 - (y * W + x) * 3).astype(np.uint8)}
    rds["a"][0, 0] = 255
    iio.imwrite(root / "Imgs" / "b.png", pattern_rgb())  # lossless, checked exactly
    iio.imwrite(root / "Imgs" / "a.jpg", np.kron(np.array([[[0, 0, 0]], [[255, 255, 255]]], np.uint8), np.ones((3, W, 1), np.uint8)))
    for stem, rd in rds.items():
        iio.imwrite(root / "RDs" / f"{stem}.png", rd)
    return root, rds


def test_redweb_values(redweb):
    root, rds = redweb
    ds = ReDWeb(root)
    assert len(ds) == 2 and [ds[i]["name"] for i in range(2)] == ["a", "b"]  # sorted
    b = ds[1]
    check_item(b)
    assert b["relative"] is True
    assert torch.equal(b["image"] * 255, torch.from_numpy(pattern_rgb().astype(np.float32)).permute(2, 0, 1))
    expected = 256.0 / (256.0 - rds["b"].astype(np.float64))  # RD read as negative disparity
    assert torch.allclose(b["depth"][0].double(), torch.from_numpy(expected), rtol=1e-6)
    assert b["valid"].all()
    a = ds[0]
    assert a["image"][:, :3].mean() < 0.05 and a["image"][:, 3:].mean() > 0.95  # jpg: top black, bottom white


def test_redweb_larger_rd_is_farther(redweb):
    root, rds = redweb
    item = ReDWeb(root)[1]
    rd = torch.from_numpy(rds["b"].astype(np.int64))
    flat_rd, flat_d = rd.flatten(), item["depth"][0].flatten()
    order = torch.argsort(flat_rd)
    assert (flat_d[order].diff() > 0).all()  # strictly monotone in RD (all RD values distinct here)
    assert item["depth"][0, 0, 0] == 1.0  # RD = 0 (nearest) -> 1


def test_redweb_invalid_value(redweb):
    root, _ = redweb
    a = ReDWeb(root, invalid_value=255)[0]
    assert not a["valid"][0, 0, 0] and a["depth"][0, 0, 0] == 0 and a["valid"].sum() == H * W - 1
    assert ReDWeb(root)[0]["valid"].all()


def test_redweb_errors(redweb, tmp_path):
    root, _ = redweb
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "missing")):
        ReDWeb(tmp_path / "missing")
    empty = tmp_path / "empty"
    (empty / "Imgs").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="RDs"):
        ReDWeb(empty)
    (empty / "RDs").mkdir()
    with pytest.raises(FileNotFoundError, match=str(empty / "Imgs")):
        ReDWeb(empty)
    iio.imwrite(root / "Imgs" / "c.png", pattern_rgb())
    with pytest.raises(FileNotFoundError, match=str(root / "RDs" / "c.png")):
        ReDWeb(root)
    iio.imwrite(root / "RDs" / "c.png", np.zeros((H + 1, W), np.uint8))
    with pytest.raises(ValueError, match=r"size mismatch.*c\.png.*6x8.*c\.png.*7x8"):
        ReDWeb(root)[2]
    truncate(root / "RDs" / "b.png", 0.5)
    with pytest.raises(ValueError, match=str(root / "RDs" / "b.png")):
        ReDWeb(root)[1]


# ------------------------------------------------------------------------------------------ DIODE


def write_diode_scan(root, split, scene_type, scene, scan, stem, depth, mask, rgb=None):
    d = root / split / scene_type / f"scene_{scene:05d}" / f"scan_{scan:05d}"
    d.mkdir(parents=True, exist_ok=True)
    iio.imwrite(d / f"{stem}.png", pattern_rgb() if rgb is None else rgb)
    np.save(d / f"{stem}_depth.npy", depth[..., None].astype(np.float32))  # (H,W,1) as released
    np.save(d / f"{stem}_depth_mask.npy", mask.astype(np.float32))  # (H,W)
    return d / stem


@pytest.fixture
def diode(tmp_path):
    root = tmp_path / "diode"
    y, x = np.mgrid[:H, :W]
    indoor_depth = 0.5 + 0.25 * y + 0.125 * x  # exact in float32
    mask = np.ones((H, W))
    mask[1, 2] = 0  # no laser return
    indoor_depth[1, 2] = 0.0
    indoor_depth[3, 3] = np.nan  # marked valid by the mask, still must not leak a NaN
    i = write_diode_scan(root, "val", "indoors", 19, 183, "00019_00183_indoors_000_010", indoor_depth, mask)
    outdoor_depth = 10.0 + y * W + x
    o = write_diode_scan(root, "val", "outdoor", 22, 197, "00022_00197_outdoor_000_000", outdoor_depth, np.ones((H, W)))
    return root, i, o, indoor_depth, outdoor_depth


def test_diode_values_and_names(diode):
    root, i, o, indoor_depth, outdoor_depth = diode
    ds = DIODE(root, split="val")
    assert len(ds) == 2
    item = ds[0]
    check_item(item)
    assert item["name"] == "val/indoors/scene_00019/scan_00183/00019_00183_indoors_000_010"
    assert torch.equal(item["image"] * 255, torch.from_numpy(pattern_rgb().astype(np.float32)).permute(2, 0, 1))
    assert item["depth"][0, 2, 5].item() == 0.5 + 0.5 + 0.625
    assert not item["valid"][0, 1, 2] and not item["valid"][0, 3, 3] and item["valid"].sum() == H * W - 2
    out = ds[1]
    assert out["name"].startswith("val/outdoor/") and out["depth"][0, 5, 7].item() == 10 + 5 * W + 7
    assert torch.equal(out["depth"][0], torch.from_numpy(outdoor_depth.astype(np.float32)))


def test_diode_scene_type_filter(diode):
    root = diode[0]
    assert [DIODE(root, scene_type="outdoor")[0]["name"].split("/")[1]] == ["outdoor"]
    assert len(DIODE(root, scene_type="indoors")) == 1 and len(DIODE(root, scene_type="all")) == 2
    with pytest.raises(ValueError, match="scene_type"):
        DIODE(root, scene_type="outdoors")
    with pytest.raises(FileNotFoundError, match=str(root / "train")):
        DIODE(root, split="train")


def test_diode_errors(diode, tmp_path):
    root, i, o, indoor_depth, _ = diode
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nothing")):
        DIODE(tmp_path / "nothing")
    (tmp_path / "emptyd" / "val" / "indoors").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "emptyd" / "val" / "indoors")):
        DIODE(tmp_path / "emptyd")
    truncate(o.with_name(o.name + "_depth.npy"), 0.5)
    with pytest.raises(ValueError, match=str(o) + "_depth.npy"):
        DIODE(root)[1]
    np.save(i.with_name(i.name + "_depth_mask.npy"), np.ones((H, W + 2), np.float32))
    with pytest.raises(ValueError, match=r"size mismatch.*_depth\.npy.*6x8.*_depth_mask\.npy.*6x10"):
        DIODE(root)[0]
    np.save(i.with_name(i.name + "_depth.npy"), np.ones((H - 1, W, 1), np.float32))
    with pytest.raises(ValueError, match=r"size mismatch.*indoors_000_010\.png.*6x8.*_depth\.npy.*5x8"):
        DIODE(root)[0]
    i.with_name(i.name + "_depth_mask.npy").unlink()
    with pytest.raises(FileNotFoundError, match=str(i) + "_depth_mask.npy"):
        DIODE(root)


# ------------------------------------------------------------------------------------------ folder


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "pairs"
    root.mkdir()
    y, x = np.mgrid[:H, :W]
    mm = (1000 + 100 * y + x).astype(np.uint16)  # millimetres
    mm[0, 0] = 0  # no reading
    iio.imwrite(root / "a.png", pattern_rgb())
    iio.imwrite(root / "a_depth.png", mm)  # 16-bit PNG
    iio.imwrite(root / "b.png", pattern_rgb(seed=1))
    iio.imwrite(root / "b_depth.tif", mm + 1)  # 16-bit TIFF
    iio.imwrite(root / "c.png", pattern_rgb(seed=2))
    metres = (0.5 + 0.25 * y + 0.0625 * x).astype(np.float32)
    metres[2, 2], metres[2, 3], metres[2, 4] = np.nan, np.inf, -1.0
    np.save(root / "c_depth.npy", metres)  # float metres
    iio.imwrite(root / "d.jpg", np.full((H, W, 3), 128, np.uint8))
    iio.imwrite(root / "d_depth.tiff", metres * 2)  # float32 TIFF, metres
    mask = (x >= 4).astype(np.uint16) + 2 * (y >= 3).astype(np.uint16)
    iio.imwrite(root / "a_mask.png", mask)
    return root, mm, metres, mask


def test_folder_each_depth_format(folder):
    root, mm, metres, mask = folder
    ds = ImageDepthFolder(root)
    assert [ds[i]["name"] for i in range(len(ds))] == ["a", "b", "c", "d"]
    a, b, c, d = (ds[i] for i in range(4))
    for item in (a, b, c, d):
        check_item(item)
    assert torch.equal(a["image"] * 255, torch.from_numpy(pattern_rgb().astype(np.float32)).permute(2, 0, 1))
    assert a["depth"][0, 5, 7].item() == pytest.approx(1.507) and not a["valid"][0, 0, 0]
    assert torch.allclose(a["depth"][0, 1:], torch.from_numpy(mm[1:].astype(np.float32) / 1000))
    assert b["depth"][0, 5, 7].item() == pytest.approx(1.508) and b["depth"][0, 0, 0].item() == pytest.approx(0.001)
    assert c["depth"][0, 5, 7].item() == 0.5 + 1.25 + 0.4375
    assert not c["valid"][0, 2, 2:5].any() and c["valid"].sum() == H * W - 3
    assert d["depth"][0, 5, 7].item() == 2 * (0.5 + 1.25 + 0.4375)
    assert torch.equal(a["mask"][0], torch.from_numpy(mask.astype(np.int64))) and a["mask"].dtype == torch.int64
    assert "mask" not in b


def test_folder_depth_scale(folder):
    item = ImageDepthFolder(folder[0], depth_scale=256.0)[0]
    assert item["depth"][0, 5, 7].item() == pytest.approx(1507 / 256)
    with pytest.raises(ValueError, match="depth_scale"):
        ImageDepthFolder(folder[0], depth_scale=0)


def test_folder_errors(folder, tmp_path):
    root = folder[0]
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "absent")):
        ImageDepthFolder(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "empty")):
        ImageDepthFolder(tmp_path / "empty")
    iio.imwrite(root / "e.png", pattern_rgb())
    with pytest.raises(FileNotFoundError, match=str(root / "e.png")):
        ImageDepthFolder(root)
    np.save(root / "e_depth.npy", np.ones((H, W + 1), np.float32))
    iio.imwrite(root / "e_depth.png", np.ones((H, W), np.uint16))
    with pytest.raises(ValueError, match="e_depth"):
        ImageDepthFolder(root)
    (root / "e_depth.png").unlink()
    with pytest.raises(ValueError, match=r"size mismatch.*e\.png.*6x8.*e_depth\.npy.*6x9"):
        ImageDepthFolder(root)[4]
    (root / "e.png").unlink()
    (root / "e_depth.npy").unlink()
    truncate(root / "a_depth.png", 0.5)
    with pytest.raises(ValueError, match=str(root / "a_depth.png")):
        ImageDepthFolder(root)[0]
    (root / "b.png").write_bytes(b"definitely not a png")
    with pytest.raises(ValueError, match=str(root / "b.png")):
        ImageDepthFolder(root)[1]


# ------------------------------------------------------------------------------------------ shared


def test_transform_is_applied(nyu, redweb, diode, folder):
    def flip(item):
        item = dict(item)
        for k in ("image", "depth", "valid"):
            item[k] = item[k].flip(-1)
        item["flipped"] = True
        return item

    for make in (
        lambda t: NYUv2Labeled(nyu[0], transform=t),
        lambda t: ReDWeb(redweb[0], transform=t),
        lambda t: DIODE(diode[0], transform=t),
        lambda t: ImageDepthFolder(folder[0], transform=t),
    ):
        plain, flipped = make(None)[0], make(flip)[0]
        assert flipped["flipped"] and "flipped" not in plain
        assert torch.equal(flipped["depth"], plain["depth"].flip(-1))


def test_fields_keeps_only_the_keys_that_collate():
    import torch
    from torch.utils.data import default_collate

    from lib.data import Fields
    base = [{"image": torch.zeros(3, 2, 2), "name": f"n{i}", "depth": torch.ones(1, 2, 2)}
            for i in range(3)]
    view = Fields(base, ("image", "depth"))
    assert len(view) == 3 and list(view[1]) == ["image", "depth"]
    assert default_collate([view[i] for i in range(3)])["image"].shape == (3, 3, 2, 2)
    with pytest.raises(KeyError, match="has no \\['valid'\\]"):
        Fields(base)[0]
    with pytest.raises(ValueError, match="non-empty sequence"):
        Fields(base, "image")
