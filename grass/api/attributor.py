"""grass as a library: `Attributor(task, compressor, proj_dim, tda).cache(train_loader)`, then
`attribute(query_loader) -> scores [n_train, n_query]`, `top_k(scores, k)` and `self_influence()`.

The same engine the CLI runs (ARCHITECTURE.md section 2): compressors from the same conf/ yaml files
(grass.compress.factory.build_compressor, grass.compress.factorized via grass.lds_stages.attribute_linear.
layer_compressors), flat per-example gradients (grass.capture.flat) or factorized nn.Linear capture
(grass.capture.linear.LinearCapture), per-checkpoint sketch seeds derived as the CLI derives them, the CLI's
attributors (grass.attribute.attributors, per layer through grass.attribute.blockwise) over
grass.attribute.sources.InMemoryFeatures, and self-influence through grass.attribute.streamed (the math of
pipeline=store's self_influence stage). So with the same model, data, seed and damping, the scores equal
`python run.py ... save_scores=true`'s. The CLI chooses the damping by LDS on validation queries with retrained
models as ground truth; the API takes it as an argument (paper section 5: relative damping for influence, absolute
for TRAK).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from grass.api.configs import group_node
from grass.api.tasks import AttributionTask
from grass.attribute.blockwise import BlockwiseAttributor
from grass.attribute.sources import FLAT_BLOCK, FeatureSource, InMemoryFeatures, StoreFeatures
from grass.attribute.streamed import StreamedAttributor, apply_inverses
from grass.capture.flat import flat_grads, num_params, trak_weights
from grass.capture.linear import LinearCapture
from grass.compress.factorized import is_factorized
from grass.compress.factory import build_compressor
from grass.errors import GrassError
from grass.instantiate import instantiate_node
from grass.run_compressors import layer_compressors, mask_node
from grass.run_settings import uses_proj_dim
from grass.seeding import derive_seed
from grass.store import FeatureStore


@dataclass
class _Checkpoint:
    """One model's compressors and cached train features {block: [n_train, K_block]} (CPU float32)."""

    model: nn.Module
    featurize: object  # batch on device -> {block: [B, K_block]}
    num_params: int
    train: dict[str, Tensor] = field(default_factory=dict)  # in memory (empty when a store holds them)
    store: FeatureStore | None = None  # cache(..., store_dir=...): the features on disk, shard by shard
    weight: Tensor | None = None  # TRAK's Q = 1 - p(y | x) [n_train], else None

    def source(self, query: Mapping[str, Tensor] | None = None) -> FeatureSource:
        """The train features (and `query` {block: [m, K]}) as a grass.attribute.sources FeatureSource."""
        return StoreFeatures(self.store, query) if self.store is not None else InMemoryFeatures(self.train, query)


