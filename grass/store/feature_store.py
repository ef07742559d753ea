"""FeatureStore: per-example features [n_rows, sum_l K_l] in chunk shards, written by N workers, read verified.

Folder layout: store.json (layout + config fingerprint), and per finished chunk c written by worker w
`shard-w{w:03d}-c{c:06d}.npy` (data, memory-mappable) + `.json` (manifest, written last = "done").
Chunk c always holds rows [c * chunk_size, min(n_rows, (c + 1) * chunk_size)) (see workers.py).
"""

from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np
import torch

from grass.errors import GrassError
from grass.io import atomic_write_json, stale_temps
from grass.store.index import StoreReport, scan
from grass.store.manifest import DTYPES, STORE_FILE, Layout, check_shard_manifest, read_json, shard_manifest, shard_name
from grass.store.shard import from_storage, open_data, to_storage, verify_data, write_data
from grass.store.workers import chunk_ranges

VERIFY_MODES = ("once", "always")


class Chunk(NamedTuple):
    chunk_id: int
    start: int
    stop: int
    features: torch.Tensor  # [stop - start, D] or [stop - start, K_l] for one layer


class FeatureStore:
    """Open (or create) the store at `path` for features made by the config `fingerprint`.

    fingerprint: the config parts that determine the features (nested dicts; compared key by key).
    layers: name -> K_l in concatenation order. dtype: "float32" or "bfloat16".
    verify: "once" hashes each shard the first time this object reads it (then trusts it while its size
    and mtime are unchanged); "always" hashes on every read.
    An existing store made by another fingerprint or layout is refused, naming every differing key.
    """

    def __init__(self, path, fingerprint: dict, layers: dict, n_rows: int, dtype: str = "float32",
                 chunk_size: int = 1024, verify: str = "once"):
        if verify not in VERIFY_MODES:
            raise GrassError(f"verify={verify!r}; choose one of {VERIFY_MODES}")
        self.path = Path(path)
        self.layout = Layout.make(fingerprint, dict(layers), dtype, n_rows, chunk_size)
        self._verify_mode = verify
        self._verified = {}  # shard path -> (checksum, size, mtime_ns) already hashed by this object
        self._grid = {c: (a, b) for c, a, b in chunk_ranges(self.layout.n_rows, self.layout.chunk_size)}
        meta = self.path / STORE_FILE
        if not meta.exists():
            atomic_write_json(self.layout.to_json(), meta)
        # Re-read even after creating: a concurrent worker with another config may have won the rename.
        self._check_against(Layout.from_json(read_json(meta), meta))

    @classmethod
    def open(cls, path, fingerprint: dict, verify: str = "once") -> "FeatureStore":
        """Open an existing store for reading, taking layers / n_rows / dtype / chunk_size from store.json."""
        meta = Path(path) / STORE_FILE
        if not meta.exists():
            raise GrassError(f"no feature store at {path} (no {STORE_FILE}); run the stage that writes it first")
        cached = Layout.from_json(read_json(meta), meta)
        return cls(path, fingerprint, dict(cached.layers), cached.n_rows, cached.dtype, cached.chunk_size, verify)

    def _check_against(self, cached: Layout) -> None:
        diff = self.layout.mismatch(cached)
        if diff:
            raise GrassError(f"feature store {self.path} was made by a different config:\n  " + "\n  ".join(diff)
                             + "\nuse another folder for this config, or delete the old store to rebuild it")

    # ---- layout -------------------------------------------------------------------------------------
    @property
    def n_rows(self) -> int:
        return self.layout.n_rows

    @property
    def chunk_size(self) -> int:
        return self.layout.chunk_size

    @property
    def dim(self) -> int:
        """D = sum_l K_l, the width of one stored row."""
        return self.layout.dim

    @property
    def layers(self) -> dict:
        return dict(self.layout.layers)

    def layer_slice(self, layer: str | None) -> slice:
        """Columns of `layer` in a row (all columns for None)."""
        if layer is None:
            return slice(0, self.dim)
        offsets = self.layout.offsets()
        if layer not in offsets:
            raise GrassError(f"layer {layer!r} is not in feature store {self.path}; it holds {list(offsets)}")
        start, dim = offsets[layer]
        return slice(start, start + dim)

    # ---- writing ------------------------------------------------------------------------------------
    def write(self, worker: int, chunk_id: int, rows, features) -> None:
        """Store chunk `chunk_id` = rows [start, stop) (a range or (start, stop)) as worker `worker`'s shard.

        features: Tensor [stop - start, D], or dict layer -> [stop - start, K_l] (concatenated in layer order).
        Data is written first, the manifest last, each through temp file + fsync + rename: a kill or an
        error at any point leaves the chunk "not done" and no partial file under a shard name.
        """
        start, stop = _as_range(rows)
        if self._grid.get(chunk_id) != (start, stop):
            raise GrassError(f"chunk {chunk_id} of feature store {self.path} is rows {self._grid.get(chunk_id)} "
                             f"(chunk_size {self.chunk_size}, n_rows {self.n_rows}), not [{start}, {stop})")
        name = shard_name(worker, chunk_id)
        array = to_storage(self._concat(features, stop - start, name), self.layout.dtype)
        self._refuse_other_writer(worker, chunk_id)
        data, manifest = self.path / f"{name}.npy", self.path / f"{name}.json"
        for leftover in [manifest, data, *stale_temps(data), *stale_temps(manifest)]:
            leftover.unlink(missing_ok=True)  # an unfinished earlier attempt of this same chunk
        nbytes, checksum = write_data(data, array)
        try:
            atomic_write_json(shard_manifest(self.layout, worker, chunk_id, start, stop, nbytes, checksum),
                              manifest)
        except BaseException:
            data.unlink(missing_ok=True)
            raise
        self._verified[str(data)] = (checksum, *_stamp(data))

    def _concat(self, features, n: int, name: str) -> torch.Tensor:
        if isinstance(features, dict):
            if list(features) != [layer for layer, _ in self.layout.layers]:
                raise GrassError(f"{name}: features for layers {list(features)}, the store expects "
                                 f"{[layer for layer, _ in self.layout.layers]} in that order")
            for layer, dim in self.layout.layers:
                if tuple(features[layer].shape) != (n, dim):
                    raise GrassError(f"{name}: layer {layer} features {tuple(features[layer].shape)}, "
                                     f"expected ({n}, {dim})")
            features = torch.cat([features[layer].detach().to("cpu") for layer, _ in self.layout.layers], dim=1)
        if not torch.is_tensor(features) or not features.is_floating_point():
            raise GrassError(f"{name}: features must be a floating-point tensor, got {type(features).__name__}"
                             f"{'' if not torch.is_tensor(features) else ' of ' + str(features.dtype)}")
        if tuple(features.shape) != (n, self.dim):
            raise GrassError(f"{name}: features {tuple(features.shape)}, expected ({n}, {self.dim}) = "
                             f"(rows, sum of layer dims)")
        finite = torch.isfinite(features).all(dim=1)
        if not bool(finite.all()):
            first = int((~finite).nonzero()[0])
            raise GrassError(f"{name}: row {first} of the chunk has non-finite features; not stored")
        return features

    def _refuse_other_writer(self, worker: int, chunk_id: int) -> None:
        for path in self.path.glob(f"shard-w*-c{chunk_id:06d}.json"):
            if path.stem != shard_name(worker, chunk_id):
                raise GrassError(f"chunk {chunk_id} is already stored as {path.name}; worker {worker} must not "
                                 f"write it again (use pending_chunks to resume)")

    def is_done(self, worker: int, chunk_id: int) -> bool:
        """True when worker `worker`'s shard of the chunk is finished (manifest valid, data of the right size)."""
        name = shard_name(worker, chunk_id)
        manifest_path, data = self.path / f"{name}.json", self.path / f"{name}.npy"
        if not manifest_path.exists() or not data.exists():
            return False
        manifest = read_json(manifest_path)
        check_shard_manifest(manifest, self.layout, manifest_path)
        return data.stat().st_size == manifest["nbytes"]

    def done_chunks(self) -> set:
        """Chunk ids held by a finished shard of any worker."""
        return {shard.chunk for shard in self._scan().shards}

    # ---- reading ------------------------------------------------------------------------------------
    def verify(self, checksums: bool = True) -> StoreReport:
        """Missing rows, duplicated rows, orphan files and (with checksums) corrupt shards, as a report.

        Raises only when a shard manifest itself is unreadable or belongs to another layout.
        """
        report = self._scan()
        if checksums:
            for shard in report.shards:
                try:
                    self._verify(shard, force=True)
                except GrassError as e:
                    report.corrupt.append(str(e))
        return report

    def read(self, rows=None, layer: str | None = None) -> torch.Tensor:
        """Features [len(rows), D] (or [len(rows), K_layer]) in the order of `rows`.

        rows: None (all n_rows, the store must be complete), a range, or a 1-D sequence / array / tensor
        of row indices. Shards are memory-mapped: only the requested rows are read into memory (plus a
        streamed checksum of each shard touched, per the verify mode).
        """
        idx = self._row_index(rows)
        cols = self.layer_slice(layer)
        report = self._scan()
        self._require_consistent(report, complete=rows is None)
        out = np.empty((len(idx), cols.stop - cols.start), dtype=DTYPES[self.layout.dtype][0])
        starts = np.array([s.start for s in report.shards], dtype=np.int64)
        stops = np.array([s.stop for s in report.shards], dtype=np.int64)
        which = np.searchsorted(starts, idx, side="right") - 1
        held = (which >= 0) & (idx < stops[np.maximum(which, 0)]) if len(starts) else np.zeros(len(idx), bool)
        if not held.all():
            raise GrassError(f"feature store {self.path} does not hold rows {idx[~held][:8].tolist()}"
                             f"{' ...' if (~held).sum() > 8 else ''}; run the stage that writes it "
                             f"(every worker) first. {report.describe()}")
        order = np.argsort(which, kind="stable")
        bounds = np.searchsorted(which[order], np.arange(len(starts) + 1))
        for k, shard in enumerate(report.shards):
            positions = order[bounds[k]:bounds[k + 1]]
            if len(positions):
                self._verify(shard)
                _gather(open_data(shard.data, shard.manifest), idx[positions] - shard.start, cols, out, positions)
        return from_storage(out, self.layout.dtype)

    def iter_chunks(self, layer: str | None = None, chunk_ids=None) -> Iterator[Chunk]:
        """Chunks in row order (all, or only `chunk_ids`), each verified and read whole (bounded by chunk_size)."""
        report = self._scan()
        self._require_consistent(report, complete=chunk_ids is None)
        by_chunk = {shard.chunk: shard for shard in report.shards}
        wanted = sorted(by_chunk) if chunk_ids is None else list(chunk_ids)
        absent = [c for c in wanted if c not in by_chunk]
        if absent:
            raise GrassError(f"feature store {self.path} has no finished shard for chunks {absent[:8]}; "
                             f"run the stage that writes them first")
        cols = self.layer_slice(layer)
        for chunk_id in wanted:
            shard = by_chunk[chunk_id]
            self._verify(shard)
            array = np.array(open_data(shard.data, shard.manifest)[:, cols])
            yield Chunk(chunk_id, shard.start, shard.stop, from_storage(array, self.layout.dtype))

    # ---- internals ----------------------------------------------------------------------------------
    def _scan(self) -> StoreReport:
        return scan(self.path, self.layout, self._grid)

    def _require_consistent(self, report: StoreReport, complete: bool) -> None:
        """Duplicated rows are always an error (which copy is right?); missing rows only when all are wanted."""
        if report.duplicated or (complete and report.missing):
            raise GrassError(f"feature store {self.path} is incomplete or inconsistent: {report.describe()}; "
                             f"finish every worker of the stage that writes it (duplicates: delete one copy)")

    def _verify(self, shard, force: bool = False) -> None:
        key, checksum = str(shard.data), shard.manifest["checksum"]
        if not force and self._verify_mode == "once" and shard.data.exists() \
                and self._verified.get(key) == (checksum, *_stamp(shard.data)):
            return
        verify_data(shard.data, shard.manifest)
        self._verified[key] = (checksum, *_stamp(shard.data))

    def _row_index(self, rows) -> np.ndarray:
        if rows is None:
            return np.arange(self.n_rows, dtype=np.int64)
        if isinstance(rows, tuple):
            raise GrassError("read(rows=...) takes a range or a list/array/tensor of indices, not a tuple "
                             "(write range(start, stop) for a block of rows)")
        idx = rows.cpu().numpy() if torch.is_tensor(rows) else np.asarray(rows)
        if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
            raise GrassError(f"read(rows=...) needs 1-D integer row indices, got {idx.dtype}{list(idx.shape)}")
        idx = idx.astype(np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= self.n_rows):
            raise GrassError(f"row indices must lie in [0, {self.n_rows}), got min {idx.min()} max {idx.max()}")
        return idx


def _as_range(rows) -> tuple[int, int]:
    if isinstance(rows, range):
        if rows.step != 1:
            raise GrassError(f"chunk rows must be a step-1 range, got {rows}")
        return rows.start, rows.stop
    try:
        start, stop = (int(v) for v in rows)
    except (TypeError, ValueError) as e:
        raise GrassError(f"chunk rows must be range(start, stop) or (start, stop), got {rows!r}") from e
    return start, stop


def _stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


def _gather(array: np.ndarray, local: np.ndarray, cols: slice, out: np.ndarray, positions: np.ndarray) -> None:
    """out[positions] = array[local, cols], with a plain slice when both sides are contiguous runs."""
    n = len(local)
    if local[-1] - local[0] == n - 1 and positions[-1] - positions[0] == n - 1 \
            and np.all(np.diff(local) == 1) and np.all(np.diff(positions) == 1):
        out[positions[0]:positions[0] + n] = array[local[0]:local[0] + n, cols]
    else:
        out[positions] = array[local, cols]
