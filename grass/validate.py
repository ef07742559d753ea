"""Bad settings refused up front: one GrassError naming the key, its value and what is allowed.

grass.pipeline.run calls, in order:
  validate_config(cfg, stages)          needs only the config: before any data is loaded or folder made;
  validate_for_task(cfg, task, stages)  needs the data's sizes and the model's shapes: right after the data
                                        and task are built, before any training, capture or other long work.
`stages` is the list of stages the run executes (pipeline=lds or pipeline=store names).

check_proj_dim is also called where per-layer compressors are built: for a pretrained model whose shapes come
only with its weights (validate_for_task cannot build it cheaply), that is the first point it can run.
"""

from __future__ import annotations

import logging
import math
from itertools import count
from pathlib import Path

from omegaconf import DictConfig
from torch import nn

from grass.capture.flat import grad_sizes, num_params
from grass.capture.linear import layer_dims
from grass.compress.factorized import is_factorized, node_side_widths
from grass.data.subsets import validation_size
from grass.dattri_bench.preflight import preflight as dattri_preflight
from grass.dattri_bench.settings import uses_dattri
from grass.errors import GrassError
from grass.hardware import check_training_hardware
from grass.run_settings import sparse_dim, uses_proj_dim
from grass.store.workers import parse_worker, resolve_worker
from grass.store_stages.damping import damping_mode, queries_have_truth

log = logging.getLogger(__name__)

MIN_SUBSETS = 4  # LDS is a Spearman correlation over the subset models: over 2 of them it is always +-1
MIN_BOOTSTRAP = 100
MIN_REPORTED = 2  # queries the LDS is reported on, after the damping-validation split
SUBSET_STAGES = ("groundtruth", "attribute", "lds")  # pipeline=lds stages that read the subset models' truth
SPLIT_STAGES = ("attribute", "lds")  # pipeline=lds stages that split the queries into validation / reported
COMPRESSING_STAGES = ("selective_mask", "attribute", "cache")  # stages that build compressors (both pipelines)
STORE_TDA = ("if_efim", "grad_dot", "trak")  # what pipeline=store computes (grass.store_stages.precondition)
STORE_MODELS = ("checkpoint", "base")  # store.model: what pipeline=store attributes (grass.store_stages.model)
WORKER_STAGES = ("cache", "ifvp")  # pipeline=store stages that split their chunks among workers


def validate_config(cfg: DictConfig, stages: list[str]) -> None:
    """Checks that need only the config; GrassError on the first bad setting."""
    _check_common(cfg)
    if uses_dattri(cfg):  # the paper's models: setting, data rows, and the files reachable before any loading
        dattri_preflight(cfg, stages)
    if cfg.pipeline == "store":
        _check_store(cfg)
    else:
        _check_lds(cfg, stages)
    if set(COMPRESSING_STAGES) & set(stages):
        attention = cfg.model.get("attn_implementation")
        if not is_factorized(cfg.compressor) and attention not in (None, "eager"):  # before any training, not after
            raise GrassError(f"compressor={cfg.compressor.name} takes whole-model per-example gradients with "
                             f"torch.func.vmap, which model.attn_implementation={attention} cannot be batched by; set "
                             "model.attn_implementation=eager (the same function), or use a factorized compressor")
    n_query = cfg.dataset.get("n_query")  # null (e.g. wikitext2: every block): known after loading
    if cfg.pipeline == "lds" and set(SPLIT_STAGES) & set(stages) and _is_int(n_query):
        check_query_count(cfg, n_query, f"dataset.n_query={n_query}")


