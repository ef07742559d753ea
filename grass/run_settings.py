"""A run's identity: the settings that change its result, and the run folder named after them.

Run folders are `<compressor>[-kp<k'>]-k<proj_dim>-<tda>-s<seed>-<hash>`: the readable common parts (`-kp` only
for a two-stage compressor with `compressor.sparse_dim` set: grass, grass_sm), then 6 hex chars
of every other setting that changes the result (tda options, damping grid, compressor options, capture
layers, LDS settings, the training recipe, data and model). Two runs that would give different numbers never
share a folder, so a sweep over any of them keeps one metrics.json per configuration. `compressor=identity`
ignores proj_dim, so its runs carry no `-k`. The same settings are written beside scores.pt and checked by
`stage=lds` before it reads them.
"""

from __future__ import annotations

import hashlib
import json

from omegaconf import DictConfig, ListConfig, OmegaConf

from grass.dattri_bench.settings import finetune_identity
from grass.errors import GrassError
from grass.fingerprint import normalize
from grass.hardware import training_recipe

# Top-level keys that change where or how a run executes, never its numbers.
NOT_RESULT_KEYS = ("hydra", "paths", "logger", "stage", "worker", "save_scores", "profile", "experiment_name",
                   "skip_finished")
# Keys inside groups that are likewise only about execution (progress bars, memory, checksum policy, where a
# dataset caches what it encoded: the cache is keyed by its own content, and cache_dir follows paths.root).
NOT_RESULT_SUBKEYS = {"finetune": ("progress_bar",), "selective_mask": ("capture_budget_gb", "dir"),
                      "dataset": ("cache_dir",),
                      "store": ("verify", "memory_budget_gb", "top_k", "dir")}
IDENTITY_TARGET = "grass.compress.identity.Identity"


def uses_proj_dim(compressor) -> bool:
    """False for compressors whose output keeps the input width (identity): proj_dim plays no part."""
    return compressor.get("_target_") != IDENTITY_TARGET


def sparse_dim(compressor) -> int | None:
    """k' of a two-stage flat compressor (grass, grass_sm) when `compressor.sparse_dim` is set, else None."""
    return compressor.get("sparse_dim")


def result_settings(cfg) -> dict:
    """Plain dict of every setting that changes this run's result (see the module docstring)."""
    # select before resolving: resolving the hydra node would resolve the run dir, which calls run_name
    out = {k: _plain(cfg[k]) for k in cfg if k not in NOT_RESULT_KEYS}
    for group, keys in NOT_RESULT_SUBKEYS.items():
        if isinstance(out.get(group), dict):
            out[group] = {k: v for k, v in out[group].items() if k not in keys}
    attributor = (out.get("tda") or {}).get("attributor")
    if isinstance(attributor, dict):  # how the damped systems are solved, not what: scores agree to 1e-5, same folders
        attributor.pop("solver", None)
    if "ensemble" in out["finetune"] and out["finetune"]["ensemble"] is None:  # auto, resolved by the model: the
        del out["finetune"]["ensemble"]  # folders of before the key existed
    out["finetune"] = finetune_identity(out["finetune"])  # source=grass: as before; dattri: repo and revision
    # the local damping search is the grid itself on one checkpoint, and pipeline=store always searches the grid: the
    # key joins only where it can change the result (folders of before it existed searched the grid)
    search = out.pop("damping_search", "grid")
    checkpoints = int((out.get("tda") or {}).get("num_checkpoints", 1))
    if search != "grid" and checkpoints > 1 and out.get("pipeline") != "store":
        out["damping_search"] = search
    tda = out.get("tda")
    if isinstance(tda, dict) and tda.get("train_output") == "query":  # folders of before the key existed
        del tda["train_output"]
    if out.get("pipeline") != "store":
        out.pop("store", None)
    if not uses_proj_dim(out["compressor"]):
        out.pop("proj_dim", None)
    if "sparse_dim" in out["compressor"] and out["compressor"]["sparse_dim"] is None:
        del out["compressor"]["sparse_dim"]  # null = blowup * proj_dim, as before the key existed: same folders
    from grass.run_compressors import mask_node  # (heavy imports: only once a name is asked for

    if "expected_fingerprint" not in mask_node(out["compressor"]):  # no learned mask: its settings play no part
        out.pop("selective_mask", None)
    hw = OmegaConf.create(out["hardware"])
    try:
        out["hardware"] = training_recipe(hw)
    except GrassError:  # an unusable hardware.devices: grass.validate refuses it; the name must still resolve
        out["hardware"] = {"devices": str(hw.devices), "precision": str(hw.precision)}
    return normalize(out)


def _plain(node):
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, (DictConfig, ListConfig)) else node


def settings_hash(settings: dict) -> str:
    """6 hex chars of a stable hash of the settings."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode("utf-8"), digest_size=3).hexdigest()


def run_name(cfg) -> str:
    """`sjlt-k4096-trak-s0-1a2b3c` (identity: `identity-trak-s0-...`; grass with sparse_dim=32768:
    `grass-kp32768-k4096-trak-s0-...`)."""
    k = f"-k{cfg.proj_dim}" if uses_proj_dim(cfg.compressor) else ""
    if sparse_dim(cfg.compressor) is not None:
        k = f"-kp{sparse_dim(cfg.compressor)}{k}"
    return f"{cfg.compressor.name}{k}-{cfg.tda.name}-s{cfg.seed}-{settings_hash(result_settings(cfg))}"


def tracker_name(cfg) -> str:
    """The W&B run name, mirroring the run folder: `tiny/digits-Net/sjlt-k128-trak-s0-1a2b3c` (the model's name
    included, e.g. a model=custom class name)."""
    return f"{cfg.experiment_name}/{cfg.dataset.name}-{cfg.model.name}/{run_name(cfg)}"


def run_name_resolver(*, _root_: DictConfig) -> str:
    """`${grass_run_name:}` in Hydra's run/sweep dir: run_name of the composed config."""
    return run_name(_root_)
