"""finetune.seeds: per_model (each subset model and checkpoint from its own seed, the default) or shared (every subset
model from checkpoint 0's seed). The default keeps the models' old key; shared is keyed apart; stage finetune hands
the tasks the seeds the policy says, on both the ensemble path and the one-Trainer-per-model path."""

from pathlib import Path

import pytest

from grass.instantiate import instantiate_node
from grass.lds_stages.finetune import run_finetune
from grass.run_context import RunContext
from grass.seeding import derive_seed
from grass.tasks import make_task


def _context(compose_cfg, *overrides):
    cfg = compose_cfg("finetune.epochs=1", "lds.num_subsets=3", *overrides)
    data = instantiate_node(cfg.dataset, "dataset")
    return RunContext(cfg=cfg, run_dir=Path(cfg.paths.root), data=data, task=make_task(cfg, data), tracker=None)


def test_models_key_default_unchanged_shared_apart(compose_cfg):
    default = _context(compose_cfg)
    explicit = _context(compose_cfg, "finetune.seeds=per_model")
    shared = _context(compose_cfg, "finetune.seeds=shared")
    assert "seeds" not in default.models_settings()["finetune"]
    assert default.models_dir() == explicit.models_dir()
    assert shared.models_settings()["finetune"]["seeds"] == "shared"
    assert shared.models_dir() != default.models_dir()


def test_unknown_policy_refused_at_compose(compose_cfg):
    with pytest.raises(Exception, match="finetune.seeds=sharde"):
        compose_cfg("finetune.seeds=sharde")


@pytest.mark.parametrize("policy,ensemble", [("per_model", True), ("shared", True), ("shared", False)])
def test_seeds_handed_to_the_task(compose_cfg, monkeypatch, policy, ensemble):
    ctx = _context(compose_cfg, f"finetune.seeds={policy}", f"finetune.ensemble={str(ensemble).lower()}")
    seen = []
    real_one, real_many = ctx.task.train_one, ctx.task.train_many

    def one(c, seed, rows):
        seen.append(seed)
        return real_one(c, seed, rows)

    def many(c, seeds, rows):
        seen.extend(seeds)
        return real_many(c, seeds, rows)

    monkeypatch.setattr(ctx.task, "train_one", one)
    monkeypatch.setattr(ctx.task, "train_many", many)
    run_finetune(ctx)
    checkpoint = [derive_seed(ctx.cfg.seed, "train", "checkpoint", c) for c in range(ctx.cfg.tda.num_checkpoints)]
    own = [derive_seed(ctx.cfg.seed, "train", "subset", s) for s in range(3)]
    subsets = [checkpoint[0]] * 3 if policy == "shared" else own
    assert sorted(seen) == sorted(subsets + checkpoint)
    assert ctx.metrics["finetune/models_trained"] == 3 + len(checkpoint)
