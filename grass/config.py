"""Typed schema of the composed config, registered in Hydra's ConfigStore.

`conf/config.yaml` lists `grass_schema` first in its defaults, so a misspelled key or a value of the
wrong type fails when Hydra composes the config, before any work starts. Group nodes whose keys depend
on the chosen option (model, dataset, compressor, the attributor) are `Any`: they are `_target_` nodes
checked when instantiated.
"""

import os
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf


class Choice(str, Enum):
    """A setting from a fixed list: a misspelled value fails when Hydra composes the config ("Invalid value
    'stor', expected one of [lds, store]"). Members compare, hash, print and serialise as their plain string,
    so code reads them as the strings they were."""

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    def __repr__(self) -> str:
        return repr(self.value)


def choice(name: str, *values: str) -> type[Choice]:
    return Choice(name, {v: v for v in values})


Pipeline = choice("Pipeline", "lds", "store")
Stage = choice("Stage", "all", "finetune", "selective_mask", "groundtruth", "attribute", "lds",  # pipeline=lds
               "cache", "precondition", "ifvp", "self_influence")  # pipeline=store
Optimizer = choice("Optimizer", "adam", "adamw", "sgd")
Schedule = choice("Schedule", "constant", "linear")
StopOn = choice("StopOn", "soft", "topk")
MaskInit = choice("MaskInit", "energy", "random")
Relaxation = choice("Relaxation", "straight_through", "soft")
StoreDtype = choice("StoreDtype", "float32", "bfloat16")
VerifyMode = choice("VerifyMode", "once", "always")
StoreModel = choice("StoreModel", "checkpoint", "base")
DampingFrom = choice("DampingFrom", "auto", "validation", "fixed")
Target = choice("Target", "margin", "loss")
TrainOutput = choice("TrainOutput", "query", "sequence")
DampingKind = choice("DampingKind", "absolute", "relative", "none")
LoggerBackend = choice("LoggerBackend", "wandb", "csv", "none")
WandbMode = choice("WandbMode", "offline", "online", "disabled")
FinetuneSource = choice("FinetuneSource", "grass", "dattri")
FinetuneSeeds = choice("FinetuneSeeds", "per_model", "shared")
DampingSearch = choice("DampingSearch", "local", "grid")


@dataclass
class PathsConfig:
    root: str = "outputs"  # every run lands under here
    artifacts: str = "${paths.root}/artifacts"  # shared, fingerprint-keyed artifacts


@dataclass
class DattriConfig:
    """finetune.source=dattri: where dattri's benchmark models and LDS ground truth come from (grass/dattri_bench)."""

    repo: str = "trais-lab/dattri-benchmark"  # Hugging Face dataset repo
    revision: str = "main"  # branch, tag or commit of the repo; part of the models key
    mirror: Optional[str] = None  # a local folder laid out like the repo (air-gapped): no hub, no cache
    cache_dir: str = "${paths.artifacts}/dattri"  # huggingface_hub cache of the downloads
    timeout_s: float = 5.0  # hub reachability probe before any download


@dataclass
class FinetuneConfig:
    source: FinetuneSource = FinetuneSource.grass  # grass: train the models here | dattri: the paper's own (download)
    dattri: DattriConfig = field(default_factory=DattriConfig)
    epochs: int = 20
    batch_size: int = 64
    lr: float = 1e-3
    optimizer: Optimizer = Optimizer.adam
    weight_decay: float = 0.0
    momentum: float = 0.9  # sgd only
    schedule: Schedule = Schedule.constant  # linear: decay to 0
    progress_bar: bool = False  # Lightning's per-model bar; an outer bar counts models
    # true: train the models many at once (stacked parameters, torch.func vmap; linear-stack classifiers only) |
    # false: one Lightning Trainer per model | null (auto): true where it can (grass/tasks/ensemble_fit.py)
    ensemble: Optional[bool] = None
    # per_model: every subset model and checkpoint from its own seed (init, batch order, dropout; dattri's
    # retrain_lds: seed + i) | shared: every subset model from checkpoint 0's seed, so the ground truth's spread
    # across subsets is the subsets' and not retraining noise (grass/lds_stages/finetune.py; part of the models key
    # only when shared)
    seeds: FinetuneSeeds = FinetuneSeeds.per_model


@dataclass
class PretrainConfig:
    """Base-model pretraining on the dataset's pretrain blocks (LMs such as gpt2_tiny; unused without them)."""

    epochs: int = 3
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.0
    schedule: Schedule = Schedule.linear  # decay to 0 after warmup
    warmup_steps: int = 50


