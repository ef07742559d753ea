"""dattri's MusicTransformer (relative-position attention) as a grass model (paper section 5, MAESTRO setting).

The class is dattri's own (`dattri.benchmark.models.MusicTransformer`), imported in one place with its
"CUDA devices not detected" banner silenced. The only change: dattri's forward builds its causal mask on
the device given to the constructor (`self.device`), so a model moved to another device after building
would fail; here `device` is always the device of the weights. Input: event ids [B, T] int64 (T <=
max_sequence); output: next-event logits [B, T, VOCAB_SIZE] (token t predicts token t + 1).

Event vocabulary (dattri's MIDI processor): 128 note-on, 128 note-off, 100 time shifts of 10 ms, 32
velocity bins, then END and PAD: VOCAB_SIZE = 390. Paper size: 6 layers, d_model 512, 8 heads,
feed-forward 1024, max sequence 256 (13.1 M parameters).
"""

from __future__ import annotations

import contextlib
import io

import torch

from grass.errors import GrassError

with contextlib.redirect_stdout(io.StringIO()):  # dattri's device module prints a banner on CPU-only machines
    from dattri.benchmark.models.MusicTransformer import music_transformer as _dattri_mt
    from dattri.benchmark.models.MusicTransformer.utilities import constants as _constants

TOKEN_END: int = _constants.TOKEN_END
TOKEN_PAD: int = _constants.TOKEN_PAD
VOCAB_SIZE: int = _constants.VOCAB_SIZE


class MusicTransformer(_dattri_mt.MusicTransformer):
    """dattri's MusicTransformer whose causal mask follows the weights' device (see the module docstring)."""

    @property
    def device(self) -> torch.device:
        return self.Wout.weight.device

    @device.setter
    def device(self, value) -> None:  # dattri's __init__ stores its `device` argument; the weights decide
        pass


def music_transformer(n_layers: int = 6, num_heads: int = 8, d_model: int = 512, dim_feedforward: int = 1024,
                      dropout: float = 0.1, max_sequence: int = 256, rpr: bool = True) -> MusicTransformer:
    """Build the model (random init from torch's global RNG), in eval mode, on the CPU."""
    if d_model % num_heads:
        raise GrassError(f"model.d_model={d_model} must be a multiple of model.num_heads={num_heads}")
    if min(n_layers, num_heads, d_model, dim_feedforward, max_sequence) < 1 or not 0 <= dropout < 1:
        raise GrassError("model.n_layers, num_heads, d_model, dim_feedforward, max_sequence must be >= 1 and "
                         f"0 <= dropout < 1; got {n_layers}, {num_heads}, {d_model}, {dim_feedforward}, "
                         f"{max_sequence}, {dropout}")
    return MusicTransformer(n_layers=n_layers, num_heads=num_heads, d_model=d_model, dim_feedforward=dim_feedforward,
                            dropout=dropout, max_sequence=max_sequence, rpr=rpr, device="cpu").eval()
