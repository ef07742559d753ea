"""grass's ResNet-9: dattri's benchmark model at full width; per-example gradients with BatchNorm and dropout."""

import pytest
import torch
from dattri.benchmark.models.resnet9.resnet9 import ResNet9 as DattriResNet9

from grass.capture.flat import flat_grads, num_params
from grass.capture.linear import ClassifierTarget
from grass.errors import GrassError
from grass.models.resnet9 import ResNet9
from grass.outputs import output_function


def _randomise_batchnorm(model: torch.nn.Module, seed: int) -> None:
    """Non-trivial running statistics and affine parameters, so eval-mode BatchNorm is really exercised."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(0.1 * torch.randn(m.num_features, generator=g))
            m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=g))
            m.weight.data.copy_(1 + 0.1 * torch.randn(m.num_features, generator=g))
            m.bias.data.copy_(0.1 * torch.randn(m.num_features, generator=g))


def test_full_width_is_dattris_model():
    torch.manual_seed(0)
    theirs = DattriResNet9(num_classes=2, dropout_rate=0.1).eval()
    _randomise_batchnorm(theirs, 1)
    ours = ResNet9(in_features=3 * 32 * 32, num_classes=2)  # width 64, 3 channels: the yaml's defaults
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}
    assert num_params(ours) == num_params(theirs) == 4_825_154
    ours.load_state_dict(theirs.state_dict())  # strict: a dattri benchmark checkpoint loads as is
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = theirs(x)
        torch.testing.assert_close(ours.eval()(x), expected, rtol=0, atol=0)
        torch.testing.assert_close(ours(x.reshape(3, -1)), expected, rtol=0, atol=0)  # flat rows, as datasets store


def test_width_and_channels_scale_every_stage():
    model = ResNet9(in_features=14 * 14, num_classes=2, width=12, in_channels=1)
    widths = [model.conv1.out_channels] + [getattr(model, f"layer{i}")[0].conv2.out_channels for i in (1, 2, 3)]
    assert widths == [12, 24, 48, 96] and model.conv1.in_channels == 1
    assert model(torch.randn(2, 14 * 14)).shape == (2, 2)
    assert num_params(model) == 170_678


@pytest.mark.parametrize("in_features, in_channels", [(64, 3), (3 * 30, 3), (0, 1)])
def test_inputs_that_are_not_square_images_are_refused(in_features, in_channels):
    with pytest.raises(GrassError, match="model.in_channels"):
        ResNet9(in_features=in_features, num_classes=2, in_channels=in_channels)


@pytest.mark.parametrize("target", ["margin", "loss"])
def test_per_example_gradients_match_a_one_example_loop(target):
    """grass.capture.flat (vmap over examples) == autograd on each example alone, BatchNorm in eval, dropout off."""
    torch.manual_seed(0)
    model = ResNet9(in_features=2 * 8 * 8, num_classes=2, width=4, in_channels=2, dropout=0.5)
    _randomise_batchnorm(model, 3)
    model.train()  # flat_grads must switch to eval itself (BatchNorm running stats, no dropout)
    g = torch.Generator().manual_seed(4)
    x, y = torch.randn(6, 2 * 8 * 8, generator=g), torch.randint(0, 2, (6,), generator=g)
    got = flat_grads(model, ClassifierTarget(target), (x, y), chunk_size=4)
    assert model.training  # mode restored

    model.eval()
    f, params = output_function(target), [p for p in model.parameters() if p.requires_grad]
    rows = []
    for i in range(len(y)):
        out = f(model(x[i:i + 1]), y[i:i + 1]).sum()
        rows.append(torch.cat([gr.reshape(-1) for gr in torch.autograd.grad(out, params)]))
    assert got.shape == (6, num_params(model))
    torch.testing.assert_close(got, torch.stack(rows), atol=1e-5, rtol=1e-4)