def validate_for_task(cfg: DictConfig, task, stages: list[str]) -> None:
    """Checks that need the loaded data's sizes or the model's parameter shapes (task.skeleton())."""
    if cfg.finetune.get("ensemble") is True:  # for models the ensemble cannot train: an error now
        from grass.tasks.ensemble_fit import uses_ensemble

        uses_ensemble(cfg, task)
    if cfg.pipeline == "lds" and set(SPLIT_STAGES) & set(stages):
        check_query_count(cfg, task.n_query, f"dataset {cfg.dataset.name} has {task.n_query} query examples, which")
    if cfg.pipeline == "store" and cfg.store.prompts_dir and {"cache", "attribute"} & set(stages):
        from grass.store_stages.queries import prompt_blocks  # (imports the store stages' context)

        prompt_blocks(task.data, Path(cfg.store.prompts_dir))  # unreadable or untokenizable prompts: an error now
    if not set(COMPRESSING_STAGES) & set(stages):
        return
    if cfg.tda.get("train_output", "query") != "query":  # a task without that output: an error now
        task.train_target(cfg.tda.target, cfg.tda.train_output)
    unsupported = getattr(task, "factorized_unsupported", None)  # a task whose layers linear capture cannot see
    if unsupported and is_factorized(cfg.compressor):
        raise GrassError(f"compressor={cfg.compressor.name}: " + unsupported.format(dataset=cfg.dataset.name))
    model = task.skeleton()
    if model is None:
        log.info("proj_dim=%s: model %s is pretrained, its layer shapes come with its weights; proj_dim is checked "
                 "against them once they are loaded", cfg.proj_dim, cfg.model.name)
        return
    check_proj_dim(cfg, model)


BYTES_PER_FEATURE = 4  # float32


def check_feature_memory(num_checkpoints: int, n_rows: int, out_dim: int, available: int | None = None) -> None:
    """GrassError when the in-memory attributor's features cannot fit: pipeline=lds keeps every checkpoint's
    compressed train and query rows [n_rows, out_dim] float32 until the damping is chosen, so
    num_checkpoints x n_rows x out_dim x 4 bytes must fit in the memory free now (`available`, bytes; default
    psutil's). Checked after the first checkpoint's compressor is built, before any gradient: an OOM kill
    minutes later is neither an error nor a result (compressor=identity keeps all p coordinates)."""
    need = num_checkpoints * n_rows * out_dim * BYTES_PER_FEATURE
    if available is None:
        import psutil

        available = psutil.virtual_memory().available
    if need > available:
        raise GrassError(
            f"the attributor keeps {num_checkpoints} checkpoint(s) x {n_rows} train + query rows x {out_dim} features "
            f"(float32) = {need / 1e9:.1f} GB in memory, and {available / 1e9:.1f} GB is free: lower "
            f"tda.num_checkpoints or compress to fewer features (proj_dim; compressor=identity keeps all "
            f"{out_dim} gradient coordinates)")


def check_proj_dim(cfg: DictConfig, model: nn.Module) -> None:
    """proj_dim must not exceed what the compressor compresses (compressor=identity ignores proj_dim).

    Flat compressors map the whole-model gradient, p = the trainable parameters, to k = proj_dim: k <= p; and
    hardware.grad_memory_gb, when set, must hold one example's gradient (grass.capture.flat.chunk_for_budget).
    Factorized ones map each captured nn.Linear's gradient, O x I' numbers (I' = inputs + 1 for a bias), to a
    per-layer K = proj_dim, clamped per layer: K <= the largest captured layer's O * I'.
    """
    k, name = cfg.proj_dim, cfg.compressor.name
    if not is_factorized(cfg.compressor):
        grad_sizes(cfg.hardware, num_params(model))  # hardware.grad_memory_gb holds one example's gradient
    if not uses_proj_dim(cfg.compressor):
        return
    if is_factorized(cfg.compressor):
        dims = layer_dims(model, list(cfg.capture.layers))
        layer, (out, inp) = max(dims.items(), key=lambda item: item[1][0] * item[1][1])
        if k > out * inp:
            raise GrassError(
                f"proj_dim={k} is larger than any captured layer's gradient: compressor={name} compresses each "
                f"nn.Linear's gradient (outputs x inputs, +1 input for a bias) to proj_dim features, and the "
                f"largest of model {cfg.model.name}'s captured layers, '{layer}', has {out} x {inp} = {out * inp}; "
                f"choose proj_dim <= {out * inp}")
        for layer, (out, inp) in dims.items():  # side widths (e.g. a K that is no perfect square) fail here
            node_side_widths(cfg.compressor, inp, out, k, layer)
        return
    p = num_params(model)
    if k > p:
        raise GrassError(
            f"proj_dim={k} is larger than the gradient it compresses: compressor={name} maps the whole-model "
            f"gradient of model {cfg.model.name} (p = {p} trainable parameters) to proj_dim features; choose "
            f"proj_dim <= {p} (compressor=identity keeps all {p})")
    k_prime = sparse_dim(cfg.compressor)
    if k_prime is not None and k_prime > p:
        raise GrassError(
            f"compressor.sparse_dim={k_prime} is larger than the gradient it masks: compressor={name} keeps k' of "
            f"the p = {p} trainable parameters of model {cfg.model.name}; choose sparse_dim <= {p}")


