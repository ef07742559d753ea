"""The paper's ResNet-9 (GraSS section 5.1, CIFAR-2) with a width knob and any number of input channels.

Built from dattri's `BasicBlock` (dattri.benchmark.models.resnet9.resnet9), in the same layout as dattri's
`ResNet9`: conv(in -> w) + BN + dropout, then three one-block stages w -> 2w (stride 1), 2w -> 4w (stride 2),
4w -> 8w (stride 2), global average pooling and a linear head. At width 64 with 3 input channels and 2
classes it is dattri's benchmark model (4,825,154 parameters): same state_dict keys and shapes, same
outputs, so dattri's benchmark checkpoints load into it. Parameters grow as ~1,180 * width^2.
"""

import math

import torch
import torch.nn.functional as F
from dattri.benchmark.models.resnet9.resnet9 import BasicBlock
from torch import nn

from grass.errors import GrassError


class ResNet9(nn.Module):
    """x [B, in_channels, H, W], or [B, in_channels * S * S] (square S x S images, channel-major, as grass's
    image datasets store them) -> logits [B, num_classes].

    in_features: input values per example (from the dataset); it must be in_channels times a square.
    width: channels of the first convolution (dattri's / the paper's model: 64).
    dropout: dropout rate after every convolution (the paper's 0.1; dattri's benchmark trains with 0.0).
    Raises GrassError for a width < 1 or an input size that is not in_channels square images.
    """

    def __init__(self, in_features: int, num_classes: int, width: int = 64, in_channels: int = 3,
                 dropout: float = 0.1):
        super().__init__()
        if int(width) < 1 or int(in_channels) < 1:
            raise GrassError(f"model resnet9: width and in_channels must be >= 1, got {width} and {in_channels}")
        side = math.isqrt(int(in_features) // int(in_channels)) if in_features % in_channels == 0 else 0
        if side < 1 or int(in_channels) * side * side != int(in_features):
            raise GrassError(
                f"model resnet9: {in_features} input values are not {in_channels}-channel square images; "
                "set model.in_channels to the dataset's channel count (cifar2: 3, fmnist2: 1)")
        self.in_channels, self.side, w = int(in_channels), side, int(width)
        self.conv1 = nn.Conv2d(self.in_channels, w, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        self.dropout1 = nn.Dropout(dropout)
        self.layer1 = nn.Sequential(BasicBlock(w, 2 * w, 1, dropout))
        self.layer2 = nn.Sequential(BasicBlock(2 * w, 4 * w, 2, dropout))
        self.layer3 = nn.Sequential(BasicBlock(4 * w, 8 * w, 2, dropout))
        self.linear = nn.Linear(8 * w * BasicBlock.expansion, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            x = x.reshape(x.shape[0], self.in_channels, self.side, self.side)
        out = self.dropout1(F.relu(self.bn1(self.conv1(x))))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.adaptive_avg_pool2d(out, (1, 1)).flatten(1)
        return self.linear(out)
