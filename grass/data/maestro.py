"""MAESTRO v2.0.0 as dattri builds it for its `maestro_musictransformer` benchmark (paper section 5).

Train: the MIDI of MAESTRO's train split, encoded by dattri's `prep_maestro_midi` (its MIDI event
processor) into `<root>/maestro-v2.0.0-processed/`, cut by dattri's `EPianoDataset(full_version=True)`
into windows of seq_len events (sorted files, offsets 0, T, 2T, ...), the first n_train of them (dattri
uses 5,000). Query: dattri's query set, the generated pieces of its benchmark (`generated_music.zip`,
178 windows), cut the same way. Both come from the network once (the MAESTRO zip from Google storage,
~57 MB; the generated music from the Hugging Face dataset trais-lab/dattri-benchmark) unless `root`
already holds `maestro-v2.0.0/` (unzipped) or its processed folder, and `generated_music/`. Offline,
one GrassError names what could not be fetched and points at experiment=music21_music_tiny.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import socket
import tempfile
import urllib.request
import zipfile
from pathlib import Path
from urllib.parse import urlparse

from grass.data.music import MusicSequences, stack
from grass.errors import GrassError

log = logging.getLogger(__name__)

MAESTRO_URL = "https://storage.googleapis.com/magentadata/datasets/maestro/v2.0.0/maestro-v2.0.0-midi.zip"
GENERATED_URL = ("https://huggingface.co/datasets/trais-lab/dattri-benchmark/resolve/main/maestro_musictransformer/"
                 "generated_music.zip?download=true")
RAW, PROCESSED, GENERATED = "maestro-v2.0.0", "maestro-v2.0.0-processed", "generated_music"
OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")


def load_maestro(root: str, seq_len: int = 256, n_train: int = 5000, n_query: int = 178,
                 timeout_s: float = 10.0) -> MusicSequences:
    """Train windows [n_train, seq_len] of MAESTRO's train split and dattri's query windows [n_query, seq_len]."""
    root_dir = Path(root).expanduser()
    processed = _processed(root_dir, timeout_s)
    generated = root_dir / GENERATED
    if not _has_files(generated):
        _fetch_zip(GENERATED_URL, generated, "dattri's MAESTRO query set (generated music)", timeout_s)
    train = _windows(processed / "train", seq_len, n_train, "train windows of MAESTRO's train split")
    query = _windows(generated, seq_len, n_query, "query windows of dattri's generated music")
    train_x, train_y, train_sources = stack(train)
    query_x, query_y, query_sources = stack(query)
    return MusicSequences(name="maestro", train_x=train_x, train_y=train_y, query_x=query_x, query_y=query_y,
                          train_sources=train_sources, query_sources=query_sources)


def _has_files(folder: Path) -> bool:
    return folder.is_dir() and any(f.is_file() for f in folder.iterdir())


def _processed(root: Path, timeout_s: float) -> Path:
    """`<root>/maestro-v2.0.0-processed` (dattri's encoded pickles), made from the raw MIDI once."""
    processed = root / PROCESSED
    if _has_files(processed / "train"):
        return processed
    raw = root / RAW
    if not (raw / "maestro-v2.0.0.json").is_file():
        _fetch_zip(MAESTRO_URL, root, "MAESTRO v2.0.0 MIDI", timeout_s)
    root.mkdir(parents=True, exist_ok=True)
    with contextlib.redirect_stdout(io.StringIO()):
        from dattri.benchmark.models.MusicTransformer.dataset.preprocess_midi import prep_maestro_midi

        tmp = Path(tempfile.mkdtemp(prefix=f".{PROCESSED}-", dir=root))
        ok = prep_maestro_midi(str(raw), str(tmp))
    if not ok:
        shutil.rmtree(tmp, ignore_errors=True)
        raise GrassError(f"dattri's prep_maestro_midi could not encode {raw} (missing maestro-v2.0.0.json or an "
                         "unknown split)")
    os.replace(tmp, processed)  # complete or absent: a killed run leaves only a temp folder
    return processed


def _windows(folder: Path, seq_len: int, n: int, what: str) -> list:
    with contextlib.redirect_stdout(io.StringIO()):
        from dattri.benchmark.models.MusicTransformer.dataset.e_piano import EPianoDataset

        ds = EPianoDataset(str(folder), max_seq=seq_len, random_seq=False, full_version=True)
    if len(ds) < n:
        raise GrassError(f"{folder} gives {len(ds)} {what} of {seq_len} events; {n} requested (dataset.n_train / "
                         "n_query)")
    rows = []
    for i in range(n):
        file, offset = ds.length_dict[i]
        x, y = ds[i]
        rows.append((Path(file).name, offset, x, y))
    return rows


def unreachable(url: str, timeout_s: float) -> str | None:
    """Why `url` cannot be fetched now (offline mode for the hub, or its host refusing TCP), or None."""
    host = urlparse(url).hostname or ""
    if host.endswith("huggingface.co") and any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
                                               for v in OFFLINE_VARS):
        return "the Hugging Face hub is in offline mode (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE)"
    try:
        socket.create_connection((host, 443), timeout=timeout_s).close()
    except OSError as e:
        return f"{host}:443 is unreachable ({e})"
    return None


def _fetch_zip(url: str, dest: Path, what: str, timeout_s: float) -> None:
    """Download the zip at `url` and extract it into `dest` (atomically: a temp folder renamed into place)."""
    why = unreachable(url, timeout_s)
    if why:
        raise GrassError(f"dataset=maestro needs {what} from {url.split('?')[0]}, which cannot be fetched: {why}; "
                         f"put it under dataset.root ({dest.parent}) by hand, or run the offline stand-in "
                         "experiment=music21_music_tiny")
    dest.parent.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s from %s", what, url)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        archive = tmp / "download.zip"
        with urllib.request.urlopen(url, timeout=timeout_s) as r, archive.open("wb") as f:
            shutil.copyfileobj(r, f)
        out = tmp / "out"
        with zipfile.ZipFile(archive) as z:
            z.extractall(out)
        if dest.exists():  # the MAESTRO zip holds maestro-v2.0.0/: extract beside what root already has
            for item in out.iterdir():
                os.replace(item, dest / item.name)
        else:
            os.replace(out, dest)
    except OSError as e:
        raise GrassError(f"downloading {what} from {url.split('?')[0]} failed: {e}") from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
