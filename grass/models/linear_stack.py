"""Which models are a plain stack of Linear layers: the rule the ensemble trainer and layer-wise gradients share.

A *linear stack* is an `nn.Sequential` (or a subclass that keeps Sequential's forward, like grass.models.mlp.MLP)
whose every module is exactly one of: `nn.Linear`, an elementwise activation (ReLU, GELU, Tanh, ...), `nn.Dropout`
or `nn.Flatten`, with at least one Linear. For such a model
  - every trainable parameter is a Linear's weight or bias and each Linear runs once per forward, so an example's
    gradient of a Linear is the outer product of its output gradient and its input (grass.capture.flat,
    layer-wise path);
  - no module keeps state between examples or steps (no BatchNorm statistics), and dropout is the only randomness,
    so many copies train at once with stacked parameters (grass.models.ensemble_module).
Anything else (convolutions, attention, BatchNorm, a custom forward) is not a linear stack: callers use their
general path (torch.func per-example gradients, one Lightning Trainer per model) and say so.
"""

from __future__ import annotations

from torch import nn

# elementwise maps with no parameters: a Linear's input is the activation of the previous Linear's output
ELEMENTWISE = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.ELU, nn.Softplus,
               nn.Mish, nn.Identity)
ALLOWED = (nn.Linear, nn.Dropout, nn.Flatten, *ELEMENTWISE)


def linear_stack(model: nn.Module) -> list[nn.Module] | None:
    """The model's modules in order when it is a linear stack (module docstring), else None."""
    if not isinstance(model, nn.Sequential) or type(model).forward is not nn.Sequential.forward:
        return None
    layers = list(model)
    if not layers or any(type(m) not in ALLOWED for m in layers):  # exact types: a subclass may change forward
        return None
    if not any(isinstance(m, nn.Linear) for m in layers):
        return None
    return layers


def why_not_linear_stack(model: nn.Module) -> str | None:
    """None for a linear stack, else a short reason naming what is in the way (for logs and errors)."""
    if not isinstance(model, nn.Sequential) or type(model).forward is not nn.Sequential.forward:
        return f"{type(model).__name__} is not an nn.Sequential with Sequential's forward"
    others = sorted({type(m).__name__ for m in model if type(m) not in ALLOWED})
    if others:
        return f"{type(model).__name__} holds {', '.join(others)} (a linear stack holds only Linear, elementwise " \
               f"activations, Dropout and Flatten)"
    if linear_stack(model) is None:
        return f"{type(model).__name__} has no nn.Linear"
    return None
