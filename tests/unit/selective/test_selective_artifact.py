"""Selective mask files (SPEC 4): per layer and per side, fingerprint-checked, refused when missing."""

import pytest
import torch

from grass.artifacts import save_artifact
from grass.errors import GrassError
from grass.fingerprint import describe_diff
from grass.selective.artifact import load_mask, mask_dir, mask_fingerprint, mask_path, save_mask, save_result
from grass.selective.learn import CurvePoint, MaskResult

LEARN = {"lr": 5e-5, "reg": 1e-6, "epochs": 5000, "log_every": 500, "early_stop": 0.9, "temperature": 1.0}


def _fp(**change):
    fp = mask_fingerprint("mnist-mlp-abc123", checkpoint=0, target="margin", learn=LEARN, seed=0)
    fp.update(change)
    return fp


def _result(indices):
    rows = torch.arange(10)
    return MaskResult(indices=indices, curve=[CurvePoint(0, 1.0, -1.0, 0.5), CurvePoint(5, 0.95, -0.9, 0.8)],
                      stopped_early=False, epochs_run=5, train_rows=rows[:8], query_rows=rows[8:])


def test_layout(tmp_path):
    root = mask_dir(tmp_path / "artifacts", "mnist-mlp-s0")
    assert root == tmp_path / "artifacts" / "selective_mask" / "mnist-mlp-s0"
    assert mask_path(root, 64) == root / "64" / "flat.pt"
    assert mask_path(root, (16, 32), "h.0.mlp.c_fc", "in") == root / "32x16" / "h.0.mlp.c_fc.in.pt"
    for layer, side, k in [("a/b", None, 4), ("", None, 4), ("fc1", "input", (4, 4)), ("fc1", "in", 4)]:
        with pytest.raises(GrassError):
            mask_path(root, k, layer, side)


def test_flat_round_trip(tmp_path):
    root = mask_dir(tmp_path, "s")
    [path] = save_result(root, "flat", _result(torch.tensor([9, 2, 4])), 10, _fp())
    assert path == mask_path(root, 3)
    got = load_mask(path, _fp(), in_dim=10, k=3)
    assert got.dtype == torch.int64 and got.tolist() == [2, 4, 9]
    saved = torch.load(path, weights_only=True)
    assert saved["info"]["epochs_run"] == 5 and saved["info"]["curve"][1] == [5, 0.95, -0.9, 0.8]


def test_per_layer_and_per_side(tmp_path):
    root = mask_dir(tmp_path, "s")
    paths = save_result(root, "fc1", _result((torch.tensor([1, 3]), torch.tensor([0, 2, 5]))), (8, 6), _fp())
    pair = (2, 3)  # (k_in, k_out): both sides live in the pair's folder "3x2"
    assert paths == [mask_path(root, pair, "fc1", "in"), mask_path(root, pair, "fc1", "out")]
    assert paths[0].parent.name == "3x2"
    save_result(root, "fc2", _result((torch.tensor([4, 7]), torch.tensor([1, 2, 3]))), (8, 6), _fp())
    assert load_mask(mask_path(root, pair, "fc1", "in"), _fp(), 8, 2).tolist() == [1, 3]
    assert load_mask(mask_path(root, pair, "fc1", "out"), _fp(), 6, 3).tolist() == [0, 2, 5]
    assert load_mask(mask_path(root, pair, "fc2", "in"), _fp(), 8, 2).tolist() == [4, 7]
    assert load_mask(mask_path(root, pair, "fc2", "out"), _fp(), 6, 3).tolist() == [1, 2, 3]


def test_missing_mask_says_which_stage_makes_it(tmp_path):
    with pytest.raises(GrassError, match="stage=selective_mask") as err:
        load_mask(mask_path(tmp_path, 8), _fp(), 10, 8)
    assert "flat.pt" in str(err.value)


def test_mismatched_fingerprint_names_the_keys(tmp_path):
    path = save_mask(mask_path(tmp_path, 2), torch.tensor([0, 1]), 10, _fp())
    with pytest.raises(GrassError, match=r"learn\.lr: file=5e-05, now=0\.0001") as err:
        load_mask(path, _fp(learn={**LEARN, "lr": 1e-4}), 10, 2)
    assert "stage=selective_mask" in str(err.value)
    with pytest.raises(GrassError, match="checkpoint: file=0, now=3"):
        load_mask(path, _fp(checkpoint=3), 10, 2)
    with pytest.raises(GrassError, match="layers: file=<absent>"):
        load_mask(path, _fp(layers=["fc1"]), 10, 2)


def test_fingerprint_diff_ignores_container_types():
    assert describe_diff({"a": (1, 2), "b": {"c": 1.0}}, {"b": {"c": 1.0}, "a": [1, 2]}) == []
    assert describe_diff({"a": 1}, {"a": 1, "b": 2}, labels=("file", "expected")) == ["b: file=<absent>, expected=2"]


def test_width_size_and_expected_fingerprint_are_checked(tmp_path):
    path = save_mask(mask_path(tmp_path, 2), torch.tensor([0, 1]), 10, _fp())
    with pytest.raises(GrassError, match="indexes 10 coordinates, the gradients have 12"):
        load_mask(path, _fp(), 12, 2)
    with pytest.raises(GrassError, match="holds 2 indices, 3 were asked for"):
        load_mask(path, _fp(), 10, 3)
    with pytest.raises(GrassError, match="no expected fingerprint"):
        load_mask(path, None, 10, 2)


def test_refuses_bad_indices_and_foreign_files(tmp_path):
    with pytest.raises(GrassError, match="sorted distinct"):
        save_mask(mask_path(tmp_path, 2), torch.tensor([3, 3]), 10, _fp())
    with pytest.raises(GrassError, match=r"in \[0, 10\)"):
        save_mask(mask_path(tmp_path, 2), torch.tensor([3, 10]), 10, _fp())
    foreign = mask_path(tmp_path, 2)
    foreign.parent.mkdir(parents=True)
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(GrassError, match="has no checksum file"):
        load_mask(foreign, _fp(), 10, 2)
    save_artifact({"weights": torch.zeros(2)}, foreign, _fp(), kind="not a mask")
    with pytest.raises(GrassError, match="not a selective mask file"):
        load_mask(foreign, _fp(), 10, 2)
