"""Per-example whole-model gradients with torch.func, for any task (SPEC section 2.2, capture `flat`).

g_b = d f(model, example_b) / d theta, with f the task's target (grass.targets.Target: classification margin
or loss, an LM block's margin, ...), flattened and concatenated over the trainable parameters in
named_parameters order (each parameter row-major). torch.func.vmap(grad(f)) runs over the batch dimension of
every tensor of the batch (a tuple (x, y) or a dict {input_ids, attention_mask, ...}), one example at a time
with a batch dimension of 1, in eval mode (dropout off, BatchNorm on its running statistics), so each row is
exactly what a one-example autograd loop gives.

Layer-wise path (chosen automatically, `grad_path`): for a linear stack (grass.models.linear_stack: Linear layers,
elementwise activations, Dropout, Flatten) every trainable parameter is a Linear's weight or bias, and example
b's gradient of a Linear is the outer product of its output gradient delta_b [O] and its input a_b [I] (summed over
the positions of a [B, T, I] input), the bias gradient delta_b itself. One forward + autograd.grad of sum_b f_b
w.r.t. the Linear outputs (eval mode: examples independent) gives every delta; the outer products are written
straight into the chunk's rows [c, p], same layout as the torch.func path. Same values (tested), about 3x less CPU
on the MNIST MLP (issue #16).

Memory: one vmap call over c examples holds c gradients [c, p] float32 plus their activations. The chunk c
is hardware.grad_chunk_size, bounded by hardware.grad_memory_gb when that is set (`chunk_for_budget`: c x p x
4 bytes x hardware.grad_memory_factor <= the budget), so 4.8 M parameters x thousands of examples run a
chunk at a time; a budget too small for one example is one GrassError before any work.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterable, Iterator

import torch
from torch import nn
from torch.func import functional_call, grad, vmap
from torch.utils._pytree import tree_flatten, tree_map
from tqdm import tqdm

from grass.errors import GrassError
from grass.models.linear_stack import linear_stack
from grass.targets import Target

BYTES_PER_FLOAT = 4
LAYERWISE = "layerwise"  # grad_path: Linear outer products
TORCH_FUNC = "torch.func"  # grad_path: vmap(grad) of the target


def trainable_params(model: nn.Module) -> dict[str, torch.Tensor]:
    """Detached trainable parameters (requires_grad only), in named_parameters order."""
    return {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}


def num_params(model: nn.Module) -> int:
    """p = number of trainable scalars, the width of a flat gradient row."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def chunk_for_budget(p: int, chunk_size: int, memory_gb: float | None, factor: float) -> int:
    """Examples per vmap call: chunk_size, or fewer so that chunk x p x 4 bytes x factor <= memory_gb GB.

    memory_gb None: no budget (chunk_size as is). GrassError when even one example does not fit.
    """
    if memory_gb is None:
        return chunk_size
    per_example = p * BYTES_PER_FLOAT * factor
    fit = int(memory_gb * 1e9 // per_example)
    if fit < 1:
        raise GrassError(
            f"hardware.grad_memory_gb={memory_gb} does not hold one example's whole-model gradient: p = {p} "
            f"parameters x {BYTES_PER_FLOAT} bytes x hardware.grad_memory_factor={factor} = "
            f"{per_example / 1e9:.3g} GB; raise hardware.grad_memory_gb to at least {per_example / 1e9:.3g} or "
            f"choose a factorized compressor (per linear layer, never the whole gradient)")
    return min(chunk_size, fit)


def batch_size_for_budget(p: int, batch_size: int, chunk: int, memory_gb: float | None) -> int:
    """Rows [b, p] float32 kept per batch before compression: batch_size, or fewer to fit memory_gb (>= chunk)."""
    if memory_gb is None:
        return batch_size
    return min(batch_size, max(chunk, int(memory_gb * 1e9 // (p * BYTES_PER_FLOAT))))


def grad_sizes(hw, p: int) -> tuple[int, int]:
    """(examples per batch, examples per vmap chunk) for p-parameter gradients under the hardware group `hw`:
    grad_batch_size / grad_chunk_size bounded by grad_memory_gb; GrassError when one example does not fit."""
    chunk = chunk_for_budget(p, hw.grad_chunk_size, hw.grad_memory_gb, hw.grad_memory_factor)
    return batch_size_for_budget(p, hw.grad_batch_size, chunk, hw.grad_memory_gb), chunk


def _device(model: nn.Module) -> torch.device:
    for t in list(model.parameters()) + list(model.buffers()):
        return t.device
    return torch.device("cpu")


@contextmanager
def _eval_mode(model: nn.Module):
    """Eval mode for the duration (no dropout, BatchNorm running stats), previous modes restored after."""
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        yield
    finally:
        for m, training in modes.items():
            m.training = training


class _Functional:
    """The model as a target sees it inside vmap: calling it runs functional_call with the given tensors."""

    def __init__(self, model: nn.Module, tensors: dict[str, torch.Tensor]) -> None:
        self.model, self.tensors = model, tensors

    def __call__(self, *args, **kwargs):
        return functional_call(self.model, self.tensors, args, kwargs)


def batch_len(batch: Any) -> int:
    """B, the batch dimension shared by every tensor of a tuple / dict batch; GrassError if they disagree."""
    leaves = [t for t in tree_flatten(batch)[0] if isinstance(t, torch.Tensor)]
    sizes = {int(t.shape[0]) for t in leaves if t.dim() > 0}
    if len(sizes) != 1 or len(leaves) != len(tree_flatten(batch)[0]):
        raise GrassError(f"a flat-capture batch must be tensors sharing the batch dimension first; got sizes "
                         f"{sorted(sizes)} over {len(tree_flatten(batch)[0])} leaves")
    return sizes.pop()


def _slice(batch: Any, start: int, stop: int) -> Any:
    return tree_map(lambda t: t[start:stop], batch)


def check_vmappable(model: nn.Module) -> None:
    """GrassError for a Hugging Face model whose attention kernel torch.func.vmap cannot batch (sdpa, flash: their
    mask handling branches on tensor values); the eager attention computes the same function and vmaps."""
    attention = getattr(getattr(model, "config", None), "_attn_implementation", None)
    if attention not in (None, "eager"):
        raise GrassError(f"whole-model per-example gradients (torch.func.vmap) need the model's eager attention, but "
                         f"it uses attn_implementation={attention!r}; load it with attn_implementation='eager' (CLI: "
                         "model.attn_implementation=eager), or use a factorized compressor (factgrass, logra, ...)")


def grad_path(model: nn.Module) -> str:
    """How flat_grads computes this model's rows: LAYERWISE for a linear stack, else TORCH_FUNC."""
    return LAYERWISE if linear_stack(model) is not None else TORCH_FUNC


def describe_grad_path(model: nn.Module) -> str:
    """One log line's worth: which path runs and why."""
    if grad_path(model) == LAYERWISE:
        n = sum(isinstance(m, nn.Linear) for m in model.modules())
        return f"layer-wise outer products ({n} Linear layers, {type(model).__name__} is a linear stack)"
    return f"torch.func vmap(grad) ({type(model).__name__} is not a linear stack of Linear layers)"


def flat_grads(model: nn.Module, target: Target, batch: Any, chunk_size: int = 256,
               index_offset: int = 0, path: str | None = None) -> torch.Tensor:
    """Per-example gradient of `target` over `batch` (as the task's batches yield it) -> [B, p].

    Returned on CPU as float32. target.check(batch) runs first, outside vmap. A non-finite row raises
    GrassError naming its global example index (index_offset + position in the batch); it is never patched.
    path: LAYERWISE | TORCH_FUNC; None = grad_path(model). LAYERWISE on a model that is not a linear stack is a
    GrassError (never a silent switch).
    """
    params = trainable_params(model)
    if not params:
        raise GrassError("flat_grads: the model has no trainable parameters")
    path = grad_path(model) if path is None else path
    if path == LAYERWISE:
        if linear_stack(model) is None:
            raise GrassError(f"flat_grads(path={LAYERWISE!r}): {type(model).__name__} is not a linear stack "
                             "(grass.models.linear_stack); use path='torch.func'")
        return _layerwise_grads(model, params, target, batch, chunk_size, index_offset)
    if path != TORCH_FUNC:
        raise GrassError(f"flat_grads: path={path!r}; choose {LAYERWISE!r} or {TORCH_FUNC!r}")
    check_vmappable(model)
    # Frozen parameters and buffers enter as constants so vmap never differentiates them.
    consts = {n: p.detach() for n, p in model.named_parameters() if not p.requires_grad}
    consts.update({n: b for n, b in model.named_buffers()})
    n = batch_len(batch)
    target.check(batch)

    def f(theta: dict[str, torch.Tensor], example: Any) -> torch.Tensor:
        # vmap strips the batch dim; the target reads a batch, so put back a batch of 1.
        one = tree_map(lambda t: t.unsqueeze(0), example)
        return target.value(_Functional(model, {**theta, **consts}), one).squeeze(0)

    per_example = vmap(grad(f), in_dims=(None, 0))
    out = []
    with _eval_mode(model):
        for s in range(0, n, chunk_size):
            g = per_example(params, _slice(batch, s, s + chunk_size))
            rows = torch.cat([g[name].reshape(g[name].shape[0], -1) for name in params], dim=1).float()
            _check_finite(rows, target, index_offset + s)
            out.append(rows.cpu())
    return torch.cat(out, dim=0) if out else torch.zeros(0, num_params(model))


def _check_finite(rows: torch.Tensor, target: Target, first: int) -> None:
    bad = (~torch.isfinite(rows)).any(dim=1).nonzero()
    if bad.numel():
        raise GrassError(f"non-finite gradient of target {target.kind!r} for example {first + int(bad[0, 0])} "
                         f"({bad.numel()} non-finite rows in this chunk)")


def _layerwise_grads(model: nn.Module, params: dict[str, torch.Tensor], target: Target, batch: Any,
                     chunk_size: int, index_offset: int) -> torch.Tensor:
    """flat_grads of a linear stack as Linear outer products (module docstring) -> [B, p] CPU float32.

    Per chunk of c examples: one forward with hooks keeping each Linear's input a [c, ..., I] and output, one
    autograd.grad of sum_b f_b w.r.t. the outputs (delta [c, ..., O]); weight rows = einsum(delta, a) [c, O, I]
    and bias rows = delta summed over positions [c, O], written in named_parameters order into rows [c, p].
    Memory: the rows of one chunk plus the stack's activations; no parameter .grad is written.
    """
    owner = {}  # parameter name -> (Linear, "weight" | "bias")
    for name in params:
        module_name, _, attr = name.rpartition(".")
        owner[name] = (model.get_submodule(module_name), attr)
    linears = list(dict.fromkeys(m for m, _ in owner.values()))  # Linears with a trainable parameter, in order
    p = sum(t.numel() for t in params.values())
    n = batch_len(batch)
    target.check(batch)
    seen: dict[nn.Module, tuple[torch.Tensor, torch.Tensor]] = {}

    def keep(module, args, output):
        seen[module] = (args[0].detach(), output)

    hooks = [m.register_forward_hook(keep) for m in linears]
    out = torch.empty(n, p, dtype=torch.float32)
    try:
        with _eval_mode(model), torch.enable_grad():
            for s in range(0, n, chunk_size):
                seen.clear()
                f = target.value(model, _slice(batch, s, s + chunk_size))
                c = int(f.shape[0])
                deltas = torch.autograd.grad(f.sum(), [seen[m][1] for m in linears])
                delta = {m: d.detach().reshape(c, -1, d.shape[-1]) for m, d in zip(linears, deltas)}  # [c, T, O]
                rows, col = out[s:s + c], 0
                for name, t in params.items():
                    module, attr = owner[name]
                    d = delta[module]
                    if attr == "weight":
                        a = seen[module][0].reshape(c, -1, module.in_features)  # [c, T, I]
                        view = rows[:, col:col + t.numel()].view(c, *t.shape)
                        if d.shape[1] == 1 and d.dtype == view.dtype and d.device == view.device:
                            torch.mul(d[:, 0, :, None], a[:, 0, None, :], out=view)  # one pass, no temporary
                        else:
                            view.copy_(torch.einsum("bto,bti->boi", d, a))
                    else:
                        rows[:, col:col + t.numel()] = d.sum(dim=1)
                    col += t.numel()
                _check_finite(rows, target, index_offset + s)
    finally:
        for h in hooks:
            h.remove()
    return out


def iter_flat_grads(model: nn.Module, target: Target, batches: Iterable[Any], chunk_size: int = 256,
                    progress: bool | str = False, total: int | None = None) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield (start, grads [b, p]) for each batch of `batches` in order; start = examples before it."""
    if progress:
        batches = tqdm(batches, desc=progress if isinstance(progress, str) else "flat grads",
                       total=total, unit="batch", leave=False, disable=None)  # off in logs (not a tty)
    start = 0
    for batch in batches:
        rows = flat_grads(model, target, batch, chunk_size=chunk_size, index_offset=start)
        yield start, rows
        start += rows.shape[0]


def trak_weights(model: nn.Module, target: Target, batches: Iterable[Any], chunk_size: int = 1024) -> torch.Tensor:
    """TRAK's Q = 1 - p per example (target.trak_weight), eval mode, no grad -> [N] CPU float32."""
    out = []
    with _eval_mode(model), torch.no_grad():
        for batch in batches:
            for s in range(0, batch_len(batch), chunk_size):
                out.append(target.trak_weight(model, _slice(batch, s, s + chunk_size)).float().cpu())
    return torch.cat(out) if out else torch.zeros(0)
