"""lib.zoo on a tiny entry trained inside the test: card, load, verify, and every broken file."""
import json

import pytest
import torch

from lib import zoo
from lib.domain_randomization import camera_effects, random_zoom


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "data"))
    entry = zoo.Entry(name="tiny", description="a four-step depth model for the tests",
                      recipe=zoo.DepthRecipe(width=4, size=(32, 48), n_train=16, n_val=4, n_test=4, batch_size=4,
                                             steps=4, val_every=2),
                      build=zoo.ENTRIES["depth"].build, train=zoo.ENTRIES["depth"].train,
                      evaluate=zoo.ENTRIES["depth"].evaluate, data="synthetic rooms (test)")
    monkeypatch.setitem(zoo.ENTRIES, "tiny", entry)
    card = zoo.train("tiny", device="cpu", progress=False)
    return tmp_path / "weights", card


@pytest.mark.slow
def test_train_writes_a_card_that_describes_the_run(tiny):
    folder, card = tiny
    assert (folder / "tiny.pt").exists() and zoo.card("tiny") == card
    for key in ("recipe", "size", "steps", "wall_time_s", "machine", "git_commit", "training_data", "curve",
                "metrics", "sha256"):
        assert key in card, key
    assert card["size"] == [32, 48] and card["steps"] == 4 and card["machine"]["cpu_cores"] >= 1
    assert [r["step"] for r in card["curve"]] == [2, 4]
    for k in ("test_abs_rel", "test_flat_abs_rel", "moto_abs_rel", "moto_flat_abs_rel"):
        assert 0 < card["metrics"][k] < 10
    assert "tiny" in zoo.shipped()
    # float16 on disk, float32 in memory
    state = torch.load(folder / "tiny.pt", weights_only=True)
    assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())


@pytest.mark.slow
def test_load_gives_the_model_in_eval_mode_with_the_card_metrics(tiny):
    model = zoo.load("tiny", device="cpu")
    assert not model.training and next(model.parameters()).dtype == torch.float32
    out = model(torch.rand(2, 3, 32, 48))
    assert out["depth"].shape == (2, 1, 32, 48) and bool((out["depth"] > 0).all())
    assert zoo.verify(["tiny"], log=lambda *a: None)


@pytest.mark.slow
def test_broken_files_give_errors_that_name_the_file_and_the_fix(tiny):
    folder, card = tiny
    weights = folder / "tiny.pt"
    good = weights.read_bytes()
    weights.write_bytes(good[: len(good) // 2])                       # truncated
    with pytest.raises(zoo.ZooError, match=r"tiny\.pt does not match its card.*lib\.zoo train tiny"):
        zoo.load("tiny")
    assert not zoo.verify(["tiny"], log=lambda *a: None)
    weights.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))            # one bit changed
    with pytest.raises(zoo.ZooError, match="sha256"):
        zoo.load("tiny")
    weights.unlink()                                                  # missing
    with pytest.raises(zoo.ZooError, match=r"tiny\.pt is missing.*lib\.zoo train tiny"):
        zoo.load("tiny")
    weights.write_bytes(good)
    zoo.load("tiny")                                                  # restored: fine again
    # a card whose metrics no longer match what the file scores
    card_path = folder / "tiny.json"
    bad = dict(card, metrics={**card["metrics"], "test_abs_rel": card["metrics"]["test_abs_rel"] + 0.1})
    card_path.write_text(json.dumps(bad))
    lines = []
    assert not zoo.verify(["tiny"], log=lines.append)
    assert "test_abs_rel" in lines[0] and "FAILED" in lines[0]
    card_path.write_text("{not json")
    with pytest.raises(zoo.ZooError, match="not a readable card"):
        zoo.card("tiny")
    with pytest.raises(zoo.ZooError, match="no zoo entry 'nope'.*depth"):
        zoo.load("nope")


@pytest.mark.slow
def test_training_resumes_and_a_changed_recipe_starts_over(tiny, tmp_path):
    run = tmp_path / "data" / "zoo" / "tiny" / "run.json"
    first = json.loads(run.read_text())
    assert first["recipe"]["steps"] == 4 and first["seconds"] > 0
    card = zoo.train("tiny", device="cpu", progress=False, steps=6)   # another recipe: starts over
    assert card["steps"] == 6 and [r["step"] for r in card["curve"]] == [2, 4, 6]


