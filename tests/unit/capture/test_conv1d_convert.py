"""models.conv1d / models.gpt2: Conv1D -> nn.Linear conversion keeps GPT-2's function (SPEC 2.1)."""

import pytest
import torch
from torch import nn
from transformers import GPT2Config, GPT2LMHeadModel
from transformers.pytorch_utils import Conv1D

from grass.errors import GrassError
from grass.models.conv1d import conv1d_as_linear, convert_conv1d_to_linear
from grass.models.gpt2 import gpt2, gpt2_tiny


def _raw_gpt2() -> GPT2LMHeadModel:
    """A tiny GPT-2 straight from transformers, still with Conv1D layers."""
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=300, n_layer=2, n_embd=64, n_head=4, n_positions=32)
    return GPT2LMHeadModel(config).eval()


def test_conversion_keeps_outputs_and_removes_every_conv1d():
    model = _raw_gpt2()
    n_conv = sum(isinstance(m, Conv1D) for m in model.modules())
    assert n_conv == 8  # c_attn, attn.c_proj, c_fc, mlp.c_proj per block
    ids = torch.randint(0, 300, (2, 12), generator=torch.Generator().manual_seed(1))
    mask = torch.ones(2, 12, dtype=torch.long)
    mask[1, 7:] = 0
    with torch.no_grad():
        before = model(input_ids=ids, attention_mask=mask).logits
        names_before = [n for n, m in model.named_modules() if isinstance(m, Conv1D)]
        assert convert_conv1d_to_linear(model) is model
        after = model(input_ids=ids, attention_mask=mask).logits
    assert not any(isinstance(m, Conv1D) for m in model.modules())
    assert all(isinstance(model.get_submodule(n), nn.Linear) for n in names_before)  # same names
    torch.testing.assert_close(after, before, atol=1e-5, rtol=0)


def test_linear_is_the_transposed_conv1d():
    conv = Conv1D(5, 3)  # nf = O = 5, nx = I = 3, weight [3, 5]
    with torch.no_grad():
        conv.bias.normal_()
    lin = conv1d_as_linear(conv)
    assert lin.weight.shape == (5, 3)
    torch.testing.assert_close(lin.weight, conv.weight.t())
    torch.testing.assert_close(lin.bias, conv.bias)
    x = torch.randn(4, 3)
    torch.testing.assert_close(lin(x), conv(x))
    assert lin.weight.data_ptr() != conv.weight.data_ptr()  # a copy, not a shared view


def test_gpt2_tiny_is_linear_seeded_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a = gpt2_tiny(vocab_size=200, n_embd=32, n_head=2, n_positions=16, seed=5)
    assert torch.equal(torch.rand(1), expected_next)
    b = gpt2_tiny(vocab_size=200, n_embd=32, n_head=2, n_positions=16, seed=5)
    c = gpt2_tiny(vocab_size=200, n_embd=32, n_head=2, n_positions=16, seed=6)
    wa, wb, wc = (m.transformer.h[0].attn.c_attn.weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)
    assert not any(isinstance(m, Conv1D) for m in a.modules())
    assert not a.training
    assert a.transformer.h[0].attn.c_attn.weight.shape == (96, 32)  # [3 * n_embd, n_embd]


def test_gpt2_that_cannot_be_fetched_says_how_to_use_local_files(tmp_path):
    with pytest.raises(GrassError, match=r"could not fetch the GPT-2 model .*local folder"):
        gpt2(str(tmp_path / "no_such_model"))
