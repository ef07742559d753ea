"""run(cfg): orders the stages of one run, writes metrics.json, owns no math."""

import logging
import platform
import time
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from grass.artifacts import load_artifact, save_artifact
from grass.config import run_suffix
from grass.errors import GrassError
from grass.instantiate import instantiate_node
from grass.io import atomic_write_json
from grass.run_settings import result_settings, run_name, tracker_name
from grass.staged.run import run_store_stages, store_stages
from grass.stages.attribute import make_attributor, run_attribute
from grass.stages.context import RunContext
from grass.stages.evaluate import run_lds
from grass.stages.finetune import run_finetune
from grass.stages.groundtruth import run_groundtruth
from grass.stages.selective import run_selective_mask, uses_learned_mask
from grass.tasks import make_task
from grass.track import Tracker
from grass.validate import validate_config, validate_for_task

log = logging.getLogger(__name__)
STAGES = ("finetune", "selective_mask", "groundtruth", "attribute", "lds")
PIPELINES = ("lds", "store")


def run_dir(cfg: DictConfig) -> Path:
    """Hydra's output dir when launched through Hydra; the same layout otherwise (compose API, notebooks)."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.output_dir)
    return Path(cfg.paths.root) / cfg.experiment_name / f"{cfg.dataset.name}-{cfg.model.name}" / (
        run_name(cfg) + run_suffix(cfg.pipeline, cfg.stage, cfg.worker))


def stages_to_run(stage: str) -> list[str]:
    if stage == "all":
        return list(STAGES)
    if stage not in STAGES:
        raise GrassError(f"stage={stage!r} is not a stage; choose all or one of {list(STAGES)}")
    return [stage]


def preflight(cfg: DictConfig) -> list[str]:
    """The stages this config runs, after every check that needs only the config (GrassError otherwise).
    run.py's Hydra callback calls it too, before Hydra makes the run folder."""
    if cfg.pipeline not in PIPELINES:
        raise GrassError(f"pipeline={cfg.pipeline!r}; choose one of {list(PIPELINES)}")
    stages = store_stages(cfg.stage) if cfg.pipeline == "store" else stages_to_run(cfg.stage)
    validate_config(cfg, stages)
    return stages


def run(cfg: DictConfig) -> dict:
    """Run the configured stages; returns the metrics also written to <run dir>/metrics.json."""
    stages = preflight(cfg)
    staged = cfg.pipeline == "store"
    if cfg.hardware.num_threads:
        torch.set_num_threads(cfg.hardware.num_threads)
    out = run_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    data = instantiate_node(cfg.dataset, "dataset")
    task = make_task(cfg, data)
    validate_for_task(cfg, task, stages)
    if "attribute" in stages and not staged:
        make_attributor(cfg, task)  # an impossible compressor/tda/data combination fails before any training
    plain_cfg = OmegaConf.to_container(cfg, resolve=True)
    tracker = Tracker(cfg.logger, out, tracker_name(cfg), plain_cfg)
    ctx = RunContext(cfg=cfg, run_dir=out, data=data, task=task, tracker=tracker)
    ctx.metrics.update(_describe(cfg, task))
    try:
        if staged:
            run_store_stages(ctx)
        else:
            _run_stages(ctx, stages)
        tracker.summary(ctx.metrics)
    except BaseException as e:  # metrics.json says the run failed and why, never looks like a finished run
        ctx.metrics["run/error"] = f"{type(e).__name__}: {e}"
        raise
    finally:
        tracker.finish()
        atomic_write_json(ctx.metrics, out / "metrics.json")
    return ctx.metrics


def _run_stages(ctx: RunContext, stages: list[str]) -> None:
    cfg = ctx.cfg
    if "finetune" in stages:
        run_finetune(ctx)
    if "selective_mask" in stages and (cfg.stage != "all" or uses_learned_mask(cfg)):
        run_selective_mask(ctx)
    truth = run_groundtruth(ctx) if {"groundtruth", "attribute", "lds"} & set(stages) else None
    scores_path = ctx.run_dir / "scores.pt"
    if "attribute" in stages:
        scores = run_attribute(ctx, truth)
        if cfg.save_scores or "lds" not in stages:
            save_artifact({"scores": scores}, scores_path, result_settings(cfg), kind="attribution scores")
    if "lds" in stages:
        if "attribute" not in stages:  # scores made by any other configuration are refused, keys named
            scores = load_artifact(scores_path, result_settings(cfg),
                                   hint="run stage=attribute with the same settings first")["scores"]
        run_lds(ctx, scores, truth)
        m = ctx.metrics
        print(
            f"LDS {m['lds/mean']:.4f} [{m['lds/ci_low']:.4f}, {m['lds/ci_high']:.4f}]  "
            f"{cfg.compressor.name} k={cfg.proj_dim}  compress {m.get('time/compress_s', 0.0):.2f}s  -> {ctx.run_dir}"
        )


def _describe(cfg: DictConfig, task) -> dict:
    return {
        "run/experiment": cfg.experiment_name,
        "run/dataset": cfg.dataset.name,
        "run/model": cfg.model.name,
        "run/compressor": cfg.compressor.name,
        "run/proj_dim": cfg.proj_dim,
        "run/tda": cfg.tda.name,
        "run/num_checkpoints": cfg.tda.num_checkpoints,
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
