"""dataset=maestro from local files (a fake MAESTRO folder and query set), and its one-line error offline."""

import json
import pickle

import pretty_midi
import pytest
import torch

from grass.data.maestro import GENERATED, PROCESSED, RAW, load_maestro
from grass.errors import GrassError


def _midi(path, seed):
    g = torch.Generator().manual_seed(seed)
    pm = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(0)
    t = 0.0
    for _ in range(40):
        d = 0.05 + float(torch.rand(1, generator=g)) * 0.4
        piano.notes.append(pretty_midi.Note(int(torch.randint(40, 90, (1,), generator=g)),
                                            int(torch.randint(30, 120, (1,), generator=g)), t, t + d))
        t += d
    # dattri's encoder keeps only notes up to the last pedal release (MAESTRO always pedals): pedal at the end
    piano.control_changes += [pretty_midi.ControlChange(64, 100, t + 0.5), pretty_midi.ControlChange(64, 0, t + 1)]
    pm.instruments.append(piano)
    path.parent.mkdir(parents=True, exist_ok=True)
    pm.write(str(path))


def _fake_root(tmp_path):
    root = tmp_path / "maestro"
    pieces = [("2004/a.midi", "train"), ("2004/b.midi", "train"), ("2006/c.midi", "test")]
    for i, (name, _) in enumerate(pieces):
        _midi(root / RAW / name, i)
    (root / RAW / "maestro-v2.0.0.json").write_text(json.dumps(
        [{"midi_filename": n, "split": s} for n, s in pieces]))
    (root / GENERATED).mkdir()
    for i in range(2):
        (root / GENERATED / f"gen{i}.pickle").write_bytes(pickle.dumps(list(range(i, 60 + i))))
    return root


def test_builds_from_local_files_like_dattri(tmp_path):
    root = _fake_root(tmp_path)
    data = load_maestro(str(root), seq_len=16, n_train=6, n_query=3)
    assert data.train_x.shape == (6, 16) and data.query_x.shape == (3, 16)
    assert (root / PROCESSED / "train" / "a.midi.pickle").is_file()  # dattri's prep_maestro_midi output
    first = pickle.loads((root / PROCESSED / "train" / "a.midi.pickle").read_bytes())
    assert data.train_x[0].tolist() == first[:16] and data.train_y[0].tolist() == first[1:17]
    assert data.train_sources[0] == "a.midi.pickle@0" and data.train_sources[1] == "a.midi.pickle@16"
    assert data.query_x[0].tolist() == list(range(16)) and data.query_y[1].tolist() == list(range(17, 33))
    with pytest.raises(GrassError, match="requested"):
        load_maestro(str(root), seq_len=16, n_train=10_000, n_query=3)


def test_offline_is_one_clear_error(tmp_path, no_network):
    with pytest.raises(GrassError, match="MAESTRO v2.0.0 MIDI.*music21_music_tiny"):
        load_maestro(str(tmp_path / "empty"), seq_len=16, n_train=2, n_query=2)


def test_query_set_needs_the_hub(tmp_path, monkeypatch):
    root = _fake_root(tmp_path)
    for f in (root / GENERATED).iterdir():
        f.unlink()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(GrassError, match="generated music.*offline mode"):
        load_maestro(str(root), seq_len=16, n_train=2, n_query=2)
