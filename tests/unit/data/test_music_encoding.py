"""dattri's event encoding of music21 scores: a round trip keeps the notes (timing within 10 ms), and windows
are cut the way dattri's EPianoDataset cuts MAESTRO."""

import io

import pretty_midi
import pytest
import torch
from music21 import chord, note, stream, tempo
from music21.midi import translate

from grass.data.music import decode_events, encode_midi_bytes, windows
from grass.errors import GrassError


def _score():
    s = stream.Stream([tempo.MetronomeMark(number=100)])
    for item in [note.Note("C4", quarterLength=1), note.Note("E4", quarterLength=0.5),
                 note.Note("G4", quarterLength=0.25), chord.Chord(["C3", "G3"], quarterLength=2),
                 note.Rest(quarterLength=1), note.Note("A5", quarterLength=1.5)]:
        s.append(item)
    return s


def _notes(midi):
    return sorted((n.pitch, n.start, n.end, n.velocity) for inst in midi.instruments for n in inst.notes)


def test_round_trip_keeps_notes_within_the_time_resolution():
    data = translate.streamToMidiFile(_score()).writestr()
    rendered = _notes(pretty_midi.PrettyMIDI(io.BytesIO(data)))
    assert [p for p, *_ in rendered] == [48, 55, 60, 64, 67, 81]
    events = encode_midi_bytes(data)
    assert events and all(0 <= e < 388 for e in events)
    decoded = _notes(decode_events(events))
    assert len(decoded) == len(rendered) == 6
    for (p, s, e, v), (p2, s2, e2, v2) in zip(sorted(rendered), sorted(decoded)):
        assert p == p2
        assert abs(s - s2) <= 0.011 and abs(e - e2) <= 0.011  # 10 ms time shifts (rounded: +-5 ms, accumulated)
        assert abs(v - v2) < 4  # 32 velocity bins
    # quarter = 0.6 s at 100 bpm: the rest before A5 is 0.6 s of time shifts
    a5 = [n for n in decoded if n[0] == 81][0]
    c4 = [n for n in decoded if n[0] == 60][0]
    assert a5[1] - c4[1] == pytest.approx(0.6 * 4.75, abs=0.011)


def test_windows_follow_dattri_full_version():
    events = list(range(23))
    wins = windows(events, 5)
    assert [o for o, *_ in wins] == [0, 5, 10, 15]  # range(0, 23 - 5, 5)
    o, x, y = wins[1]
    assert x.tolist() == [5, 6, 7, 8, 9] and y.tolist() == [6, 7, 8, 9, 10]
    assert windows(events[:5], 5) == []


def test_load_music21_holds_out_query_pieces_and_caches(tmp_path):
    from grass.data.music21_corpus import load_music21

    kw = dict(composer="bach", seq_len=16, n_train=12, n_query=2, split_seed=0,
              cache_dir=str(tmp_path))
    data = load_music21(**kw)
    assert data.train_x.shape == data.train_y.shape == (12, 16) and data.query_x.shape == (2, 16)
    assert torch.equal(data.train_x[:, 1:], data.train_y[:, :-1])
    train_pieces = {s.split("@")[0] for s in data.train_sources}
    query_pieces = {s.split("@")[0] for s in data.query_sources}
    assert len(query_pieces) == 2 and not train_pieces & query_pieces
    cached = list(tmp_path.glob("*.pt"))
    assert len(cached) == 1
    again = load_music21(**kw)  # from the artifact
    assert torch.equal(again.train_x, data.train_x) and again.query_sources == data.query_sources
    with pytest.raises(GrassError, match="no pieces"):
        load_music21(**{**kw, "composer": "nobody_at_all"})


def test_load_music21_straddling_queries_come_from_train_pieces(tmp_path):
    from grass.data.music21_corpus import load_music21

    t = 16
    data = load_music21(composer="bach", seq_len=t, n_train=9, n_query=3, split_seed=0, cache_dir=str(tmp_path),
                        query_windows="straddling", windows_per_piece=3)
    assert data.train_x.shape == (9, t) and data.query_x.shape == data.query_y.shape == (3, t)
    assert torch.equal(data.query_x[:, 1:], data.query_y[:, :-1])
    train = {s: i for i, s in enumerate(data.train_sources)}
    for q, source in enumerate(data.query_sources):
        piece, offset = source.split("@")
        first = train[f"{piece}@{int(offset) - t // 2}"]  # the query starts half-way into a train window ...
        second = train[f"{piece}@{int(offset) + t // 2}"]  # ... and ends half-way into the next one
        assert torch.equal(data.query_x[q], torch.cat([data.train_x[first, t // 2:], data.train_x[second, :t // 2]]))
        assert data.query_y[q, -1] == data.train_y[second, t // 2 - 1]  # its last target is a trained event
    assert not any(torch.equal(qx, tx) for qx in data.query_x for tx in data.train_x)


@pytest.mark.parametrize("knobs, match", [({"query_windows": "random"}, "query_windows"),
                                          ({"query_windows": "straddling", "windows_per_piece": 1},
                                           "windows_per_piece"),
                                          ({"windows_per_piece": 0}, "windows_per_piece")])
def test_load_music21_bad_knobs_fail_before_parsing(tmp_path, knobs, match):
    from grass.data.music21_corpus import load_music21

    with pytest.raises(GrassError, match=match):
        load_music21(composer="bach", seq_len=16, n_train=9, n_query=3, split_seed=0, cache_dir=str(tmp_path),
                     **knobs)
