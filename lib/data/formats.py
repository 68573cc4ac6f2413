"""Readers of the public RGB-D dataset formats, each a ``torch.utils.data.Dataset``.

Every reader returns the contract's item dict (see ``CONTRACT.md``):

- ``image``: float32 (3,H,W), sRGB in [0,1];
- ``depth``: float32 (1,H,W), metres, > 0 where valid and exactly 0 elsewhere;
- ``valid``: bool (1,H,W);
- ``mask``: int64 (1,H,W) instance ids, 0 = background, when the format has one;
- ``name``: str, the sample's relative path or stem; ``intrinsics``: float32 (3,3) when known.

Readers never crash on bad depth values: NaN, +-inf and depths <= 0 become invalid pixels
(depth 0, valid False). Missing, unreadable or mismatched files raise an error that names the
file(s). An optional ``transform`` (a callable ``dict -> dict``, e.g. ``lib.transforms.Rescale``)
is applied to each item last.

>>> from lib.data import ImageDepthFolder        # doctest: +SKIP
>>> ds = ImageDepthFolder("my_photos")           # my_photos/a.jpg + my_photos/a_depth.png ...
>>> item = ds[0]; item["depth"].shape            # (1, H, W), metres
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import imageio.v3 as iio
import numpy as np
import torch
from torch.utils.data import Dataset

Transform = Callable[[dict], dict]
IMAGE_EXTS = (".png", ".jpg", ".jpeg")
# one explicit decoder per format, so that a corrupt file fails with that decoder's message
# instead of imageio trying every other plugin on it
_PLUGINS = {".png": "pillow", ".jpg": "pillow", ".jpeg": "pillow", ".tif": "tifffile", ".tiff": "tifffile"}

# --------------------------------------------------------------------------------------------
# shared helpers: reading files with errors that name them, and converting to the conventions
# --------------------------------------------------------------------------------------------


def _existing_dir(path: str | os.PathLike, what: str) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{what} folder not found: {path}")
    return path


def _read(path: Path, what: str) -> np.ndarray:
    """Read an image (png/jpg/tif via imageio) or an array (.npy); wrap any failure with the path."""
    if not path.is_file():
        raise FileNotFoundError(f"{what} file not found: {path}")
    try:
        suffix = path.suffix.lower()
        if suffix == ".npy":
            return np.load(path, allow_pickle=False)
        return np.asarray(iio.imread(path, plugin=_PLUGINS.get(suffix)))
    except Exception as e:  # truncated, corrupt or not an image at all
        raise ValueError(f"cannot read {what} {path}: {type(e).__name__}: {e}") from e


def _image_tensor(arr: np.ndarray, path: Path) -> torch.Tensor:
    """(H,W), (H,W,1), (H,W,3) or (H,W,4) uint8/uint16/float array -> float32 (3,H,W) in [0,1]."""
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[-1] not in (1, 3, 4):
        raise ValueError(f"image {path} has shape {arr.shape}; expected (H,W), (H,W,3) or (H,W,4)")
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    arr = arr[..., :3]  # drop alpha
    if arr.dtype == np.uint8:
        x = arr.astype(np.float32) / 255.0
    elif arr.dtype == np.uint16:
        x = arr.astype(np.float32) / 65535.0
    elif np.issubdtype(arr.dtype, np.floating):
        x = np.nan_to_num(arr.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0).clip(0.0, 1.0)
    else:
        raise ValueError(f"image {path} has unsupported dtype {arr.dtype}")
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))


def _depth_tensors(depth: np.ndarray, extra_valid: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(H,W) depth in metres -> (depth (1,H,W) float32, valid (1,H,W) bool).

    valid = finite & > 0 (& extra_valid); depth is set to exactly 0 outside valid, so that no
    NaN or inf ever leaves the reader.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        d = np.asarray(depth, dtype=np.float32)  # values beyond float32 become inf -> invalid
    valid = np.isfinite(d) & (d > 0)
    if extra_valid is not None:
        valid &= extra_valid
    d = np.where(valid, d, np.float32(0.0)).astype(np.float32)
    return torch.from_numpy(d)[None], torch.from_numpy(valid)[None]


def _check_same_size(a_hw: tuple, b_hw: tuple, a_path: Path, b_path: Path, a_what: str, b_what: str) -> None:
    if tuple(a_hw) != tuple(b_hw):
        raise ValueError(
            f"size mismatch: {a_what} {a_path} is {a_hw[0]}x{a_hw[1]} (HxW) but "
            f"{b_what} {b_path} is {b_hw[0]}x{b_hw[1]}"
        )


def _index(i: int, n: int, what: str = "a dataset") -> int:
    """``i`` as a position in ``0..n-1`` (negative counts from the end, as for lists), or IndexError."""
    i = int(i)
    if i < 0:
        i += n
    if not 0 <= i < n:
        raise IndexError(f"index {i} out of range for {what} of {n} samples")
    return i


def _finish(item: dict, transform: Transform | None) -> dict:
    return transform(item) if transform is not None else item


# --------------------------------------------------------------------------------------------
# NYU Depth v2, labelled subset
# --------------------------------------------------------------------------------------------

#: Colour-camera intrinsics of the NYU Depth v2 Kinect (toolbox ``camera_params.m``), pixels.
NYU_INTRINSICS = (518.85790117450188, 519.46961112127485, 325.58244941119034, 253.73616633400465)


def nyu_instance_mask(labels: np.ndarray, instances: np.ndarray) -> np.ndarray:
    """One id per (class label, instance number) pair, as the NYU toolbox's ``get_instance_masks.m``.

    ``labels`` (H,W) class ids (0 = unlabelled) and ``instances`` (H,W) instance numbers, which
    restart at 1 for each class (cup 1, cup 2, chair 1, ...), so an object is the *pair*.
    Returns int64 (H,W): 0 where ``labels == 0``, else 1..N numbering the distinct pairs in
    lexicographic (label, instance) order (the order of MATLAB's ``unique(..., 'rows')``).

    >>> nyu_instance_mask(np.array([[0, 5, 5, 2]]), np.array([[3, 1, 2, 1]])).tolist()
    [[0, 2, 3, 1]]
    """
    labels = np.asarray(labels, dtype=np.int64)
    instances = np.asarray(instances, dtype=np.int64)
    if labels.shape != instances.shape:
        raise ValueError(f"labels {labels.shape} and instances {instances.shape} differ in shape")
    out = np.zeros(labels.shape, dtype=np.int64)
    fg = labels > 0
    if fg.any():
        key = labels[fg] * (int(instances.max()) + 1) + instances[fg]
        _, inverse = np.unique(key, return_inverse=True)
        out[fg] = inverse.reshape(-1) + 1
    return out


class NYUv2Labeled(Dataset):
    """The 1449 densely labelled frames of NYU Depth v2 (``nyu_depth_v2_labeled.mat``).

    Format (the toolbox README and the h5py readers of the file agree): a MATLAB v7.3 file,
    i.e. HDF5, read here lazily with h5py (one handle per worker process, opened on first use;
    nothing is loaded up front, the file is 2.8 GB). MATLAB stores column-major, so h5py shows
    every array with its axes reversed:

    ========== =================== ================== ==============================================
    key        MATLAB (H,W,..,N)   h5py shape         meaning
    ========== =================== ================== ==============================================
    images     480x640x3x1449      (1449,3,640,480)   uint8 RGB
    depths     480x640x1449        (1449,640,480)     float32 metres, in-painted (hole-filled,
                                                      dense; the raw Kinect depth is ``rawDepths``)
    labels     480x640x1449        (1449,640,480)     uint16 class id, 0 = unlabelled
    instances  480x640x1449        (1449,640,480)     uint8 instance number within its class
    ========== =================== ================== ==============================================

    A frame ``i`` is read as ``images[i].transpose(0, 2, 1)`` -> (3,480,640) and
    ``depths[i].T`` -> (480,640). Item ``mask`` (when ``labels`` and ``instances`` exist) is
    :func:`nyu_instance_mask`: one id per (label, instance) pair, 0 where the label is 0.
    ``intrinsics`` are the colour camera's (:data:`NYU_INTRINSICS`), given only for 480x640 frames.
    ``name`` is ``"nyuv2/<k>"`` with ``k`` the 1-based MATLAB frame index (as in ``splits.mat``).

    Splits: ``"all"`` (1449 frames) or the official ``"train"`` (795) / ``"test"`` (654) of
    ``splits.mat`` (MATLAB v5; ``trainNdxs``/``testNdxs``, column vectors of 1-based frame
    indices), looked for at ``splits_path`` or next to the .mat file. Reading it needs scipy.

    >>> ds = NYUv2Labeled("data/nyu_depth_v2_labeled.mat", split="test")   # doctest: +SKIP
    >>> len(ds), ds[0]["image"].shape                                        # doctest: +SKIP
    (654, torch.Size([3, 480, 640]))
    """

    SPLITS = ("all", "train", "test")

    def __init__(
        self,
        path: str | os.PathLike,
        split: str = "all",
        splits_path: str | os.PathLike | None = None,
        transform: Transform | None = None,
    ) -> None:
        self.path = Path(path)
        if split not in self.SPLITS:
            raise ValueError(f"split must be one of {self.SPLITS}, got {split!r}")
        if not self.path.is_file():
            raise FileNotFoundError(f"NYUv2 labelled file not found: {self.path}")
        self.split = split
        self.transform = transform
        self._file = None
        self._pid = None
        f = self._open()
        try:
            n, self.size, self.has_mask = self._inspect(f)
        finally:
            f.close()
        self.frames = list(range(n)) if split == "all" else self._split_frames(split, splits_path, n)

    # -- file access ------------------------------------------------------------------------
    def _open(self):
        import h5py

        try:
            return h5py.File(self.path, "r")
        except Exception as e:
            raise ValueError(
                f"cannot read {self.path} as HDF5 (the labelled NYUv2 file is MATLAB v7.3 = HDF5): "
                f"{type(e).__name__}: {e}"
            ) from e

    def _inspect(self, f) -> tuple[int, tuple[int, int], bool]:
        for key in ("images", "depths"):
            if key not in f:
                raise ValueError(f"{self.path} has no dataset {key!r} (keys: {sorted(f.keys())}); "
                                 "expected nyu_depth_v2_labeled.mat")
        im, de = f["images"].shape, f["depths"].shape
        if len(im) != 4 or im[1] != 3 or len(de) != 3 or de != (im[0], im[2], im[3]):
            raise ValueError(
                f"{self.path}: 'images' {im} and 'depths' {de} do not have the labelled-NYUv2 layout "
                "(N,3,W,H) and (N,W,H) as h5py shows MATLAB's HxWx3xN and HxWxN"
            )
        has_mask = "labels" in f and "instances" in f
        if has_mask:
            for key in ("labels", "instances"):
                if f[key].shape != de:
                    raise ValueError(f"{self.path}: {key!r} has shape {f[key].shape}, 'depths' has {de}")
        return im[0], (im[3], im[2]), has_mask

    def _h5(self):
        if self._file is None or self._pid != os.getpid():  # a DataLoader worker gets its own handle
            self._file = self._open()
            self._pid = os.getpid()
        return self._file

    def __getstate__(self) -> dict:  # h5py handles cannot be pickled into worker processes
        state = dict(self.__dict__)
        state["_file"] = None
        state["_pid"] = None
        return state

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _split_frames(self, split: str, splits_path, n: int) -> list[int]:
        sp = Path(splits_path) if splits_path is not None else self.path.with_name("splits.mat")
        if not sp.is_file():
            raise FileNotFoundError(
                f"split={split!r} needs the official NYUv2 split file splits.mat (trainNdxs/testNdxs); "
                f"not found at {sp}. Pass splits_path=... or use split='all'."
            )
        try:
            from scipy.io import loadmat
        except ImportError as e:  # scipy is a dev extra of this project
            raise ImportError(f"reading {sp} needs scipy (pip install scipy)") from e
        key = "trainNdxs" if split == "train" else "testNdxs"
        try:
            mat = loadmat(sp)
        except Exception as e:
            raise ValueError(f"cannot read splits {sp}: {type(e).__name__}: {e}") from e
        if key not in mat:
            raise ValueError(f"splits file {sp} has no {key!r} (keys: {sorted(k for k in mat if not k.startswith('__'))})")
        idx = np.asarray(mat[key]).reshape(-1).astype(np.int64)
        if idx.size == 0 or idx.min() < 1 or idx.max() > n:
            raise ValueError(
                f"splits file {sp}: {key} must hold 1-based frame indices in [1, {n}], "
                f"got range [{idx.min() if idx.size else '-'}, {idx.max() if idx.size else '-'}]"
            )
        return [int(i) - 1 for i in idx]

    # -- Dataset ----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, i: int) -> dict:
        frame = self.frames[_index(i, len(self))]
        f = self._h5()
        try:
            rgb = f["images"][frame]
            depth = f["depths"][frame]
            if self.has_mask:
                labels, instances = f["labels"][frame], f["instances"][frame]
        except Exception as e:
            raise ValueError(f"cannot read frame {frame + 1} of {self.path}: {type(e).__name__}: {e}") from e
        image = _image_tensor(np.ascontiguousarray(rgb.transpose(2, 1, 0)), self.path)  # (W,H) -> (H,W)
        depth_t, valid = _depth_tensors(depth.T)
        item = {"image": image, "depth": depth_t, "valid": valid}
        if self.has_mask:
            item["mask"] = torch.from_numpy(nyu_instance_mask(labels.T, instances.T))[None]
        item["name"] = f"nyuv2/{frame + 1:04d}"
        if self.size == (480, 640):
            fx, fy, cx, cy = NYU_INTRINSICS
            item["intrinsics"] = torch.tensor([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], dtype=torch.float32)
        return _finish(item, self.transform)


# --------------------------------------------------------------------------------------------
# ReDWeb V1
# --------------------------------------------------------------------------------------------


class ReDWeb(Dataset):
    """ReDWeb V1 (Xian et al., CVPR 2018): web stereo images with dense RELATIVE depth.

    Layout: ``root/Imgs/<stem>.jpg`` and ``root/RDs/<stem>.png`` (same stem, same size).
    An RD map is an 8-bit grayscale PNG derived from the stereo correspondence (optical flow)
    of a web stereo pair; its absolute scale and shift are unknown. Small values are near and
    large values far (0 = nearest, 255 = farthest, e.g. sky): the MiDaS authors
    (isl-org/MiDaS issue #16) read RD as *negative* disparity up to scale and shift and mask
    RD == 255 in their own training.

    Conversion here (one monotone choice, stated so that it is not mistaken for metres): with
    M the dtype maximum (255), ``disparity_rel = (M + 1 - RD) / (M + 1)`` in (0, 1] and
    ``depth = 1 / disparity_rel`` in [1, M + 1]: larger = farther, > 0, consistent with RD
    being an affine function of negative disparity. This depth is RELATIVE: only its order
    (and, under that assumption, its inverse up to scale and shift) is meaningful. Use it with
    ranking or scale-and-shift-invariant losses, never with metric metrics. Every item carries
    ``relative=True``. All pixels are valid unless ``invalid_value`` (e.g. 255, as MiDaS) is given.

    ``name`` is the stem. Images: .jpg/.jpeg/.png in ``Imgs``; each needs ``RDs/<stem>.png``.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        transform: Transform | None = None,
        invalid_value: int | None = None,
    ) -> None:
        self.root = _existing_dir(root, "ReDWeb root")
        img_dir = _existing_dir(self.root / "Imgs", "ReDWeb Imgs")
        rd_dir = _existing_dir(self.root / "RDs", "ReDWeb RDs")
        self.images = sorted(p for p in img_dir.iterdir() if p.suffix.lower() in IMAGE_EXTS and p.is_file())
        if not self.images:
            raise FileNotFoundError(f"no images (*.jpg, *.png) found in {img_dir}")
        self.rds = [rd_dir / f"{p.stem}.png" for p in self.images]
        for img, rd in zip(self.images, self.rds):
            if not rd.is_file():
                raise FileNotFoundError(f"relative depth map {rd} for image {img} not found")
        self.transform = transform
        self.invalid_value = invalid_value

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict:
        i = _index(i, len(self))
        img_path, rd_path = self.images[i], self.rds[i]
        image = _image_tensor(_read(img_path, "image"), img_path)
        rd = _read(rd_path, "relative depth")
        if rd.ndim == 3:  # grayscale saved as RGB(A): all channels equal
            rd = rd[..., 0]
        if rd.ndim != 2 or rd.dtype not in (np.uint8, np.uint16):
            raise ValueError(f"relative depth {rd_path} must be an 8/16-bit grayscale PNG, got {rd.dtype} {rd.shape}")
        _check_same_size(image.shape[1:], rd.shape, img_path, rd_path, "image", "relative depth")
        m = float(np.iinfo(rd.dtype).max) + 1.0
        depth = m / (m - rd.astype(np.float64))
        extra = None if self.invalid_value is None else rd != self.invalid_value
        depth_t, valid = _depth_tensors(depth, extra)
        item = {"image": image, "depth": depth_t, "valid": valid, "name": img_path.stem, "relative": True}
        return _finish(item, self.transform)


# --------------------------------------------------------------------------------------------
# DIODE
# --------------------------------------------------------------------------------------------


class DIODE(Dataset):
    """DIODE depth (Vasiljevic et al. 2019), indoor and outdoor laser-scanned RGB-D.

    Layout (diode-devkit ``diode.py`` and README):
    ``root/<split>/<indoors|outdoor>/scene_<xxxxx>/scan_<yyyyy>/<stem>.png`` with, next to it,
    ``<stem>_depth.npy`` (float32 (H,W,1), metres; 0 where there is no return) and
    ``<stem>_depth_mask.npy`` (float (H,W), 1 = valid sensor return, 0 otherwise); images are
    1024x768. Note the asymmetric folder names ``indoors`` / ``outdoor``.

    ``valid`` = mask > 0 and depth finite and > 0. ``name`` is the path relative to ``root``
    without extension, e.g. ``"val/indoors/scene_00019/scan_00183/00019_00183_indoors_000_010"``.
    No ``intrinsics``: the devkit does not ship them. Samples are sorted by path.
    """

    SPLITS = ("train", "val")
    SCENE_TYPES = ("indoors", "outdoor")

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "val",
        scene_type: str = "all",
        transform: Transform | None = None,
    ) -> None:
        if split not in self.SPLITS:
            raise ValueError(f"split must be one of {self.SPLITS}, got {split!r}")
        if scene_type not in ("all",) + self.SCENE_TYPES:
            raise ValueError(f"scene_type must be 'all', 'indoors' or 'outdoor', got {scene_type!r}")
        self.root = _existing_dir(root, "DIODE root")
        base = _existing_dir(self.root / split, f"DIODE {split!r} split")
        if scene_type == "all":
            type_dirs = [base / t for t in self.SCENE_TYPES if (base / t).is_dir()]
            if not type_dirs:
                raise FileNotFoundError(f"neither {base / 'indoors'} nor {base / 'outdoor'} exists")
        else:
            type_dirs = [_existing_dir(base / scene_type, f"DIODE {scene_type!r}")]
        self.images = sorted(p for d in type_dirs for p in d.glob("scene_*/scan_*/*.png") if p.is_file())
        if not self.images:
            raise FileNotFoundError(f"no DIODE samples (scene_*/scan_*/*.png) found under {', '.join(map(str, type_dirs))}")
        for p in self.images:
            for suffix in ("_depth.npy", "_depth_mask.npy"):
                q = p.with_name(p.stem + suffix)
                if not q.is_file():
                    raise FileNotFoundError(f"{q} (for image {p}) not found")
        self.split, self.scene_type, self.transform = split, scene_type, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict:
        img_path = self.images[_index(i, len(self))]
        depth_path = img_path.with_name(img_path.stem + "_depth.npy")
        mask_path = img_path.with_name(img_path.stem + "_depth_mask.npy")
        image = _image_tensor(_read(img_path, "image"), img_path)
        depth, mask = _read(depth_path, "depth"), _read(mask_path, "depth mask")
        if depth.ndim == 3 and depth.shape[-1] == 1:
            depth = depth[..., 0]
        if mask.ndim == 3 and mask.shape[-1] == 1:
            mask = mask[..., 0]
        if depth.ndim != 2 or not np.issubdtype(depth.dtype, np.number):
            raise ValueError(f"depth {depth_path} must be a numeric (H,W,1) or (H,W) array, got {depth.dtype} {depth.shape}")
        if mask.ndim != 2:
            raise ValueError(f"depth mask {mask_path} must be (H,W), got {mask.shape}")
        _check_same_size(image.shape[1:], depth.shape, img_path, depth_path, "image", "depth")
        _check_same_size(depth.shape, mask.shape, depth_path, mask_path, "depth", "depth mask")
        with np.errstate(invalid="ignore"):
            mask_ok = np.nan_to_num(mask.astype(np.float64), nan=0.0) > 0
        depth_t, valid = _depth_tensors(depth, mask_ok)
        name = img_path.relative_to(self.root).with_suffix("").as_posix()
        item = {"image": image, "depth": depth_t, "valid": valid, "name": name}
        return _finish(item, self.transform)


