"""Build the method x k table and plots for one experiment: `python report.py experiment_name=mnist_mlp`; or one
combined table and figure over several: `python report.py experiment_name=small_scale combine=[a,b,c]`."""

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from grass.errors import GrassError


@hydra.main(version_base="1.3", config_path="conf", config_name="report")
def main(cfg: DictConfig) -> None:
    from grass.report.table import build_combined, build_report

    try:
        if cfg.combine:
            print(build_combined(Path(cfg.paths.root), cfg.experiment_name, list(cfg.combine)))
        else:
            print(build_report(Path(cfg.paths.root), cfg.experiment_name))
    except GrassError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
