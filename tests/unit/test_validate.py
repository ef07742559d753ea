"""grass.validate: bad settings are refused up front with one GrassError naming the key, the value and what
is allowed; config-only checks before the data is loaded, size checks right after, before any training."""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import grass.pipeline
from grass.data.subsets import validation_size
from grass.errors import GrassError
from grass.instantiate import instantiate_node
from grass.lds_stages.run import lds_stages
from grass.models.mlp import MLP
from grass.pipeline import run
from grass.run_compressors import build_layer_compressors
from grass.store_stages.run import store_stages
from grass.tasks import make_task
from grass.validate import min_queries, validate_config, validate_for_task

CONF = Path(__file__).resolve().parents[2] / "conf"
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
TINY_P = 64 * 32 + 32 + 32 * 16 + 16 + 16 * 10 + 10  # experiment=tiny: MLP 64-32-16-10 on digits


def _stages(cfg) -> list[str]:
    return store_stages(cfg.stage) if cfg.pipeline == "store" else lds_stages(cfg.stage)


def _validate(cfg) -> None:
    validate_config(cfg, _stages(cfg))


def _task(cfg):
    return make_task(cfg, instantiate_node(cfg.dataset, "dataset"))


@pytest.fixture
def no_loading(monkeypatch, tmp_path):
    """run() must refuse before it loads the dataset (and before it makes any folder under paths.root)."""

    def load(*args, **kwargs):
        raise AssertionError("the dataset was loaded before the bad setting was refused")

    monkeypatch.setattr(grass.pipeline, "instantiate_node", load)
    yield
    assert not (tmp_path / "outputs").exists(), list((tmp_path / "outputs").rglob("*"))


@pytest.fixture
def no_training(monkeypatch):
    """run() must refuse before any model is trained or any store stage runs."""

    def train(*args, **kwargs):
        raise AssertionError("work started before the bad setting was refused")

    for name, (stages, _) in list(grass.pipeline.PIPELINES.items()):
        monkeypatch.setitem(grass.pipeline.PIPELINES, name, (stages, train))


def _store(compose_cfg, *overrides):
    """The tiny LM under pipeline=store (its corpus is never read by these config-only checks)."""
    return compose_cfg("pipeline=store", "store.model=base", *overrides, experiment="tiny_lm")


# --- case 1: enough queries for the damping-validation split and the reported LDS --------------------------

def test_too_few_queries_are_refused_before_loading(compose_cfg, no_loading):
    with pytest.raises(GrassError, match=r"dataset.n_query=2 leaves 0 queries to report LDS on: "
                                         r"lds.val_fraction=0.1 holds out .* = 2 .*dataset.n_query >= 4"):
        run(compose_cfg("dataset.n_query=2"))


def test_three_queries_leave_one_and_are_refused(compose_cfg):
    with pytest.raises(GrassError, match="dataset.n_query=3 leaves 1 queries"):
        _validate(compose_cfg("dataset.n_query=3"))


def test_query_count_of_the_loaded_data_is_checked(compose_cfg):
    """An LM dataset's query count comes from its data (wikitext2: n_query null = every block)."""
    cfg = compose_cfg()
    with pytest.raises(GrassError, match="dataset digits has 3 query examples, which leaves 1 queries"):
        validate_for_task(cfg, SimpleNamespace(n_query=3), _stages(cfg))


def test_query_count_matters_only_to_stages_that_split_the_queries(compose_cfg):
    for stage in ("finetune", "groundtruth"):
        _validate(compose_cfg("dataset.n_query=2", f"stage={stage}"))


@pytest.mark.parametrize("fraction", [0.01, 0.1, 0.3, 0.5, 0.75, 0.9])
def test_min_queries_is_the_smallest_count_that_leaves_two_reported(fraction):
    n = min_queries(fraction)
    assert n - validation_size(n, fraction) >= 2
    assert all(m - validation_size(m, fraction) < 2 for m in range(1, n))


# --- case 2: LDS over at least 4 subset models -------------------------------------------------------------

