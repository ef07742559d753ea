"""What a feature store says about itself: `store.json` (the layout) and one JSON manifest per shard.

store.json:  {"format", "fingerprint": <config dict>, "fingerprint_hash", "layers": [[name, K_l], ...],
              "dtype", "n_rows", "chunk_size"}
shard JSON:  {"format", "file", "worker", "chunk", "rows": [start, stop), "shape": [rows, D], "dtype",
              "storage_dtype", "layers": [{"name", "dim", "offset"}], "nbytes", "checksum": "sha256:<hex>",
              "fingerprint_hash"}
Layer order is the order the layers were given in; one example's features are their concatenation, so
layer l occupies columns [offset_l, offset_l + K_l).
"""

import json
from dataclasses import dataclass
from pathlib import Path

from grass.errors import GrassError
from grass.fingerprint import describe_diff, fingerprint, normalize

FORMAT = 1
STORE_FILE = "store.json"
SHARD_GLOB = "shard-w*-c*.npy"
MANIFEST_GLOB = "shard-w*-c*.json"
# name -> (storage dtype of the .npy file, torch dtype name it reads back as)
DTYPES = {"float32": ("float32", "float32"), "bfloat16": ("uint16", "bfloat16")}


def shard_name(worker: int, chunk: int) -> str:
    """File stem of one shard: data in <stem>.npy, manifest in <stem>.json."""
    return f"shard-w{worker:03d}-c{chunk:06d}"


@dataclass(frozen=True)
class Layout:
    """Everything that fixes the meaning of the stored bytes; two writers must agree on all of it."""

    fingerprint: dict
    layers: tuple  # ((name, K_l), ...) in concatenation order
    dtype: str
    n_rows: int
    chunk_size: int

    @classmethod
    def make(cls, parts: dict, layers: dict, dtype: str, n_rows: int, chunk_size: int) -> "Layout":
        if dtype not in DTYPES:
            raise GrassError(f"feature store dtype {dtype!r} is not supported; choose one of {sorted(DTYPES)}")
        if not layers:
            raise GrassError("feature store needs at least one layer (name -> dim)")
        bad = {name: dim for name, dim in layers.items() if int(dim) != dim or dim <= 0}
        if bad:
            raise GrassError(f"feature store layer dims must be positive integers, got {bad}")
        if int(n_rows) != n_rows or n_rows < 0 or int(chunk_size) != chunk_size or chunk_size <= 0:
            raise GrassError(f"feature store needs n_rows >= 0 and chunk_size > 0, got {n_rows} and {chunk_size}")
        return cls(normalize(parts), tuple((str(k), int(v)) for k, v in layers.items()), dtype, int(n_rows),
                   int(chunk_size))

    @property
    def fingerprint_hash(self) -> str:
        return fingerprint(self.fingerprint)

    @property
    def dim(self) -> int:
        return sum(dim for _, dim in self.layers)

    def offsets(self) -> dict:
        """name -> (offset, dim): layer l is columns [offset, offset + dim) of a row."""
        out, start = {}, 0
        for name, dim in self.layers:
            out[name] = (start, dim)
            start += dim
        return out

    def to_json(self) -> dict:
        return {"format": FORMAT, "fingerprint": self.fingerprint, "fingerprint_hash": self.fingerprint_hash,
                "layers": [list(item) for item in self.layers], "dtype": self.dtype, "n_rows": self.n_rows,
                "chunk_size": self.chunk_size}

    @classmethod
    def from_json(cls, data: dict, source: Path) -> "Layout":
        try:
            if data["format"] != FORMAT:
                raise GrassError(f"{source} has store format {data['format']}, this code reads {FORMAT}")
            return cls(data["fingerprint"], tuple((str(n), int(d)) for n, d in data["layers"]), data["dtype"],
                       int(data["n_rows"]), int(data["chunk_size"]))
        except (KeyError, TypeError, ValueError) as e:
            if isinstance(e, GrassError):
                raise
            raise GrassError(f"{source} is not a feature store description ({e}); delete the folder and rerun") from e

    def mismatch(self, cached: "Layout") -> list[str]:
        """Differences between a cached layout and this one, config keys first; [] when they agree."""
        lines = describe_diff(cached.fingerprint, self.fingerprint)
        lines += describe_diff(cached._shape_dict(), self._shape_dict())
        return lines

    def _shape_dict(self) -> dict:
        return {"store.layers": dict(self.layers), "store.layer_order": [n for n, _ in self.layers],
                "store.dtype": self.dtype, "store.n_rows": self.n_rows, "store.chunk_size": self.chunk_size}


def read_json(path: Path) -> dict:
    """A JSON file written by atomic_write_json; unreadable -> GrassError naming it."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise GrassError(f"cannot read {path} ({type(e).__name__}: {e}); delete it and rerun the stage that "
                         f"writes it") from e


def shard_manifest(layout: Layout, worker: int, chunk: int, start: int, stop: int, nbytes: int,
                   checksum: str) -> dict:
    """The manifest of one finished shard (written after its data file, so it marks the shard as done)."""
    offsets = layout.offsets()
    return {"format": FORMAT, "file": shard_name(worker, chunk) + ".npy", "worker": worker, "chunk": chunk,
            "rows": [start, stop], "shape": [stop - start, layout.dim], "dtype": layout.dtype,
            "storage_dtype": DTYPES[layout.dtype][0], "nbytes": nbytes, "checksum": checksum,
            "layers": [{"name": n, "dim": d, "offset": offsets[n][0]} for n, d in layout.layers],
            "fingerprint_hash": layout.fingerprint_hash}


def check_shard_manifest(manifest: dict, layout: Layout, source: Path) -> None:
    """A shard manifest that does not belong to this store's layout is an error naming the shard."""
    expected = shard_manifest(layout, manifest.get("worker", -1), manifest.get("chunk", -1),
                              *manifest.get("rows", [0, 0]), 0, "")
    keys = ("format", "file", "shape", "dtype", "storage_dtype", "layers", "fingerprint_hash")
    bad = [k for k in keys if manifest.get(k) != expected[k]]
    if bad:
        raise GrassError(f"shard manifest {source} does not match this store ({', '.join(bad)} differ); it was "
                         f"written by another config or run: delete it and rerun the stage that writes it")
