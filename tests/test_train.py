"""Tests of lib.train: learning, exact resume, atomic checkpoints, errors, history, clipping, DDP."""
from __future__ import annotations

import math
import os
import random
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

import lib.train.checkpoint as checkpoint_module
from lib.models import DepthMaskNet
from lib.train import History, atomic_save, fit, load_checkpoint, load_model, log_l1_loss

ROOT = Path(__file__).resolve().parents[1]
SIZE = 32


class Planes(Dataset):
    """Tiny deterministic RGB-D items: a slanted plane (1 to 5 m) whose brightness follows
    1/depth, with a per-item colour. ``augment`` adds noise drawn from the GLOBAL torch, NumPy
    and Python generators, as a careless augmentation would (to test that resume restores them)."""

    def __init__(self, n: int, augment: bool = False):
        self.n, self.augment = n, augment

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(1000 + i)
        y = torch.linspace(0, 1, SIZE).view(1, SIZE, 1).expand(1, SIZE, SIZE)
        x = torch.linspace(0, 1, SIZE).view(1, 1, SIZE).expand(1, SIZE, SIZE)
        a, b, c = (torch.rand(3, generator=g) * torch.tensor([1.0, 2.0, 1.0])).tolist()
        depth = 1.0 + a + b * y + c * x
        colour = 0.5 + 0.5 * torch.rand(3, 1, 1, generator=g)
        image = (colour / depth).clamp(0, 1).float()
        if self.augment:
            image = image + 0.01 * torch.rand(1).item() + 0.01 * np.random.rand() + 0.01 * random.random()
        return {"image": image, "depth": depth.float(), "valid": torch.ones(1, SIZE, SIZE, dtype=torch.bool),
                "mask": torch.zeros(1, SIZE, SIZE, dtype=torch.int64), "name": f"plane/{i}"}


def make_model(seed=0, width=8):
    torch.manual_seed(seed)
    return DepthMaskNet(width=width)


def quiet(**kw):
    return dict(progress=False, device="cpu", **kw)


# ----------------------------------------------------------------------------- learning


def test_loss_decreases_on_a_tiny_dataset():
    model = make_model()
    loader = DataLoader(Planes(4), batch_size=2, shuffle=True)
    history = fit(model, loader, log_l1_loss, steps=40, lr=3e-3, log_every=5, **quiet())
    _, loss = history.column("loss", "train")
    assert len(loss) == 8
    assert loss[-1] < 0.5 * loss[0], loss
    assert all(math.isfinite(v) for v in loss)


def test_epochs_and_bad_arguments():
    loader = DataLoader(Planes(4), batch_size=2)
    history = fit(make_model(), loader, log_l1_loss, epochs=2, log_every=1, **quiet())
    assert [r["step"] for r in history.train] == [1, 2, 3, 4]
    assert [r["epoch"] for r in history.train] == [0, 0, 1, 1]
    with pytest.raises(ValueError, match="exactly one"):
        fit(make_model(), loader, log_l1_loss, steps=2, epochs=1, **quiet())
    with pytest.raises(ValueError, match="checkpoint"):
        fit(make_model(), loader, log_l1_loss, steps=2, resume=True, **quiet())
    with pytest.raises(TypeError, match="scalar"):
        fit(make_model(), loader, lambda out, batch: out["depth"], steps=1, **quiet())


# ----------------------------------------------------------------------------- resume


class CrashAt:
    """A loss that raises on its ``n``-th call: an interruption in the middle of a run."""

    def __init__(self, n):
        self.n, self.calls = n, 0

    def __call__(self, output, batch):
        self.calls += 1
        if self.calls == self.n:
            raise KeyboardInterrupt("simulated interruption")
        return log_l1_loss(output, batch)


