"""Replace transformers' `Conv1D` (GPT-2's linear layer, weight stored [I, O]) by `nn.Linear` (SPEC 2.1).

Linear-layer capture hooks `nn.Linear` only, so GPT-2 must be converted first. The replacement
computes the same function: Linear.weight [O, I] = Conv1D.weight^T, same bias.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import skip_init
from transformers.pytorch_utils import Conv1D


def conv1d_as_linear(conv: Conv1D) -> nn.Linear:
    """An nn.Linear equal to `conv`: weight [I, O] -> [O, I] (transposed copy), bias [O] copied."""
    in_features, out_features = conv.weight.shape
    weight = conv.weight.detach()
    # skip_init: the weights are overwritten anyway, and a default init would consume the global RNG
    linear = skip_init(nn.Linear, in_features, out_features, bias=conv.bias is not None,
                       device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        linear.weight.copy_(weight.t())
        if conv.bias is not None:
            linear.bias.copy_(conv.bias.detach())
    linear.weight.requires_grad_(conv.weight.requires_grad)
    if conv.bias is not None:
        linear.bias.requires_grad_(conv.bias.requires_grad)
    linear.train(conv.training)
    return linear


def convert_conv1d_to_linear(model: nn.Module) -> nn.Module:
    """Swap every Conv1D submodule of `model` for an equal nn.Linear, in place; returns `model`.

    Module names are unchanged (e.g. `transformer.h.0.attn.c_attn`), so layer patterns and seeds
    derived from names are the same before and after conversion.
    """
    # collect first: replacing children while iterating named_modules would skip or revisit modules
    targets = [(name, m) for name, m in model.named_modules() if isinstance(m, Conv1D)]
    for name, conv in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, conv1d_as_linear(conv))
    return model
