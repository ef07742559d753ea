"""learn_mask (SPEC 4): exact k sorted indices, determinism, early stop, paired factor rows, bad input."""

import pytest
import torch

from grass.errors import GrassError
from grass.selective.learn import MaskResult, gram, inner_product_fidelity, learn_mask, split_rows

FAST = dict(lr=0.01, reg=1e-2, temperature=0.01, progress=False)


def _informative(n=120, d=200, hot=(3, 50, 177), scale=8.0, seed=0):
    """g [n, d] N(0, 1) with a few coordinates scaled up: they dominate every inner product."""
    g = torch.randn(n, d, generator=torch.Generator().manual_seed(seed))
    g[:, list(hot)] *= scale
    return g


def _is_mask(idx: torch.Tensor, k: int, d: int) -> bool:
    return (idx.dtype == torch.int64 and idx.shape == (k,) and torch.equal(idx, idx.sort().values)
            and idx.unique().numel() == k and int(idx.min()) >= 0 and int(idx.max()) < d)


@pytest.mark.parametrize("k", [1, 7, 200])
def test_exactly_k_sorted_unique(k):
    res = learn_mask(_informative(), k, epochs=6, log_every=3, early_stop=-1.0, **FAST)
    assert isinstance(res, MaskResult) and _is_mask(res.indices, k, 200)
    if k == 200:  # a full-width mask keeps every coordinate: nothing to learn
        assert res.indices.tolist() == list(range(200))
        assert [p.epoch for p in res.curve] == [0] and res.epochs_run == 0
    else:
        assert [p.epoch for p in res.curve] == [0, 3, 6] and res.epochs_run == 6 and not res.stopped_early


@pytest.mark.parametrize("init,relaxation", [("energy", "straight_through"), ("random", "soft")])
def test_finds_the_informative_coordinates(init, relaxation):
    res = learn_mask(_informative(), 3, epochs=40, log_every=20, early_stop=-1.0, init=init, relaxation=relaxation,
                     **FAST)
    assert res.indices.tolist() == [3, 50, 177]
    assert res.curve[-1].spearman_topk > 0.95


def test_deterministic_for_a_seed():
    g = torch.randn(60, 80, generator=torch.Generator().manual_seed(1))
    runs = [learn_mask(g, 10, epochs=15, log_every=5, early_stop=-1.0, seed=s, **FAST) for s in (4, 4, 5)]
    assert torch.equal(runs[0].indices, runs[1].indices) and runs[0].curve == runs[1].curve
    assert not torch.equal(runs[0].query_rows, runs[2].query_rows)  # the seed also drives the split


def test_split_is_80_20_disjoint_and_seeded():
    train, query = split_rows(50, seed=3)
    assert query.numel() == 10 and train.numel() == 40
    assert sorted(train.tolist() + query.tolist()) == list(range(50))
    assert torch.equal(split_rows(50, seed=3)[1], query) and not torch.equal(split_rows(50, seed=4)[1], query)
    with pytest.raises(GrassError, match="too few"):
        split_rows(2, seed=0)


@pytest.mark.parametrize("stop_on", ["soft", "topk"])
def test_early_stop_fires_below_threshold(stop_on):
    # Temperature 0.01 makes the initial soft mask far from uniform and k=5 of 200 keeps little, so
    # fidelity is well under 0.999 at the first check, whichever way it is measured.
    g = torch.randn(100, 200, generator=torch.Generator().manual_seed(2))
    res = learn_mask(g, 5, lr=1e-4, reg=0.0, epochs=50, log_every=5, early_stop=0.999, temperature=0.01,
                     stop_on=stop_on, progress=False)
    assert res.stopped_early and res.epochs_run == 5
    assert res.curve[-1].epoch == 5 and res.curve[-1].spearman < 0.999
    assert _is_mask(res.indices, 5, 200)
    never = learn_mask(g, 5, lr=1e-4, reg=0.0, epochs=10, log_every=5, early_stop=-1.0, temperature=0.01,
                       stop_on=stop_on, progress=False)
    assert not never.stopped_early and never.epochs_run == 10


