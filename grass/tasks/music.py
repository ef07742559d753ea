"""MusicTransformer on event windows (MAESTRO, music21's corpus): training, last-event margins (paper section 5).

The output function is the paper's (and dattri's `maestro_musictransformer` benchmark's) margin of the
last token: with logp = log p(y[T-1] | x), the model's log-probability of the event that follows the
window, f = logp - log(1 - exp(logp)) = z_y - logsumexp_{j != y} z_j (grass.outputs.margin on the last
position's logits). The ground truth (query_outputs) and the attributed target (target("margin")) are
the same f; target("loss") is the last event's cross-entropy (dattri's TracIn / grad-dot target).
The train side may instead differentiate the whole window (train_target(kind, "sequence"): the block margin
of the mean log-probability of all its events, as for language-model blocks): a model trains on every event of
a window, not only on its last, so the window's gradient is the one its training step follows
(experiments/maestro_music/README.md measures the difference).
Only whole-model (flat) compressors apply: dattri's attention computes its q/k/v and output projections
with functional `linear` calls on [T, B, d] tensors, which the nn.Linear hooks of factorized capture
cannot see.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from grass.artifacts import load_artifact
from grass.data.music import MusicSequences
from grass.errors import GrassError
from grass.instantiate import instantiate_node
from grass.models.build import FINETUNE_HINT
from grass.models.music_module import MusicModule
from grass.outputs import log_odds, output_function, true_class_prob
from grass.targets import Target
from grass.tasks.base import Task, fit_on_rows


class MusicTarget(Target):
    """Per-example target of a MusicTransformer: the last event's margin or loss (grass.targets contract).

    batch: (x [B, T], y [B, T]) event ids -> [B]. p = p(y[:, -1] | x), the probability the margin is the
    log-odds of; TRAK's Q = 1 - p. Every last target is a real event (windows are cut inside a piece), so
    there is nothing to check.
    """

    def __init__(self, kind: str = "margin") -> None:
        super().__init__(kind)
        self.fn = output_function(kind)

    def value(self, model: nn.Module, batch) -> torch.Tensor:
        x, y = batch
        return self.fn(model(x)[:, -1, :], y[:, -1])

    def trak_weight(self, model: nn.Module, batch) -> torch.Tensor:
        x, y = batch
        return 1.0 - true_class_prob(model(x)[:, -1, :], y[:, -1])


class MusicWindowTarget(Target):
    """Per-example target over a whole window: with logp = mean_t log p(y[t] | x[:t+1]) over its T events,
    margin = logp - log(1 - exp(logp)) (the block margin of SPEC 2.1, as for language-model blocks), loss = -logp,
    TRAK's Q = 1 - exp(logp).  batch: (x [B, T], y [B, T]) event ids -> [B]."""

    def _logp(self, model: nn.Module, batch) -> torch.Tensor:
        x, y = batch
        logits = model(x)  # [B, T, V]
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="none")
        return -ce.view(y.shape).mean(dim=1)

    def value(self, model: nn.Module, batch) -> torch.Tensor:
        logp = self._logp(model, batch)
        return -logp if self.kind == "loss" else log_odds(logp)

    def trak_weight(self, model: nn.Module, batch) -> torch.Tensor:
        return -torch.expm1(self._logp(model, batch))


class MusicTask(Task):
    data: MusicSequences

    factorized_unsupported = (
        "dataset={dataset} trains dattri's MusicTransformer, whose attention calls functional linear maps on "
        "[T, B, d] tensors that factorized capture (nn.Linear hooks) cannot see; choose a flat compressor "
        "(sjlt, fjlt, random_mask, selective_mask, grass, grass_sm, gaussian, rademacher, identity)")

    def __init__(self, cfg, data: MusicSequences) -> None:
        super().__init__(cfg, data)
        max_seq = cfg.model.get("max_sequence")
        if max_seq is not None and data.seq_len > max_seq:
            raise GrassError(f"dataset {data.name} has windows of {data.seq_len} events but model.max_sequence="
                             f"{max_seq}; set dataset.seq_len <= model.max_sequence")

    def _build(self) -> nn.Module:
        return instantiate_node(self.cfg.model, "model")

    def skeleton(self) -> nn.Module:
        with torch.device("meta"):
            return self._build()

    def train_one(self, ctx, seed: int, rows: torch.Tensor) -> nn.Module:
        ft = self.cfg.finetune
        return fit_on_rows(ctx, seed, self._build,
                           lambda model: MusicModule(model, lr=ft.lr, optimizer=ft.optimizer,
                                                     weight_decay=ft.weight_decay, momentum=ft.momentum,
                                                     schedule=ft.schedule),
                           self.data.train_x[rows], self.data.train_y[rows])

    def load(self, ctx, path: Path) -> nn.Module:
        model = self._build()
        model.load_state_dict(load_artifact(path, ctx.models_settings(), hint=FINETUNE_HINT))
        return model.eval()

    @torch.no_grad()
    def outputs(self, model: nn.Module, side: str, kind: str, device: torch.device) -> torch.Tensor:
        """target(kind) of every `side` example, eval mode, no grad: [n] float32 on the CPU."""
        model.eval()
        f = self.target(kind).value
        bs = self.cfg.hardware.capture_batch_size
        return torch.cat([f(model, b).float().cpu() for b in self.batches(side, bs, device)])

    def query_outputs(self, model: nn.Module, device: torch.device) -> torch.Tensor:
        """The last event's margin of every query window: [n_query] float32."""
        return self.outputs(model, "query", "margin", device)

    def target(self, kind: str) -> MusicTarget:
        return MusicTarget(kind)

    def train_target(self, kind: str, output: str = "query") -> Target:
        """output="sequence": the whole window's block margin (MusicWindowTarget) instead of the last event's."""
        return MusicWindowTarget(kind) if output == "sequence" else super().train_target(kind, output)

    def batches(self, side: str, batch_size: int, device: torch.device, rows: torch.Tensor | None = None):
        if side == "train":
            x, y = self.data.train_x, self.data.train_y
        elif side == "query":
            x, y = self.data.query_x, self.data.query_y
        else:
            raise GrassError(f"side must be 'train' or 'query', got {side!r}")
        if rows is not None:
            x, y = x[rows], y[rows]
        for i in range(0, len(x), batch_size):
            yield x[i:i + batch_size].to(device), y[i:i + batch_size].to(device)
