"""finetune.source=dattri on a local mirror: dattri's subsets, models and ground truth land as grass artifacts."""

import json

import pytest
import torch
from dattri.benchmark.models.mlp import MLPMnist

from grass.artifacts import load_artifact
from grass.dattri_bench import settings as dattri
from grass.dattri_bench.preflight import groundtruth_path
from grass.errors import GrassError
from grass.instantiate import instantiate_node
from grass.model_files import checkpoint_path, subset_model_path
from grass.models.build import load_classifier
from grass.pipeline import run
from grass.run_settings import run_name


@pytest.fixture
def imported(tmp_path, mnist_idx, make_benchmark, dattri_cfg):
    """The fake benchmark imported by `stage=finetune`: (cfg, what the mirror holds)."""
    _, images, labels = mnist_idx
    truth = make_benchmark(tmp_path / "mirror", images, labels, prefix="mnist_mlp_half/")
    cfg = dattri_cfg(tmp_path / "mirror", "stage=finetune")
    metrics = run(cfg)
    assert metrics["finetune/models_imported"] == 6 + 2 and metrics["finetune/models_trained"] == 0
    assert metrics["finetune/source"] == "dattri"
    return cfg, truth


def test_subsets_models_and_ground_truth_are_dattris(imported, mnist_idx):
    cfg, truth = imported
    folder = dattri.models_dir(cfg)
    assert "-dattri-" in folder.name
    masks = load_artifact(folder / "subsets.pt")["masks"]
    assert masks.shape == (6, 5000) and masks.sum(1).tolist() == [2500] * 6
    for s in range(6):
        assert masks[s].nonzero().flatten().tolist() == sorted(truth["indices"][s].tolist())
    margins = load_artifact(groundtruth_path(cfg))["margins"]
    torch.testing.assert_close(margins, truth["targets"])
    # grass's MLP with the imported weights computes what dattri's MLPMnist computed, on grass's query rows
    data = instantiate_node(cfg.dataset, "dataset")
    torch.testing.assert_close(data.x_query, truth["x_query"].flatten(1))
    for s in (0, 5):
        model = load_classifier(cfg.model, data, subset_model_path(folder, s), dattri.models_settings(cfg))
        theirs = MLPMnist().eval()
        theirs.load_state_dict(truth["states"][s])
        with torch.no_grad():
            torch.testing.assert_close(model(data.x_query), theirs(truth["x_query"]))
    # TRAK's checkpoints are the first subset models, as in the paper's runs (models_half[:10])
    for c in range(2):
        checkpoint, subset = load_artifact(checkpoint_path(folder, c)), load_artifact(subset_model_path(folder, c))
        assert checkpoint.keys() == subset.keys()
        torch.testing.assert_close(checkpoint, subset)


def test_later_stages_read_the_import_offline(imported, dattri_cfg, tmp_path, monkeypatch):
    cfg, truth = imported
    # the mirror is gone and the hub is offline: the import is complete, so nothing needs fetching
    (tmp_path / "mirror" / "mnist_mlp" / "mnist_mlp_half.zip").unlink()
    metrics = run(dattri_cfg(tmp_path / "mirror", "stage=groundtruth"))
    assert metrics["groundtruth/margin_mean"] == pytest.approx(float(truth["targets"].mean()))
    metrics = run(dattri_cfg(tmp_path / "mirror", "stage=finetune"))  # rerun: nothing to do
    assert metrics["finetune/models_trained"] == 0 and "finetune/models_imported" not in metrics


def test_dattri_models_never_mix_with_grass_models(compose_cfg, tmp_path):
    base = ["dataset=mnist_dattri", "logger=none"]
    grass = compose_cfg(*base, experiment="mnist_mlp")
    ours = compose_cfg(*base, "finetune.source=dattri", experiment="mnist_mlp")
    other_rev = compose_cfg(*base, "finetune.source=dattri", "finetune.dattri.revision=abc123", experiment="mnist_mlp")
    moved = compose_cfg(*base, "finetune.source=dattri", f"finetune.dattri.mirror={tmp_path}",
                        f"finetune.dattri.cache_dir={tmp_path}/c", "finetune.epochs=3", experiment="mnist_mlp")
    assert len({run_name(grass), run_name(ours), run_name(other_rev)}) == 3
    # grass-trained runs (and their models' key) ignore the dattri keys: run folders from before stay valid
    assert run_name(compose_cfg(*base, "finetune.dattri.revision=abc123", experiment="mnist_mlp")) == run_name(grass)
    assert "source" not in dattri.finetune_identity(dict(grass.finetune))
    assert run_name(moved) == run_name(ours)  # where the files come from and grass's recipe change nothing
    assert dattri.models_dir(ours) != dattri.models_dir(other_rev)
    assert dattri.models_dir(moved) == dattri.models_dir(ours)
    assert dattri.models_settings(ours)["finetune"] == {"source": "dattri", "repo": "trais-lab/dattri-benchmark",
                                                        "revision": "main"}