@pytest.mark.parametrize("stage", ["all", "groundtruth", "attribute", "lds"])
@pytest.mark.parametrize("subsets", [1, 2, 3])
def test_lds_needs_four_subset_models(compose_cfg, stage, subsets):
    with pytest.raises(GrassError, match=rf"lds.num_subsets={subsets} is not allowed: an integer >= 4 when the run "
                                         rf"scores LDS"):
        _validate(compose_cfg(f"lds.num_subsets={subsets}", f"stage={stage}"))


def test_one_subset_model_is_refused_before_loading(compose_cfg, no_loading):
    with pytest.raises(GrassError, match="lds.num_subsets=1 is not allowed"):
        run(compose_cfg("lds.num_subsets=1"))


def test_finetune_alone_may_train_fewer_subset_models(compose_cfg):
    _validate(compose_cfg("lds.num_subsets=3", "stage=finetune"))
    _validate(compose_cfg("lds.num_subsets=4"))
    with pytest.raises(GrassError, match="lds.num_subsets=-1 is not allowed: an integer >= 0"):
        _validate(compose_cfg("lds.num_subsets=-1", "stage=finetune"))


# --- case 3: the damping grid -------------------------------------------------------------------------------

@pytest.mark.parametrize("grid", ["[]", "[-1.0]", "[0.0]", "[1.0,inf]", "[nan]"])
def test_bad_damping_grid_is_refused_before_loading(compose_cfg, no_loading, grid):
    with pytest.raises(GrassError, match=r"damping_grid=\[.*\] is not allowed: a non-empty list of finite numbers "
                                         r"> 0: tda=trak uses absolute damping"):
        run(compose_cfg(f"damping_grid={grid}"))


def test_damping_grid_is_not_needed_without_damping_or_attribution(compose_cfg):
    _validate(compose_cfg("damping_grid=[]", "tda=grad_dot"))
    _validate(compose_cfg("damping_grid=[]", "stage=finetune"))


# --- case 4: checkpoints ------------------------------------------------------------------------------------

@pytest.mark.parametrize("value", [0, -2])
def test_num_checkpoints_must_be_positive(compose_cfg, no_loading, value):
    with pytest.raises(GrassError, match=rf"tda.num_checkpoints={value} is not allowed: an integer >= 1"):
        run(compose_cfg(f"tda.num_checkpoints={value}"))


# --- case 5: proj_dim bounded by what is compressed ---------------------------------------------------------

def test_flat_proj_dim_above_the_parameter_count_is_refused_before_training(compose_cfg, no_training, tmp_path):
    with pytest.raises(GrassError, match=rf"proj_dim=1000000000 is larger .* \(p = {TINY_P} trainable parameters\).*"
                                         rf"proj_dim <= {TINY_P}"):
        run(compose_cfg("proj_dim=1000000000"))
    assert not list((tmp_path / "outputs").rglob("*.pt"))
    # the run folder made before the data-dependent check says why it holds no result
    (metrics,) = (tmp_path / "outputs").rglob("metrics.json")
    assert json.loads(metrics.read_text())["run/error"].startswith("GrassError: proj_dim=1000000000 is larger")


def test_flat_proj_dim_up_to_the_parameter_count_and_identity_pass(compose_cfg):
    cfg = compose_cfg(f"proj_dim={TINY_P}")
    validate_for_task(cfg, _task(cfg), _stages(cfg))
    cfg = compose_cfg("compressor=identity", "proj_dim=1000000000")  # identity ignores proj_dim
    validate_for_task(cfg, _task(cfg), _stages(cfg))


def test_factorized_proj_dim_is_bounded_by_the_largest_captured_layer(compose_cfg):
    cfg = compose_cfg("compressor=logra", "proj_dim=2116")  # 46^2; layer '1' is Linear(64, 32): 32 x 65 = 2080
    with pytest.raises(GrassError, match=r"proj_dim=2116 .* '1', has 32 x 65 = 2080; choose proj_dim <= 2080"):
        validate_for_task(cfg, _task(cfg), _stages(cfg))
    cfg = compose_cfg("compressor=logra", "proj_dim=2025")
    validate_for_task(cfg, _task(cfg), _stages(cfg))


