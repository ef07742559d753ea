"""The paper's MLP classifier (MNIST: 784-128-64-10 with dropout 0.1)."""

from typing import Sequence

from torch import nn


class MLP(nn.Sequential):
    """x [B, in_features] (or [B, 1, 28, 28], flattened) -> logits [B, num_classes]."""

    def __init__(self, in_features: int, num_classes: int, hidden: Sequence[int] = (128, 64), dropout: float = 0.1):
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, int(h)), nn.ReLU(), nn.Dropout(dropout)]
            width = int(h)
        layers.append(nn.Linear(width, num_classes))
        super().__init__(*layers)
