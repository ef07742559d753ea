"""Hydra callbacks named in conf/config.yaml (hydra.callbacks)."""

import os
import sys
import tempfile
from pathlib import Path

from hydra.experimental.callback import Callback


class Preflight(Callback):
    """Before Hydra makes a run folder: refuse an outputs folder (paths.root) that cannot be written and, for
    a single run, every setting that grass.validate can check from the config alone, each as one `error:`
    line (otherwise chained Hydra tracebacks, or an empty run folder left behind). A multirun's jobs are
    checked by grass.pipeline.run itself, since the sweep's values are not known here."""

    def on_run_start(self, config, **kwargs) -> None:
        check_writable(config.paths.root)
        from grass.dattri_bench.preflight import early_preflight
        from grass.errors import GrassError

        try:
            early_preflight(config)  # before the heavy imports below: an offline dattri run fails in seconds
            from grass.pipeline import preflight

            preflight(config)
        except GrassError as e:
            sys.exit(f"error: {e}")

    def on_multirun_start(self, config, **kwargs) -> None:
        check_writable(config.paths.root)


def check_writable(root) -> None:
    """Make `root` if needed and write a probe file in it; on failure exit with one `error:` line."""
    root = Path(str(root))
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=root, prefix=".write-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        sys.exit(f"error: cannot write to the outputs folder paths.root={root} ({type(e).__name__}: "
                 f"{e.strerror or e}); give a writable folder, e.g. paths.root=$HOME/grass-outputs")
