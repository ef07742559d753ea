"""What every stage of one run shares: config, folders, data, tracker, and the metrics gathered so far."""

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from grass.artifact_paths import groundtruth_file, models_dir
from grass.dattri_bench import settings as dattri
from grass.fingerprint import fingerprint, normalize
from grass.hardware import training_recipe
from grass.run_settings import NOT_RESULT_SUBKEYS
from grass.tasks import Task
from grass.tasks.ensemble_fit import ENSEMBLE_TRAINER, uses_ensemble
from grass.track import Tracker


@dataclass
class RunContext:
    cfg: DictConfig
    run_dir: Path
    data: Any  # what the dataset config loads: ClassificationData | TextBlocks
    task: Task
    tracker: Tracker
    metrics: dict = field(default_factory=dict)
    results: dict = field(default_factory=dict)  # in-memory hand-offs between stages (scores, ...)

    @property
    def artifacts(self) -> Path:
        return Path(self.cfg.paths.artifacts)

    @property
    def device(self) -> torch.device:
        return torch.device(self.cfg.hardware.device)

    def models_settings(self) -> dict:
        """What the subset models and checkpoints depend on: data, model, the training recipe (finetune
        settings, the effective batch = world size x per-process batch, precision), subsets and seed; not
        M, the compressor, or where the dataset caches its encoding (dataset.cache_dir). Written beside every
        model and checked when one is read. finetune.source=dattri: the benchmark's identity instead
        (grass.dattri_bench.settings.models_settings)."""
        cfg = self.cfg
        if dattri.uses_dattri(cfg):
            return dattri.models_settings(cfg)
        finetune = dattri.finetune_identity({k: v for k, v in cfg.finetune.items()
                                             if k not in ("progress_bar", "ensemble")})
        # models trained together (grass.tasks.ensemble_fit) are keyed apart; one-Trainer-per-model keys unchanged
        trainer = {"trainer": ENSEMBLE_TRAINER} if uses_ensemble(cfg, self.task) else {}
        # task extras (an LM's base pretraining) join only when present
        dataset = {k: v for k, v in cfg.dataset.items() if k not in NOT_RESULT_SUBKEYS["dataset"]}
        return normalize({"dataset": dataset, "model": cfg.model, "finetune": finetune,
                          "recipe": training_recipe(cfg.hardware), "subset_fraction": cfg.lds.subset_fraction,
                          "seed": cfg.seed, **trainer, **self.task.fingerprint_extra()})

    def models_dir(self) -> Path:
        cfg = self.cfg
        if dattri.uses_dattri(cfg):
            return dattri.models_dir(cfg)
        key = fingerprint(self.models_settings())
        return models_dir(self.artifacts, cfg.dataset.name, cfg.model.name, key)

    def groundtruth_file(self) -> Path:
        """The ground truth of this run's models (grass.artifact_paths)."""
        return groundtruth_file(self.artifacts, self.models_dir())

    def target(self, side: str):
        """The output function differentiated for `side` ("train" | "query"): tda.target, and on the train side
        tda.train_output (grass.tasks.base.Task.train_target)."""
        tda = self.cfg.tda
        if side == "train":
            return self.task.train_target(tda.target, tda.get("train_output", "query"))
        return self.task.target(tda.target)

    @contextmanager
    def timed(self, key: str):
        """Adds the wall time of the block to metrics[key] (seconds), synchronising CUDA first."""
        sync = torch.cuda.synchronize if self.device.type == "cuda" else (lambda: None)
        sync()
        start = time.perf_counter()
        try:
            yield
        finally:
            sync()
            self.metrics[key] = self.metrics.get(key, 0.0) + time.perf_counter() - start