def test_resume_is_exact(tmp_path):
    # 6 items, batch 2, shuffled: 3 batches per epoch; 8 steps cross two epoch boundaries;
    # random augmentation from the global generators; AdamW + cosine warm-up + clipping.
    def run(loss_fn, model, path, resume=False):
        loader = DataLoader(Planes(6, augment=True), batch_size=2, shuffle=True)
        return fit(model, loader, loss_fn, steps=8, lr=2e-3, warmup=2, log_every=1, checkpoint=path,
                   checkpoint_every=2, resume=resume, seed=3, **quiet())

    full = run(log_l1_loss, make_model(), tmp_path / "full.pt")
    path = tmp_path / "interrupted.pt"
    with pytest.raises(KeyboardInterrupt):
        run(CrashAt(6), make_model(), path)  # steps 1-5 done, checkpoint at step 4 (middle of epoch 1)
    ckpt = load_checkpoint(path)
    assert (ckpt["step"], ckpt["epoch"], ckpt["batch_in_epoch"]) == (4, 1, 1)
    resumed_model = make_model(seed=123)  # different initial weights: everything comes from the checkpoint
    resumed = run(log_l1_loss, resumed_model, path, resume=True)

    expected = load_checkpoint(tmp_path / "full.pt")["model"]
    for k, v in resumed_model.state_dict().items():
        assert torch.equal(v, expected[k]), f"{k} differs after resume"
    assert resumed.column("loss", "train") == full.column("loss", "train")
    assert resumed.column("lr", "train") == full.column("lr", "train")
    # resuming a finished run trains nothing and returns its history
    again_model = make_model(seed=7)
    again = run(CrashAt(1), again_model, path, resume=True)
    assert again.column("loss") == full.column("loss")
    assert torch.equal(again_model.depth_head.weight, expected["depth_head.weight"])


def test_load_model_rebuilds_the_trained_model(tmp_path):
    model = make_model()
    loader = DataLoader(Planes(4), batch_size=2)
    fit(model, loader, log_l1_loss, steps=2, checkpoint=tmp_path / "m.pt", **quiet())
    loaded = load_model(tmp_path / "m.pt")
    assert isinstance(loaded, DepthMaskNet) and loaded.config == model.config and not loaded.training
    x = torch.rand(1, 3, SIZE, SIZE)
    model.eval()
    torch.testing.assert_close(loaded(x)["depth"], model(x)["depth"], rtol=1e-5, atol=1e-6)
    with pytest.raises(FileNotFoundError, match="nothere.pt"):
        load_model(tmp_path / "nothere.pt")


# ----------------------------------------------------------------------------- atomic checkpoints