def test_query_rows_that_are_not_dattris_are_refused(tmp_path, mnist_idx, make_benchmark, dattri_cfg):
    _, images, labels = mnist_idx
    make_benchmark(tmp_path / "mirror", images, labels, query_order=torch.randperm(500, generator=torch.Generator()
                                                                                     .manual_seed(0)))
    with pytest.raises(GrassError, match="query rows are not the ones dattri's ground truth"):
        run(dattri_cfg(tmp_path / "mirror", "stage=finetune"))
    assert not dattri.models_dir(dattri_cfg(tmp_path / "mirror")).joinpath("subset_000.pt").exists()


def test_more_subsets_than_dattri_has_are_refused(tmp_path, mnist_idx, make_benchmark, dattri_cfg):
    _, images, labels = mnist_idx
    make_benchmark(tmp_path / "mirror", images, labels, count=4)
    with pytest.raises(GrassError, match="lds.num_subsets=6, but dattri's mnist_mlp has 4 subset models"):
        run(dattri_cfg(tmp_path / "mirror", "stage=finetune"))


def _as_hub_cache(mirror, cache, commit="0123456789abcdef0123456789abcdef01234567"):
    """Lay the mirror's files out as huggingface_hub's cache holds a dataset repo at revision main."""
    repo = cache / "datasets--trais-lab--dattri-benchmark"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    for path in mirror.rglob("*"):
        if path.is_file():
            target = snapshot / path.relative_to(mirror)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    return commit


def test_files_in_the_hub_cache_are_used_offline(tmp_path, mnist_idx, make_benchmark, compose_cfg):
    _, images, labels = mnist_idx
    truth = make_benchmark(tmp_path / "mirror", images, labels)
    commit = _as_hub_cache(tmp_path / "mirror", tmp_path / "cache")
    cfg = compose_cfg("dataset=mnist_dattri", "dataset.source=idx", f"dataset.path={mnist_idx[0]}",
                      "finetune.source=dattri", f"finetune.dattri.cache_dir={tmp_path / 'cache'}", "lds.num_subsets=6",
                      "tda.num_checkpoints=2", "logger=none", "stage=finetune", experiment="mnist_mlp")
    run(cfg)
    torch.testing.assert_close(load_artifact(groundtruth_path(cfg))["margins"], truth["targets"])
    source = json.loads((dattri.models_dir(cfg) / "dattri_source.json").read_text())
    assert source["commit"] == commit and source["subset_models"] == 6
    assert source["files"]["models"]["name"] == "mnist_mlp/mnist_mlp_half.zip"


def test_missing_files_are_downloaded_into_the_cache(tmp_path, mnist_idx, make_benchmark, compose_cfg, monkeypatch):
    import huggingface_hub

    from grass.dattri_bench import fetch

    _, images, labels = mnist_idx
    truth = make_benchmark(tmp_path / "mirror", images, labels)
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var)
    monkeypatch.setattr(fetch, "hub_unreachable", lambda repo, timeout_s: None)
    downloads = []
    real = huggingface_hub.hf_hub_download

    def fake_download(repo_id, filename, *, local_files_only=False, **kw):  # the hub, served from the mirror
        if local_files_only:
            return real(repo_id, filename, local_files_only=True, **kw)
        downloads.append((repo_id, filename, kw["revision"], kw["repo_type"]))
        target = tmp_path / "downloaded" / filename
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((tmp_path / "mirror" / filename).read_bytes())
        return str(target)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    cfg = compose_cfg("dataset=mnist_dattri", "dataset.source=idx", f"dataset.path={mnist_idx[0]}",
                      "finetune.source=dattri", f"finetune.dattri.cache_dir={tmp_path / 'cache'}", "lds.num_subsets=6",
                      "tda.num_checkpoints=2", "logger=none", "stage=finetune", experiment="mnist_mlp")
    run(cfg)
    assert sorted(d[1] for d in downloads) == sorted(dattri.setting_for(cfg).files().values())
    assert {(d[0], d[2], d[3]) for d in downloads} == {("trais-lab/dattri-benchmark", "main", "dataset")}
    torch.testing.assert_close(load_artifact(groundtruth_path(cfg))["margins"], truth["targets"])
