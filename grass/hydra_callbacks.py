"""Hydra callbacks named in conf/config.yaml (hydra.callbacks)."""

import os
import sys
import tempfile
from pathlib import Path

from hydra.experimental.callback import Callback


class OutputsWritable(Callback):
    """Refuse, in one line, an outputs folder (paths.root) that cannot be written, before Hydra makes the
    run folder in it (otherwise three chained Hydra tracebacks)."""

    def on_run_start(self, config, **kwargs) -> None:
        check_writable(config.paths.root)

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
