"""Crash-safe file writes: a killed run leaves either the old file or the new one, never half of one."""

import json
import os
import tempfile
from pathlib import Path

import torch

from grass.errors import GrassError


def _atomic_write(path: Path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_save(obj, path: Path) -> None:
    """torch.save through a temp file in the same folder and an atomic rename."""
    _atomic_write(path, lambda f: torch.save(obj, f))


def atomic_write_json(obj, path: Path) -> None:
    _atomic_write(path, lambda f: f.write(json.dumps(obj, indent=2, sort_keys=True, default=str).encode()))


def load_checked(path: Path, hint: str = ""):
    """torch.load that turns a missing or corrupt file into one message naming the file (and what makes it)."""
    path = Path(path)
    if not path.exists():
        raise GrassError(f"missing artifact {path}" + (f"; {hint}" if hint else ""))
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise GrassError(f"cannot read {path} ({type(e).__name__}: {e}); delete it and rerun the stage that makes it") from e
