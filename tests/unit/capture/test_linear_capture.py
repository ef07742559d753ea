"""capture.linear: hooked per-example Linear gradients vs a one-example-at-a-time autograd loop (SPEC 2.1)."""

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import nn

from grass.capture.linear import ClassifierTarget, LinearCapture, LMTarget, layer_dims, select_linear_layers
from grass.compress.factorized import build_factorized
from grass.errors import GrassError
from grass.models.gpt2 import gpt2_tiny
from grass.models.mlp import MLP

CONF = Path(__file__).resolve().parents[3] / "conf" / "compressor"
VOCAB, T = 1000, 16


@pytest.fixture(scope="module")
def lm():
    return gpt2_tiny(vocab_size=VOCAB, n_layer=2, n_embd=64, n_head=4, n_positions=32, seed=0)


@pytest.fixture(scope="module")
def lm_batch():
    """Right-padded batch: example 1 has 11 real tokens, example 2 has 6; labels -100 on padding."""
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, VOCAB, (3, T), generator=g)
    mask = torch.ones(3, T, dtype=torch.long)
    mask[1, 11:] = 0
    mask[2, 6:] = 0
    ids = ids.masked_fill(mask == 0, 0)  # the pad id is irrelevant: padded tokens must not matter
    return {"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, -100)}


@pytest.fixture(scope="module")
def lm_full(lm, lm_batch):
    """Uncompressed capture of every layer (checked against the loop in the first test)."""
    return LinearCapture(lm, LMTarget()).capture(lm_batch)


def _weights(layer: nn.Linear) -> list[torch.Tensor]:
    return [layer.weight] + ([layer.bias] if layer.bias is not None else [])


def _loop(model: nn.Module, names: list[str], loss_of_example, n: int) -> dict[str, torch.Tensor]:
    """Reference: torch.autograd.grad of each example's own loss w.r.t. [W | b], output-major. -> {name: [n, O*I']}"""
    layers = [model.get_submodule(name) for name in names]
    params = [p for layer in layers for p in _weights(layer)]
    rows = {name: [] for name in names}
    for b in range(n):
        grads = iter(torch.autograd.grad(loss_of_example(b), params))
        for name, layer in zip(names, layers):
            w = next(grads)
            full = torch.cat([w, next(grads)[:, None]], dim=1) if layer.bias is not None else w
            rows[name].append(full.reshape(-1))
    return {name: torch.stack(r) for name, r in rows.items()}


def _lm_reference(model, batch, kind: str) -> dict[str, torch.Tensor]:
    """Each example alone and unpadded (only its real tokens), lm_head untied from the embedding."""
    ref = copy.deepcopy(model)
    ref.lm_head.weight = nn.Parameter(ref.lm_head.weight.detach().clone())  # the Linear's own use only

    def loss_of_example(b):
        n = int(batch["attention_mask"][b].sum())
        ids = batch["input_ids"][b:b + 1, :n]
        loss = F.cross_entropy(ref(input_ids=ids).logits[0, :-1], ids[0, 1:])
        return loss if kind == "loss" else -loss - torch.log(-torch.expm1(-loss))

    return _loop(ref, list(select_linear_layers(ref)), loss_of_example, batch["input_ids"].shape[0])


@pytest.mark.parametrize("kind", ["loss", "margin"])
def test_gpt2_hooks_match_the_per_example_loop_with_padding(lm, lm_batch, kind):
    got = LinearCapture(lm, LMTarget(kind)).capture(lm_batch)
    expected = _lm_reference(lm, lm_batch, kind)
    assert list(got) == list(expected) and len(got) == 9 and list(got)[-1] == "lm_head"
    for name in expected:
        assert got[name].shape == expected[name].shape and got[name].dtype == torch.float32
        torch.testing.assert_close(got[name], expected[name], atol=2e-6, rtol=1e-4, msg=name)


def test_padding_counts_nowhere_even_without_minus_100_labels(lm, lm_batch, lm_full):
    unmarked = {"input_ids": lm_batch["input_ids"], "attention_mask": lm_batch["attention_mask"]}  # labels = ids
    got = LinearCapture(lm, LMTarget(), patterns=["lm_head", "*.h.0.mlp.c_fc"]).capture(unmarked)
    for name in got:
        torch.testing.assert_close(got[name], lm_full[name], atol=1e-6, rtol=1e-5)


def test_mlp_hooks_match_the_per_example_loop_in_eval_mode():
    torch.manual_seed(0)
    model = MLP(in_features=20, num_classes=3, hidden=(16, 8), dropout=0.5).train()
    x, y = torch.randn(6, 1, 4, 5), torch.randint(0, 3, (6,))
    got = LinearCapture(model, ClassifierTarget("loss")).capture((x, y))
    names = list(select_linear_layers(model))
    model.eval()  # dropout off: the capture must have used eval mode too
    expected = _loop(model, names, lambda b: F.cross_entropy(model(x[b:b + 1]), y[b:b + 1]), 6)
    assert got[names[0]].shape == (6, 16 * 21)
    for name in names:
        torch.testing.assert_close(got[name], expected[name], atol=1e-6, rtol=1e-4, msg=name)


def test_capture_computes_no_parameter_gradients_and_restores_the_model(lm, lm_batch):
    model = copy.deepcopy(lm).train()
    model.transformer.wpe.weight.requires_grad_(False)  # a frozen parameter stays frozen
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    LinearCapture(model, LMTarget()).capture(lm_batch)
    assert all(p.grad is None for p in model.parameters())
    assert flags == {n: p.requires_grad for n, p in model.named_parameters()}
    assert all(m.training for m in model.modules())


@pytest.mark.parametrize("method", ["logra", "factgrass"])
def test_attached_factorized_compressor_equals_the_kronecker_map(lm, lm_batch, lm_full, method):
    node = OmegaConf.load(CONF / f"{method}.yaml")
    comps = {name: build_factorized(node, in_dim=i, out_dim=o, proj_dim=16, seed=1, layer_name=name)
             for name, (o, i) in layer_dims(lm).items()}
    cap = LinearCapture(lm, LMTarget(), compressors=comps)
    assert cap.feature_dims == {name: 16 for name in comps}
    got = cap.capture(lm_batch)
    for name, fc in comps.items():
        kron = torch.kron(fc.out_side(torch.eye(fc.grad_dim)), fc.in_side(torch.eye(fc.in_dim)))
        expected = lm_full[name] @ kron
        if fc.stage2 is not None:
            expected = expected @ fc.stage2(torch.eye(fc.stage2.in_dim))
        torch.testing.assert_close(got[name], expected, atol=1e-5, rtol=1e-4, msg=name)


def test_layer_patterns_select_a_subset(lm, lm_batch, lm_full):
    cap = LinearCapture(lm, LMTarget(), patterns=["*.mlp.*"])
    assert list(cap.layers) == [f"transformer.h.{i}.mlp.{p}" for i in (0, 1) for p in ("c_fc", "c_proj")]
    got = cap.capture(lm_batch)
    assert list(got) == list(cap.layers)
    for name in got:
        torch.testing.assert_close(got[name], lm_full[name], atol=1e-6, rtol=1e-5)
    assert list(LinearCapture(lm, LMTarget(), patterns=["lm_head", "*.h.1.attn.c_attn"]).layers) == \
        ["transformer.h.1.attn.c_attn", "lm_head"]


def test_bad_setups_are_refused(lm, lm_batch):
    with pytest.raises(GrassError, match="match no nn.Linear"):
        LinearCapture(lm, LMTarget(), patterns=["*.nothing"])
    node = OmegaConf.load(CONF / "fact_mask.yaml")
    one = {"lm_head": build_factorized(node, 64, VOCAB, 16, 0, "lm_head")}
    with pytest.raises(GrassError, match="cover exactly the selected layers"):
        LinearCapture(lm, LMTarget(), compressors=one)
    wrong = {"lm_head": build_factorized(node, 65, VOCAB, 16, 0, "lm_head")}
    with pytest.raises(GrassError, match=r"built for \(O, I'\)"):
        LinearCapture(lm, LMTarget(), patterns=["lm_head"], compressors=wrong)
    no_labels = dict(lm_batch, labels=lm_batch["labels"].clone())
    no_labels["labels"][2] = -100
    with pytest.raises(GrassError, match="example 2 of the batch has no labelled token"):
        LinearCapture(lm, LMTarget()).capture(no_labels)
    with pytest.raises(GrassError, match="unknown target"):
        LMTarget("accuracy")


def test_inplace_modified_outputs_are_refused():
    model = nn.Sequential(nn.Linear(4, 5), nn.ReLU(inplace=True), nn.Linear(5, 2))
    cap = LinearCapture(model, ClassifierTarget("loss"), patterns=["2"])
    assert cap.capture((torch.randn(3, 4), torch.tensor([0, 1, 0])))["2"].shape == (3, 12)
    with pytest.raises(GrassError, match="modified in place"):
        LinearCapture(model, ClassifierTarget("loss"), patterns=["0"]).capture(
            (torch.randn(3, 4), torch.tensor([0, 1, 0])))
