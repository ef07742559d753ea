"""Which dattri benchmark setting a config maps to, what its data must be, and the key of its models.

dattri's benchmark (Hugging Face dataset `trais-lab/dattri-benchmark`, read by `dattri.benchmark.load`) holds per
setting `<id>/<id>_half.zip` (the LDS subset models, `<i>/model_weights_0.pt`), `<id>/lds/indices_lds.pt`
(LongTensor [M, subset size]: the train rows each subset model saw) and `<id>/lds/target_values_lds.pt` (float
[M, n_query]: minus the query loss of each subset model, dattri's LDS ground truth). Its train rows are the first
n_train rows of the train split and its queries the first n_query rows of the test split, in file order
(`SubsetSampler(range(n))`), so grass's dataset must hold exactly those rows in that order: `check_dataset`
refuses any other. The paper's TRAK runs used the first 10 subset models as its checkpoints
(`models_half[:10]`); grass's checkpoint c is subset model c.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

from grass import artifact_paths
from grass.errors import GrassError
from grass.fingerprint import fingerprint, normalize, to_plain

SUBSET_FRACTION = 0.5  # dattri's LDS subsets hold half the train rows
DATTRI_KEYS = ("source", "dattri")  # finetune keys that only say where models come from


@dataclass(frozen=True)
class BenchmarkSetting:
    identifier: str  # the setting's folder in the hub repo, e.g. mnist_mlp
    model: str  # grass's model name (conf/model/<name>.yaml `name`) whose weights it holds
    requirements: tuple  # ((dataset key, allowed values), ...): the rows dattri's models saw
    n_train: int
    n_query: int
    rows: str  # the rows dattri's models saw, in words
    dataset_hint: str  # the dataset override that meets the requirements
    offline: str  # what to run instead without the files
    key_map: tuple = ()  # ((dattri state-dict key prefix, grass prefix), ...); () = same keys
    classifier: bool = True  # its ground truth is minus the cross-entropy of the true class

    def files(self) -> dict[str, str]:
        """Role -> path in the hub repo: models (zip), indices, targets."""
        i = self.identifier
        return {"models": f"{i}/{i}_half.zip", "indices": f"{i}/lds/indices_lds.pt",
                "targets": f"{i}/lds/target_values_lds.pt"}


SETTINGS = (
    BenchmarkSetting(
        "mnist_mlp", "mlp",
        requirements=(("_target_", ("grass.data.mnist.load_mnist",)), ("source", ("hub", "idx")),
                      ("layout", ("train_test",))),
        n_train=5000, n_query=500,
        rows="the first 5000 train and first 500 test digits of MNIST, in file order",
        dataset_hint="dataset=mnist_dattri (the hub's MNIST; air-gapped: add dataset.source=idx "
                     "dataset.path=<folder with the MNIST IDX files>)",
        offline="experiment=mnist_mlp (grass-trained models on the offline digits)",
        key_map=(("fc1.", "1."), ("fc2.", "4."), ("fc3.", "7.")),  # dattri's MLPMnist -> grass's nn.Sequential MLP
    ),
    BenchmarkSetting(
        "cifar2_resnet9", "resnet9",
        # grass/data/cifar2.py (branch resnet) loads dattri's rows: first cat/dog images of each split in file order
        requirements=(("_target_", ("grass.data.cifar2.load_cifar2",)), ("classes", ("[3, 5]",))),
        n_train=5000, n_query=500,
        rows="the first 5000 train and first 500 test cat/dog images of CIFAR-10, in file order",
        dataset_hint="dataset=cifar2 (CIFAR-10 cat and dog, from the hub or dataset.source=archive)",
        offline="experiment=fmnist2_resnet9_tiny (the offline ResNet-9 stand-in)",
    ),
    BenchmarkSetting(
        "maestro_musictransformer", "music_transformer",
        requirements=(("_target_", ("grass.data.maestro.load_maestro",)),),  # dattri's windows and query set
        n_train=5000, n_query=178,
        rows="dattri's first 5000 MAESTRO train windows and its 178 generated-music query windows",
        dataset_hint="dataset=maestro",
        offline="experiment=music21_music_tiny (the offline music stand-in)",
        classifier=False,
    ),
)


def uses_dattri(cfg: DictConfig) -> bool:
    return str(cfg.finetune.get("source", "grass")) == "dattri"


def setting_for(cfg: DictConfig) -> BenchmarkSetting:
    """The benchmark setting of cfg's model; GrassError naming the supported ones otherwise."""
    for setting in SETTINGS:
        if setting.model == cfg.model.name:
            return setting
    supported = ", ".join(f"model={s.model} ({s.identifier})" for s in SETTINGS)
    raise GrassError(f"finetune.source=dattri has no benchmark models for model={cfg.model.name}; dattri's "
                     f"benchmark covers {supported}; use finetune.source=grass to train this model here")