@pytest.mark.slow
def test_the_shipped_models_match_their_cards(monkeypatch):
    monkeypatch.delenv("COURSE_WEIGHTS_DIR", raising=False)
    assert "depth" in zoo.shipped(), "weights/depth.pt and weights/depth.json are part of the course"
    lines = []
    assert zoo.verify(log=lines.append), lines
    card = zoo.card("depth")
    assert card["metrics"]["test_abs_rel"] < card["metrics"]["test_flat_abs_rel"]


def test_camera_effects_and_zoom_keep_depth_exact():
    g = torch.Generator().manual_seed(0)
    img = torch.rand(6, 3, 16, 24, generator=g)
    out = camera_effects(img, g)
    assert out.shape == img.shape and not torch.allclose(out, img)
    assert torch.equal(camera_effects(img, torch.Generator().manual_seed(1)),
                       camera_effects(img, torch.Generator().manual_seed(1)))
    depth = torch.rand(6, 1, 16, 24, generator=g) + 1
    batch = {"image": img, "depth": depth, "valid": depth > 1.2, "mask": (depth * 3).long()}
    z = random_zoom(batch, g)
    assert all(z[k].shape == batch[k].shape and z[k].dtype == batch[k].dtype for k in batch)
    # nearest-neighbour resizing: every zoomed depth is one of the image's own depths, with its mask
    for i in range(6):
        values = set(depth[i].flatten().tolist())
        assert set(z["depth"][i].flatten().tolist()) <= values
        assert torch.equal(z["valid"][i], z["depth"][i] > 1.2)
    with pytest.raises(ValueError, match="B,3,H,W"):
        camera_effects(torch.rand(3, 8, 8))


def _variant(monkeypatch, name, **recipe):
    base = zoo.ENTRIES["tiny"]
    entry = zoo.Entry(name=name, description=f"tiny {name}", recipe=zoo.DepthRecipe(**{
        **{f: getattr(base.recipe, f) for f in ("width", "size", "n_train", "n_val", "n_test",
                                                 "batch_size", "steps", "val_every")}, **recipe}),
                      build=base.build, train=base.train, evaluate=base.evaluate, data="test")
    monkeypatch.setitem(zoo.ENTRIES, name, entry)
    return entry


@pytest.mark.slow
def test_a_fine_tune_starts_from_its_init_and_ssi_is_scored_in_disparity(tiny, monkeypatch):
    _variant(monkeypatch, "tiny_ssi", task="ssi", init="tiny")
    card = zoo.train("tiny_ssi", device="cpu", progress=False, lr=0.0)   # lr 0: weights unchanged
    start, tuned = zoo.load("tiny"), zoo.load("tiny_ssi")
    for (k, a), b in zip(start.state_dict().items(), tuned.state_dict().values()):
        assert torch.equal(a, b), k
    # the card's AbsRel is the least-squares fit in disparity, computed here by hand
    recipe = zoo.ENTRIES["tiny_ssi"].recipe
    test = zoo._depth_data(recipe, "test", recipe.n_test)
    rels = []
    with torch.no_grad():
        for i in range(len(test)):
            item = test[i]
            d = 1.0 / tuned(item["image"][None])["depth"][0, 0].double()
            v = item["valid"][0] & (item["depth"][0] > 0)
            x, y = d[v], 1.0 / item["depth"][0][v].double()
            A = torch.stack([x, torch.ones_like(x)], 1)
            s, t = torch.linalg.lstsq(A, y[:, None]).solution[:, 0]
            fit = 1.0 / (s * x + t)
            rels.append(float(((fit - 1 / y).abs() * y).mean()))
    assert card["metrics"]["test_abs_rel"] == pytest.approx(sum(rels) / len(rels), rel=0.05)


