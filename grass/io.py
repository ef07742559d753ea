"""Crash-safe file writes: a killed run leaves either the old file or the new one, never half of one."""

import errno
import glob
import json
import logging
import math
import os
import tempfile
from pathlib import Path

from grass.errors import GrassError

log = logging.getLogger(__name__)
_DISK_FULL = {errno.ENOSPC, errno.EDQUOT}


def atomic_write(path: Path, write) -> None:
    """Call write(f) on a temp file beside `path`, fsync it, rename it over `path`, fsync the folder.

    On any error (a kill between steps included) no partial `path` exists: the temp file is deleted, or,
    after SIGKILL, left as a hidden `.<name>.*.tmp` that stale_temps(path) finds. A full disk (ENOSPC /
    EDQUOT) becomes one GrassError naming the file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.errno in _DISK_FULL:
            raise GrassError(f"disk full while writing {path}: nothing of it was kept; free space (or point the "
                             f"output folder elsewhere) and rerun, finished files are reused") from e
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable across a power loss, not only across a killed process.
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):  # folder fsync unsupported there
            raise
    finally:
        os.close(fd)


def stale_temps(path: Path) -> list[Path]:
    """Temp files that an interrupted atomic_write(path, ...) left behind (safe to delete once no writer runs)."""
    path = Path(path)
    return sorted(path.parent.glob(f".{glob.escape(path.name)}.*.tmp"))


def atomic_write_bytes(data: bytes, path: Path) -> None:
    atomic_write(path, lambda f: f.write(data))


def atomic_write_json(obj, path: Path) -> None:
    """obj as strict JSON (no NaN / Infinity tokens, which JSON lacks): non-finite floats are written as null,
    and each such key is logged with its value."""
    bad: list[str] = []
    clean = finite_or_null(obj, "", bad)
    if bad:
        log.warning("%s: not a finite number, written as null: %s", Path(path).name, ", ".join(bad))
    text = json.dumps(clean, indent=2, sort_keys=True, default=str, allow_nan=False)
    atomic_write(path, lambda f: f.write(text.encode()))


def finite_or_null(obj, key: str, bad: list[str]):
    """obj (dicts, lists, tuples, scalars) with every NaN / +-inf float replaced by None; appends 'key = value'
    of each replaced one to `bad` (nested keys joined with '.', list items as [i])."""
    if isinstance(obj, float) and not math.isfinite(obj):
        bad.append(f"{key or '<top>'} = {obj}")
        return None
    if isinstance(obj, dict):
        return {k: finite_or_null(v, f"{key}.{k}" if key else str(k), bad) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_null(v, f"{key}[{i}]", bad) for i, v in enumerate(obj)]
    return obj