@dataclass
class CaptureConfig:
    """Linear-layer capture (factorized compressors): which nn.Linear modules, by fnmatch name pattern."""

    layers: List[str] = field(default_factory=lambda: ["*"])  # "*" = every Linear, lm_head included


@dataclass
class LDSConfig:
    num_subsets: int = 50  # M subset models
    subset_fraction: float = 0.5  # alpha
    val_fraction: float = 0.1  # queries held out to choose the damping
    bootstrap: int = 1000
    ci_level: float = 0.95


@dataclass
class SelectiveMaskConfig:
    """Stage `selective_mask` (SPEC 4): learn a mask from one checkpoint's per-example train gradients."""

    # where every learned-mask compressor reads and this stage writes its masks (the one key for the folder; the
    # compressors' mask_dir interpolates it)
    dir: str = "${paths.artifacts}/selective_mask/${experiment_name}-${dataset.name}-${model.name}-s${seed}"
    checkpoint: int = 0
    n_rows: int = 1000  # seeded subset of train examples whose gradients the mask learns from
    n_heldout: int = 200  # further train examples (disjoint) on which learned and random masks are compared
    capture_budget_gb: float = 4.0  # per-layer masks: layer gradients of the rows captured together per pass
    lr: float = 5e-5
    reg: float = 1e-6
    epochs: int = 5000
    log_every: int = 500
    early_stop: float = 0.9
    temperature: float = 0.01  # at T=1 the near-uniform start has zero correlation gradient (see learn.py)
    query_fraction: float = 0.2
    batch_size: Optional[int] = None
    stop_on: StopOn = StopOn.soft  # which fidelity the early stop watches
    init: MaskInit = MaskInit.energy  # random: SPEC 4's N(0, 0.01^2); where the logits start (selective/learn.py)
    relaxation: Relaxation = Relaxation.straight_through  # soft: SPEC 4's sigmoid mask in B


@dataclass
class StoreConfig:
    """pipeline=store (the staged, sharded pipeline of grass.store_stages): where and how features are kept."""

    dir: Optional[str] = None  # null: <paths.root>/<experiment_name>/store/<compressor>-k<K>-s<seed>-<cache hash>
    dtype: StoreDtype = StoreDtype.float32  # storage of train and iFVP features
    chunk_size: int = 64  # train rows per shard; workers split whole chunks
    damping: float = 0.1  # relative, per layer: lambda * trace(F_l) / K_l (as tda=if_efim), when not chosen
    # auto: chosen from damping_grid on the validation queries when they have ground truth (store.model=checkpoint,
    # no prompts_dir), else store.damping | validation: always chosen (an error without ground truth) | fixed
    damping_from: DampingFrom = DampingFrom.auto
    memory_budget_gb: float = 2.0  # attribute: train rows x queries scored per block fit this
    top_k: int = 5  # training blocks shown per query in the report, each way
    prompts_dir: Optional[str] = None  # a folder of *.txt prompts as queries; null: the dataset's query blocks
    model: StoreModel = StoreModel.checkpoint  # the fine-tuned full-data model; base: the (pre)trained base as is
    verify: VerifyMode = VerifyMode.once  # shard checksums: once per process | always


@dataclass
class TDAConfig:
    name: str = MISSING
    target: Target = Target.margin  # output function differentiated
    # train side: the query's output function (query, SPEC 1.2) | the whole train sequence's (sequence: music windows)
    train_output: TrainOutput = TrainOutput.query
    num_checkpoints: int = 1  # models the features are averaged over
    damping: DampingKind = DampingKind.absolute  # what a grid value means
    attributor: Any = MISSING  # _target_ node of a grass.attribute Attributor


@dataclass
class HardwareConfig:
    name: str = "cpu"
    accelerator: str = "cpu"  # Lightning accelerator
    devices: Any = 1
    strategy: str = "auto"
    precision: str = "32-true"
    device: str = "cpu"  # torch device for gradient capture and compression
    grad_batch_size: int = 256  # examples per per-example-gradient batch
    grad_chunk_size: int = 128  # examples per vmap call inside a batch (bounds memory)
    # flat gradients: bound on one vmap chunk, chunk x p x 4 bytes x grad_memory_factor (and on the [batch, p]
    # rows kept per batch); null: grad_chunk_size / grad_batch_size as they are (grass.capture.flat)
    grad_memory_gb: Optional[float] = None
    grad_memory_factor: float = 4.0  # copies of p floats per example: its gradient, the row, activations
    num_threads: Optional[int] = None  # torch intra-op threads; null leaves torch's default
    # torch threads for small-matrix work: the ensemble's training steps and layer-wise per-example gradients; null:
    # the CPUs other jobs leave idle, measured once per run (grass.hardware.small_matrix_threads: 1 beside other jobs,
    # where 2 cost 10-30x more CPU; all on an idle box). BLAS-heavy solves: num_threads
    small_matrix_threads: Optional[int] = None
    capture_batch_size: int = 8  # examples per linear-capture batch (an LM's lm_head delta is [B, T, vocab])