def test_proj_dim_is_checked_where_layer_compressors_are_built(compose_cfg):
    """Pretrained LMs have no cheap skeleton: the bound is checked once their layers are at hand."""
    cfg = compose_cfg("compressor=logra", "proj_dim=2116")
    ctx = SimpleNamespace(cfg=cfg, device=torch.device("cpu"))
    with pytest.raises(GrassError, match="choose proj_dim <= 2080"):
        build_layer_compressors(ctx, MLP(64, 10, hidden=[32, 16]), seed=0)


def test_a_pretrained_model_without_skeleton_skips_the_early_bound(compose_cfg, caplog):
    cfg = compose_cfg("proj_dim=1000000000")
    with caplog.at_level("INFO", logger="grass.validate"):
        validate_for_task(cfg, SimpleNamespace(n_query=60, skeleton=lambda: None), _stages(cfg))
    assert "checked against them once they are loaded" in caplog.text


# --- case 6: worker ------------------------------------------------------------------------------------------

def test_malformed_worker_is_refused_before_loading_on_pipeline_lds(compose_cfg, no_loading):
    with pytest.raises(GrassError, match="worker='abc' is not of the form i/N"):
        run(compose_cfg("worker=abc"))


def test_malformed_worker_is_refused_before_loading_on_pipeline_store(compose_cfg, no_loading):
    with pytest.raises(GrassError, match="worker='abc' is not of the form i/N"):
        run(_store(compose_cfg, "stage=cache", "worker=abc"))


@pytest.mark.parametrize("worker", ["1/2", "0/2", "rank"])
def test_a_worker_share_has_no_effect_on_pipeline_lds(compose_cfg, worker):
    with pytest.raises(GrassError, match=rf"worker='{worker}' has no effect on pipeline=lds.*pipeline=store stages "
                                         r"cache and ifvp"):
        _validate(compose_cfg(f"worker={worker}"))