# --------------------------------------------------------------------------------------------
# a plain folder of pairs
# --------------------------------------------------------------------------------------------


class ImageDepthFolder(Dataset):
    """A plain folder of image/depth pairs, for your own RGB-D data.

    Convention (flat folder, files matched by name)::

        root/NAME.png | NAME.jpg | NAME.jpeg       the image (8- or 16-bit, gray/RGB/RGBA)
        root/NAME_depth.png | .tif | .tiff | .npy  its depth, exactly one of these
        root/NAME_mask.png                         optional instance ids, 8/16-bit grayscale (0 = background)

    Depth units: an integer PNG/TIFF (e.g. 16-bit, as Kinect/RealSense tools write millimetres)
    is divided by ``depth_scale`` (default 1000: millimetres -> metres); a float TIFF or a .npy
    ((H,W) or (H,W,1)) holds metres directly. 0, negative, NaN and inf depths are invalid.
    To produce one from numpy::

        imageio.imwrite("root/a.png", rgb_uint8)
        imageio.imwrite("root/a_depth.png", (depth_m * 1000).round().astype(np.uint16))

    Items are sorted by NAME; ``name`` is NAME. ``mask`` is present only for samples that have
    a mask file (give all samples a mask, or none, to batch them with the default collate).
    """

    DEPTH_EXTS = (".png", ".tif", ".tiff", ".npy")

    def __init__(self, root: str | os.PathLike, depth_scale: float = 1000.0, transform: Transform | None = None) -> None:
        if not (float(depth_scale) > 0 and np.isfinite(depth_scale)):
            raise ValueError(f"depth_scale must be a positive number, got {depth_scale!r}")
        self.root = _existing_dir(root, "image/depth")
        self.depth_scale = float(depth_scale)
        self.transform = transform
        files = sorted(p for p in self.root.iterdir() if p.is_file())
        depth_files: dict[str, list[Path]] = {}
        for p in files:
            if p.suffix.lower() in self.DEPTH_EXTS and p.stem.endswith("_depth"):
                depth_files.setdefault(p.stem[: -len("_depth")], []).append(p)
        self.samples: list[tuple[Path, Path, Path | None]] = []
        for p in files:
            if p.suffix.lower() not in IMAGE_EXTS or p.stem.endswith(("_depth", "_mask")):
                continue
            depths = depth_files.get(p.stem, [])
            if not depths:
                raise FileNotFoundError(f"no depth for image {p}: expected {p.stem}_depth.png/.tif/.tiff/.npy in {self.root}")
            if len(depths) > 1:
                raise ValueError(f"image {p} has several depth files {sorted(d.name for d in depths)}; keep one")
            mask = self.root / f"{p.stem}_mask.png"
            mask = mask if mask.is_file() else None
            self.samples.append((p, depths[0], mask))
        stems = [s[0].stem for s in self.samples]
        dup = sorted({s for s in stems if stems.count(s) > 1})
        if dup:
            raise ValueError(f"several images share a name in {self.root} (e.g. both .png and .jpg): {dup}")
        if not self.samples:
            raise FileNotFoundError(f"no image/depth pairs (NAME.png|jpg + NAME_depth.png|tif|npy) found in {self.root}")

    def __len__(self) -> int:
        return len(self.samples)

    def _depth_metres(self, path: Path) -> np.ndarray:
        d = _read(path, "depth")
        if d.ndim == 3 and d.shape[-1] == 1:
            d = d[..., 0]
        if d.ndim != 2:
            raise ValueError(f"depth {path} must be single-channel (H,W), got shape {d.shape}")
        if np.issubdtype(d.dtype, np.integer):
            return d.astype(np.float64) / self.depth_scale
        if np.issubdtype(d.dtype, np.floating):
            return d
        raise ValueError(f"depth {path} has unsupported dtype {d.dtype}")

    def __getitem__(self, i: int) -> dict:
        img_path, depth_path, mask_path = self.samples[_index(i, len(self))]
        image = _image_tensor(_read(img_path, "image"), img_path)
        depth = self._depth_metres(depth_path)
        _check_same_size(image.shape[1:], depth.shape, img_path, depth_path, "image", "depth")
        depth_t, valid = _depth_tensors(depth)
        item = {"image": image, "depth": depth_t, "valid": valid}
        if mask_path is not None:
            m = _read(mask_path, "mask")
            if m.ndim == 3 and m.shape[-1] == 1:
                m = m[..., 0]
            if not np.issubdtype(m.dtype, np.integer) or m.ndim != 2:
                raise ValueError(f"mask {mask_path} must be an 8/16-bit grayscale PNG of ids, got {m.dtype} {m.shape}")
            _check_same_size(image.shape[1:], m.shape, img_path, mask_path, "image", "mask")
            item["mask"] = torch.from_numpy(m.astype(np.int64))[None]
        item["name"] = img_path.stem
        return _finish(item, self.transform)
