"""The ensemble trainer (grass.tasks.ensemble_fit, grass.models.ensemble_module) and stage finetune's use of it.

A member trained with others equals the same model trained alone (an ensemble of one) and the one-Trainer-per-model
fit (fit_on_rows + ClassifierModule: same init, data order and dropout noise); two runs give identical weights;
each member reads its own subset in its own order; stage finetune trains, saves and resumes per model file.
"""

import io
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch.utils.data import DataLoader

from grass.errors import GrassError
from grass.instantiate import instantiate_node
from grass.lds_stages.finetune import run_finetune
from grass.model_files import checkpoint_path, subset_model_path
from grass.models.classifier_module import ClassifierModule
from grass.models.mlp import MLP
from grass.run_context import RunContext
from grass.seeding import generator
from grass.tasks import make_task
from grass.tasks.base import Task, fit_on_rows
from grass.tasks.ensemble_fit import EnsembleBatches, fit_ensemble, uses_ensemble
from grass.validate import validate_for_task

N, D, C = 120, 12, 3


def _data():
    g = torch.Generator().manual_seed(0)
    return torch.randn(N, D, generator=g), torch.randint(0, C, (N,), generator=g)


def _build():
    return MLP(D, C, hidden=(16, 8), dropout=0.2)


def _masks(count: int, size: int = 60):
    g = torch.Generator().manual_seed(1)
    out = []
    for _ in range(count):
        m = torch.zeros(N, dtype=torch.bool)
        m[torch.randperm(N, generator=g)[:size]] = True
        out.append(m)
    return out


@pytest.fixture
def ctx(compose_cfg, tmp_path):
    cfg = compose_cfg("finetune.epochs=2", "finetune.batch_size=16", "finetune.optimizer=sgd", "finetune.lr=0.05")
    return SimpleNamespace(cfg=cfg, run_dir=tmp_path)


def _equal_states(a, b, exact: bool):
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        if exact:
            assert torch.equal(x, y), name
        else:
            torch.testing.assert_close(x, y, atol=1e-6, rtol=1e-5, msg=name)


def test_member_equals_alone_and_the_per_model_fit(ctx):
    x, y = _data()
    masks = _masks(3)
    members = fit_ensemble(ctx, [5, 6, 7], masks, _build, x, y)
    alone = fit_ensemble(ctx, [6], [masks[1]], _build, x, y)[0]
    _equal_states(members[1], alone, exact=False)
    ft = ctx.cfg.finetune
    lone = fit_on_rows(ctx, 6, _build, lambda m: ClassifierModule(m, lr=ft.lr, optimizer=ft.optimizer,
                                                                  momentum=ft.momentum), x[masks[1]], y[masks[1]])
    _equal_states(members[1], lone, exact=False)  # same init, order and dropout noise: the same model
    assert not members[1].training
    # members really differ from each other, and from their initial weights
    assert not torch.allclose(members[0][1].weight, members[1][1].weight)
    torch.manual_seed(6)
    assert not torch.allclose(members[1][1].weight, _build()[1].weight)


def test_two_runs_give_identical_weights(ctx):
    x, y = _data()
    masks = _masks(2)
    first = fit_ensemble(ctx, [1, 2], masks, _build, x, y)
    second = fit_ensemble(ctx, [1, 2], masks, _build, x, y)
    for a, b in zip(first, second):
        _equal_states(a, b, exact=True)


