"""Per-example whole-model gradients with torch.func (SPEC section 2.2, capture `flat`).

For small classifiers (MLP, ResNet-9): g_b = d f(model(x_b), y_b) / d theta, flattened and concatenated
over the trainable parameters in named_parameters order (each parameter row-major).
"""

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn
from torch.func import functional_call, grad, vmap
from tqdm import tqdm

from grass.errors import GrassError
from grass.outputs import output_function, true_class_prob


def trainable_params(model: nn.Module) -> dict[str, torch.Tensor]:
    """Detached trainable parameters (requires_grad only), in named_parameters order."""
    return {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}


def num_params(model: nn.Module) -> int:
    """p = number of trainable scalars, the width of a flat gradient row."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


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


def flat_grads(model: nn.Module, x: torch.Tensor, y: torch.Tensor, target: str,
               chunk_size: int = 256, index_offset: int = 0) -> torch.Tensor:
    """Per-example gradient of output function `target` ("loss" | "margin").  x [B, ...], y [B] -> [B, p].

    Returned on CPU as float32. A non-finite row raises GrassError naming its global example index
    (index_offset + position in x); it is never patched with nan_to_num.
    """
    f_out = output_function(target)
    params = trainable_params(model)
    if not params:
        raise GrassError("flat_grads: the model has no trainable parameters")
    # Frozen parameters and buffers enter as constants so vmap never differentiates them.
    consts = {n: p.detach() for n, p in model.named_parameters() if not p.requires_grad}
    consts.update({n: b for n, b in model.named_buffers()})
    device = _device(model)

    def f(theta: dict[str, torch.Tensor], xi: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        # vmap strips the batch dim; the model expects one, so add a batch of 1.
        logits = functional_call(model, {**theta, **consts}, (xi.unsqueeze(0),))
        return f_out(logits, label.unsqueeze(0)).squeeze(0)

    per_example = vmap(grad(f), in_dims=(None, 0, 0))
    out = []
    with _eval_mode(model):
        for s in range(0, x.shape[0], chunk_size):
            g = per_example(params, x[s:s + chunk_size].to(device), y[s:s + chunk_size].to(device))
            rows = torch.cat([g[n].reshape(g[n].shape[0], -1) for n in params], dim=1).float()
            bad = (~torch.isfinite(rows)).any(dim=1).nonzero()
            if bad.numel():
                idx = index_offset + s + int(bad[0, 0])
                raise GrassError(f"non-finite gradient of target {target!r} for example {idx} "
                                 f"({bad.numel()} non-finite rows in this chunk)")
            out.append(rows.cpu())
    return torch.cat(out, dim=0) if out else torch.zeros(0, num_params(model))


def iter_flat_grads(model: nn.Module, x: torch.Tensor, y: torch.Tensor, target: str,
                    batch_size: int = 256, chunk_size: int = 256,
                    progress: bool | str = False) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield (start, grads [b, p]) over x [N, ...], y [N] in order, batch_size rows at a time."""
    n = x.shape[0]
    starts = range(0, n, batch_size)
    if progress:
        starts = tqdm(starts, desc=progress if isinstance(progress, str) else "flat grads",
                      total=len(starts), unit="batch", leave=False)
    for s in starts:
        yield s, flat_grads(model, x[s:s + batch_size], y[s:s + batch_size], target,
                            chunk_size=chunk_size, index_offset=s)


def true_class_probs(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """p(y_i | x_i) in eval mode, no grad (TRAK's Q = 1 - p).  x [N, ...], y [N] -> [N] CPU float32."""
    device = _device(model)
    out = []
    with _eval_mode(model), torch.no_grad():
        for s in range(0, x.shape[0], batch_size):
            logits = model(x[s:s + batch_size].to(device))
            out.append(true_class_prob(logits, y[s:s + batch_size].to(device)).float().cpu())
    return torch.cat(out) if out else torch.zeros(0)
