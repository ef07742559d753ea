"""The three files of a dattri benchmark setting, from a local mirror, the huggingface_hub cache, or the hub.

`benchmark_files(cfg, setting, download)`:
- finetune.dattri.mirror set: the files must be there, laid out as in the repo (`<id>/<id>_half.zip`,
  `<id>/lds/indices_lds.pt`, `<id>/lds/target_values_lds.pt`); the network is never used.
- otherwise the huggingface_hub cache under finetune.dattri.cache_dir (default <artifacts>/dattri) is read
  first; what is missing is downloaded (`hf_hub_download`, repo_type=dataset, finetune.dattri.revision) only
  when `download` is true, after a reachability probe of finetune.dattri.timeout_s seconds.
Offline (HF_HUB_OFFLINE and friends) or unreachable, a missing file is one GrassError, at once, naming the repo,
revision and files, and what to run instead. dattri's own `load_benchmark` is not used: it downloads with no
timeout (it hangs offline), fetches the full-data models too, and needs torchvision for the data.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from omegaconf import DictConfig

from grass.data.hub import OFFLINE_VARS, hub_unreachable
from grass.dattri_bench.settings import BenchmarkSetting
from grass.errors import GrassError

log = logging.getLogger(__name__)
REPO_TYPE = "dataset"


def offline_vars() -> list[str]:
    """The set HF_*_OFFLINE / TRANSFORMERS_OFFLINE variables."""
    return [v for v in OFFLINE_VARS if os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")]


def benchmark_files(cfg: DictConfig, setting: BenchmarkSetting, download: bool) -> dict[str, Path] | None:
    """Role (models, indices, targets) -> local path. None when download is false, some files are not local
    yet and the hub is reachable (they will be fetched by stage finetune). GrassError when they cannot be had."""
    d = cfg.finetune.dattri
    files = setting.files()
    if d.mirror:
        return _from_mirror(Path(str(d.mirror)).expanduser(), files, d.repo)
    found = {role: _cached(d, name) for role, name in files.items()}
    missing = [files[role] for role, path in found.items() if path is None]
    if not missing:
        return found
    offline = offline_vars()
    why = f"{'/'.join(offline)}=1 is set" if offline else hub_unreachable(d.repo, timeout_s=float(d.timeout_s))
    if why:
        online = f"unset {' '.join(offline)} and rerun" if offline else "rerun where huggingface.co is reachable"
        raise GrassError(
            f"finetune.source=dattri could not fetch {', '.join(missing)} from the Hugging Face dataset "
            f"{d.repo}@{d.revision}: {why}, and they are not in the cache {d.cache_dir}. To download them: {online}; "
            f"air-gapped: copy the files, laid out as in the repo, into a folder and add "
            f"finetune.dattri.mirror=<folder>; offline without them: finetune.source=grass, e.g. {setting.offline}")
    if not download:
        return None
    return {role: path or _download(d, files[role]) for role, path in found.items()}


def resolved_commit(path: Path) -> str | None:
    """The repo commit a huggingface_hub cache path belongs to (`.../snapshots/<commit>/...`), else None."""
    parts = Path(path).parts
    return parts[parts.index("snapshots") + 1] if "snapshots" in parts[:-1] else None


def _from_mirror(folder: Path, files: dict[str, str], repo: str) -> dict[str, Path]:
    paths = {role: folder / name for role, name in files.items()}
    missing = [files[role] for role, path in paths.items() if not path.is_file()]
    if missing:
        raise GrassError(f"finetune.dattri.mirror={folder} lacks {', '.join(missing)}: a mirror holds the files of "
                         f"the Hugging Face dataset {repo} laid out as in the repo; copy them there or drop the "
                         f"mirror to download them")
    return paths


def _cached(d, name: str) -> Path | None:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(hf_hub_download(d.repo, name, repo_type=REPO_TYPE, revision=d.revision,
                                    cache_dir=str(d.cache_dir), local_files_only=True))
    except LocalEntryNotFoundError:
        return None


def _download(d, name: str) -> Path:
    from huggingface_hub import hf_hub_download

    log.info("dattri: downloading %s from %s@%s into %s", name, d.repo, d.revision, d.cache_dir)
    try:
        return Path(hf_hub_download(d.repo, name, repo_type=REPO_TYPE, revision=d.revision,
                                    cache_dir=str(d.cache_dir), etag_timeout=float(d.timeout_s)))
    except Exception as e:  # network, missing file or revision: all mean the file cannot be had
        raise GrassError(f"finetune.source=dattri could not download {name} from the Hugging Face dataset "
                         f"{d.repo}@{d.revision} ({type(e).__name__}: {e}); check finetune.dattri.repo/revision, or "
                         f"copy the files into a folder and add finetune.dattri.mirror=<folder>") from e
