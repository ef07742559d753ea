"""Selective masks on disk (SPEC 4): `<mask_dir>/<k>/flat.pt`, or `<mask_dir>/<k_out>x<k_in>/<layer>.<side>.pt`
for the two sides of a linear layer.

mask_dir is `<artifacts>/selective_mask/<setting>`; k is the number of indices in the file (for GraSS with
a selective mask that is the mask size k' = blowup * proj_dim, not proj_dim); layer is "flat" for
whole-model gradients. A layer's two sides are learned jointly, so both live in the folder of the pair
(k_in, k_out): the input mask learned beside a 32-wide output mask is not the one learned beside 64. Each file
holds the sorted indices and the width they index; its checksum sidecar (grass.artifacts) holds the fingerprint
dict of what made them (model checkpoint, gradient target, learning hyperparameters). A reader states the
fingerprint it expects and is refused on any difference, never handed another run's mask.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch
from torch import Tensor

from grass.artifacts import load_artifact, save_artifact
from grass.errors import GrassError
from grass.fingerprint import normalize, to_plain
from grass.selective.learn import MaskResult

FLAT = "flat"
SIDES = ("in", "out")  # factorized sides, in the order learn_mask takes them: (inputs, output gradients)
FORMAT = 1
HINT = "run stage=selective_mask with the same config first to learn it"


def mask_dir(artifacts, setting: str) -> Path:
    """<artifacts>/selective_mask/<setting>."""
    return Path(artifacts) / "selective_mask" / str(setting)


def mask_path(directory, k, layer: str = FLAT, side: str | None = None) -> Path:
    """<directory>/<k>/<layer>.pt (k an int), or <directory>/<k_out>x<k_in>/<layer>.<side>.pt for side in
    SIDES, where k = (k_in, k_out) is the pair the layer's sides were learned with."""
    if not layer or "/" in layer or "\\" in layer or layer.startswith("."):
        raise GrassError(f"selective mask: layer name {layer!r} cannot be a file name")
    if side is None:
        return Path(directory) / str(int(k)) / f"{layer}.pt"
    if side not in SIDES:
        raise GrassError(f"selective mask: side must be one of {list(SIDES)} or None, got {side!r}")
    if isinstance(k, int) or len(k) != 2:
        raise GrassError(f"selective mask: a layer side's k is the pair (k_in, k_out), got {k!r}")
    k_in, k_out = (int(v) for v in k)
    return Path(directory) / f"{k_out}x{k_in}" / f"{layer}.{side}.pt"


def mask_fingerprint(models_key: str, checkpoint: int, target: str, learn: Mapping, seed: int,
                     train_output: str = "query") -> dict:
    """What a mask depends on: the trained models (their artifact key), which checkpoint's gradients,
    the differentiated output function (tda.target; tda.train_output when not the query's), the learning
    hyperparameters, and the global seed."""
    fp = {"models": models_key, "checkpoint": int(checkpoint), "target": target, "learn": to_plain(learn),
          "seed": int(seed), "format": FORMAT}
    if str(train_output) != "query":  # masks learned before the key existed keep their fingerprint
        fp["train_output"] = str(train_output)
    return normalize(fp)


def save_mask(path, indices: Tensor, in_dim: int, fingerprint: Mapping, info: Mapping | None = None) -> Path:
    """Write sorted indices [k] of a width-in_dim mask with its fingerprint; info: curve etc. (plain data)."""
    indices = torch.as_tensor(indices).to(torch.int64).sort().values.cpu()
    _check_indices(indices, int(in_dim), indices.numel(), path)
    payload = {
        "format": FORMAT,
        "indices": indices,
        "in_dim": int(in_dim),
        "k": indices.numel(),
        "info": normalize(info or {}),
    }
    return save_artifact(payload, Path(path), fingerprint, kind="selective mask")


def save_result(directory, layer: str, result: MaskResult, in_dims, fingerprint: Mapping) -> list[Path]:
    """Save a learn_mask result: one file for flat gradients, one per side for paired (in, out) sides.

    in_dims: the width of each side (int for flat, (d_in, d_out) for paired).
    """
    paired = isinstance(result.indices, tuple)
    indices = list(result.indices) if paired else [result.indices]
    dims = [int(in_dims)] if isinstance(in_dims, int) else [int(d) for d in in_dims]
    if len(dims) != len(indices) or (paired and len(indices) != len(SIDES)):
        raise GrassError(f"selective mask: {len(indices)} index sets but in_dims {in_dims!r}")
    info = {
        "curve": [list(p) for p in result.curve],
        "curve_fields": ["epoch", "spearman", "loss", "spearman_topk"],
        "stopped_early": result.stopped_early,
        "epochs_run": result.epochs_run,
    }
    if paired:
        pair = tuple(idx.numel() for idx in indices)
        return [
            save_mask(mask_path(directory, pair, layer, side), idx, dim, fingerprint, info)
            for side, idx, dim in zip(SIDES, indices, dims)
        ]
    return [save_mask(mask_path(directory, indices[0].numel(), layer), indices[0], dims[0], fingerprint, info)]


def load_mask(path, expected_fingerprint: Mapping | None, in_dim: int, k: int) -> Tensor:
    """The sorted LongTensor [k] saved at path, after checking fingerprint, width and size."""
    path = Path(path)
    if not path.exists():
        raise GrassError(f"no selective mask at {path}; {HINT}")
    if expected_fingerprint is None:
        raise GrassError(
            f"selective mask {path}: no expected fingerprint given; the caller must pass the "
            "grass.selective.artifact.mask_fingerprint(...) of the run that uses it"
        )
    data = load_artifact(path, expected_fingerprint, hint=HINT)  # checksum, then the fingerprint key by key
    if not isinstance(data, dict) or data.get("format") != FORMAT or "indices" not in data:
        raise GrassError(f"{path} is not a selective mask file of format {FORMAT}; {HINT}")
    if int(data["in_dim"]) != int(in_dim):
        raise GrassError(f"selective mask {path} indexes {data['in_dim']} coordinates, the gradients have {in_dim}")
    indices = data["indices"]
    if indices.numel() != int(k):
        raise GrassError(f"selective mask {path} holds {indices.numel()} indices, {k} were asked for")
    _check_indices(indices, int(in_dim), int(k), path)
    return indices.to(torch.int64)


def _check_indices(indices: Tensor, in_dim: int, k: int, path) -> None:
    ok = (
        indices.ndim == 1
        and not indices.dtype.is_floating_point
        and indices.numel() == k
        and (k == 0 or (int(indices[0]) >= 0 and int(indices[-1]) < in_dim))
        and bool((indices[1:] > indices[:-1]).all())
    )
    if not ok:
        raise GrassError(f"selective mask {path}: indices must be {k} sorted distinct integers in [0, {in_dim})")
