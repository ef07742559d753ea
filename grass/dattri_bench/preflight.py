"""Before any data or model is loaded: is dattri's benchmark (finetune.source=dattri) already imported, or can its
files be had? Light to import (no Lightning, no transformers), so an offline run fails within seconds: run.py's
Hydra callback calls `early_preflight` before it imports the pipeline, and grass.validate calls `preflight` again
with the exact stages of the run.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from grass.artifact_paths import groundtruth_file
from grass.artifacts import artifact_ready
from grass.dattri_bench.fetch import benchmark_files
from grass.dattri_bench.settings import check_config, models_dir, uses_dattri
from grass.model_files import checkpoint_path, subset_model_path

# pipeline=lds stage values whose run includes stage finetune (the stage registry, grass/lds_stages/run.py,
# imports every stage; tests/unit/dattri/test_dattri_preflight.py checks this against it)
IMPORTING_STAGE_VALUES = ("all", "finetune")


def groundtruth_path(cfg: DictConfig) -> Path:
    return groundtruth_file(cfg.paths.artifacts, models_dir(cfg))


def wanted(cfg: DictConfig) -> list[Path]:
    """Every artifact this config reads from the import."""
    folder = models_dir(cfg)
    return ([folder / "subsets.pt", groundtruth_path(cfg)]
            + [subset_model_path(folder, s) for s in range(cfg.lds.num_subsets)]
            + [checkpoint_path(folder, c) for c in range(cfg.tda.num_checkpoints)])


def preflight(cfg: DictConfig, stages: list[str]) -> None:
    """Config checks; when this run imports (stage finetune) and the import is not complete, the files must be
    local or the hub reachable: otherwise one GrassError now, before the data is loaded."""
    setting = check_config(cfg)
    if "finetune" in stages and not all(artifact_ready(p) for p in wanted(cfg)):
        benchmark_files(cfg, setting, download=False)


def early_preflight(cfg: DictConfig) -> None:
    """`preflight` for a finetune.source=dattri config of pipeline=lds, from cfg.stage alone; nothing otherwise."""
    if uses_dattri(cfg) and cfg.get("pipeline") == "lds":
        preflight(cfg, ["finetune"] if cfg.stage in IMPORTING_STAGE_VALUES else [])
