"""capture.flat: torch.func per-example gradients of a task's target vs a one-example-at-a-time autograd loop.

Classifier MLP (dropout; the layer-wise outer-product path, also checked against the torch.func path), a conv
net with BatchNorm and dropout (eval mode: running statistics, dropout off), and a tiny GPT-2 under the LM block
margin (padding included); chunking under a memory budget.
"""

import pytest
import torch
from torch import nn

from grass.capture.flat import (
    LAYERWISE,
    TORCH_FUNC,
    chunk_for_budget,
    describe_grad_path,
    flat_grads,
    grad_path,
    grad_sizes,
    iter_flat_grads,
    num_params,
    trainable_params,
    trak_weights,
)
from grass.capture.linear import ClassifierTarget, LMTarget
from grass.data.text import lm_batch
from grass.errors import GrassError
from grass.models.gpt2 import gpt2_tiny


def _mlp(seed: int = 0) -> nn.Module:
    """Small MLP with dropout, so eval mode matters.  [B, 4, 5] -> [B, 3]"""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(20, 16), nn.ReLU(), nn.Dropout(0.1),
                         nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))


def _convnet(seed: int = 0) -> nn.Module:
    """Conv + BatchNorm + dropout, BN statistics moved off their defaults.  [B, 2, 6, 6] -> [B, 3]"""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.3),
                        nn.Conv2d(4, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(4, 3))
    net.train()
    with torch.no_grad():  # a few training-mode passes: running mean / var are the model's own, not 0 / 1
        for _ in range(3):
            net(torch.randn(16, 2, 6, 6) * 2 + 1)
    return net


