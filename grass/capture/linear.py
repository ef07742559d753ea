"""Per-example gradients of nn.Linear layers from hooks (SPEC 2.1, capture `linear`).

For a Linear layer W [O, I] and example b with tokens t: input a_{b,t} (plus a trailing 1 when the
layer has a bias, I' = I + 1) and output gradient delta_{b,t}; G_b = sum_t delta_{b,t} a_{b,t}^T
[O, I'], flattened output-index-major with the bias column last.

How it is computed: a forward hook keeps each selected layer's input and output; the per-example
targets f_b (one per example, e.g. mean token cross-entropy) are summed and `torch.autograd.grad`
of the sum w.r.t. the layer outputs gives delta. Examples do not interact in eval mode, so
d(sum_b f_b)/d out_b = d f_b / d out_b: each row is the gradient of that example's own target, the
same as a one-example-at-a-time loop. (HF's batch-mean loss would need the "x B" rescale of SPEC 2.1,
and it is only exact when every example has the same token count; summing per-example means
needs no rescale and is exact.) Model parameters are frozen during capture and autograd.grad never
writes .grad, so no parameter gradient is computed or stored. Padding tokens (token_mask 0) are
never labelled and are zeroed in delta, so they contribute nothing. A tied Linear (GPT-2's lm_head
shares wte's weight) gives the gradient of the Linear's own use only, not of the embedding lookup.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import contextmanager
from fnmatch import fnmatch
from typing import Any, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from grass.compress.factorized import FactorizedCompressor
from grass.errors import GrassError
from grass.outputs import log_odds, output_function, true_class_prob
from grass.targets import Target


class LMTarget(Target):
    """Per-example target of a causal LM.  batch: {input_ids [B, T], attention_mask [B, T]?, labels [B, T]?}.

    `loss`: mean next-token cross-entropy over the example's labelled tokens (label -100 ignored;
    labels default to input_ids; padding, attention_mask 0, is always set to -100). `margin`: logp - log(1 - exp(logp)),
    logp = -loss. The token mask is the attention mask (1 = real token). TRAK's Q = 1 - exp(logp), the same logp.
    The model is called with use_cache=False (no key/value cache is built; torch.func can vmap the call).
    """

    def token_mask(self, batch: Mapping) -> torch.Tensor | None:
        return batch.get("attention_mask")

    @staticmethod
    def _labels(batch: Mapping) -> torch.Tensor:
        """labels [B, T] with padding set to -100 (padding never counts, even when the labels do not mark it)."""
        ids, mask = batch["input_ids"], batch.get("attention_mask")
        labels = batch.get("labels", ids)
        if mask is not None:
            labels = labels.masked_fill(mask.to(labels.device) == 0, -100)
        return labels

    def check(self, batch: Mapping) -> None:
        counts = (self._labels(batch)[:, 1:] != -100).sum(dim=1)
        if bool((counts == 0).any()):
            raise GrassError(f"example {int((counts == 0).nonzero()[0, 0])} of the batch has no labelled "
                             f"token (all labels -100 or padding): its mean token loss is undefined")

    def _logp(self, model: nn.Module, batch: Mapping) -> torch.Tensor:
        """Mean next-token log-probability of each example's labelled tokens -> [B]."""
        ids, mask = batch["input_ids"], batch.get("attention_mask")
        labels = self._labels(batch)
        logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits  # [B, T, V]
        # token t predicts token t + 1
        logits, labels = logits[:, :-1].float(), labels[:, 1:].to(logits.device)
        # flat [B*(T-1), V] rows: log-softmax over a strided [B, V, T-1] view is ~2.5x slower on CPU
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100,
                             reduction="none").view(labels.shape)  # [B, T-1]
        counts = (labels != -100).sum(dim=1)
        return -ce.sum(dim=1) / counts

    def value(self, model: nn.Module, batch: Mapping) -> torch.Tensor:
        """-> targets [B]."""
        logp = self._logp(model, batch)
        if self.kind == "loss":
            return -logp
        return log_odds(logp)

    def trak_weight(self, model: nn.Module, batch: Mapping) -> torch.Tensor:
        """Q = 1 - exp(logp) per example [B]."""
        return -torch.expm1(self._logp(model, batch))


