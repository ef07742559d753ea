"""Block-diagonal eFIM influence over linear layers (SPEC 1.1) against a dense per-layer computation."""

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from grass.attribute.attributors import GradDotAttributor, InfluenceAttributor, TRAKAttributor
from grass.attribute.blockwise import BlockwiseAttributor
from grass.capture.linear import ClassifierTarget, LinearCapture, layer_dims
from grass.compress.factorized import FactorizedCompressor, build_factorized
from grass.compress.identity import Identity
from grass.errors import GrassError

CONF = Path(__file__).resolve().parents[3] / "conf" / "compressor"


def _tiny():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3)).eval()
    x_train, y_train = torch.randn(12, 5), torch.randint(0, 3, (12,))
    x_query, y_query = torch.randn(5, 5), torch.randint(0, 3, (5,))
    return model, (x_train, y_train), (x_query, y_query)


def _dense_layer_grads(model, x, y) -> dict[str, torch.Tensor]:
    """One example at a time: {layer: [N, O * I']} with the bias as the last input column, float64."""
    layers = {n: m for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    rows = {n: [] for n in layers}
    for i in range(len(y)):
        loss = nn.functional.cross_entropy(model(x[i:i + 1]), y[i:i + 1])
        for name, layer in layers.items():
            gw, gb = torch.autograd.grad(loss, [layer.weight, layer.bias], retain_graph=True)
            rows[name].append(torch.cat([gw, gb[:, None]], dim=1).flatten().double())
    return {n: torch.stack(r) for n, r in rows.items()}


def test_identity_blockwise_influence_equals_the_dense_per_layer_solve():
    model, (xt, yt), (xq, yq) = _tiny()
    comps = {n: FactorizedCompressor(Identity(i), Identity(o), layer_name=n) for n, (o, i) in layer_dims(model).items()}
    capture = LinearCapture(model, ClassifierTarget("loss"), ["*"], comps)
    attributor = BlockwiseAttributor(InfluenceAttributor)
    attributor.add_checkpoint(capture.capture((xt, yt)), capture.capture((xq, yq)))

    train, query = _dense_layer_grads(model, xt, yt), _dense_layer_grads(model, xq, yq)
    for lam in (1e-3, 0.1, 10.0):
        expected = torch.zeros(len(yt), len(yq), dtype=torch.float64)
        for name in train:
            g, q = train[name], query[name]
            fisher = g.T @ g / len(g)
            damped = fisher + lam * torch.trace(fisher) / g.shape[1] * torch.eye(g.shape[1], dtype=torch.float64)
            expected += g @ torch.linalg.solve(damped, q.T)
        got = attributor.scores(lam)
        torch.testing.assert_close(got.double(), expected, rtol=2e-4, atol=1e-6 * float(expected.abs().max()))


def test_blockwise_scores_are_the_sum_of_the_layer_blocks():
    torch.manual_seed(1)
    train = {"a": torch.randn(20, 6), "b": torch.randn(20, 9)}
    query = {"a": torch.randn(4, 6), "b": torch.randn(4, 9)}
    attributor = BlockwiseAttributor(InfluenceAttributor)
    attributor.add_checkpoint(train, query)
    idx = torch.tensor([0, 3])
    expected = torch.zeros(20, 2)
    for name in train:
        single = InfluenceAttributor()
        single.add_checkpoint(train[name], query[name])
        expected += single.scores(0.1, idx)
    torch.testing.assert_close(attributor.scores(0.1, idx), expected)
    assert attributor.layers == ["a", "b"] and attributor.damping_kind == "relative"


def test_blockwise_grad_dot_needs_no_damping():
    attributor = BlockwiseAttributor(GradDotAttributor)
    attributor.add_checkpoint({"a": torch.eye(3)}, {"a": torch.eye(3)[:2]})
    torch.testing.assert_close(attributor.scores(None), torch.eye(3)[:, :2])


def test_blockwise_refusals():
    with pytest.raises(GrassError, match="tda=if_efim or tda=grad_dot"):
        BlockwiseAttributor(TRAKAttributor)
    attributor = BlockwiseAttributor(InfluenceAttributor)
    with pytest.raises(GrassError, match="no checkpoint"):
        attributor.scores(0.1)
    with pytest.raises(GrassError, match="different layers"):
        attributor.add_checkpoint({"a": torch.randn(4, 2)}, {"b": torch.randn(2, 2)})
    with pytest.raises(GrassError, match="layer 'a'"):
        attributor.add_checkpoint({"a": torch.zeros(4, 2)}, {"a": torch.zeros(2, 2)})


FACTORIZED = ("logra", "fact_sjlt", "fact_mask", "factgrass", "fact_sm", "factgrass_sm")


@pytest.mark.parametrize("method", FACTORIZED)
def test_factorized_sides_wider_than_the_layers_give_the_exact_influence(method, tmp_path):
    """K = 64: every side (sqrt(K) = 8, or factgrass's 128) is clamped to layers of width I' <= 6, O <= 4, so
    the sides keep every coordinate and must be exact: the scores are the uncompressed per-layer eFIM's."""
    model, train_batch, query_batch = _tiny()
    node = OmegaConf.load(CONF / f"{method}.yaml")
    if "mask_dir" in node.side:  # a side keeping its whole width reads no learned mask: the folder stays empty
        node.side.mask_dir, node.side.expected_fingerprint = str(tmp_path), {"models": "unused"}
    comps = {n: build_factorized(node, in_dim=i, out_dim=o, proj_dim=64, seed=3, layer_name=n)
             for n, (o, i) in layer_dims(model).items()}
    exact, compressed = BlockwiseAttributor(InfluenceAttributor), BlockwiseAttributor(InfluenceAttributor)
    full = LinearCapture(model, ClassifierTarget("loss"), ["*"])  # uncompressed [N, O * I'] per layer
    exact.add_checkpoint(full.capture(train_batch), full.capture(query_batch))
    capture = LinearCapture(model, ClassifierTarget("loss"), ["*"], comps)
    compressed.add_checkpoint(capture.capture(train_batch), capture.capture(query_batch))
    for lam in (1e-4, 1e-2, 1.0):
        want = exact.scores(lam)
        torch.testing.assert_close(compressed.scores(lam), want, rtol=1e-4, atol=1e-5 * float(want.abs().max()))
