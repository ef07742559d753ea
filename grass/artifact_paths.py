"""Where every artifact and run folder lives: the one place that builds their paths (ARCHITECTURE.md section 3).

Folder names carry the readable parts (dataset, model, compressor, ...) and a key: the fingerprint of the settings
that made the artifact (grass.fingerprint), which grass.artifacts also writes beside every file and checks on
reuse. The callers compute the key from their settings; this module only decides the layout.

    <artifacts>/models/<dataset>-<model>-<key>/                   subset_NNN.pt, checkpoint_NNN.pt, subsets.pt
    <artifacts>/models/<dataset>-<model>-dattri-<key>/            the same, imported from dattri's benchmark
    <artifacts>/groundtruth/<models folder name>/margins.pt       ground truth [M, n_query]
    <artifacts>/base/<dataset>-<model>-<key>/base.pt              an LM base pretrained by grass
    <selective_mask.dir>/<k>/flat.pt, .../<k_out>x<k_in>/<layer>.<side>.pt   learned masks (grass.selective.artifact)
    <root>/<experiment>/store/<name>/                             a feature store (grass.store_stages.layout)
    <root>/<experiment>/<dataset>-<model>/<run name><suffix>/     a run folder (grass.run_settings.run_name)
"""

from pathlib import Path


def models_dir(artifacts, dataset: str, model: str, key: str) -> Path:
    """Folder of the trained (or imported: key "dattri-<hash>") subset models, checkpoints and LDS subsets."""
    return Path(artifacts) / "models" / f"{dataset}-{model}-{key}"


def groundtruth_file(artifacts, models_folder: Path) -> Path:
    """The ground truth of the models in `models_folder`: margins [M, n_query]."""
    return Path(artifacts) / "groundtruth" / Path(models_folder).name / "margins.pt"


def base_file(artifacts, dataset: str, model: str, key: str) -> Path:
    """An LM base model pretrained by grass."""
    return Path(artifacts) / "base" / f"{dataset}-{model}-{key}" / "base.pt"


def store_dir(root, experiment: str, name: str) -> Path:
    """The default folder of a feature store (store.dir overrides it)."""
    return Path(root) / experiment / "store" / name


def run_folder(root, experiment: str, dataset: str, model: str, name: str) -> Path:
    """A run's folder outside Hydra (compose API, notebooks); conf/config.yaml's hydra.run.dir builds the same."""
    return Path(root) / experiment / f"{dataset}-{model}" / name