def check_dataset(cfg: DictConfig, setting: BenchmarkSetting) -> None:
    """The dataset must hold the rows dattri's models were trained and evaluated on, in dattri's order."""
    data = cfg.dataset
    wrong = [f"dataset.{key}={data.get(key)!r} (needs {' or '.join(map(str, allowed))})"
             for key, allowed in setting.requirements if str(data.get(key)) not in allowed]
    for key, want in (("n_train", setting.n_train), ("n_query", setting.n_query)):
        if data.get(key) != want:
            wrong.append(f"dataset.{key}={data.get(key)} (needs {want})")
    if wrong:
        raise GrassError(
            f"finetune.source=dattri ({setting.identifier}) needs the rows dattri's models were trained and scored "
            f"on, {setting.rows}; dataset={data.get('name')} differs: {'; '.join(wrong)}; use {setting.dataset_hint}")


def finetune_identity(finetune: dict) -> dict:
    """The finetune settings a model depends on. grass: the training recipe (the dattri keys left out, so grass
    models keep their key); dattri: only where the weights come from (repo, revision), no recipe."""
    finetune = dict(finetune)
    if str(finetune.get("source", "grass")) != "dattri":
        # seeds=per_model is how every model was trained before the key existed: it keeps their key
        default_seeds = ("seeds",) if str(finetune.get("seeds", "per_model")) == "per_model" else ()
        return {k: v for k, v in finetune.items() if k not in DATTRI_KEYS + default_seeds}
    dattri = dict(finetune.get("dattri") or {})
    return {"source": "dattri", "repo": dattri.get("repo"), "revision": dattri.get("revision")}


def models_settings(cfg: DictConfig) -> dict:
    """What the imported models, subsets and ground truth depend on: repo, revision, setting, dataset, model."""
    setting = setting_for(cfg)
    return normalize({"dataset": cfg.dataset, "model": cfg.model, "setting": setting.identifier,
                      "finetune": finetune_identity(to_plain(cfg.finetune))})


def models_dir(cfg: DictConfig) -> Path:
    """<artifacts>/models/<dataset>-<model>-dattri-<key>: never shared with grass-trained models."""
    key = fingerprint(models_settings(cfg))
    return artifact_paths.models_dir(cfg.paths.artifacts, cfg.dataset.name, cfg.model.name, f"dattri-{key}")


def subsets_settings(cfg: DictConfig, n_train: int) -> dict:
    """Sidecar settings of the imported subsets.pt (grass-drawn subsets carry n_train, fraction and seed)."""
    ft = finetune_identity(to_plain(cfg.finetune))
    return {"n_train": int(n_train), "subset_fraction": SUBSET_FRACTION, "setting": setting_for(cfg).identifier,
            "repo": ft["repo"], "revision": ft["revision"]}


def check_config(cfg: DictConfig) -> BenchmarkSetting:
    """Config-only checks of finetune.source=dattri; returns the setting."""
    setting = setting_for(cfg)
    check_dataset(cfg, setting)
    if cfg.lds.subset_fraction != SUBSET_FRACTION:
        raise GrassError(f"lds.subset_fraction={cfg.lds.subset_fraction} cannot apply to finetune.source=dattri: "
                         f"dattri's subset models each saw {SUBSET_FRACTION:g} of the train rows; leave "
                         f"lds.subset_fraction={SUBSET_FRACTION:g}")
    return setting