def _data(n: int = 10, seed: int = 1, shape=(4, 5)):
    """x [n, *shape], y [n] in {0, 1, 2}."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *shape, generator=g), torch.randint(0, 3, (n,), generator=g)


def _loop_grads(model: nn.Module, target, batches) -> torch.Tensor:
    """Reference: autograd of the target on each example alone (eval mode), in named_parameters order -> [n, p]."""
    params = [p for p in model.parameters() if p.requires_grad]
    model.eval()
    rows = []
    for batch in batches:
        out = target(model, batch).sum()
        rows.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(out, params)]))
    return torch.stack(rows)


def _examples(x, y):
    return [(x[i:i + 1], y[i:i + 1]) for i in range(x.shape[0])]


@pytest.mark.parametrize("kind", ["loss", "margin"])
def test_matches_autograd_loop(kind):
    model, (x, y) = _mlp(), _data()
    target = ClassifierTarget(kind)
    got = flat_grads(model, target, (x, y), chunk_size=4)
    assert got.shape == (10, num_params(model)) and got.dtype == torch.float32
    torch.testing.assert_close(got, _loop_grads(model, target, _examples(x, y)), atol=1e-5, rtol=1e-5)


def test_convnet_batchnorm_dropout_eval_mode_matches_loop():
    model, (x, y) = _convnet(), _data(n=7, shape=(2, 6, 6))
    target = ClassifierTarget("margin")
    got = flat_grads(model, target, (x, y), chunk_size=3)
    assert model.training  # the caller's mode is restored
    want = _loop_grads(model, target, _examples(x, y))  # eval: running statistics, dropout off
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    model.train()
    with torch.no_grad():  # sanity: in training mode BN would use batch statistics and differ
        assert not torch.allclose(model(x), model.eval()(x))


def test_lm_block_margin_matches_loop_with_padding():
    model = gpt2_tiny(vocab_size=40, n_layer=1, n_embd=16, n_head=2, n_positions=16, seed=0)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 40, (4, 10), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0  # a padded block: its padding is never labelled
    batch = lm_batch(ids, mask)
    target = LMTarget("margin")
    got = flat_grads(model, target, batch, chunk_size=3)
    assert got.shape == (4, num_params(model))
    examples = [{k: v[i:i + 1] for k, v in batch.items()} for i in range(4)]
    torch.testing.assert_close(got, _loop_grads(model, target, examples), atol=1e-6, rtol=1e-5)
    # the LM check runs outside vmap: a block with no labelled token is named
    empty = lm_batch(ids[:2], torch.cat([mask[:1], torch.zeros_like(mask[:1])]))
    with pytest.raises(GrassError, match="example 1 .* no labelled token"):
        flat_grads(model, target, empty)
    # sdpa attention cannot be vmapped: one clear error naming the fix, before any gradient
    sdpa = gpt2_tiny(vocab_size=40, n_layer=1, n_embd=16, n_head=2, n_positions=16, seed=0,
                     attn_implementation="sdpa")
    with pytest.raises(GrassError, match="attn_implementation='eager'"):
        flat_grads(sdpa, target, batch)


def test_lm_trak_weight_is_one_minus_exp_logp():
    model = gpt2_tiny(vocab_size=40, n_layer=1, n_embd=16, n_head=2, n_positions=16, seed=0)
    batch = lm_batch(torch.randint(0, 40, (3, 8), generator=torch.Generator().manual_seed(2)))
    q = trak_weights(model, LMTarget("margin"), [batch], chunk_size=2)
    logp = -LMTarget("loss")(model, batch).detach()
    torch.testing.assert_close(q, 1 - torch.exp(logp))
    # margin = log p - log(1 - p) of that same p
    torch.testing.assert_close(LMTarget("margin")(model, batch).detach(), logp - torch.log(q))


def test_independent_of_chunking_and_restores_mode():
    model, (x, y) = _mlp(), _data(n=11)
    model.train()
    target = ClassifierTarget("loss")
    ref = flat_grads(model, target, (x, y), chunk_size=64)
    for chunk in (1, 3):
        torch.testing.assert_close(flat_grads(model, target, (x, y), chunk_size=chunk), ref, atol=1e-6, rtol=1e-6)
    for batch_size in (1, 4, 64):
        batches = [(x[s:s + batch_size], y[s:s + batch_size]) for s in range(0, 11, batch_size)]
        parts = list(iter_flat_grads(model, target, batches, chunk_size=3))
        assert [s for s, _ in parts] == list(range(0, 11, batch_size))
        torch.testing.assert_close(torch.cat([g for _, g in parts]), ref, atol=1e-6, rtol=1e-6)
    # Eval was only for the call: every submodule is back in training mode.
    assert all(m.training for m in model.modules())
    # Mixed modes survive as they were.
    model[3].eval()
    flat_grads(model, ClassifierTarget("margin"), (x[:2], y[:2]))
    assert model.training and not model[3].training


def test_progress_bar_runs():
    model, (x, y) = _mlp(), _data(n=5)
    batches = [(x[s:s + 2], y[s:s + 2]) for s in range(0, 5, 2)]
    parts = list(iter_flat_grads(model, ClassifierTarget("margin"), batches, progress="train grads", total=3))
    assert [s for s, _ in parts] == [0, 2, 4]  # the bar (shown on a terminal only) wraps the batches as they are


def test_non_finite_names_global_index():
    model, (x, y) = _mlp(), _data(n=8)
    x[5, 0, 0] = float("inf")  # makes example 5's logits (hence gradient) non-finite
    with pytest.raises(GrassError, match="105") as err:
        flat_grads(model, ClassifierTarget("loss"), (x, y), chunk_size=3, index_offset=100)
    assert "loss" in str(err.value)
    # Through iter_flat_grads the offset is the examples before the batch.
    batches = [(x[:4], y[:4]), (x[4:], y[4:])]
    with pytest.raises(GrassError, match=r"\b5\b"):
        list(iter_flat_grads(model, ClassifierTarget("margin"), batches))


def test_frozen_params_excluded():
    model, (x, y) = _mlp(), _data(n=4)
    model[1].weight.requires_grad_(False)
    names = list(trainable_params(model))
    assert names == ["1.bias", "4.weight", "4.bias", "6.weight", "6.bias"]
    assert num_params(model) == 16 + 8 * 16 + 8 + 3 * 8 + 3
    target = ClassifierTarget("margin")
    got = flat_grads(model, target, (x, y))
    assert got.shape == (4, num_params(model))
    torch.testing.assert_close(got, _loop_grads(model, target, _examples(x, y)), atol=1e-5, rtol=1e-5)


def test_classifier_trak_weights():
    model, (x, y) = _mlp(), _data(n=7)
    model.train()
    got = trak_weights(model, ClassifierTarget("margin"), [(x[:4], y[:4]), (x[4:], y[4:])], chunk_size=3)
    assert model.training
    model.eval()
    with torch.no_grad():
        want = 1 - torch.softmax(model(x), dim=-1)[torch.arange(7), y]
    torch.testing.assert_close(got, want)
    assert got.shape == (7,) and got.dtype == torch.float32 and not got.requires_grad


def test_unknown_target():
    with pytest.raises(GrassError, match="unknown target"):
        ClassifierTarget("accuracy")


def test_batch_tensors_must_share_batch_dim():
    model, (x, y) = _mlp(), _data(n=4)
    with pytest.raises(GrassError, match="batch dimension"):
        flat_grads(model, ClassifierTarget("loss"), (x, y[:3]))


def test_chunk_for_budget():
    p = 1_000_000  # 4 MB per gradient; x factor 4 = 16 MB per example
    assert chunk_for_budget(p, 128, None, 4.0) == 128
    assert chunk_for_budget(p, 128, 0.1, 4.0) == 6  # 100 MB / 16 MB
    assert chunk_for_budget(p, 4, 0.1, 4.0) == 4  # never above grad_chunk_size
    with pytest.raises(GrassError, match=r"hardware.grad_memory_gb=0.01 .* at least 0.016"):
        chunk_for_budget(p, 128, 0.01, 4.0)


def test_grad_sizes_bound_batch_and_chunk():
    class HW:
        grad_batch_size, grad_chunk_size, grad_memory_gb, grad_memory_factor = 256, 128, 0.1, 4.0

    assert grad_sizes(HW, 1_000_000) == (25, 6)  # rows [25, p] = 100 MB; chunk 6 x 16 MB
    HW.grad_memory_gb = None
    assert grad_sizes(HW, 1_000_000) == (256, 128)


def test_budgeted_chunks_give_the_same_gradients():
    model, (x, y) = _convnet(), _data(n=9, shape=(2, 6, 6))
    p, target = num_params(model), ClassifierTarget("margin")
    chunk = chunk_for_budget(p, 128, memory_gb=2 * p * 4 * 4.0 / 1e9, factor=4.0)
    assert chunk == 2
    torch.testing.assert_close(flat_grads(model, target, (x, y), chunk_size=chunk),
                               flat_grads(model, target, (x, y), chunk_size=9), atol=1e-6, rtol=1e-6)


def _positions_mlp(seed: int = 0) -> nn.Module:
    """A linear stack whose first Linear sees 4 positions per example: [B, 4, 5] -> [B, 3]."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 6), nn.GELU(), nn.Dropout(0.2), nn.Flatten(), nn.Linear(24, 3))


