"""run(cfg): orders the stages of one run, writes metrics.json, owns no math."""

import json
import logging
import platform
import time
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from grass.artifact_paths import run_folder
from grass.config import run_suffix
from grass.errors import GrassError
from grass.instantiate import instantiate_node
from grass.io import atomic_write_json
from grass.lds_stages.attribute import make_attributor
from grass.lds_stages.run import lds_stages, run_lds_stages
from grass.run_context import RunContext
from grass.run_settings import run_name, sparse_dim, tracker_name
from grass.store_stages.run import run_store_stages, store_stages
from grass.tasks import make_task
from grass.track import Tracker
from grass.validate import validate_config, validate_for_task

log = logging.getLogger(__name__)
# pipeline -> (the stages a `stage` value names, the runner that executes them in order): each pipeline's stage
# registry lives beside its stages (grass/lds_stages/run.py, grass/store_stages/run.py)
PIPELINES = {"lds": (lds_stages, run_lds_stages), "store": (store_stages, run_store_stages)}


def run_dir(cfg: DictConfig) -> Path:
    """Hydra's output dir when launched through Hydra; the same layout otherwise (compose API, notebooks)."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.output_dir)
    return run_folder(cfg.paths.root, cfg.experiment_name, cfg.dataset.name, cfg.model.name,
                      run_name(cfg) + run_suffix(cfg.pipeline, cfg.stage, cfg.worker))


def preflight(cfg: DictConfig) -> list[str]:
    """The stages this config runs, after every check that needs only the config (GrassError otherwise).
    run.py's Hydra callback calls it too, before Hydra makes the run folder."""
    if cfg.pipeline not in PIPELINES:
        raise GrassError(f"pipeline={cfg.pipeline!r}; choose one of {list(PIPELINES)}")
    stages = PIPELINES[cfg.pipeline][0](cfg.stage)
    validate_config(cfg, stages)
    return stages


def run(cfg: DictConfig) -> dict:
    """Run the configured stages; returns the metrics also written to <run dir>/metrics.json."""
    stages = preflight(cfg)
    staged = cfg.pipeline == "store"
    if cfg.hardware.num_threads:
        torch.set_num_threads(cfg.hardware.num_threads)
    out = run_dir(cfg)
    if cfg.skip_finished and not staged and cfg.stage == "all":
        done = finished_metrics(out)
        if done is not None:
            print(f"LDS {_number(done['lds/mean'])}  {cfg.compressor.name} k={cfg.proj_dim}  finished earlier, "
                  f"not recomputed (skip_finished=true) -> {out}")
            return done
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()  # time/load_s (data, task, checks) and time/run_s (all of run()) start here
    try:
        data = instantiate_node(cfg.dataset, "dataset")
        task = make_task(cfg, data)
        validate_for_task(cfg, task, stages)
        if "attribute" in stages and not staged:
            make_attributor(cfg, task)  # an impossible compressor/tda/data combination fails before any training
    except BaseException as e:  # the folder exists now: it says why it holds no result
        atomic_write_json({"run/error": error_text(e)}, out / "metrics.json")
        raise
    plain_cfg = OmegaConf.to_container(cfg, resolve=True)
    tracker = Tracker(cfg.logger, out, tracker_name(cfg), plain_cfg)
    ctx = RunContext(cfg=cfg, run_dir=out, data=data, task=task, tracker=tracker)
    ctx.metrics.update(_describe(cfg, task))
    ctx.metrics["time/load_s"] = time.perf_counter() - started
    try:
        PIPELINES[cfg.pipeline][1](ctx)
        tracker.summary(ctx.metrics)
    except BaseException as e:  # metrics.json says the run failed and why, never looks like a finished run
        ctx.metrics["run/error"] = error_text(e)
        raise
    finally:
        tracker.finish()
        ctx.metrics["time/run_s"] = time.perf_counter() - started
        atomic_write_json(ctx.metrics, out / "metrics.json")
    return ctx.metrics


def error_text(e: BaseException) -> str:
    """metrics.json's run/error: the exception's type and message, or the type alone when it has none (Lightning's
    SIGTERMException, a bare KeyboardInterrupt)."""
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


def _number(value) -> str:
    return "undefined" if value is None else f"{value:.4f}"


def finished_metrics(folder: Path) -> dict | None:
    """The metrics of a finished pipeline=lds run in folder (an LDS entry and no run/error), else None."""
    path = folder / "metrics.json"
    if not path.is_file():
        return None
    try:
        metrics = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # unreadable: recompute (it is rewritten atomically at the end)
    return metrics if "lds/mean" in metrics and "run/error" not in metrics else None


def _describe(cfg: DictConfig, task) -> dict:
    return {
        "run/experiment": cfg.experiment_name,
        "run/dataset": cfg.dataset.name,
        "run/model": cfg.model.name,
        "run/compressor": cfg.compressor.name,
        "run/proj_dim": cfg.proj_dim,
        "run/sparse_dim": sparse_dim(cfg.compressor),
        "run/tda": cfg.tda.name,
        "run/num_checkpoints": cfg.tda.num_checkpoints,
        "run/target": cfg.tda.target,
        "run/train_output": cfg.tda.get("train_output", "query"),
        "run/finetune_seeds": cfg.finetune.get("seeds", "per_model"),
        "run/seed": cfg.seed,
        "run/stage": cfg.stage,
        "run/pipeline": cfg.pipeline,
        "run/worker": cfg.worker,
        "run/n_train": task.n_train,
        "run/n_query": task.n_query,
        "run/started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "run/machine": _machine(cfg),
    }


def _machine(cfg: DictConfig) -> str:
    if cfg.hardware.device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
