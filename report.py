"""Build the method x k table and plot for one experiment: `python report.py experiment_name=mnist_mlp`."""

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from grass.errors import GrassError


@hydra.main(version_base="1.3", config_path="conf", config_name="report")
def main(cfg: DictConfig) -> None:
    from grass.report.table import build_report

    try:
        print(build_report(Path(cfg.paths.root), cfg.experiment_name))
    except GrassError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
