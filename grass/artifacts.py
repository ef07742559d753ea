"""Artifacts that runs reuse (models, checkpoints, subsets, ground truth, LM base, masks, scores,
preconditioners): every one is written with a checksum and the settings that made it, and verified when read.

`<file>` is written atomically, then its sidecar `<file>.meta.json`:
    {"format": 1, "kind": ..., "file": <name>, "bytes": N, "sha256": <hex>, "settings": {...}, "written": <time>}
A file is *ready* only when both exist: a run killed between the two writes (or a deleted sidecar) left an
unfinished artifact, which the stage that makes it makes again when it next runs; a reader that finds the file
without its sidecar refuses it. Reading checks size and SHA-256 (once per process per file version) and, when the
reader states the settings it expects, every settings key; any difference is one GrassError naming the file,
what differs and how to rebuild it.

Concurrent runs that would build the same artifact serialise on `artifact_lock(file)` (a `filelock` lock file
beside it): the second waits, then finds the file ready and reuses it.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any, Mapping

import torch
from filelock import FileLock

from grass.errors import GrassError
from grass.fingerprint import describe_diff, normalize
from grass.io import atomic_write, atomic_write_json

FORMAT = 1
SIDECAR_SUFFIX = ".meta.json"
_CHUNK = 1 << 22
_verified: set[tuple] = set()  # (path, bytes, mtime_ns, sidecar mtime_ns) already checked in this process


def sidecar_path(path: Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + SIDECAR_SUFFIX)


def artifact_ready(path: Path) -> bool:
    """True when the file and its sidecar both exist (a finished write); says nothing about corruption."""
    return Path(path).exists() and sidecar_path(path).exists()


def artifact_lock(path: Path, timeout: float = -1) -> FileLock:
    """The inter-process lock of one artifact (`.<name>.lock` beside it); timeout -1 waits for ever."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(path.with_name(f".{path.name}.lock")), timeout=timeout)


class _HashingWriter:
    """File-like object that hashes and counts the bytes written through it."""

    def __init__(self, f) -> None:
        self.f, self.sha256, self.nbytes, self.error = f, hashlib.sha256(), 0, None

    def write(self, data) -> int:
        self.sha256.update(data)
        self.nbytes += len(data)
        try:
            return self.f.write(data)
        except OSError as e:  # torch.save re-raises it as a RuntimeError that hides the errno (a full disk)
            self.error = e
            raise

    def flush(self) -> None:
        self.f.flush()


def save_artifact(obj: Any, path: Path, settings: Mapping, kind: str) -> Path:
    """torch.save(obj) to `path` atomically, then its sidecar with the checksum and `settings` (plain data).

    kind: a short name of what the file is ("model", "ground truth", ...), shown in messages.
    """
    path = Path(path)
    box = {}

    def write(f) -> None:
        writer = _HashingWriter(f)
        try:
            torch.save(obj, writer)
        except RuntimeError:
            if writer.error is not None:
                raise writer.error from None  # atomic_write names a full disk in one message
            raise
        box["writer"] = writer

    atomic_write(path, write)
    writer = box["writer"]
    atomic_write_json({"format": FORMAT, "kind": kind, "file": path.name, "bytes": writer.nbytes,
                       "sha256": writer.sha256.hexdigest(), "settings": normalize(settings),
                       "written": time.strftime("%Y-%m-%dT%H:%M:%S")}, sidecar_path(path))
    stat = path.stat()
    _verified.add((str(path.resolve()), stat.st_size, stat.st_mtime_ns, sidecar_path(path).stat().st_mtime_ns))
    return path


def read_sidecar(path: Path, hint: str = "") -> dict:
    """The sidecar of `path`, checked for form; a missing or unreadable one is a GrassError."""
    path, meta = Path(path), sidecar_path(path)
    rebuild = _rebuild(path, hint)
    if not path.exists():
        raise GrassError(f"missing artifact {path}" + (f"; {hint}" if hint else ""))
    if not meta.exists():
        raise GrassError(f"{path} has no checksum file {meta.name} (an older grass wrote it, or its writer was "
                         f"killed before finishing); {rebuild}")
    try:
        data = json.loads(meta.read_text(encoding="utf-8"))
        if data["format"] != FORMAT or data["file"] != path.name:
            raise ValueError(f"format {data['format']!r}, file {data['file']!r}")
        int(data["bytes"]), str(data["sha256"]), dict(data["settings"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise GrassError(f"cannot read the checksum file {meta} of {path.name} ({type(e).__name__}: {e}); the "
                         f"pair cannot be trusted: {rebuild}") from e
    return data


def verify_artifact(path: Path, settings: Mapping | None = None, hint: str = "") -> dict:
    """Check `path` against its sidecar (size, SHA-256) and, if given, the expected settings; returns the sidecar.

    Raises GrassError naming the file, what is wrong and how to rebuild it (`hint`: e.g. "run stage=finetune").
    """
    path = Path(path)
    data = read_sidecar(path, hint)
    rebuild = _rebuild(path, hint)
    if settings is not None:
        diff = describe_diff(data["settings"], normalize(settings), labels=("file", "now"))
        if diff:
            raise GrassError(f"{path} ({data.get('kind', 'artifact')}) was made with other settings; differing "
                             f"keys: " + "; ".join(diff) + f". {rebuild[0].upper()}{rebuild[1:]}")
    stat, meta_stat = path.stat(), sidecar_path(path).stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, meta_stat.st_mtime_ns)
    if key in _verified:
        return data
    if stat.st_size != int(data["bytes"]):
        raise GrassError(f"{path} is corrupt or truncated: {stat.st_size} bytes, its checksum file says "
                         f"{data['bytes']}; {rebuild}")
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            digest.update(block)
    if digest.hexdigest() != data["sha256"]:
        raise GrassError(f"{path} is corrupt: its SHA-256 differs from the one written with it; {rebuild}")
    _verified.add(key)
    return data


def load_artifact(path: Path, settings: Mapping | None = None, hint: str = "") -> Any:
    """verify_artifact, then torch.load (weights_only, to the CPU)."""
    verify_artifact(path, settings, hint)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # checksum fine but unloadable: written by an incompatible torch
        raise GrassError(f"cannot read {path} ({type(e).__name__}: {e}); {_rebuild(path, hint)}") from e


def _rebuild(path: Path, hint: str) -> str:
    then = f", then {hint}" if hint else " and rerun the stage that makes it"
    return f"delete it and its {SIDECAR_SUFFIX} file{then}"
