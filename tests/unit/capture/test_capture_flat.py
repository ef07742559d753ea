"""capture.flat: torch.func per-example gradients vs a one-example-at-a-time autograd loop."""

import pytest
import torch
from torch import nn

from grass.capture.flat import flat_grads, iter_flat_grads, num_params, trainable_params, true_class_probs
from grass.errors import GrassError
from grass.outputs import output_function


def _mlp(seed: int = 0) -> nn.Module:
    """Small MLP with dropout, so eval mode matters.  [B, 4, 5] -> [B, 3]"""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(20, 16), nn.ReLU(), nn.Dropout(0.1),
                         nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))


def _data(n: int = 10, seed: int = 1):
    """x [n, 4, 5], y [n] in {0, 1, 2}."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 4, 5, generator=g), torch.randint(0, 3, (n,), generator=g)


def _loop_grads(model: nn.Module, x, y, target: str) -> torch.Tensor:
    """Reference: autograd on each example alone (eval mode), concatenated in named_parameters order.  -> [n, p]"""
    f = output_function(target)
    params = [p for p in model.parameters() if p.requires_grad]
    model.eval()
    rows = []
    for i in range(x.shape[0]):
        out = f(model(x[i:i + 1]), y[i:i + 1]).sum()
        rows.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(out, params)]))
    return torch.stack(rows)


@pytest.mark.parametrize("target", ["loss", "margin"])
def test_matches_autograd_loop(target):
    model, (x, y) = _mlp(), _data()
    got = flat_grads(model, x, y, target, chunk_size=4)
    assert got.shape == (10, num_params(model)) and got.dtype == torch.float32
    torch.testing.assert_close(got, _loop_grads(model, x, y, target), atol=1e-5, rtol=1e-5)


def test_independent_of_chunking_and_restores_mode():
    model, (x, y) = _mlp(), _data(n=11)
    model.train()
    ref = flat_grads(model, x, y, "loss", chunk_size=64)
    for chunk in (1, 3):
        torch.testing.assert_close(flat_grads(model, x, y, "loss", chunk_size=chunk), ref, atol=1e-6, rtol=1e-6)
    for batch_size in (1, 4, 64):
        parts = list(iter_flat_grads(model, x, y, "loss", batch_size=batch_size, chunk_size=3))
        assert [s for s, _ in parts] == list(range(0, 11, batch_size))
        torch.testing.assert_close(torch.cat([g for _, g in parts]), ref, atol=1e-6, rtol=1e-6)
    # Eval was only for the call: every submodule is back in training mode.
    assert all(m.training for m in model.modules())
    # Mixed modes survive as they were.
    model[3].eval()
    flat_grads(model, x[:2], y[:2], "margin")
    assert model.training and not model[3].training


def test_progress_bar_runs(capsys):
    model, (x, y) = _mlp(), _data(n=5)
    parts = list(iter_flat_grads(model, x, y, "margin", batch_size=2, progress="train grads"))
    assert len(parts) == 3
    assert "train grads" in capsys.readouterr().err


def test_non_finite_names_global_index():
    model, (x, y) = _mlp(), _data(n=8)
    x[5, 0, 0] = float("inf")  # makes example 5's logits (hence gradient) non-finite
    with pytest.raises(GrassError, match="105") as err:
        flat_grads(model, x, y, "loss", chunk_size=3, index_offset=100)
    assert "loss" in str(err.value)
    # Through iter_flat_grads the offset is the batch start.
    with pytest.raises(GrassError, match=r"\b5\b"):
        list(iter_flat_grads(model, x, y, "margin", batch_size=4))


def test_frozen_params_excluded():
    model, (x, y) = _mlp(), _data(n=4)
    model[1].weight.requires_grad_(False)
    names = list(trainable_params(model))
    assert names == ["1.bias", "4.weight", "4.bias", "6.weight", "6.bias"]
    assert num_params(model) == 16 + 8 * 16 + 8 + 3 * 8 + 3
    got = flat_grads(model, x, y, "margin")
    assert got.shape == (4, num_params(model))
    torch.testing.assert_close(got, _loop_grads(model, x, y, "margin"), atol=1e-5, rtol=1e-5)


def test_true_class_probs():
    model, (x, y) = _mlp(), _data(n=7)
    model.train()
    got = true_class_probs(model, x, y, batch_size=3)
    model.eval()
    with torch.no_grad():
        want = torch.softmax(model(x), dim=-1)[torch.arange(7), y]
    torch.testing.assert_close(got, want)
    assert got.shape == (7,) and got.dtype == torch.float32 and not got.requires_grad


def test_unknown_target():
    model, (x, y) = _mlp(), _data(n=2)
    with pytest.raises(GrassError, match="unknown output function"):
        flat_grads(model, x, y, "accuracy")
