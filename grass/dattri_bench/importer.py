"""Stage finetune with finetune.source=dattri: dattri's benchmark files become grass artifacts.

Written under ctx.models_dir() (`<artifacts>/models/<dataset>-<model>-dattri-<key>`, key = settings.models_settings:
repo, revision, setting, dataset, model), each with its sidecar (grass.artifacts), so every later stage reads them as
it reads grass-trained ones and the two never mix:
- subsets.pt            {"masks": bool [M_all, n_train]} from indices_lds.pt (all of dattri's subsets)
- subset_NNN.pt         state dict of dattri's subset model NNN (keys renamed to grass's model), NNN < lds.num_subsets
- checkpoint_NNN.pt     subset model NNN again, NNN < tda.num_checkpoints: the paper's TRAK used models_half[:10]
- dattri_source.json    repo, revision, resolved commit, SHA-256 of the three files (provenance, not checked)
- <artifacts>/groundtruth/<models folder>/margins.pt  {"margins": float [M_all, n_query]} = target_values_lds.pt:
  minus the query's cross-entropy under each subset model. Per query, it ranks the subset models exactly as the
  true-class margin log p - log(1 - p) does (both increase with p), so the Spearman LDS is the same as with margins.
Before anything is written the imported subset model 0 is run on grass's query rows: its outputs must rank the
queries as dattri's ground truth row 0 does (Spearman >= MIN_QUERY_AGREEMENT), else the query rows are not dattri's.
"""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path

import torch
from scipy.stats import spearmanr

from grass.artifacts import artifact_lock, artifact_ready, load_artifact, save_artifact
from grass.dattri_bench.convert import ModelsZip, ground_truth, map_keys, subset_masks
from grass.dattri_bench.fetch import benchmark_files, resolved_commit
from grass.dattri_bench.preflight import wanted
from grass.dattri_bench.settings import (
    BenchmarkSetting,
    setting_for,
    subsets_settings,
)
from grass.errors import GrassError
from grass.io import atomic_write_json
from grass.model_files import checkpoint_path, subset_model_path

log = logging.getLogger(__name__)
MIN_QUERY_AGREEMENT = 0.9
HINT = "run stage=finetune finetune.source=dattri to import dattri's benchmark again"


def dattri_subset_masks(ctx) -> torch.Tensor:
    """Bool [lds.num_subsets, n_train]: the imported subsets (GrassError when not imported or too few)."""
    path = ctx.models_dir() / "subsets.pt"
    masks = load_artifact(path, subsets_settings(ctx.cfg, ctx.task.n_train), hint=HINT)["masks"]
    return _first(masks, ctx.cfg.lds.num_subsets, path)


def dattri_groundtruth(ctx, path: Path, settings: dict) -> torch.Tensor:
    """Float [lds.num_subsets, n_query]: the imported ground truth (never recomputed from the models)."""
    return _first(load_artifact(path, settings, hint=HINT)["margins"], ctx.cfg.lds.num_subsets, path)


def import_benchmark(ctx, groundtruth_settings: dict) -> None:
    """Fetch (or read the cache / mirror) and write the artifacts above; skips when they are all there."""
    cfg = ctx.cfg
    ctx.metrics.update({"finetune/source": "dattri", "finetune/dattri_revision": str(cfg.finetune.dattri.revision)})
    if all(artifact_ready(p) for p in wanted(cfg)):
        log.info("dattri: %s already imported", ctx.models_dir())
        ctx.metrics["finetune/models_trained"] = 0
        return
    setting = setting_for(cfg)
    files = benchmark_files(cfg, setting, download=True)
    models = ModelsZip(files["models"])
    try:
        masks = subset_masks(_load(files["indices"]), ctx.task.n_train)
        count = len(masks)
        truth = ground_truth(_load(files["targets"]), count, ctx.task.n_query)
        if len(models) != count:
            raise GrassError(f"{files['models']} holds {len(models)} subset models but indices_lds.pt lists {count} "
                             f"subsets; the files come from different revisions: fetch them again")
        for key, value in (("lds.num_subsets", cfg.lds.num_subsets), ("tda.num_checkpoints", cfg.tda.num_checkpoints)):
            if value > count:
                raise GrassError(f"{key}={value}, but dattri's {setting.identifier} has {count} subset models; "
                                 f"choose {key} <= {count}")
        check_queries(ctx, setting, _grass_state(ctx, setting, models, 0), truth[0])
        _write(ctx, setting, models, masks, truth, groundtruth_settings)
    finally:
        models.close()
    atomic_write_json(_provenance(cfg, setting, files, count), ctx.models_dir() / "dattri_source.json")