class ClassifierTarget(Target):
    """Per-example target of a classifier.  batch: (x [B, ...], y [B]); `loss` or `margin` (grass.outputs).

    TRAK's Q = 1 - p(y | x) (grass.outputs.true_class_prob), p the probability the margin is the log-odds of.
    """

    def __init__(self, kind: str = "loss") -> None:
        super().__init__(kind)
        self.fn = output_function(kind)

    def value(self, model: nn.Module, batch) -> torch.Tensor:
        x, y = batch
        return self.fn(model(x), y)

    def trak_weight(self, model: nn.Module, batch) -> torch.Tensor:
        x, y = batch
        return 1.0 - true_class_prob(model(x), y)


def select_linear_layers(model: nn.Module, patterns: Sequence[str] = ("*",)) -> dict[str, nn.Linear]:
    """Every nn.Linear whose name matches a pattern (fnmatch), in named_modules order."""
    patterns = [str(p) for p in patterns]
    all_linear = {n: m for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    chosen = {n: m for n, m in all_linear.items() if any(fnmatch(n, p) for p in patterns)}
    if not chosen:
        some = ", ".join(list(all_linear)[:8]) or "none"
        raise GrassError(f"layer patterns {patterns} match no nn.Linear; linear layers are: {some}"
                         f" (GPT-2 needs grass.models.conv1d.convert_conv1d_to_linear first)")
    return chosen


def layer_dims(model: nn.Module, patterns: Sequence[str] = ("*",)) -> dict[str, tuple[int, int]]:
    """{layer name: (O, I')} of the selected layers, I' = in_features + 1 when the layer has a bias."""
    return {n: (m.out_features, m.in_features + int(m.bias is not None))
            for n, m in select_linear_layers(model, patterns).items()}


@contextmanager
def _frozen_eval(model: nn.Module) -> Iterator[None]:
    """Eval mode and requires_grad off on every parameter; both restored afterwards."""
    modes = {m: m.training for m in model.modules()}
    flags = {p: p.requires_grad for p in model.parameters()}
    model.eval()
    for p in flags:
        p.requires_grad_(False)
    try:
        with torch.enable_grad():
            yield
    finally:
        for m, training in modes.items():
            m.training = training
        for p, flag in flags.items():
            p.requires_grad_(flag)


def full_gradient(a: torch.Tensor, delta: torch.Tensor, token_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Materialised G_b = sum_t delta_{b,t} a_{b,t}^T: a [B, T, I'], delta [B, T, O] -> [B, O * I'] float32."""
    if token_mask is not None:
        delta = delta * token_mask.unsqueeze(-1).to(delta.dtype)
    g = torch.einsum("bto,bti->boi", delta.float(), a.float())
    return g.reshape(g.shape[0], -1)


class LinearCapture:
    """Per-example features of selected nn.Linear layers: capture(batch) -> {layer name: [B, K_l] float32}.

    model: any nn.Module with nn.Linear layers (convert GPT-2's Conv1D first). target: an LMTarget or
    ClassifierTarget (or any object with `__call__(model, batch) -> [B]` and `token_mask(batch)`).
    patterns: fnmatch patterns on module names; ["*"] selects every Linear (lm_head included).
    compressors: {layer name: FactorizedCompressor} covering exactly the selected layers, or None
    to return the full gradient [B, O * I'] (small layers and tests only).
    Inputs of any shape [B, ..., I] are read as [B, T, I] (an MLP's [B, I] is T = 1).
    """

    def __init__(self, model: nn.Module, target: Any, patterns: Sequence[str] = ("*",),
                 compressors: Mapping[str, FactorizedCompressor] | None = None) -> None:
        self.model, self.target = model, target
        self.layers = select_linear_layers(model, patterns)
        self.compressors = self._checked(compressors)

    def _checked(self, compressors):
        if compressors is None:
            return None
        missing = [n for n in self.layers if n not in compressors]
        extra = [n for n in compressors if n not in self.layers]
        if missing or extra:
            raise GrassError(f"compressors must cover exactly the selected layers; missing {missing}, "
                             f"not selected {extra}")
        for name, (out_dim, in_dim) in layer_dims(self.model, list(self.layers)).items():
            comp = compressors[name]
            if (comp.grad_dim, comp.in_dim) != (out_dim, in_dim):
                raise GrassError(f"compressor for layer '{name}' was built for (O, I') = "
                                 f"({comp.grad_dim}, {comp.in_dim}) but the layer has ({out_dim}, {in_dim})")
        return dict(compressors)

    @property
    def feature_dims(self) -> dict[str, int]:
        """{layer name: K_l}, the width of each captured feature row."""
        if self.compressors is None:
            return {n: o * i for n, (o, i) in layer_dims(self.model, list(self.layers)).items()}
        return {n: c.feature_dim for n, c in self.compressors.items()}

    @contextmanager
    def _hooks(self, records: dict) -> Iterator[None]:
        """Forward hooks that keep (input, output, output version) of each selected layer in `records`."""
        def make(name: str):
            def hook(module, inputs, output):
                if name in records:
                    raise GrassError(f"layer '{name}' ran twice in one forward pass; a reused layer's "
                                     f"per-example gradient is not supported by linear capture")
                if not output.requires_grad:
                    # weights frozen and no grad upstream: start the graph at a new leaf; the clone
                    # keeps later in-place ops legal, so the version check below can name them
                    output = output.detach().requires_grad_(True).clone()
                records[name] = (inputs[0].detach(), output, output._version)
                return output
            return hook

        handles = [m.register_forward_hook(make(n)) for n, m in self.layers.items()]
        try:
            yield
        finally:
            for h in handles:
                h.remove()

    def _output_grads(self, batch) -> tuple[dict, tuple[torch.Tensor, ...]]:
        """Run the forward pass and return (records, delta per selected layer) for sum_b f_b."""
        records: dict = {}
        with self._hooks(records):
            targets = self.target(self.model, batch)  # [B]
        bad = (~torch.isfinite(targets)).nonzero()
        if bad.numel():
            raise GrassError(f"non-finite target for example {int(bad[0, 0])} of the batch")
        for name in self.layers:
            if name not in records:
                raise GrassError(f"layer '{name}' was not called in the forward pass; exclude it from the patterns")
            if records[name][1]._version != records[name][2]:
                raise GrassError(f"the output of layer '{name}' was modified in place after the layer "
                                 f"(e.g. an inplace activation); its gradient would be wrong: disable inplace")
        outputs = [records[n][1] for n in self.layers]
        # materialize_grads: a selected layer that does not reach the targets has gradient 0
        return records, torch.autograd.grad(targets.sum(), outputs, materialize_grads=True)

    def _features(self, name: str, x: torch.Tensor, delta: torch.Tensor, mask: torch.Tensor | None):
        layer = self.layers[name]
        a = x.reshape(x.shape[0], -1, layer.in_features)  # [B, T, I]
        if layer.bias is not None:
            a = torch.cat([a, a.new_ones(*a.shape[:2], 1)], dim=2)  # [B, T, I + 1]
        d = delta.reshape(x.shape[0], -1, layer.out_features)  # [B, T, O]
        if mask is not None and tuple(mask.shape) != tuple(a.shape[:2]):
            raise GrassError(f"token mask {list(mask.shape)} does not fit layer '{name}' tokens {list(a.shape[:2])}")
        if self.compressors is None:
            return full_gradient(a, d, mask)
        return self.compressors[name](a, d, mask)

    def capture(self, batch) -> dict[str, torch.Tensor]:
        """batch (as the target reads it) -> {layer name: features [B, K_l] float32}, on the model's device."""
        with _frozen_eval(self.model):
            records, deltas = self._output_grads(batch)
            mask = self.target.token_mask(batch)
            out = {}
            for name, delta in zip(self.layers, deltas):
                rows = self._features(name, records[name][0], delta, mask)
                bad = (~torch.isfinite(rows)).any(dim=1).nonzero()
                if bad.numel():
                    raise GrassError(f"non-finite gradient in layer '{name}' for example {int(bad[0, 0])} of the batch")
                out[name] = rows
        return out