def check_query_count(cfg: DictConfig, n_query: int, what: str) -> None:
    """The damping-validation split (grass.data.subsets.validation_split) must leave MIN_REPORTED queries."""
    fraction = cfg.lds.val_fraction
    n_val = validation_size(n_query, fraction)
    if n_query - n_val < MIN_REPORTED:
        raise GrassError(
            f"{what} leaves {max(n_query - n_val, 0)} queries to report LDS on: lds.val_fraction={fraction} holds "
            f"out max(2, round({fraction} x {n_query})) = {n_val} queries to choose the damping, and the LDS needs "
            f"at least {MIN_REPORTED} more; use dataset.n_query >= {min_queries(fraction)}")


def min_queries(fraction: float) -> int:
    """The smallest n_query whose validation split leaves MIN_REPORTED queries to report."""
    enough = max(MIN_REPORTED + 2, math.ceil((MIN_REPORTED + 0.5) / (1.0 - fraction)))  # round(f n) <= f n + 0.5
    for n in count(MIN_REPORTED + 2):
        if n >= enough or n - validation_size(n, fraction) >= MIN_REPORTED:
            return n
    raise AssertionError("unreachable")


def _check_common(cfg: DictConfig) -> None:
    _require(_is_int(cfg.proj_dim) and cfg.proj_dim > 0, "proj_dim", cfg.proj_dim,
             "proj_dim must be positive (the compressed feature width)")
    tda = cfg.tda
    _require(_is_int(tda.num_checkpoints) and tda.num_checkpoints >= 1, "tda.num_checkpoints", tda.num_checkpoints,
             "an integer >= 1 (the trained models the features are averaged over)")
    for key in ("grad_batch_size", "grad_chunk_size", "capture_batch_size"):
        value = cfg.hardware[key]
        _require(_is_int(value) and value >= 1, f"hardware.{key}", value, "an integer >= 1")
    for key in ("num_threads", "small_matrix_threads"):
        value = cfg.hardware.get(key)
        _require(value is None or (_is_int(value) and value >= 1), f"hardware.{key}", value,
                 "null or an integer >= 1 (torch threads; null: " + ("torch's default)" if key == "num_threads"
                                                                      else "the CPUs other jobs leave idle)"))
    budget = cfg.hardware.grad_memory_gb
    _require(budget is None or (_is_real(budget) and math.isfinite(budget) and budget > 0), "hardware.grad_memory_gb",
             budget, "null or a finite number of GB > 0 (bounds one chunk of whole-model gradients)")
    factor = cfg.hardware.grad_memory_factor
    _require(_is_real(factor) and math.isfinite(factor) and factor >= 1, "hardware.grad_memory_factor", factor,
             "a finite number >= 1 (copies of p floats one example's gradient needs)")
    check_training_hardware(cfg.hardware)
    _check_sparse_dim(cfg)


def _check_sparse_dim(cfg: DictConfig) -> None:
    """compressor.sparse_dim (k' of grass / grass_sm): null, or an integer > proj_dim (k' <= p: check_proj_dim)."""
    k_prime = sparse_dim(cfg.compressor)
    if k_prime is None:
        return
    _require(_is_int(k_prime) and k_prime > cfg.proj_dim, "compressor.sparse_dim", k_prime,
             f"null (= blowup x proj_dim) or an integer > proj_dim={cfg.proj_dim}: the first stage of "
             f"compressor={cfg.compressor.name} keeps k' coordinates, then SJLT maps them to proj_dim")