def check_queries(ctx, setting: BenchmarkSetting, state: dict, truth_row: torch.Tensor) -> None:
    """Subset model 0 on grass's queries must rank them as dattri's ground truth row 0 (classifiers only)."""
    if not setting.classifier:
        return
    from grass.models.build import build_classifier

    model = build_classifier(ctx.cfg.model, ctx.data)
    model.load_state_dict(state)
    ours = ctx.task.query_outputs(model.eval(), torch.device("cpu"))
    agreement = float(spearmanr(ours.numpy(), truth_row.numpy()).correlation)
    log.info("dattri: subset model 0 ranks the %d queries as dattri's ground truth does, Spearman %.4f",
             len(ours), agreement)
    if not agreement >= MIN_QUERY_AGREEMENT:
        raise GrassError(f"dataset={ctx.cfg.dataset.name}'s query rows are not the ones dattri's ground truth was "
                         f"computed on: dattri's subset model 0 ranks them with Spearman {agreement:.3f} against "
                         f"target_values_lds.pt row 0 (>= {MIN_QUERY_AGREEMENT} expected); use "
                         f"{setting.dataset_hint}")


def _write(ctx, setting, models: ModelsZip, masks, truth, groundtruth_settings: dict) -> None:
    cfg, folder = ctx.cfg, ctx.models_dir()
    _save_once(folder / "subsets.pt", {"masks": masks}, subsets_settings(cfg, ctx.task.n_train), "LDS subsets")
    _save_once(ctx.groundtruth_file(),
               {"margins": truth, "values": "dattri target_values_lds.pt: minus the query cross-entropy"},
               groundtruth_settings, "ground truth")
    jobs = [(subset_model_path(folder, s), s, "subset model") for s in range(cfg.lds.num_subsets)]
    jobs += [(checkpoint_path(folder, c), c, "checkpoint model") for c in range(cfg.tda.num_checkpoints)]
    imported = 0
    for path, index, kind in jobs:
        with artifact_lock(path):
            if artifact_ready(path):
                continue
            listed = models.indices(index)
            if listed is not None and sorted(listed) != masks[index].nonzero().flatten().tolist():
                raise GrassError(f"{models.path}: {index}/indices.txt and row {index} of indices_lds.pt name "
                                 f"different train rows; the files come from different revisions")
            save_artifact(_grass_state(ctx, setting, models, index), path, ctx.models_settings(), kind=kind)
            imported += 1
    ctx.metrics["finetune/models_trained"] = 0
    ctx.metrics["finetune/models_imported"] = imported
    log.info("dattri: %d models of %s written to %s", imported, setting.identifier, folder)


def _grass_state(ctx, setting, models: ModelsZip, index: int) -> dict:
    """Subset model `index` with grass's keys, checked key by key and shape by shape against grass's model."""
    state = map_keys(models.state_dict(index), setting.key_map)
    skeleton = ctx.task.skeleton()
    if skeleton is not None:
        try:
            skeleton.load_state_dict(state, strict=True, assign=True)
        except RuntimeError as e:
            raise GrassError(f"dattri's {setting.identifier} model {index} does not fit model={ctx.cfg.model.name} "
                             f"({str(e).splitlines()[0]} ...); the model config must be the architecture dattri "
                             f"trained") from e
    return state


def _save_once(path: Path, obj, settings: dict, kind: str) -> None:
    with artifact_lock(path):
        if not artifact_ready(path):
            save_artifact(obj, path, settings, kind=kind)


def _first(rows: torch.Tensor, count: int, path: Path) -> torch.Tensor:
    if len(rows) < count:
        raise GrassError(f"{path} holds {len(rows)} subsets, fewer than lds.num_subsets={count}; choose "
                         f"lds.num_subsets <= {len(rows)}")
    return rows[:count]


def _load(path: Path):
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise GrassError(f"cannot read {path} ({type(e).__name__}: {e}); delete it to fetch it again") from e


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def _provenance(cfg, setting, files: dict, count: int) -> dict:
    d = cfg.finetune.dattri
    return {"repo": d.repo, "revision": d.revision, "mirror": d.mirror, "setting": setting.identifier,
            "commit": resolved_commit(files["models"]), "subset_models": count,
            "files": {role: {"name": setting.files()[role], "bytes": Path(p).stat().st_size, "sha256": _sha256(p)}
                      for role, p in files.items()},
            "imported": time.strftime("%Y-%m-%dT%H:%M:%S")}
