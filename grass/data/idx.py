"""Reader for the IDX files MNIST and Fashion-MNIST ship in (optionally gzipped)."""

import gzip
from pathlib import Path

import numpy as np

from grass.errors import GrassError

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """One IDX file -> ndarray with the shape its header declares."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise GrassError(f"{path} is not an IDX file (bad magic number)")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=_DTYPES[raw[2]], offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise GrassError(f"{path} is truncated: header says {shape}, found {data.size} values")
    return data.reshape(shape)


def find_idx(folder: Path, stem: str) -> Path:
    """The file `stem` or `stem.gz` in folder (MNIST's and Fashion-MNIST's names share their stems)."""
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.exists():
            return candidate
    raise GrassError(f"{folder} has no {stem} or {stem}.gz; expected the MNIST-format IDX files there")