def _check_lds(cfg: DictConfig, stages: list[str]) -> None:
    """pipeline=lds: worker, LDS settings, damping grid."""
    if cfg.worker != "rank":
        parse_worker(cfg.worker)  # a malformed value is named as such, whatever the pipeline
    if cfg.worker == "rank" or parse_worker(cfg.worker) != (0, 1):
        raise GrassError(f"worker={cfg.worker!r} has no effect on pipeline=lds, which runs in one process: a "
                         f"worker's share applies to pipeline=store stages {' and '.join(WORKER_STAGES)}; leave "
                         f"worker=0/1 here")
    lds = cfg.lds
    for key in ("subset_fraction", "val_fraction", "ci_level"):
        _require(_is_real(lds[key]) and 0.0 < lds[key] < 1.0, f"lds.{key}", lds[key], "a number in (0, 1)")
    _require(_is_int(lds.bootstrap) and lds.bootstrap >= MIN_BOOTSTRAP, "lds.bootstrap", lds.bootstrap,
             f"an integer >= {MIN_BOOTSTRAP} (bootstrap resamples of the queries; fewer give no usable interval)")
    scored = [s for s in stages if s in SUBSET_STAGES]
    if scored:
        _require(_is_int(lds.num_subsets) and lds.num_subsets >= MIN_SUBSETS, "lds.num_subsets", lds.num_subsets,
                 f"an integer >= {MIN_SUBSETS} when the run scores LDS (stage={cfg.stage} runs {scored}): the LDS is a "
                 f"Spearman correlation over the subset models, always +-1 over 2 of them and coarse below "
                 f"{MIN_SUBSETS}")
    else:
        _require(_is_int(lds.num_subsets) and lds.num_subsets >= 0, "lds.num_subsets", lds.num_subsets,
                 "an integer >= 0 (subset models to train)")
    if "attribute" in stages and cfg.tda.damping != "none":
        _check_damping_grid(cfg)


def _check_damping_grid(cfg: DictConfig) -> None:
    grid = list(cfg.damping_grid)
    _require(bool(grid) and all(_is_real(v) and math.isfinite(v) and v > 0 for v in grid), "damping_grid", grid,
             f"a non-empty list of finite numbers > 0: tda={cfg.tda.name} uses {cfg.tda.damping} damping, "
             f"chosen from this grid on the validation queries")


def _check_store(cfg: DictConfig) -> None:
    """pipeline=store: the one attribution method it computes, worker share, store settings."""
    _require(cfg.tda.name in STORE_TDA, "tda", cfg.tda.name, f"pipeline=store computes tda={', '.join(STORE_TDA)}")
    if cfg.tda.damping == "absolute" and is_factorized(cfg.compressor):
        raise GrassError(f"tda={cfg.tda.name} uses absolute damping over whole-model gradients; per-layer blocks "
                         f"(compressor={cfg.compressor.name}) need tda=if_efim or tda=grad_dot, or choose a flat "
                         f"compressor")
    if cfg.tda.num_checkpoints > 1 and not queries_have_truth(cfg):
        raise GrassError(f"tda.num_checkpoints={cfg.tda.num_checkpoints} averages over the fine-tuned checkpoints, "
                         f"which pipeline=store attributes with store.model=checkpoint and the dataset's queries (no "
                         f"store.prompts_dir); now store.model={cfg.store.model}, store.prompts_dir="
                         f"{cfg.store.prompts_dir}: set tda.num_checkpoints=1")
    resolve_worker(cfg.worker)
    store = cfg.store
    _require(_is_int(store.chunk_size) and store.chunk_size >= 1, "store.chunk_size", store.chunk_size,
             "an integer >= 1 (train rows per shard)")
    _require(_is_int(store.top_k) and store.top_k >= 1, "store.top_k", store.top_k, "an integer >= 1")
    for key in ("damping", "memory_budget_gb"):
        value = store[key]
        _require(_is_real(value) and math.isfinite(value) and value > 0, f"store.{key}", value, "a finite number > 0")
    if damping_mode(cfg) == "validation":
        _check_damping_grid(cfg)


def _require(ok: bool, key: str, value, allowed: str) -> None:
    if not ok:
        shown = repr(value) if isinstance(value, str) else value
        raise GrassError(f"{key}={shown} is not allowed: {allowed}")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