def test_each_member_reads_its_own_subset_in_its_own_order():
    x, y = _data()
    masks = _masks(2, size=40)
    masks.append(masks[0].clone())  # member 2: member 0's subset, another seed
    rows = [m.nonzero().flatten() for m in masks]
    loaders = [DataLoader(range(40), batch_size=16, shuffle=True, generator=generator(s, "loader")) for s in (3, 4, 5)]
    batches = EnsembleBatches(x, y, rows, loaders)
    assert len(batches) == 3
    for _ in range(2):  # every epoch: each member sees each of its rows once, in its lone DataLoader's order
        epoch = list(batches)
        assert [tuple(b[0].shape) for b in epoch] == [(3, 16, D), (3, 16, D), (3, 8, D)]
        seen = [torch.cat([torch.cdist(b[0][m], x).argmin(dim=1) for b in epoch]) for m in range(3)]
        for m in range(3):
            assert sorted(seen[m].tolist()) == rows[m].tolist()
            assert torch.equal(torch.cat([bx[1][m] for bx in epoch]), y[seen[m]])
        assert not torch.equal(seen[0], seen[2])  # same subset, own order
    # member 0's first epoch is the order its lone fit's DataLoader (same generator) would give
    fresh = EnsembleBatches(x, y, rows[:1], [DataLoader(range(40), batch_size=16, shuffle=True,
                                                        generator=generator(3, "loader"))])
    lone = DataLoader(range(40), batch_size=16, shuffle=True, generator=generator(3, "loader"))
    assert torch.equal(torch.cat([b[0][0] for b in fresh]), x[torch.cat([rows[0][p] for p in lone])])


def test_unequal_row_counts_refused(ctx):
    x, y = _data()
    with pytest.raises(GrassError, match="row counts differ"):
        fit_ensemble(ctx, [1, 2], [_masks(1, 60)[0], _masks(1, 50)[0]], _build, x, y)


def _context(compose_cfg, *overrides):
    cfg = compose_cfg(*overrides)
    data = instantiate_node(cfg.dataset, "dataset")
    return RunContext(cfg=cfg, run_dir=Path(cfg.paths.root), data=data, task=make_task(cfg, data), tracker=None)


def test_finetune_trains_together_and_resumes(compose_cfg):
    quick = ("finetune.epochs=1", "lds.num_subsets=4")
    ctx = _context(compose_cfg, *quick)
    assert uses_ensemble(ctx.cfg, ctx.task)
    run_finetune(ctx)
    assert ctx.metrics["finetune/trainer"] == "ensemble" and ctx.metrics["finetune/models_trained"] == 6
    folder = ctx.models_dir()
    paths = [subset_model_path(folder, s) for s in range(4)] + [checkpoint_path(folder, c) for c in range(2)]
    before = {p: p.read_bytes() for p in paths}
    # a run killed before these two were saved: they are trained again, the others skipped as they are
    lost = [subset_model_path(folder, 2), checkpoint_path(folder, 1)]
    for p in lost:
        p.unlink()
        Path(f"{p}.meta.json").unlink()
    again = _context(compose_cfg, *quick)
    run_finetune(again)
    assert again.metrics["finetune/models_trained"] == 2
    for p in paths:
        if p not in lost:
            assert p.read_bytes() == before[p]
    for p in lost:  # retrained in a smaller group: the same model
        new, old = torch.load(p), torch.load(io.BytesIO(before[p]))
        for k in old:
            torch.testing.assert_close(new[k], old[k], atol=1e-6, rtol=1e-5)


def test_ensemble_switch(compose_cfg):
    auto = _context(compose_cfg)
    off = _context(compose_cfg, "finetune.ensemble=false")
    assert uses_ensemble(auto.cfg, auto.task) and not uses_ensemble(off.cfg, off.task)
    # models trained together are keyed apart from one-Trainer-per-model ones; the latter keep their old key
    assert auto.models_settings()["trainer"] == "ensemble" and "trainer" not in off.models_settings()
    assert "ensemble" not in off.models_settings()["finetune"]
    assert auto.models_dir() != off.models_dir()
    ddp = _context(compose_cfg, "hardware=ddp")
    assert not uses_ensemble(ddp.cfg, ddp.task)  # several training processes: one Trainer per model
    with pytest.raises(GrassError, match="finetune.ensemble=true.*DDP"):
        uses_ensemble(compose_cfg("hardware=ddp", "finetune.ensemble=true"), ddp.task)
    # a task that does not opt in (LMs, music): auto trains one model per Trainer, true is refused up front
    lm_like = SimpleNamespace(ensemble_refusal=lambda: Task.ensemble_refusal(SimpleNamespace()))
    assert not uses_ensemble(auto.cfg, lm_like)
    with pytest.raises(GrassError, match="trains one model per Lightning Trainer"):
        validate_for_task(compose_cfg("finetune.ensemble=true"), lm_like, ["finetune"])