@pytest.mark.filterwarnings("ignore:resuming a run of 2 steps")
def test_atomic_checkpoint_survives_a_crash_during_save(tmp_path, monkeypatch):
    path = tmp_path / "run.pt"
    loader = DataLoader(Planes(4), batch_size=2)
    fit(make_model(), loader, log_l1_loss, steps=2, checkpoint=path, **quiet())
    before = path.read_bytes()

    def broken_save(obj, f, *args, **kwargs):  # writes half a file, then the disk "fills up"
        f.write(before[: len(before) // 2])
        raise OSError("No space left on device (simulated)")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="simulated"):
        fit(make_model(), loader, log_l1_loss, steps=4, checkpoint=path, checkpoint_every=1, resume=True, **quiet())
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert load_checkpoint(path)["step"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.pt"]  # no temporary file left behind
    # the same with atomic_save directly, over an existing file
    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        atomic_save({"x": torch.ones(3)}, path)
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 2
    atomic_save({"x": torch.ones(3)}, tmp_path / "new" / "x.pt")
    assert torch.equal(checkpoint_module.load_checkpoint(tmp_path / "new" / "x.pt")["x"], torch.ones(3))


def test_truncated_checkpoint_is_reported(tmp_path):
    path = tmp_path / "bad.pt"
    path.write_bytes(b"PK\x03\x04 not a checkpoint")
    with pytest.raises(RuntimeError, match="bad.pt"):
        load_checkpoint(path)


# ----------------------------------------------------------------------------- errors


def test_non_finite_loss_names_the_step_and_batch():
    calls = {"n": 0}

    def loss_fn(output, batch):
        calls["n"] += 1
        loss = log_l1_loss(output, batch)
        return loss * float("nan") if calls["n"] == 3 else loss

    model = make_model()
    loader = DataLoader(Planes(4), batch_size=2)  # not shuffled: step 3 is batch 0 of epoch 1
    with pytest.raises(FloatingPointError, match=r"step 3 \(epoch 1, batch 0.*plane/0.*plane/1"):
        fit(model, loader, loss_fn, steps=5, **quiet())
    assert all(torch.isfinite(p).all() for p in model.parameters())  # stopped before the update


# ----------------------------------------------------------------------------- history


def test_history_rows_and_validation_metrics():
    model = make_model()
    train = DataLoader(Planes(4), batch_size=2)
    val = DataLoader(Planes(3), batch_size=2)
    history = fit(model, train, log_l1_loss, steps=6, log_every=2, val_loader=val, val_every=3, **quiet())
    assert [r["step"] for r in history.train] == [2, 4, 6]
    assert [r["step"] for r in history.val] == [3, 6]
    assert {"loss", "lr", "grad_norm", "samples_per_s", "epoch", "time_s"} <= set(history.train[0])
    assert {"val_abs_rel", "val_delta1", "val_rmse", "val_abs_rel_raw"} <= set(history.val[0])
    assert all(r["samples_per_s"] > 0 for r in history.train)

    # the validation numbers equal a direct computation on the final model (3 images: 2 + 1)
    from lib.metrics import align_median, depth_metrics

    model.eval()
    items = [Planes(3)[i] for i in range(3)]
    with torch.no_grad():
        pred = model(torch.stack([it["image"] for it in items]))["depth"]
    target = torch.stack([it["depth"] for it in items])
    valid = torch.stack([it["valid"] for it in items])
    last = history.last("val")
    assert last["val_abs_rel_raw"] == pytest.approx(depth_metrics(pred, target, valid)["abs_rel"], rel=1e-4)
    aligned = align_median(pred, target, valid)[0]
    assert last["val_delta1"] == pytest.approx(depth_metrics(aligned, target, valid)["delta1"], abs=1e-6)
    assert last["val_abs_rel"] <= last["val_abs_rel_raw"] + 1e-6 or last["val_abs_rel"] < 0.5

    table = history.to_markdown("val")
    assert table.splitlines()[0].startswith("| step | val_abs_rel")
    assert len(table.splitlines()) == 2 + 2
    fig = history.plot()
    assert [ax.get_xlabel() for ax in fig.axes] == ["step", "step"]
    assert fig.axes[0].get_ylabel() and fig.axes[1].get_ylabel()
    assert History(history.rows).column("loss") == history.column("loss")


def test_cosine_schedule_with_warmup():
    base, steps, warmup = 1e-2, 10, 2
    history = fit(make_model(), DataLoader(Planes(2), batch_size=2), log_l1_loss, steps=steps, lr=base,
                  warmup=warmup, log_every=1, **quiet())
    # the row of step s (1-based) holds the rate step s used: base * factor(s - 1), with
    # factor(i) = (i + 1) / warmup during warm-up, then a half cosine reaching 0 at i = steps
    expected = [base * 0.5, base * 1.0] + [base * 0.5 * (1 + math.cos(math.pi * i / 8)) for i in range(8)]
    assert history.column("lr") == (list(range(1, 11)), pytest.approx(expected))
    assert expected[-1] == pytest.approx(base * 0.0380602, rel=1e-5)  # 0.5 * (1 + cos(7 pi / 8))


# ----------------------------------------------------------------------------- clipping


class RecordingSGD(torch.optim.SGD):
    """SGD that records the global gradient norm it is asked to apply."""

    def __init__(self, params, lr):
        super().__init__(params, lr=lr)
        self.norms = []

    def step(self, closure=None):
        grads = [p.grad for g in self.param_groups for p in g["params"] if p.grad is not None]
        self.norms.append(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])).item())
        return super().step(closure)


