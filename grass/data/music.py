"""Symbolic music as fixed-length event sequences (MAESTRO, music21's corpus), through dattri's MIDI encoding.

Events are dattri's (`dattri.benchmark.models.MusicTransformer.midi_processor.processor`, the
performance encoding of the Music Transformer paper): note-on / note-off per pitch, 10 ms time shifts
(up to 1 s each), 32 velocity bins; ids 0..387, then END 388 and PAD 389 (grass.models.music_transformer).

A piece is cut the way dattri's `EPianoDataset(full_version=True)` cuts MAESTRO: windows of T + 1 events
at offsets 0, stride, 2 * stride, ... (stride = T: no overlap), input x = window[:T], target
y = window[1:] (y[t] is the event after x[t]). The attributed output is the margin of the last event
(grass.tasks.music).
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass

import torch
from torch import Tensor

from grass.errors import GrassError

with contextlib.redirect_stdout(io.StringIO()):  # dattri prints a CUDA banner on import on CPU-only machines
    from dattri.benchmark.models.MusicTransformer.midi_processor import processor as midi_processor


@dataclass
class MusicSequences:
    """Event windows of one corpus.  *_x, *_y [n, T] int64: input events and next events (y[:, t] = x[:, t + 1]
    except the last column, the event after the window).

    *_sources: one label per window, "<piece>@<first event offset>", for reports.
    """

    name: str
    train_x: Tensor
    train_y: Tensor
    query_x: Tensor
    query_y: Tensor
    train_sources: list[str] | None = None
    query_sources: list[str] | None = None

    @property
    def n_train(self) -> int:
        return len(self.train_x)

    @property
    def n_query(self) -> int:
        return len(self.query_x)

    @property
    def seq_len(self) -> int:
        return int(self.train_x.shape[1])


def encode_midi_bytes(data: bytes) -> list[int]:
    """A MIDI file's bytes -> dattri's event ids (a list of ints in [0, 388)).

    dattri's encoder walks the notes through the sustain-pedal (CC 64) spans, as MAESTRO's piano recordings
    always have them: notes after the last pedal release are dropped, so a file without any pedal (a score
    rendered to MIDI) would encode to no events. Such a file gets one pedal press and release *after its
    last note*, which leaves every note's start, end and velocity as they are (the encoder keeps notes that
    start before a pedal unchanged).
    """
    import pretty_midi

    midi = pretty_midi.PrettyMIDI(io.BytesIO(data))
    end = midi.get_end_time()
    for inst in midi.instruments:
        if inst.notes and not any(c.number == 64 for c in inst.control_changes):
            inst.control_changes += [pretty_midi.ControlChange(64, 127, end + 1.0),
                                     pretty_midi.ControlChange(64, 0, end + 2.0)]
    return midi_processor.encode_midi(_as_file(midi))


def _as_file(midi) -> io.BytesIO:
    buf = io.BytesIO()
    midi.write(buf)
    buf.seek(0)
    return buf


def decode_events(events: list[int]):
    """dattri's decoder: event ids -> pretty_midi.PrettyMIDI (one piano instrument)."""
    with contextlib.redirect_stdout(io.StringIO()):  # it prints every note-off it cannot pair
        return midi_processor.decode_midi(list(events))


def windows(events: list[int], seq_len: int, stride: int | None = None) -> list[tuple[int, Tensor, Tensor]]:
    """dattri's full-version windows of one piece: [(offset, x [T], y [T])] at offsets range(0, n - T, stride)."""
    stride = stride or seq_len
    ev = torch.as_tensor(events, dtype=torch.long)
    return [(o, ev[o:o + seq_len], ev[o + 1:o + seq_len + 1]) for o in range(0, len(ev) - seq_len, stride)]


def stack(rows: list[tuple[str, int, Tensor, Tensor]]) -> tuple[Tensor, Tensor, list[str]]:
    """[(piece, offset, x, y)] -> (x [n, T], y [n, T], sources)."""
    if not rows:
        raise GrassError("no event windows to stack (every piece shorter than the sequence length?)")
    return (torch.stack([r[2] for r in rows]), torch.stack([r[3] for r in rows]),
            [f"{r[0]}@{r[1]}" for r in rows])
