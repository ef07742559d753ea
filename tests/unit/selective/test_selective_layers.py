"""Per-layer selective masks: inner products of materialized layer gradients G [N, O, I'], masks learned per
side jointly, held-out comparison with random masks, capture grouping under a memory budget."""

import pytest
import torch

from grass.compress.factorized import factorized, node_side_widths
from grass.compress.mask import RandomMask
from grass.errors import GrassError
from grass.selective.gradsets import LayerGrads, as_rowset
from grass.selective.heldout import heldout_grams
from grass.selective.layer_grads import layer_groups
from grass.selective.learn import inner_product_fidelity, learn_mask

FAST = dict(lr=0.01, reg=1e-2, temperature=0.01, progress=False, early_stop=-1.0)


def _layer(n=60, tokens=5, o=12, i=9, hot_out=(2, 7), hot_in=(1, 4), seed=0):
    """G_b = sum_t delta_t a_t^T with a few hot input / output coordinates."""
    gen = torch.Generator().manual_seed(seed)
    a, d = torch.randn(n, tokens, i, generator=gen), torch.randn(n, tokens, o, generator=gen)
    a[:, :, list(hot_in)] *= 6.0
    d[:, :, list(hot_out)] *= 6.0
    return torch.einsum("bto,bti->boi", d, a), a, d


def test_weighted_gram_is_the_masked_inner_product():
    g, _, _ = _layer()
    rows = as_rowset(LayerGrads(g))
    w_in, w_out = torch.rand(9), torch.rand(12)
    expected = (g[:10] * w_out[:, None] * w_in[None, :]).flatten(1) @ g[10:].flatten(1).T
    got = rows.take(torch.arange(10)).gram(rows.take(torch.arange(10, 60)), [w_in, w_out])
    torch.testing.assert_close(got, expected)
    i_in, i_out = torch.tensor([0, 4, 8]), torch.tensor([2, 3])
    sel = rows.select([i_in, i_out])
    torch.testing.assert_close(sel.gram(sel), g[:, i_out][:, :, i_in].flatten(1) @ g[:, i_out][:, :, i_in].flatten(1).T)


def test_energy_is_the_squared_gradient_mass_of_each_coordinate_in_every_shape():
    g, a, d = _layer(tokens=1)
    e_in, e_out = as_rowset(LayerGrads(g)).energy()
    torch.testing.assert_close(e_in, (g ** 2).sum(dim=(0, 1)))
    torch.testing.assert_close(e_out, (g ** 2).sum(dim=(0, 2)))
    pe_in, pe_out = as_rowset([a[:, 0], d[:, 0]]).energy()  # one token: G = delta a^T, the same masses
    torch.testing.assert_close(pe_in, e_in, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(pe_out, e_out, rtol=1e-5, atol=1e-4)
    (flat,) = as_rowset(g.flatten(1)).energy()
    torch.testing.assert_close(flat, (g.flatten(1) ** 2).sum(dim=0))


def test_one_token_layer_grads_learn_the_same_masks_as_paired_factors():
    _, a, d = _layer(tokens=1)
    g = torch.einsum("bto,bti->boi", d, a)
    from_pairs = learn_mask([a[:, 0], d[:, 0]], (3, 4), epochs=30, log_every=10, **FAST)
    from_layer = learn_mask(LayerGrads(g), (3, 4), epochs=30, log_every=10, **FAST)
    for x, y in zip(from_pairs.indices, from_layer.indices):
        assert torch.equal(x, y)
    for p, q in zip(from_pairs.curve, from_layer.curve):
        assert p.spearman_topk == pytest.approx(q.spearman_topk, abs=1e-4)


def test_layer_masks_find_the_hot_rows_and_columns_and_beat_random_on_heldout():
    g, _, _ = _layer(n=120)
    res = learn_mask(LayerGrads(g[:80]), (2, 2), epochs=60, log_every=20, **FAST)
    assert res.indices[0].tolist() == [1, 4] and res.indices[1].tolist() == [2, 7]
    fid = heldout_grams(LayerGrads(g[80:]), res.indices, seed=0, tag="layer").fidelity()
    assert len(fid["random"]) == 3 and fid["learned"] > max(fid["random"]) and fid["learned"] > 0.9
    assert fid["learned"] == pytest.approx(inner_product_fidelity(*_split(g[80:]), res.indices), abs=1e-6)


def _split(g):
    from grass.selective.learn import split_rows
    train, query = split_rows(g.shape[0], 0)
    return LayerGrads(g[query]), LayerGrads(g[train])


def test_a_full_width_side_is_kept_whole_while_the_other_is_learned():
    g, _, _ = _layer()
    res = learn_mask(LayerGrads(g), (9, 2), epochs=20, log_every=10, **FAST)
    assert res.indices[0].tolist() == list(range(9)) and res.indices[1].tolist() == [2, 7]
    assert res.epochs_run == 20


def test_summed_heldout_grams_add_layers():
    g1, _, _ = _layer(seed=1)
    g2, _, _ = _layer(o=5, i=7, hot_out=(0,), hot_in=(3,), seed=2)
    a = heldout_grams(LayerGrads(g1), (torch.tensor([1, 4]), torch.tensor([2, 7])), seed=0, tag="a")
    b = heldout_grams(LayerGrads(g2), (torch.tensor([3]), torch.tensor([0])), seed=0, tag="b")
    total = a.add(b)
    torch.testing.assert_close(total.exact, a.exact + b.exact)
    torch.testing.assert_close(total.random[2], a.random[2] + b.random[2])
    with pytest.raises(GrassError, match="sides"):
        heldout_grams(LayerGrads(g1), torch.tensor([1]), seed=0)


def test_non_finite_layer_gradient_names_the_row():
    g, _, _ = _layer()
    g[17, 0, 0] = float("nan")
    with pytest.raises(GrassError, match="row 17"):
        learn_mask(LayerGrads(g), 2, epochs=1, log_every=1, **FAST)


def test_layer_groups_respect_the_budget():
    dims = {"a": (10, 10), "b": (10, 10), "c": (100, 100), "d": (10, 10)}  # float32 bytes per row: 400, 400, 40000, 400
    assert layer_groups(dims, 1, 1000) == [["a", "b"], ["c"], ["d"]]  # c alone exceeds the budget: captured alone
    assert layer_groups(dims, 1, 10**6) == [["a", "b", "c", "d"]]


@pytest.mark.parametrize("node,k", [({"side_dim": 128, "blowup": 1}, (128, 100)), ({"blowup": 1}, (16, 16)),
                                    ({"side_dim": None, "blowup": 4}, (32, 32))])
def test_node_side_widths_match_the_built_compressor(node, k):
    spec = {"kind": "factorized", **node}
    assert node_side_widths(spec, in_dim=300, out_dim=100 if k[0] == 128 else 300, proj_dim=256) == k
    built = factorized(300, 100 if k[0] == 128 else 300, 256, 0, "l", side=RandomMask,
                       stage2=None if node.get("side_dim") is None and node["blowup"] == 1 else RandomMask,
                       **node)
    assert (built.k_in, built.k_out) == k
