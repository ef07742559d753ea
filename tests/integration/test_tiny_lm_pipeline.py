"""The LM chain end to end (pretrain base, fine-tune subsets, ground truth, linear capture, per-layer eFIM, LDS)."""

import math

import pytest

from grass.errors import GrassError
from grass.pipeline import run


def _cfg(compose_cfg, corpus, *overrides):
    return compose_cfg(f"dataset.path={corpus}", *overrides, experiment="tiny_lm")


def test_lm_chain_then_reuse(compose_cfg, corpus):
    cfg = _cfg(compose_cfg, corpus, "save_scores=true")
    first = run(cfg)
    assert first["finetune/models_trained"] == cfg.lds.num_subsets + cfg.tda.num_checkpoints
    assert math.isfinite(first["lds/mean"]) and first["lds/ci_low"] <= first["lds/mean"] <= first["lds/ci_high"]
    assert first["compress/layers"] == 5  # 1 block x (c_attn, attn c_proj, c_fc, mlp c_proj) + lm_head
    assert first["compress/feature_dim_total"] == 5 * 64
    assert first["time/compress_s"] > 0 and first["pretrain/query_loss"] < math.log(50257)
    second = run(cfg)  # every artifact (base, models, ground truth) reused; identical scores
    assert second["finetune/models_trained"] == 0
    assert second["lds/mean"] == first["lds/mean"]


@pytest.mark.parametrize("compressor", ["logra", "fact_sjlt", "fact_mask"])
def test_lm_factorized_compressors_run(compose_cfg, corpus, compressor):
    metrics = run(_cfg(compose_cfg, corpus, f"compressor={compressor}"))
    assert math.isfinite(metrics["lds/mean"]) and metrics["compress/layers"] == 5


def test_lm_layer_patterns_select_blocks(compose_cfg, corpus):
    metrics = run(_cfg(compose_cfg, corpus, "capture.layers=[lm_head]", "tda=grad_dot"))
    assert metrics["compress/layers"] == 1 and list(metrics["compress/sides"]) == ["lm_head"]


def test_lm_flat_compressors_run(compose_cfg, corpus):
    """Whole-model gradients of the LM block margin (torch.func over the HF model): TRAK with its weights
    1 - exp(logp), and a flat learned mask (grass_sm) learned from the LM's flat gradients, same models."""
    few = "lds.num_subsets=4"  # the fewest LDS accepts: 5 models (with the checkpoint) trained once, for both runs
    sjlt = run(_cfg(compose_cfg, corpus, "compressor=sjlt", "tda=trak", "hardware.grad_memory_gb=0.05", few))
    assert math.isfinite(sjlt["lds/mean"]) and sjlt["compress/out_dim"] == 64
    sm = ("selective_mask.n_rows=30", "selective_mask.n_heldout=10", "selective_mask.epochs=5",
          "selective_mask.log_every=5", "selective_mask.early_stop=-1")
    learned = run(_cfg(compose_cfg, corpus, "compressor=grass_sm", few, *sm))
    assert learned["finetune/models_trained"] == 0  # the same models
    assert math.isfinite(learned["lds/mean"]) and -1 <= learned["selective/heldout_spearman_learned"] <= 1
    assert learned["model/num_params"] == sjlt["model/num_params"]


def test_lm_flat_gradient_memory_budget_too_small_is_a_clear_error(compose_cfg, corpus):
    with pytest.raises(GrassError, match="hardware.grad_memory_gb=1e-09 does not hold one example"):
        run(_cfg(compose_cfg, corpus, "compressor=sjlt", "hardware.grad_memory_gb=1e-9"))


def test_lm_with_trak_is_a_clear_error(compose_cfg, corpus):
    with pytest.raises(GrassError, match="tda=if_efim or tda=grad_dot"):
        run(_cfg(compose_cfg, corpus, "tda=trak"))