def test_the_stop_metric_is_the_chosen_one():
    g = _informative()
    soft = learn_mask(g, 3, epochs=4, log_every=2, early_stop=-1.0, stop_on="soft", **FAST)
    top = learn_mask(g, 3, epochs=4, log_every=2, early_stop=-1.0, stop_on="topk", **FAST)
    assert top.curve[0].spearman == top.curve[0].spearman_topk
    assert soft.curve[0].spearman != soft.curve[0].spearman_topk  # soft mask vs hard top-k differ at init


def test_energy_init_starts_from_the_energy_top_k():
    g = torch.randn(80, 50, generator=torch.Generator().manual_seed(7)) * torch.linspace(0.5, 2.0, 50)
    res = learn_mask(g, 6, lr=1e-12, reg=0.0, epochs=1, log_every=1, early_stop=-1.0, temperature=0.01,
                     progress=False)
    energy = (g[res.train_rows] ** 2).sum(dim=0)
    assert res.selected_epoch == 0
    assert res.indices.tolist() == energy.topk(6).indices.sort().values.tolist()


def test_learning_moves_past_the_energy_start():
    # Five coordinates carry the most energy but are constant across rows, so they shift every inner product
    # of a query row alike and rank nothing; five others carry the ranking. The energy start picks the first
    # five; the straight-through loss (the fidelity of the hard mask itself) must move the mask to the others.
    gen = torch.Generator().manual_seed(0)
    g = torch.randn(300, 100, generator=gen)
    g[:, :5] = 10.0 + 0.01 * torch.randn(300, 5, generator=gen)
    g[:, 50:55] *= 3.0
    fit, held = g[:200], g[200:]
    energy = (fit ** 2).sum(dim=0).topk(5).indices.sort().values
    res = learn_mask(fit, 5, lr=0.01, reg=1e-3, temperature=0.01, epochs=60, log_every=10, early_stop=-1.0,
                     progress=False)
    assert energy.tolist() == [0, 1, 2, 3, 4] and res.indices.tolist() == [50, 51, 52, 53, 54]
    start, learned = (inner_product_fidelity(held[:20], held[20:], idx) for idx in (energy, res.indices))
    assert learned > start + 0.5


def test_straight_through_returns_the_best_logged_mask_soft_the_last():
    g = torch.randn(100, 60, generator=torch.Generator().manual_seed(3)) * torch.linspace(0.2, 3.0, 60)
    common = dict(lr=0.05, reg=1e-3, temperature=0.01, epochs=30, log_every=5, early_stop=-1.0, progress=False)
    best = learn_mask(g, 8, **common)
    point = next(p for p in best.curve if p.epoch == best.selected_epoch)
    assert point.spearman_topk == max(p.spearman_topk for p in best.curve)
    on_split = inner_product_fidelity(g[best.query_rows], g[best.train_rows], best.indices)
    assert on_split == pytest.approx(point.spearman_topk, abs=1e-6)
    last = learn_mask(g, 8, init="random", relaxation="soft", **common)
    assert last.selected_epoch == last.curve[-1].epoch == 30
    on_split = inner_product_fidelity(g[last.query_rows], g[last.train_rows], last.indices)
    assert on_split == pytest.approx(last.curve[-1].spearman_topk, abs=1e-6)


