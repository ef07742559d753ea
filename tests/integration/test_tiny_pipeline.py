"""The whole chain on the tiny experiment (digits, 8 subset models), in process and through run.py."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from grass.pipeline import run

REPO = Path(__file__).resolve().parents[2]


def _cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_all_stages_then_reuse(compose_cfg, tmp_path):
    cfg = compose_cfg("save_scores=true")
    first = run(cfg)
    assert first["finetune/models_trained"] == cfg.lds.num_subsets + cfg.tda.num_checkpoints
    assert -1.0 <= first["lds/mean"] <= 1.0 and math.isfinite(first["lds/mean"])
    assert first["lds/ci_low"] <= first["lds/mean"] <= first["lds/ci_high"]
    assert first["time/compress_s"] > 0 and first["damping/chosen"] in list(cfg.damping_grid)
    (out,) = (Path(cfg.paths.root) / "tiny" / "digits-mlp").glob("sjlt-k128-trak-s0-*")
    stored = json.loads((out / "metrics.json").read_text())
    assert stored["lds/mean"] == first["lds/mean"]
    # per-query LDS of the reported queries, in order, for paired comparisons (grass.report.paired)
    per_query = [v for v in stored["lds/per_query"] if v is not None]
    assert len(stored["lds/per_query"]) == len(stored["lds/queries"]) == stored["lds/n_queries"]
    assert math.isclose(sum(per_query) / len(per_query), first["lds/mean"], rel_tol=1e-9)
    assert (stored["run/train_output"], stored["run/finetune_seeds"]) == ("query", "per_model")

    second = run(cfg)  # same config: no model is retrained and the scores are bit-identical
    assert second["finetune/models_trained"] == 0
    assert second["lds/mean"] == first["lds/mean"]


def test_staged_equals_all(compose_cfg):
    ref = run(compose_cfg("stage=all", "save_scores=true", "compressor=grass"))
    for stage in ("finetune", "groundtruth", "attribute", "lds"):
        metrics = run(compose_cfg(f"stage={stage}", "compressor=grass"))
    assert metrics["lds/mean"] == ref["lds/mean"]


def test_missing_models_is_a_clear_error(compose_cfg):
    from grass.errors import GrassError

    with pytest.raises(GrassError, match="stage=finetune"):
        run(compose_cfg("stage=attribute"))


@pytest.mark.parametrize("tda", ["if_efim", "grad_dot"])
def test_other_attributors_run(compose_cfg, tda):
    metrics = run(compose_cfg(f"tda={tda}", "compressor=random_mask"))
    assert math.isfinite(metrics["lds/mean"])


def test_multirun_and_report(tmp_path):
    root = tmp_path / "outputs"
    res = _cli("run.py", "-m", "experiment=tiny", f"paths.root={root}", "compressor=sjlt,gaussian", "proj_dim=64,128")
    assert res.returncode == 0, res.stderr[-3000:]
    runs = sorted(root.glob("tiny/digits-mlp/*/metrics.json"))
    assert len(runs) == 4
    trained = [json.loads(p.read_text())["finetune/models_trained"] for p in runs]
    assert sorted(trained) == [0, 0, 0, 10]  # the first run trains, the other three reuse
    rep = _cli("report.py", "experiment_name=tiny", f"paths.root={root}")
    assert rep.returncode == 0, rep.stderr[-3000:]
    assert "| gaussian |" in rep.stdout and "| sjlt |" in rep.stdout
    assert (root / "tiny" / "report" / "lds_vs_time.png").stat().st_size > 1000


@pytest.mark.parametrize(
    "override, message",
    [
        ("compressor=nonsense", "Available options"),
        ("proj_dim=0", "proj_dim must be positive"),
        ("compressor=random_mask proj_dim=10000000", "10000000"),
        ("dataset=mnist dataset.source=idx dataset.path=/no/such/folder", "does not exist"),
    ],
)
def test_bad_input_gets_one_clear_message(tmp_path, override, message):
    res = _cli("run.py", "experiment=tiny", f"paths.root={tmp_path}", "finetune.epochs=1", *override.split())
    assert res.returncode != 0
    assert message in res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize("compressor", ["selective_mask", "grass_sm"])
def test_selective_mask_chain(compose_cfg, compressor):
    """stage=all learns the mask once, the attribute stage loads it, a second run reuses it."""
    cfg = compose_cfg(f"compressor={compressor}", "proj_dim=64")
    first = run(cfg)
    assert math.isfinite(first["lds/mean"]) and first["selective/epochs_run"] > 0
    assert list(Path(cfg.paths.root).rglob("selective_mask/*/*/flat.pt"))
    second = run(cfg)
    assert "selective/epochs_run" not in second and second["lds/mean"] == first["lds/mean"]


def test_selective_compressor_without_mask_names_the_stage(compose_cfg):
    from grass.errors import GrassError

    run(compose_cfg("stage=finetune"))
    with pytest.raises(GrassError, match="stage=selective_mask"):
        run(compose_cfg("compressor=selective_mask", "stage=attribute"))
