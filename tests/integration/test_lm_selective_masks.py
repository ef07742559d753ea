"""Per-layer selective masks on the LM chain: stage=all learns one mask per linear layer and side, the
fact_sm / factgrass_sm compressors load them, a second run reuses them, and a missing mask is an error."""

import math

import pytest
import torch

from grass.errors import GrassError
from grass.pipeline import run
from grass.selective.artifact import mask_path

SM = ("selective_mask.n_rows=30", "selective_mask.n_heldout=10", "selective_mask.epochs=20",
      "selective_mask.log_every=10", "selective_mask.lr=0.01", "selective_mask.early_stop=-1")


def _cfg(compose_cfg, corpus, *overrides):
    return compose_cfg(f"dataset.path={corpus}", *SM, *overrides, experiment="tiny_lm")


def _mask_files(cfg, k_in, k_out, layer):
    directory = cfg.compressor.side.mask_dir
    return [mask_path(directory, (k_in, k_out), layer, side) for side in ("in", "out")]


def test_fact_sm_learns_per_layer_masks_then_reuses_them(compose_cfg, corpus):
    cfg = _cfg(compose_cfg, corpus, "compressor=fact_sm", "proj_dim=64")
    first = run(cfg)
    assert math.isfinite(first["lds/mean"]) and first["compress/layers"] == 5
    assert first["selective/layers_learned"] == 5
    assert first["compress/sides"]["lm_head"] == [8, 8]  # sqrt(64) per side
    for layer in first["compress/sides"]:
        f_in, f_out = _mask_files(cfg, 8, 8, layer)
        saved_in, saved_out = torch.load(f_in, weights_only=True), torch.load(f_out, weights_only=True)
        assert saved_in["k"] == 8 and saved_out["k"] == 8 and saved_in["info"] == saved_out["info"]
    per_layer = first["selective/heldout_per_layer"]
    assert set(per_layer) == set(first["compress/sides"])
    assert all(-1 <= v["learned"] <= 1 and len(v["random"]) == 3 for v in per_layer.values())
    assert -1 <= first["selective/heldout_spearman_learned"] <= 1
    second = run(cfg)  # every mask read back, nothing relearned, same scores
    assert second["selective/layers_learned"] == 0 and second["lds/mean"] == first["lds/mean"]
    assert "selective/heldout_spearman_learned" not in second  # measured once, by the run that learned them


def test_factgrass_sm_clamps_sides_to_the_layer_width(compose_cfg, corpus):
    cfg = _cfg(compose_cfg, corpus, "compressor=factgrass_sm", "proj_dim=64")
    metrics = run(cfg)
    # 32-wide model: 128-wide masks clamp to 33 (input + bias column) and to each output width
    assert metrics["compress/sides"]["transformer.h.0.attn.c_proj"] == [32, 33]
    assert math.isfinite(metrics["lds/mean"])
    assert _mask_files(cfg, 33, 32, "transformer.h.0.attn.c_proj")[0].exists()


def test_attribute_without_masks_names_the_stage(compose_cfg, corpus):
    cfg = _cfg(compose_cfg, corpus, "compressor=fact_sm", "proj_dim=16", "stage=finetune")
    run(cfg)
    with pytest.raises(GrassError, match="stage=selective_mask"):
        run(_cfg(compose_cfg, corpus, "compressor=fact_sm", "proj_dim=16", "stage=attribute"))
