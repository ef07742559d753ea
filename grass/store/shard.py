"""One shard's data file: a .npy array [rows, D] written atomically with a streamed checksum, read memory-mapped.

bfloat16 has no numpy dtype, so bf16 features are stored as their raw uint16 bits and viewed back as
torch.bfloat16 on read (bit-exact both ways).
"""

import hashlib
from pathlib import Path

import numpy as np
import torch

from grass.errors import GrassError
from grass.io import atomic_write

HASH = "sha256"
_BLOCK = 1 << 20  # bytes hashed per read: verification never holds more than this in memory


class HashingWriter:
    """File-like wrapper: forwards write() and hashes every byte, so the checksum costs no second read.

    Forwards the caller's buffer as it is (no copy).
    """

    def __init__(self, f):
        self._f = f
        self._hash = hashlib.new(HASH)
        self.nbytes = 0

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        written = self._f.write(view)
        self._hash.update(view)
        self.nbytes += len(view)
        return written

    def checksum(self) -> str:
        return f"{HASH}:{self._hash.hexdigest()}"


def to_storage(features: torch.Tensor, dtype: str) -> np.ndarray:
    """[rows, D] float tensor (any device) -> contiguous numpy array in the store's storage dtype."""
    x = features.detach().to("cpu")
    if dtype == "float32":
        return np.ascontiguousarray(x.to(torch.float32).numpy())
    if dtype == "bfloat16":
        return np.ascontiguousarray(x.to(torch.bfloat16).contiguous().view(torch.int16).numpy().view(np.uint16))
    raise GrassError(f"feature store dtype {dtype!r} is not supported")


def from_storage(array: np.ndarray, dtype: str) -> torch.Tensor:
    """Inverse of to_storage on an in-memory (already copied) array."""
    if dtype == "bfloat16":
        return torch.from_numpy(array.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(array)


def write_data(path: Path, array: np.ndarray) -> tuple[int, str]:
    """Write `array` as .npy atomically; returns (file size in bytes, checksum of the file bytes)."""
    box = {}

    def write(f):
        writer = HashingWriter(f)
        # the .npy header, then the array's own buffer: no copy of the data (numpy's write_array would pass a
        # non-file object copies of up to 16 MiB each, which a long run's heap keeps)
        np.lib.format.write_array_header_1_0(writer, np.lib.format.header_data_from_array_1_0(array))
        writer.write(memoryview(np.ascontiguousarray(array)))
        box["writer"] = writer

    atomic_write(path, write)
    return box["writer"].nbytes, box["writer"].checksum()


def file_checksum(path: Path) -> str:
    """Checksum of the file bytes, read in 1 MiB blocks."""
    digest = hashlib.new(HASH)
    with open(path, "rb") as f:
        while block := f.read(_BLOCK):
            digest.update(block)
    return f"{HASH}:{digest.hexdigest()}"


def verify_data(path: Path, manifest: dict) -> None:
    """Size and checksum of a shard file against its manifest; a mismatch names the shard and what to do."""
    fix = "delete it and its .json manifest and rerun the stage that writes it (finished shards are kept)"
    if not path.exists():
        raise GrassError(f"shard {path} is missing but its manifest exists; {fix}")
    size = path.stat().st_size
    if size != manifest["nbytes"]:
        raise GrassError(f"shard {path} has {size} bytes, its manifest says {manifest['nbytes']}; {fix}")
    if file_checksum(path) != manifest["checksum"]:
        raise GrassError(f"shard {path} is corrupt (checksum differs from its manifest); {fix}")


def open_data(path: Path, manifest: dict) -> np.ndarray:
    """Memory-mapped read-only view [rows, D] of a shard; nothing is loaded until rows are indexed."""
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as e:
        raise GrassError(f"shard {path} cannot be read as .npy ({e}); delete it and its manifest and rerun") from e
    if list(array.shape) != manifest["shape"] or array.dtype != np.dtype(manifest["storage_dtype"]):
        raise GrassError(f"shard {path} holds {array.dtype}{list(array.shape)}, its manifest says "
                         f"{manifest['storage_dtype']}{manifest['shape']}; delete both and rerun")
    return array
