"""grass entry point: `python run.py [group=option ...] [key=value ...]`, `python run.py -m ...` to sweep."""

import logging
import sys

import hydra
from omegaconf import DictConfig

from grass.config import register_configs
from grass.errors import GrassError

register_configs()


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from grass.pipeline import run  # heavy imports after Hydra has parsed the command line

    try:
        metrics = run(cfg)
    except GrassError as e:
        logging.getLogger("grass").error("%s", e)
        sys.exit(f"error: {e}")
    except SIGTERMException:
        # Lightning turns a SIGTERM during a fit into a SystemExit without a code, i.e. status 0: a killed job
        # (scheduler preemption, timeout) must not look finished to a scheduler or a sweep
        logging.getLogger("grass").error("stopped by SIGTERM; a rerun reuses every finished artifact")
        sys.exit(143)
    return metrics.get("lds/mean")


if __name__ == "__main__":
    main()
