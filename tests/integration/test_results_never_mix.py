"""Results never mix: every run configuration has its own folder, stale or foreign scores are refused, model
keys follow the training recipe, and a flipped byte in any artifact is a named error (issue: results that
never mix and never rot)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from grass.errors import GrassError
from grass.instantiate import instantiate_node
from grass.pipeline import run, run_dir
from grass.run_context import RunContext
from grass.tasks import make_task

REPO = Path(__file__).resolve().parents[2]
QUICK = ("lds.num_subsets=4", "tda.num_checkpoints=1", "finetune.epochs=1")


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_tda_sweep_keeps_one_run_folder_and_metrics_per_method(tmp_path):
    root = tmp_path / "outputs"
    res = _cli("run.py", "-m", "experiment=tiny", f"paths.root={root}", "tda=trak,grad_dot", *QUICK)
    assert res.returncode == 0, res.stderr[-3000:]
    runs = sorted(root.glob("tiny/digits-mlp/*/metrics.json"))
    assert len(runs) == 2, runs
    metrics = {json.loads(p.read_text())["run/tda"]: json.loads(p.read_text()) for p in runs}
    assert set(metrics) == {"trak", "grad_dot"}
    assert metrics["trak"]["lds/mean"] != metrics["grad_dot"]["lds/mean"]
    assert {p.parent.name.split("-")[2] for p in runs} == {"trak", "grad_dot"}


@pytest.mark.parametrize("a, b", [("tda=trak", "tda=grad_dot"), ("tda=trak", "tda.num_checkpoints=1"),
                                  ("damping_grid=[0.1]", "damping_grid=[1.0]"), ("compressor.c=1", "compressor.c=2"),
                                  ("lds.num_subsets=8", "lds.num_subsets=6"), ("seed=0", "seed=1")])
def test_run_folders_differ_by_every_setting_that_changes_the_result(compose_cfg, a, b):
    assert run_dir(compose_cfg(a)) != run_dir(compose_cfg(b))


@pytest.mark.parametrize("a, b", [("logger=csv", "logger=none"), ("save_scores=true", "save_scores=false"),
                                  ("hardware.grad_batch_size=64", "hardware.grad_batch_size=32"),
                                  ("selective_mask.epochs=3", "selective_mask.epochs=5")])  # sjlt learns no mask
def test_run_folders_ignore_settings_that_do_not_change_the_result(compose_cfg, a, b):
    assert run_dir(compose_cfg(a)) == run_dir(compose_cfg(b))


def test_identity_runs_are_not_named_after_proj_dim(compose_cfg):
    one, two = run_dir(compose_cfg("compressor=identity", "proj_dim=64")), run_dir(compose_cfg("compressor=identity"))
    assert one == two and one.name.startswith("identity-trak-s0-")


def test_stage_lds_refuses_scores_of_another_configuration(compose_cfg):
    run(compose_cfg("stage=finetune", *QUICK))
    run(compose_cfg("stage=attribute", "tda=grad_dot", *QUICK))
    with pytest.raises(GrassError, match="missing artifact .*scores.pt.*stage=attribute"):
        run(compose_cfg("stage=lds", "tda=trak", *QUICK))
    # scores copied (or left) under another configuration's folder are refused, the differing keys named
    foreign = run_dir(compose_cfg("tda=grad_dot", *QUICK)) / "scores.pt"
    mine = run_dir(compose_cfg("tda=trak", *QUICK))
    for suffix in ("", ".meta.json"):
        shutil.copy(f"{foreign}{suffix}", f"{mine / 'scores.pt'}{suffix}")
    with pytest.raises(GrassError, match="other settings; differing keys: .*tda.name: file=grad_dot, now=trak"):
        run(compose_cfg("stage=lds", "tda=trak", *QUICK))


def _models_dir(compose_cfg, *overrides):
    cfg = compose_cfg(*overrides)
    data = instantiate_node(cfg.dataset, "dataset")
    return RunContext(cfg=cfg, run_dir=Path("."), data=data, task=make_task(cfg, data), tracker=None).models_dir()


@pytest.mark.parametrize("override", ["hardware=ddp", "hardware.precision=bf16-mixed", "hardware.devices=2"])
def test_models_key_follows_the_training_recipe(compose_cfg, override):
    assert _models_dir(compose_cfg, override) != _models_dir(compose_cfg)


def test_models_key_ignores_where_training_runs(compose_cfg):
    assert _models_dir(compose_cfg, "hardware.grad_batch_size=8", "hardware.num_threads=1") == _models_dir(compose_cfg)
    assert _models_dir(compose_cfg, "hardware.precision=32") == _models_dir(compose_cfg)  # Lightning's alias


def test_a_failed_run_says_so_in_its_metrics(compose_cfg):
    cfg = compose_cfg("stage=lds", *QUICK)
    with pytest.raises(GrassError):
        run(cfg)
    metrics = json.loads((run_dir(cfg) / "metrics.json").read_text())
    assert "lds/mean" not in metrics and metrics["run/error"].startswith("GrassError: missing artifact")


@pytest.fixture
def finished_run(compose_cfg):
    """A finished tiny run with a learned selective mask and saved scores: every artifact kind of pipeline=lds."""
    overrides = ("compressor=selective_mask", "proj_dim=64", "save_scores=true", *QUICK)
    run(compose_cfg(*overrides))
    return overrides


@pytest.mark.parametrize("pattern, stage", [
    ("artifacts/models/*/checkpoint_000.pt", "attribute"),
    ("artifacts/models/*/subset_002.pt", "groundtruth"),
    ("artifacts/models/*/subsets.pt", "lds"),
    ("artifacts/groundtruth/*/margins.pt", "lds"),
    ("artifacts/selective_mask/*/*/flat.pt", "attribute"),
    ("tiny/digits-mlp/*/scores.pt", "lds"),
])
def test_a_flipped_byte_in_any_artifact_is_a_named_error(compose_cfg, finished_run, pattern, stage):
    root = Path(compose_cfg().paths.root)
    (path,) = root.glob(pattern)
    if stage == "groundtruth":  # the subset models are read only while the ground truth is being made
        for old in root.glob("artifacts/groundtruth/*/margins.pt*"):
            old.unlink()
    _flip_byte(path)
    with pytest.raises(GrassError, match=rf"{path.name} is corrupt.*delete it"):
        run(compose_cfg(*finished_run, f"stage={stage}"))


def test_an_unwritable_outputs_folder_is_one_error_line(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    res = _cli("run.py", "experiment=tiny", f"paths.root={blocker}/outputs")
    assert res.returncode == 1
    assert res.stderr.strip().startswith("error: cannot write to the outputs folder"), res.stderr[-2000:]
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_a_read_only_outputs_folder_is_one_error_line(tmp_path, monkeypatch):
    """As root (CI) permissions do not bind, so the refusal of the write probe is simulated."""
    import tempfile

    from grass.hydra_callbacks import check_writable

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(SystemExit, match=r"error: cannot write to the outputs folder paths.root=.*Permission denied"):
        check_writable(tmp_path / "outputs")


def test_two_runs_started_together_train_each_model_once(tmp_path):
    root = tmp_path / "outputs"
    env = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1"}
    procs = [subprocess.Popen([sys.executable, "run.py", "experiment=tiny", f"paths.root={root}", "stage=finetune",
                               f"tda={tda}", "lds.num_subsets=6", "tda.num_checkpoints=1", "finetune.epochs=2"],
                              cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for tda in ("trak", "grad_dot")]  # both need the same models; their run folders differ
    for p in procs:
        assert p.wait(timeout=600) == 0, p.stderr.read()[-3000:]
    runs = root.glob("tiny/digits-mlp/*/metrics.json")
    trained = [json.loads(p.read_text())["finetune/models_trained"] for p in runs]
    assert len(trained) == 2 and sum(trained) == 6 + 1, trained


def test_store_caches_are_shared_only_by_tdas_with_the_same_train_features(compose_cfg):
    run(compose_cfg("stage=finetune", *QUICK))
    for tda in ("trak", "if_efim", "grad_dot"):  # trak differentiates the margin, the other two the loss
        run(compose_cfg("pipeline=store", "stage=cache", f"tda={tda}", *QUICK))
    stores = sorted(p.parent.name for p in Path(compose_cfg().paths.root).glob("tiny/store/*/train"))
    assert len(stores) == 2, stores
