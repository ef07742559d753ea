"""grass.models.linear_stack: which models the ensemble trainer and the layer-wise gradients accept."""

from torch import nn

from grass.models.linear_stack import linear_stack, why_not_linear_stack
from grass.models.mlp import MLP
from grass.models.resnet9 import ResNet9


class _OwnForward(nn.Sequential):
    def forward(self, x):
        return super().forward(x) * 2


class _MyLinear(nn.Linear):
    pass


def test_linear_stacks():
    mlp = MLP(8, 3, hidden=(4,), dropout=0.1)
    assert linear_stack(mlp) == list(mlp) and why_not_linear_stack(mlp) is None
    assert linear_stack(nn.Sequential(nn.Linear(3, 2), nn.GELU(), nn.Linear(2, 2))) is not None


def test_not_linear_stacks_say_why():
    cases = {
        "BatchNorm1d": nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2)),
        "_MyLinear": nn.Sequential(_MyLinear(3, 2)),  # a subclass may change forward: exact types only
        "Sequential's forward": _OwnForward(nn.Linear(3, 2)),
        "no nn.Linear": nn.Sequential(nn.ReLU()),
        "ResNet9 is not": ResNet9(in_features=64, num_classes=2, width=4, in_channels=1),
    }
    for words, model in cases.items():
        assert linear_stack(model) is None
        assert words in why_not_linear_stack(model), words
