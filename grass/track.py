"""Metric logging: W&B (offline by default), CSV or nothing; metrics.json is written by the pipeline always."""

import csv
import logging
import os
from pathlib import Path

from grass.errors import GrassError

log = logging.getLogger(__name__)
BACKENDS = ("wandb", "csv", "none")


class Tracker:
    """One run's metric sink. `log` takes slash-grouped keys (`lds/mean`, `time/compress_s`)."""

    def __init__(self, logger_cfg, run_dir: Path, run_name: str, config: dict):
        if logger_cfg.backend not in BACKENDS:
            raise GrassError(f"logger.backend={logger_cfg.backend!r}; choose one of {list(BACKENDS)}")
        self.backend = logger_cfg.backend
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._wandb_run = None
        if self.backend == "wandb":
            self._wandb_run = _start_wandb(logger_cfg, self.run_dir, run_name, config)

    def log(self, metrics: dict, step: int | None = None) -> None:
        numeric = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
        if self._wandb_run is not None:
            self._wandb_run.log(numeric, step=step)
        elif self.backend == "csv":
            path = self.run_dir / "metrics.csv"
            new = not path.exists()
            with open(path, "a", newline="") as f:
                writer = csv.writer(f)
                if new:
                    writer.writerow(["step", "key", "value"])
                for k, v in numeric.items():
                    writer.writerow([step if step is not None else "", k, v])

    def summary(self, metrics: dict) -> None:
        """Final values (shown in the W&B run summary; CSV rows without a step)."""
        if self._wandb_run is not None:
            for k, v in metrics.items():
                if isinstance(v, (int, float, str)):
                    self._wandb_run.summary[k] = v
        else:
            self.log(metrics)

    def finish(self) -> None:
        if self._wandb_run is not None:
            self._wandb_run.finish()
            self._wandb_run = None


def _start_wandb(logger_cfg, run_dir: Path, run_name: str, config: dict):
    import wandb

    mode = os.environ.get("WANDB_MODE", logger_cfg.mode)
    run = wandb.init(
        project=logger_cfg.project, entity=logger_cfg.entity, name=run_name, mode=mode,
        dir=str(run_dir), config=config, tags=list(logger_cfg.tags), reinit="finish_previous",
        # quiet: W&B's history/summary block stays in its run files (wandb-summary.json, logs/), off the terminal,
        # so the run's last terminal line is grass's LDS summary
        settings=wandb.Settings(quiet=True),
    )
    log.info("W&B run in %s mode, files under %s%s", mode, run_dir / "wandb",
             " (upload later with `wandb sync <that folder>/offline-run-*`)" if mode == "offline" else "")
    return run