@pytest.mark.parametrize("make", [_mlp, _positions_mlp])
@pytest.mark.parametrize("kind", ["loss", "margin"])
def test_layerwise_equals_torch_func(make, kind):
    model, (x, y) = make(), _data(n=9)
    model.train()  # both paths run in eval mode whatever the caller's mode
    target = ClassifierTarget(kind)
    assert grad_path(model) == LAYERWISE and "layer-wise" in describe_grad_path(model)
    fast = flat_grads(model, target, (x, y), chunk_size=4, path=LAYERWISE)
    ref = flat_grads(model, target, (x, y), chunk_size=4, path=TORCH_FUNC)
    assert fast.shape == ref.shape == (9, num_params(model)) and fast.dtype == torch.float32
    torch.testing.assert_close(fast, ref, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(flat_grads(model, target, (x, y)), fast)  # auto picks the layer-wise path
    assert all(m.training for m in model.modules())


def test_layerwise_only_where_the_model_allows_it():
    conv = _convnet()
    assert grad_path(conv) == TORCH_FUNC and "torch.func" in describe_grad_path(conv)
    x, y = _data(n=2, shape=(2, 6, 6))
    with pytest.raises(GrassError, match="not a linear stack"):
        flat_grads(conv, ClassifierTarget("margin"), (x, y), path=LAYERWISE)
    with pytest.raises(GrassError, match="choose"):
        flat_grads(_mlp(), ClassifierTarget("margin"), _data(n=2), path="fast")
