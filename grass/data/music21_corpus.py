"""Offline stand-in for MAESTRO: real scores from the corpus shipped in PyPI `music21`, as event windows.

Each score (e.g. the Bach chorales of `music21.corpus.getComposer('bach')`) is rendered to MIDI by
music21 (score tempo, default velocity) and encoded with dattri's MIDI event processor
(grass.data.music.encode_midi_bytes), then cut into dattri's windows of seq_len events
(grass.data.music.windows). The pieces are shuffled with `split_seed`; the first n_query pieces are held
out and give one query window each (a seeded random window of the piece), the following pieces give all
their windows to train until n_train windows are taken. Only as many pieces are parsed as that needs
(music21 parses ~4 pieces per second), and the result is stored once as an artifact under `cache_dir`
named and checked by every setting above.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from grass.artifacts import artifact_lock, artifact_ready, load_artifact, save_artifact
from grass.data.music import MusicSequences, encode_midi_bytes, stack, windows
from grass.errors import GrassError
from grass.fingerprint import fingerprint
from grass.seeding import generator

log = logging.getLogger(__name__)

# bump when the rendering or encoding changes, so cached corpora are rebuilt
ENCODING_VERSION = 1


def corpus_paths(composer: str) -> list[Path]:
    """The corpus files of one composer, sorted (music21.corpus.getComposer)."""
    from music21 import corpus

    paths = sorted(Path(p) for p in corpus.getComposer(composer))
    if not paths:
        raise GrassError(f"dataset.composer={composer!r} has no pieces in music21's corpus (e.g. 'bach', "
                         "'beethoven', 'mozart', 'essenFolksong')")
    return paths


def encode_score(path: Path) -> list[int]:
    """One corpus file -> dattri's event ids (music21 parse, MIDI render, dattri's encoder)."""
    from music21 import corpus
    from music21.midi import translate

    score = corpus.parse(str(path))
    return encode_midi_bytes(translate.streamToMidiFile(score).writestr())


def load_music21(composer: str, seq_len: int, n_train: int, n_query: int, split_seed: int,
                 cache_dir: str) -> MusicSequences:
    """Train windows [n_train, seq_len] and held-out query windows [n_query, seq_len] (see the module docstring)."""
    if seq_len < 2 or n_train < 1 or n_query < 1:
        raise GrassError(f"dataset.seq_len >= 2, n_train >= 1, n_query >= 1 required; got {seq_len}, {n_train}, "
                         f"{n_query}")
    settings = {"corpus": "music21", "composer": composer, "seq_len": seq_len, "n_train": n_train,
                "n_query": n_query, "split_seed": split_seed, "encoding": ENCODING_VERSION}
    path = Path(cache_dir).expanduser() / f"music21-{composer}-{fingerprint(settings)}.pt"
    with artifact_lock(path):
        if artifact_ready(path):
            payload = load_artifact(path, settings, hint="delete it to encode the corpus again")
        else:
            payload = _build(composer, seq_len, n_train, n_query, split_seed)
            save_artifact(payload, path, settings, kind="encoded music21 corpus")
    return MusicSequences(name="music21", **payload)


def _build(composer: str, seq_len: int, n_train: int, n_query: int, split_seed: int) -> dict:
    paths = corpus_paths(composer)
    order = torch.randperm(len(paths), generator=generator(split_seed, "music21", "pieces")).tolist()
    pick = generator(split_seed, "music21", "query window")
    query, train, parsed = [], [], 0
    for i in order:
        if len(query) >= n_query and len(train) >= n_train:
            break
        piece = paths[i].relative_to(paths[i].parents[1]).as_posix()  # e.g. bach/bwv1.6.mxl
        wins = windows(encode_score(paths[i]), seq_len)
        parsed += 1
        if not wins:
            continue  # shorter than one window
        if len(query) < n_query:
            o, x, y = wins[int(torch.randint(len(wins), (1,), generator=pick))]
            query.append((piece, o, x, y))
        else:
            train += [(piece, o, x, y) for o, x, y in wins[:n_train - len(train)]]
    if len(query) < n_query or len(train) < n_train:
        raise GrassError(f"music21's {composer!r} corpus ({len(paths)} pieces) gives {len(query)} query and "
                         f"{len(train)} train windows of {seq_len} events; dataset.n_query={n_query} and "
                         f"n_train={n_train} need more: lower them or dataset.seq_len")
    log.info("music21 %s: %d pieces parsed, %d train windows, %d query pieces", composer, parsed, len(train),
             len(query))
    train_x, train_y, train_sources = stack(train)
    query_x, query_y, query_sources = stack(query)
    return {"train_x": train_x, "train_y": train_y, "query_x": query_x, "query_y": query_y,
            "train_sources": train_sources, "query_sources": query_sources}