def test_paired_sides_share_one_row_split():
    # The factorized target Gram must equal that of the materialized per-example gradients G_b = delta_b a_b^T
    # on the same rows: it would not if the two sides were split (or shuffled) differently.
    gen = torch.Generator().manual_seed(5)
    a, delta = torch.randn(40, 6, generator=gen), torch.randn(40, 4, generator=gen)
    G = (delta[:, :, None] * a[:, None, :]).reshape(40, -1)  # [N, O * I], output-index-major
    res = learn_mask((a, delta), (2, 3), epochs=2, log_every=1, early_stop=-1.0, **FAST)
    tr, q = res.train_rows, res.query_rows
    torch.testing.assert_close(gram([a[q], delta[q]], [a[tr], delta[tr]]), G[q] @ G[tr].T, rtol=1e-5, atol=1e-5)
    assert isinstance(res.indices, tuple) and _is_mask(res.indices[0], 2, 6) and _is_mask(res.indices[1], 3, 4)
    # Breaking the pairing changes the target, so the check above can fail.
    shuffled = delta[torch.randperm(40, generator=gen)]
    assert not torch.allclose(gram([a[q], shuffled[q]], [a[tr], shuffled[tr]]), G[q] @ G[tr].T, atol=1e-3)


def test_paired_sides_learn_each_sides_informative_coordinates():
    a = _informative(n=150, d=40, hot=(5, 17, 33), seed=3)
    delta = _informative(n=150, d=20, hot=(3, 12), seed=4)
    res = learn_mask((a, delta), (3, 2), epochs=60, log_every=30, early_stop=-1.0, **FAST)
    assert res.indices[0].tolist() == [5, 17, 33] and res.indices[1].tolist() == [3, 12]


@pytest.mark.parametrize(
    "grads,k,kwargs,fragment",
    [
        (torch.randn(20, 10), 11, {}, "k=11 > in_dim d=10"),
        (torch.randn(20, 10), 0, {}, "k must be >= 1"),
        ((torch.randn(20, 10), torch.randn(19, 5)), 2, {}, "same rows"),
        ((torch.randn(20, 10), torch.randn(20, 5)), (2, 2, 2), {}, "2 sides but 3 values of k"),
        (torch.randn(20, 3, 10), 2, {}, "one token per example"),
        (torch.full((20, 10), float("nan")), 2, {}, "non-finite"),
        (torch.zeros(20, 10), 2, {}, "constant inner products"),
        (torch.randn(20, 10), 2, {"stop_on": "hard"}, "stop_on='hard'"),
        (torch.randn(20, 10), 2, {"epochs": 0}, "epochs >= 1"),
        (torch.randn(20, 10), 2, {"temperature": 0.0}, "temperature > 0"),
        (torch.randn(20, 10), 2, {"batch_size": 0}, "batch_size"),
        (torch.randn(20, 10), 2, {"init": "zeros"}, "init='zeros'"),
        (torch.randn(20, 10), 2, {"relaxation": "gumbel"}, "relaxation='gumbel'"),
    ],
)
def test_rejects_bad_input(grads, k, kwargs, fragment):
    args = dict(lr=0.01, reg=0.0, epochs=2, log_every=1, progress=False)
    args.update(kwargs)
    with pytest.raises(GrassError, match=fragment.replace("(", r"\(").replace("[", r"\[")):
        learn_mask(grads, k, **args)


def test_mini_batches_step_once_per_batch(monkeypatch):
    g = _informative(n=100)  # 20 query rows -> 3 batches of 8 per epoch
    calls = []
    original = torch.optim.Adam.step

    def counting_step(self, *a, **kw):
        calls.append(1)
        return original(self, *a, **kw)

    monkeypatch.setattr(torch.optim.Adam, "step", counting_step)
    learn_mask(g, 3, epochs=2, log_every=1, early_stop=-1.0, batch_size=8, **FAST)
    assert len(calls) == 2 * 3
    calls.clear()
    learn_mask(g, 3, epochs=2, log_every=1, early_stop=-1.0, **FAST)  # whole matrix: one step per epoch
    assert len(calls) == 2


def test_progress_bar_runs(capsys):
    learn_mask(_informative(), 3, lr=0.01, reg=0.0, epochs=2, log_every=1, progress=True)
    assert "selective mask" in capsys.readouterr().err