class Attributor:
    """Training-data attribution of one task with one compressor and one tda method.

    task: grass.api.ClassifierTask or grass.api.CausalLMTask (one or several checkpoints).
    compressor: a name of conf/compressor (flat: "identity", "gaussian", "rademacher", "fjlt", "sjlt",
        "random_mask", "grass"; factorized over nn.Linear layers: "logra", "factgrass", "fact_sjlt", "fact_mask") or
        a config node mapping; learned-mask compressors (selective_mask, grass_sm, fact_sm, factgrass_sm) need the
        CLI's selective_mask stage and are refused. compressor_options: its knobs, e.g. {"c": 2} or {"side_dim": 64}.
    proj_dim: k, the compressed width of a whole-model gradient (flat), or K per layer (factorized).
    tda: "trak" (margin output, absolute damping, a flat compressor; any task), "if_efim" (loss output,
        empirical-Fisher influence, relative damping) or "grad_dot" (loss output, no preconditioner).
    damping: lambda > 0 for trak and if_efim (absolute: added to Phi^T Phi / p; relative: times trace(F) / k);
        ignored by grad_dot.
    layers: fnmatch patterns of the nn.Linear layers factorized compressors capture (["*"]: all).
    seed: the sketch seed; checkpoint c uses derive_seed(seed, "flat" | "linear", "checkpoint", c) as the CLI.
    device: where gradients are taken and compressed ("cpu", "cuda", ...; default: cuda when available).
    grad_chunk_size: examples per vmap call of flat per-example gradients (memory vs speed).
    progress: tqdm bars over the batches (one per pass, cleared when done).
    Errors: GrassError for an unknown name, a pairing the method does not support, a missing damping, or calls
    out of order (attribute before cache).
    """

    def __init__(self, task: AttributionTask, compressor: str | Mapping = "sjlt", proj_dim: int = 4096,
                 tda: str | Mapping = "if_efim", damping: float | None = None, *,
                 compressor_options: Mapping | None = None, layers: Iterable[str] = ("*",), seed: int = 0,
                 device: str | torch.device | None = None, grad_chunk_size: int = 256, progress: bool = True) -> None:
        if not isinstance(task, AttributionTask):
            raise GrassError(f"task must be a grass.api ClassifierTask or CausalLMTask, got {type(task).__name__}")
        self.task, self.proj_dim, self.seed = task, int(proj_dim), int(seed)
        self.compressor = group_node("compressor", compressor, **dict(compressor_options or {}))
        self.tda = group_node("tda", tda)
        self.layers, self.grad_chunk_size, self.progress = [str(p) for p in layers], int(grad_chunk_size), progress
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise GrassError(f"device={device!r}, but this torch ({torch.__version__}) sees no CUDA device; use "
                             "device='cpu' or install a CUDA build of torch")
        self.factorized = is_factorized(self.compressor)
        self.damping_kind, self.output = str(self.tda["damping"]), str(self.tda["target"])
        self.damping = None if damping is None else float(damping)
        self._checkpoints: list[_Checkpoint] = []
        self._check()

    def _check(self) -> None:
        name, tda = self.compressor.get("name", "the compressor"), self.tda.get("name", "the tda")
        if "expected_fingerprint" in mask_node(self.compressor):
            raise GrassError(f"compressor={name} reads a mask learned by the CLI's stage=selective_mask; the API takes "
                             "compressors without a learned mask (sjlt, grass, factgrass, logra, ...)")
        if not self.proj_dim > 0:
            raise GrassError(f"proj_dim must be > 0, got {self.proj_dim}")
        if self.damping_kind == "absolute" and self.factorized:
            raise GrassError(f"tda={tda} (absolute damping over whole-model gradients) needs a flat compressor; "
                             "use tda=if_efim or grad_dot with factorized compressors")
        if self.damping_kind != "none" and not (self.damping is not None and self.damping > 0):
            raise GrassError(f"tda={tda} needs damping > 0 ({self.damping_kind} damping), got {self.damping}; e.g. "
                             "1e-3 (the CLI picks it from damping_grid by LDS on validation queries)")

    # ---- features --------------------------------------------------------------------------------------
    def _featurizer(self, model: nn.Module, c: int):
        """batch -> {block: [B, K]} for checkpoint c (sketches seeded as the CLI's attribute stage seeds them)."""
        target = self.task.target(self.output)
        if self.factorized:
            comps = layer_compressors(self.compressor, model, self.layers, self.proj_dim,
                                      derive_seed(self.seed, "linear", "checkpoint", c), self.device)
            capture = LinearCapture(model, target, self.layers, comps)
            return lambda batch: {k: v.detach().float().cpu() for k, v in capture.capture(batch).items()}
        p = num_params(model)
        if uses_proj_dim(self.compressor) and self.proj_dim > p:
            raise GrassError(f"proj_dim={self.proj_dim} is larger than the model's {p} trainable parameters: a flat "
                             f"compressor maps a whole-model gradient of p = {p} numbers to proj_dim <= p")
        comp = build_compressor(self.compressor, in_dim=p, out_dim=self.proj_dim,
                                seed=derive_seed(self.seed, "flat", "checkpoint", c))

        def flat(batch):  # the one place the API takes whole-model per-example gradients
            return {FLAT_BLOCK: comp(flat_grads(model, target, batch, self.grad_chunk_size).to(self.device)).cpu()}
        return flat

    def _batches(self, ckpt: _Checkpoint, loader: Iterable, what: str) -> Iterator[dict[str, Tensor]]:
        """{block: [B, K]} per batch of the loader, in order, with a progress bar (cleared when done)."""
        total = len(loader) if hasattr(loader, "__len__") else None
        for batch in tqdm(loader, total=total, desc=what, unit="batch", leave=False, disable=not self.progress):
            yield ckpt.featurize(self.task.to_device(batch, self.device))

    def _features(self, ckpt: _Checkpoint, loader: Iterable, what: str) -> dict[str, Tensor]:
        parts: dict[str, list[Tensor]] = {}
        for rows in self._batches(ckpt, loader, what):
            for name, x in rows.items():
                parts.setdefault(name, []).append(x)
        if not parts:
            raise GrassError(f"{what}: the loader yielded no batches")
        return {name: torch.cat(rows) for name, rows in parts.items()}

    def _write_store(self, ckpt: _Checkpoint, loader: Iterable, folder: Path, n_train: int, chunk_size: int,
                     what: str) -> FeatureStore:
        """Stream the loader's features into a grass.store FeatureStore at `folder`, one shard per chunk_size rows."""
        store, buffer, start, chunk_id = None, None, 0, 0
        settings = {"compressor": self.compressor, "proj_dim": self.proj_dim, "seed": self.seed,
                    "output": self.output, "layers": self.layers, "num_params": ckpt.num_params}
        for rows in self._batches(ckpt, loader, what):
            if store is None:  # the blocks and widths are known once the first batch is featurized
                store = FeatureStore(folder, settings, {k: int(v.shape[1]) for k, v in rows.items()}, n_train,
                                     chunk_size=chunk_size)
            buffer = rows if buffer is None else {k: torch.cat([buffer[k], x]) for k, x in rows.items()}
            while start < n_train and len(next(iter(buffer.values()))) >= min(chunk_size, n_train - start):
                stop = min(start + chunk_size, n_train)
                store.write(0, chunk_id, (start, stop), {k: x[:stop - start] for k, x in buffer.items()})
                buffer = {k: x[stop - start:] for k, x in buffer.items()}
                start, chunk_id = stop, chunk_id + 1
        seen = start + (0 if buffer is None else len(next(iter(buffer.values()))))
        if seen != n_train:
            raise GrassError(f"{what}: the loader yielded {seen} examples, n_train={n_train} expected")
        return store

    def cache(self, train_loader: Iterable, store_dir: str | Path | None = None, n_train: int | None = None,
              chunk_size: int = 1024) -> "Attributor":
        """Compress every train example's gradient under every checkpoint and keep the features.

        train_loader: an iterable of batches in the task's format (a DataLoader without shuffling: row i of the
        scores is the i-th example it yields). Returns self. Features: {block: [n_train, K]} per checkpoint, in
        memory, or with store_dir in grass.store feature stores (<store_dir>/checkpoint_<c>/, shards of chunk_size
        rows, checksummed; rewritten by every call; a folder made with other settings is refused), so that only
        one chunk is in memory at a time. n_train: the number of examples, needed with store_dir when the loader
        has no `dataset` to count.
        """
        self._checkpoints = []
        count = len(self.task.models)
        if store_dir is not None and n_train is None:
            if not hasattr(getattr(train_loader, "dataset", None), "__len__"):
                raise GrassError("cache(store_dir=...) needs n_train= (the loader has no dataset to count)")
            n_train = len(train_loader.dataset)
        for c, model in enumerate(self.task.models):
            model = model.to(self.device).eval()
            ckpt = _Checkpoint(model, self._featurizer(model, c), num_params(model))
            what = f"train features {c + 1}/{count}"
            if store_dir is None:
                ckpt.train = self._features(ckpt, train_loader, what)
            else:
                ckpt.store = self._write_store(ckpt, train_loader, Path(store_dir) / f"checkpoint_{c}", int(n_train),
                                               int(chunk_size), what)
            if self.damping_kind == "absolute":
                ckpt.weight = trak_weights(model, self.task.target(self.output),
                                           (self.task.to_device(b, self.device) for b in train_loader))
            self._checkpoints.append(ckpt)
        return self

    @property
    def n_train(self) -> int:
        """Cached train examples."""
        self._require_cache()
        return self._checkpoints[0].source().n_train

    def _require_cache(self) -> None:
        if not self._checkpoints:
            raise GrassError("call cache(train_loader) before attribute / self_influence")

    # ---- scores ----------------------------------------------------------------------------------------
    def attribute(self, query_loader: Iterable) -> Tensor:
        """Scores [n_train, n_query] float32 (CPU): positive = the train example helps the query (lowers its loss).

        The queries' features are taken with each checkpoint's own sketches; the checkpoints' scores are averaged
        (TRAK: times the mean Q weights), as the CLI's attribute stage does.
        """
        self._require_cache()
        if self._checkpoints[0].store is not None:
            return self._streamed_scores(query_loader)
        make = lambda: instantiate_node(self.tda["attributor"], "tda.attributor")  # noqa: E731
        attributor = BlockwiseAttributor(make) if self.factorized else make()
        for c, ckpt in enumerate(self._checkpoints):
            query = self._features(ckpt, query_loader, f"query features {c + 1}/{len(self._checkpoints)}")
            source = InMemoryFeatures(ckpt.train, query)
            if self.factorized:
                attributor.add_source(source)
            else:
                attributor.add_source(source, train_weight=ckpt.weight, num_params=ckpt.num_params)
        return attributor.scores(self.damping).cpu()

    def _row_weight(self) -> Tensor:
        """w [n_train] float64 of every checkpoint's rows: 1 / C, times TRAK's mean Q (as pipeline=store weights)."""
        count = len(self._checkpoints)
        weight = torch.full((self.n_train,), 1.0 / count, dtype=torch.float64)
        if self.damping_kind == "absolute":
            weight = weight * sum(ckpt.weight.double() for ckpt in self._checkpoints) / count
        return weight

    def _streamed_scores(self, query_loader: Iterable) -> Tensor:
        """Scores from stored train features, one pass over the shards per checkpoint (grass.attribute.streamed,
        pipeline=store's math: equal to the in-memory scores up to float rounding)."""
        weight, total = self._row_weight(), None
        for c, ckpt in enumerate(self._checkpoints):
            query = self._features(ckpt, query_loader, f"query features {c + 1}/{len(self._checkpoints)}")
            source = ckpt.source(query)
            if self.damping_kind == "none":
                part = torch.zeros(source.n_train, next(iter(query.values())).shape[0])
                for chunk in source.train_chunks():
                    rows = weight[chunk.start:chunk.stop, None].float()
                    for name, x in chunk.features.items():
                        part[chunk.start:chunk.stop] += rows * (x.float() @ query[name].float().T)
            else:
                part = StreamedAttributor(source, self.damping_kind, ckpt.num_params, weight).scores(self.damping)
            total = part if total is None else total + part
        return total

    def self_influence(self) -> Tensor:
        """<phi_i, P phi_i> averaged over checkpoints for every cached train example: [n_train] float32 (CPU).

        P is the tda's damped preconditioner per block (identity for grad_dot); TRAK weights row i by mean Q_i.
        The same math as pipeline=store's self_influence stage (grass.attribute.streamed)."""
        self._require_cache()
        weight = self._row_weight()
        total = torch.zeros(self.n_train, dtype=torch.float64)
        for ckpt in self._checkpoints:
            source = ckpt.source()
            if self.damping_kind == "none":
                for chunk in source.train_chunks():
                    total[chunk.start:chunk.stop] += weight[chunk.start:chunk.stop] * sum(
                        (x.double() ** 2).sum(dim=1) for x in chunk.features.values())
                continue
            fitted = StreamedAttributor(source, self.damping_kind, ckpt.num_params)
            inverses = fitted.inverses(self.damping)
            for chunk in source.train_chunks():
                psi = apply_inverses(chunk.features, inverses, weight[chunk.start:chunk.stop])
                total[chunk.start:chunk.stop] += sum((psi[b].double() * chunk.features[b].double()).sum(dim=1)
                                                     for b in psi)
        return total.float()

    @staticmethod
    def top_k(scores: Tensor, k: int = 10, largest: bool = True) -> tuple[Tensor, Tensor]:
        """(values [k, n_query], train indices [k, n_query]) of the k highest (largest=False: lowest) scores of
        each query in scores [n_train, n_query]; GrassError when k is not in [1, n_train]."""
        if scores.ndim != 2:
            raise GrassError(f"scores must be [n_train, n_query], got shape {tuple(scores.shape)}")
        if not 1 <= k <= scores.shape[0]:
            raise GrassError(f"k must lie in [1, {scores.shape[0]}] (the train examples), got {k}")
        top = torch.topk(scores, k, dim=0, largest=largest)
        return top.values, top.indices