def test_worker_rank_outside_torchrun_is_refused_on_pipeline_store(compose_cfg, monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(GrassError, match="worker=rank takes this process's share from RANK and WORLD_SIZE"):
        _validate(_store(compose_cfg, "stage=cache", "worker=rank"))


# --- case 8: the store pipeline computes if_efim and grad_dot ------------------------------------------------

def test_store_pipeline_refuses_trak_over_layer_blocks(compose_cfg, no_loading):
    with pytest.raises(GrassError, match="tda=trak uses absolute damping over whole-model gradients; per-layer blocks "
                                         r"\(compressor=factgrass\) need tda=if_efim or tda=grad_dot"):
        run(_store(compose_cfg, "tda=trak"))


def test_store_damping_chosen_on_validation_needs_queries_with_ground_truth(compose_cfg, no_loading):
    with pytest.raises(GrassError, match="store.damping_from=validation .* store.model=checkpoint without "
                                         "store.prompts_dir .*store.damping_from=fixed"):
        run(_store(compose_cfg, "store.damping_from=validation"))  # _store attributes store.model=base
    with pytest.raises(GrassError, match=r"damping_grid=\[\] is not allowed"):
        run(_store(compose_cfg, "store.model=checkpoint", "damping_grid=[]"))


def test_flat_gradients_that_do_not_fit_the_memory_budget_are_refused_before_training(compose_cfg, no_training,
                                                                                        tmp_path):
    """Flat compressors run on text too; a grad_memory_gb that holds no example's gradient fails up front."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    words = "the sister wrote a letter to her brother every morning and walked home in the evening".split()
    (corpus / "doc.txt").write_text(" ".join(words[i % len(words)] for i in range(6000)) + ".")
    with pytest.raises(GrassError, match=r"hardware.grad_memory_gb=1e-06 does not hold one example's whole-model "
                                         r"gradient: p = \d+ parameters"):
        run(_store(compose_cfg, "compressor=sjlt", f"dataset.path={corpus}", "hardware.grad_memory_gb=1e-6"))
    with pytest.raises(GrassError, match="hardware.grad_memory_gb=1e-06 does not hold one example"):
        run(compose_cfg("compressor=sjlt", "hardware.grad_memory_gb=1e-6"))  # the MNIST MLP, pipeline=lds


def test_store_pipeline_refuses_several_checkpoints_of_the_base_model(compose_cfg, no_loading):
    with pytest.raises(GrassError, match="tda.num_checkpoints=2 averages over the fine-tuned checkpoints, .*"
                                         "now store.model=base"):
        run(_store(compose_cfg, "tda.num_checkpoints=2"))


# --- case 7: the other settings with a fixed range ----------------------------------------------------------

@pytest.mark.parametrize("override, message", [
    ("lds.subset_fraction=1.5", "lds.subset_fraction=1.5 is not allowed: a number in (0, 1)"),
    ("lds.subset_fraction=0", "lds.subset_fraction=0.0 is not allowed: a number in (0, 1)"),
    ("lds.val_fraction=1", "lds.val_fraction=1.0 is not allowed: a number in (0, 1)"),
    ("lds.ci_level=0", "lds.ci_level=0.0 is not allowed: a number in (0, 1)"),
    ("lds.bootstrap=0", "lds.bootstrap=0 is not allowed: an integer >= 100"),
    ("lds.bootstrap=1", "lds.bootstrap=1 is not allowed: an integer >= 100"),
    ("hardware.devices=2", "hardware.devices=2 trains in 2 processes, which needs hardware.strategy=ddp_fork or "
                           "ddp_spawn, not 'auto'"),
    ("hardware.devices=abc", "hardware.devices='abc': give a count >= 1"),
    ("hardware.devices=0", "hardware.devices=0: give a count >= 1"),
    ("proj_dim=0", "proj_dim=0 is not allowed: proj_dim must be positive"),
    ("hardware.grad_batch_size=0", "hardware.grad_batch_size=0 is not allowed: an integer >= 1"),
    ("hardware.grad_memory_gb=0", "hardware.grad_memory_gb=0.0 is not allowed: null or a finite number of GB > 0"),
    ("hardware.grad_memory_factor=0.5", "hardware.grad_memory_factor=0.5 is not allowed: a finite number >= 1"),
    ("hardware.small_matrix_threads=-1", "hardware.small_matrix_threads=-1 is not allowed: null or an integer >= 1"),
    ("hardware.num_threads=0", "hardware.num_threads=0 is not allowed: null or an integer >= 1"),
    # pipeline=store settings (checked on that pipeline)
    ("store.chunk_size=0", "store.chunk_size=0 is not allowed: an integer >= 1"),
    ("store.damping=0", "store.damping=0.0 is not allowed: a finite number > 0"),
    ("store.memory_budget_gb=-1", "store.memory_budget_gb=-1.0 is not allowed: a finite number > 0"),
    ("store.top_k=0", "store.top_k=0 is not allowed: an integer >= 1"),
])
def test_out_of_range_settings_are_refused_before_loading(compose_cfg, no_loading, override, message):
    cfg = _store(compose_cfg, override) if override.startswith("store.") else compose_cfg(override)
    with pytest.raises(GrassError) as info:
        run(cfg)
    assert str(info.value).startswith(message)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_shipped_experiment_passes_at_every_stage(compose_cfg, experiment):
    cfg = compose_cfg(experiment=experiment)
    _validate(cfg)
    for stage in store_stages("all") if cfg.pipeline == "store" else lds_stages("all"):
        _validate(compose_cfg(f"stage={stage}", experiment=experiment))


def test_flat_compressor_on_sdpa_attention_is_refused_before_loading(compose_cfg, no_loading):
    cfg = compose_cfg("compressor=sjlt", "model.attn_implementation=sdpa", experiment="tiny_lm")
    with pytest.raises(GrassError, match="model.attn_implementation=eager"):
        run(cfg)