@dataclass
class LoggerConfig:
    backend: LoggerBackend = LoggerBackend.wandb
    project: str = "grass"
    entity: Optional[str] = None
    mode: WandbMode = WandbMode.offline  # offline: local folder, `wandb sync` later
    tags: List[str] = field(default_factory=list)


@dataclass
class GrassConfig:
    model: Any = MISSING
    dataset: Any = MISSING
    compressor: Any = MISSING
    tda: TDAConfig = MISSING
    hardware: HardwareConfig = MISSING
    logger: LoggerConfig = MISSING
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    capture: CaptureConfig = field(default_factory=CaptureConfig)
    lds: LDSConfig = field(default_factory=LDSConfig)
    selective_mask: SelectiveMaskConfig = field(default_factory=SelectiveMaskConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    experiment_name: str = "default"
    seed: int = 0
    proj_dim: int = 4096  # flat methods: whole-model k
    pipeline: Pipeline = Pipeline.lds  # lds: in-memory, scored by LDS | store: staged and sharded (grass.store_stages)
    stage: Stage = Stage.all  # lds: all | finetune | selective_mask | groundtruth | attribute | lds
    # store: all | cache | precondition | ifvp | attribute | self_influence
    worker: str = "0/1"
    store: StoreConfig = field(default_factory=StoreConfig)
    damping_grid: List[float] = field(
        default_factory=lambda: [1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0]
    )
    # local: the grid on checkpoint 0, then all checkpoints around its best, outward while the validation LDS rises
    # (the grid's choice when its curve has one peak; grass.attribute.damping) | grid: every value on every checkpoint
    damping_search: DampingSearch = DampingSearch.local
    save_scores: bool = False  # write scores.pt [n_train, n_query] into the run folder
    # pipeline=lds stage=all: a run folder whose metrics.json is finished (LDS, no run/error) is not recomputed
    # (the folder name hashes every result setting, so it holds this very configuration's result)
    skip_finished: bool = False
    profile: bool = False


def run_suffix(pipeline: str, stage: str, worker: str) -> str:
    """pipeline=store runs of one config differ by stage and worker: each gets its own run folder."""
    if pipeline != "store":
        return ""
    if worker == "rank":  # torchrun: one run folder per rank
        worker = f"{os.environ.get('RANK', '0')}/{os.environ.get('WORLD_SIZE', '1')}"
    return f"/{stage}" + ("" if str(worker) in ("0/1", "") else "-w" + str(worker).replace("/", "of"))


def last_part(value, sep: str, default: str) -> str:
    """`${grass_last_part:${model.target},.,custom}`: the text after the last `sep` ("mypkg.models.Net" -> "Net",
    "org/SmolLM2-135M" -> "SmolLM2-135M", a trailing "/" ignored), `default` when the value is null or empty."""
    text = "" if value is None else str(value).rstrip(sep)
    return text.rsplit(sep, 1)[-1] or default


def register_configs() -> None:
    """Register the schema and resolvers; idempotent, called by every entry point before Hydra composes."""
    ConfigStore.instance().store(name="grass_schema", node=GrassConfig)
    if not OmegaConf.has_resolver("grass_run_suffix"):
        OmegaConf.register_new_resolver("grass_run_suffix", run_suffix)
    if not OmegaConf.has_resolver("grass_run_name"):
        from grass.run_settings import run_name_resolver

        OmegaConf.register_new_resolver("grass_run_name", run_name_resolver)
    if not OmegaConf.has_resolver("grass_last_part"):  # model names of model=custom / hf_causal_lm
        OmegaConf.register_new_resolver("grass_last_part", last_part)
    if not OmegaConf.has_resolver("grass_not"):  # tiny_lm: compact the vocabulary unless the model is pretrained
        OmegaConf.register_new_resolver("grass_not", lambda value: not value)