@pytest.mark.parametrize("clip", [0.05, None])
def test_gradient_clipping_bounds_the_norm(clip):
    model = make_model()
    opt = RecordingSGD(model.parameters(), lr=1e-3)
    loader = DataLoader(Planes(4), batch_size=2)

    def loud_loss(output, batch):  # large gradients
        return 100 * log_l1_loss(output, batch)

    history = fit(model, loader, loud_loss, steps=4, optimizer=opt, scheduler=None, grad_clip=clip,
                  log_every=1, **quiet())
    before = history.column("grad_norm")[1]
    assert all(b > 0.05 for b in before)
    if clip is None:
        assert opt.norms == pytest.approx(before, rel=1e-4)
    else:
        assert all(n <= clip * (1 + 1e-4) for n in opt.norms)
        assert opt.norms == pytest.approx([clip] * 4, rel=1e-3)


# ----------------------------------------------------------------------------- distributed


def _ddp_run(out_path: str, batch_size: int) -> None:
    """Train on Planes(8) with SGD; run in each process (under DDP) or alone."""
    model = make_model(seed=5)
    loader = DataLoader(Planes(8), batch_size=batch_size, shuffle=True)
    fit(model, loader, log_l1_loss, steps=3, optimizer=lambda p: torch.optim.SGD(p, lr=0.05), scheduler=None,
        checkpoint=out_path, seed=11, **quiet())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_processes_match_one(tmp_path):
    ddp_path = tmp_path / "ddp.pt"
    env = dict(os.environ, WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()),
               OMP_NUM_THREADS="1", PYTHONPATH=f"{ROOT}{os.pathsep}{ROOT / 'tests'}")
    code = f"import test_train; test_train._ddp_run({str(ddp_path)!r}, batch_size=2)"
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=dict(env, RANK=str(r), LOCAL_RANK=str(r)),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for r in range(2)]
    for p in procs:
        out, _ = p.communicate(timeout=180)
        assert p.returncode == 0, out[-3000:]

    single_path = tmp_path / "single.pt"
    _ddp_run(str(single_path), batch_size=4)  # same global batch in one process
    ddp, single = load_checkpoint(ddp_path), load_checkpoint(single_path)
    assert ddp["world_size"] == 2 and single["world_size"] == 1 and ddp["step"] == single["step"] == 3
    assert len(ddp["rng"]) == 2
    start = make_model(seed=5).state_dict()
    moved = False
    for k, v in single["model"].items():
        torch.testing.assert_close(ddp["model"][k], v, rtol=1e-4, atol=1e-6, msg=f"{k} differs")
        moved |= not torch.equal(v, start[k])
    assert moved
    # the logged loss is the mean over both processes, i.e. the single-process loss
    assert [r["loss"] for r in ddp["history"]] == pytest.approx([r["loss"] for r in single["history"]], rel=1e-4)


# ----------------------------------------------------------------------------- the command line


def test_command_line_recipe(tmp_path, capsys):
    from lib.train.recipe import main

    path = tmp_path / "cli.pt"
    history = main(["--steps", "2", "--size", "32", "--batch-size", "2", "--width", "8", "--n-train", "4",
                    "--n-val", "2", "--checkpoint", str(path), "--no-progress", "--device", "cpu"])
    assert len(history.val) >= 1
    assert "test split" in capsys.readouterr().out
    assert load_model(path).config["width"] == 8


def test_docstring_examples():
    import doctest

    import lib.train.history
    import lib.train.recipe

    for module in (lib.train.history, lib.train.recipe):
        failures, tried = doctest.testmod(module)
        assert failures == 0 and tried > 0, module.__name__
