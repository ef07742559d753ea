"""Where the staged pipeline keeps what each stage makes, and the fingerprint each product is keyed by.

<store dir>/train/                  FeatureStore of compressed train features, shared by every tda   (cache)
<store dir>/<tda>/preconditioner.pt per block P_b (if_efim: (F_b + lambda_b I)^-1, F_b = Phi_b^T Phi_b / n;
                                    trak: (Phi_b^T Phi_b / p + lambda I)^-1 / p), row weights, the damping
                                    (grad_dot has none: Hessian = identity)                      (precondition)
<store dir>/<tda>/ifvp/             FeatureStore of w_i Phi_b P_b (grad_dot scores the train features
                                    themselves)                                                    (ifvp)
<store dir>/<tda>/scores/           FeatureStore [n_train, n_query] of scores                     (attribute)
<store dir>/<tda>/self_influence.pt [n_train]                                                     (self_influence)
<store dir>/<tda>/report.{md,html}  top training blocks per query                                 (attribute)

Each product's fingerprint extends the one before it, so a setting changed between stages is refused by
the first stage that reads the older product, with the differing keys named; every product after the cache
names the tda and its damping settings (never read as another method's).
"""

from dataclasses import dataclass, field
from pathlib import Path

from grass.artifact_paths import store_dir
from grass.fingerprint import normalize
from grass.instantiate import plain_node
from grass.run_compressors import compressor_node
from grass.run_context import RunContext
from grass.run_settings import settings_hash, uses_proj_dim
from grass.store_stages.damping import damping_setting


@dataclass(frozen=True)
class StoreLayout:
    """The paths of one store folder (see the module docstring), derived from its root and the tda's name."""

    root: Path
    tda: str
    train: Path = field(init=False)
    ifvp: Path = field(init=False)
    scores: Path = field(init=False)
    preconditioner: Path = field(init=False)
    self_influence: Path = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "train", self.root / "train")
        names = {"ifvp": "ifvp", "scores": "scores", "preconditioner": "preconditioner.pt",
                 "self_influence": "self_influence.pt"}
        for attr, name in names.items():
            object.__setattr__(self, attr, self.method_dir / name)

    @property
    def method_dir(self) -> Path:
        """<store dir>/<tda>: what one attribution method makes from the shared train features."""
        return self.root / self.tda

    def report(self, suffix: str) -> Path:
        return self.method_dir / f"report.{suffix}"


def store_layout(ctx: RunContext) -> StoreLayout:
    cfg = ctx.cfg
    if cfg.store.dir:
        return StoreLayout(Path(cfg.store.dir), cfg.tda.name)
    k = f"-k{cfg.proj_dim}" if uses_proj_dim(cfg.compressor) else ""
    # the hash of what the train features depend on: caches that differ (e.g. tda.target margin vs loss, other
    # capture layers) get folders of their own, while every tda with the same features shares one cache
    name = f"{cfg.compressor.name}{k}-s{cfg.seed}-{settings_hash(normalize(cache_fingerprint(ctx)))}"
    return StoreLayout(store_dir(cfg.paths.root, cfg.experiment_name, name), cfg.tda.name)


def model_identity(ctx: RunContext) -> dict:
    """What fixes the attributed models' weights: fine-tuned checkpoint 0 (or 0 .. C-1 with tda.num_checkpoints =
    C > 1), or the base model."""
    cfg = ctx.cfg
    if cfg.store.model == "checkpoint":
        count = cfg.tda.num_checkpoints
        return {"checkpoint": 0 if count == 1 else list(range(count)), "models": ctx.models_dir().name}
    return {"base": plain_node(cfg.model), **ctx.task.fingerprint_extra()}


def cache_fingerprint(ctx: RunContext) -> dict:
    """Train features depend on the model, the train data, the compressor (masks included) and its seed."""
    cfg = ctx.cfg
    return {"model": model_identity(ctx), "dataset": plain_node(cfg.dataset),
            "compressor": plain_node(compressor_node(ctx)), "proj_dim": cfg.proj_dim, "seed": cfg.seed,
            "target": cfg.tda.target, "layers": list(cfg.capture.layers)}


def precondition_fingerprint(ctx: RunContext) -> dict:
    """The cache's, plus the tda and how its damping is set (grass.store_stages.damping.damping_setting)."""
    tda = ctx.cfg.tda
    return {**cache_fingerprint(ctx), "tda": {"name": tda.name, "damping": tda.damping},
            "damping": damping_setting(ctx.cfg)}