@pytest.mark.slow
def test_a_mask_backbone_is_scored_by_object_iou(tiny, monkeypatch):
    _variant(monkeypatch, "tiny_mask", task="mask")
    card = zoo.train("tiny_mask", device="cpu", progress=False)
    assert set(card["metrics"]) == {"test_iou", "test_all_object_iou"}
    recipe = zoo.ENTRIES["tiny_mask"].recipe
    test = zoo._depth_data(recipe, "test", recipe.n_test)
    objects = torch.stack([test[i]["mask"] > 0 for i in range(len(test))])
    assert card["metrics"]["test_all_object_iou"] == pytest.approx(float(objects.float().mean()),
                                                                   abs=1e-4)
    assert 0.0 <= card["metrics"]["test_iou"] <= 1.0 and "val_iou" in card["curve"][-1]
    _variant(monkeypatch, "tiny_bad", task="segmentation")
    with pytest.raises(zoo.ZooError, match="task must be one of"):
        zoo.train("tiny_bad", device="cpu", progress=False)


@pytest.mark.slow
def test_a_fine_network_trains_on_windows_and_is_scored_on_the_tiles(tiny, monkeypatch):
    _variant(monkeypatch, "tiny_fine", size=(16, 16), render=(32, 48), init="")
    card = zoo.train("tiny_fine", device="cpu", progress=False)
    recipe = zoo.ENTRIES["tiny_fine"].recipe
    tiles = zoo._depth_data(recipe, "test", recipe.n_test)
    assert len(tiles) == recipe.n_test * 2 * 3 and tiles[0]["image"].shape == (3, 16, 16)
    scene = zoo._depth_data(recipe, "train", recipe.n_test)      # rendered whole
    assert scene[0]["image"].shape == (3, 32, 48)
    # tile 4 of scene 0 is row 1, column 1 of the grid of the whole test scene
    from lib.data import SyntheticRGBD
    whole = SyntheticRGBD(recipe.n_test, size=(32, 48), seed=0, split="test")[0]
    assert torch.equal(tiles[4]["depth"], whole["depth"][:, 16:32, 16:32])
    g = torch.Generator().manual_seed(0)
    batch = {"image": torch.rand(3, 3, 32, 48), "depth": torch.rand(3, 1, 32, 48)}
    win = zoo._random_windows(batch, (16, 16), g)
    assert win["image"].shape == (3, 3, 16, 16)
    for i in range(3):                                    # each window is a piece of its own image
        hits = [(t, l) for t in range(17) for l in range(33)
                if torch.equal(batch["depth"][i, :, t:t + 16, l:l + 16], win["depth"][i])]
        assert len(hits) == 1
    assert "moto_abs_rel" in card["metrics"]


@pytest.mark.slow
def test_a_fusion_network_trains_on_frozen_shipped_models(tiny, monkeypatch):
    recipe = zoo.FusionRecipe(coarse="tiny", fine="tiny", size=(64, 96), process=(16, 32), width=4,
                              n_train=4, n_test=2, batch_size=2, steps=4, val_every=2)
    base = zoo.ENTRIES["fusion"]
    monkeypatch.setitem(zoo.ENTRIES, "tiny_fusion", zoo.Entry(
        name="tiny_fusion", description="test", recipe=recipe, build=base.build, train=base.train,
        evaluate=base.evaluate, data="test"))
    card = zoo.train("tiny_fusion", device="cpu", progress=False)
    for k in ("test_abs_rel", "test_abs_rel_coarse", "test_abs_rel_naive", "test_see",
              "test_see_coarse", "test_tce", "test_tce_naive", "moto_abs_rel", "moto_abs_rel_coarse"):
        assert k in card["metrics"], k
    fused, coarse = zoo.load("tiny_fusion", "cpu"), zoo.load("tiny", "cpu")
    for (k, a), b in zip(coarse.state_dict().items(), fused.coarse.state_dict().values()):
        assert torch.equal(a, b), k                                   # the coarse net stayed frozen
    # the coarse-only AbsRel on the card, by hand
    from lib import metrics
    from lib.data import SyntheticRGBD
    test = SyntheticRGBD(2, size=(64, 96), seed=0, split="test")
    with torch.no_grad():
        p = torch.cat([fused.coarse_predict(test[i]["image"][None]) for i in range(2)])
    t = torch.stack([test[i]["depth"] for i in range(2)])
    v = torch.stack([test[i]["valid"] for i in range(2)])
    want = metrics.depth_metrics(metrics.align_median(p, t, v)[0], t, v)["abs_rel"]
    assert card["metrics"]["test_abs_rel_coarse"] == pytest.approx(want, abs=1e-4)
    assert zoo.verify(["tiny_fusion"], log=lambda *a: None)
