"""CIFAR-2 (GraSS section 5.1; dattri's benchmark): CIFAR-10 cat (3) vs dog (5) relabelled 0/1, without torchvision.

Rows: the first n_train (5,000) cat/dog images of CIFAR-10's train split in file order, and the first n_query
(500) of its test split (grass/data/two_class.py, dattri's selection). Pixels: dattri's transform,
ToTensor + Normalize(0.5, 0.5) per channel, i.e. x = (pixel / 255 - 0.5) / 0.5 in [-1, 1], stored channel-major
and flattened: x [N, 3 * 32 * 32] float32 (grass/models/resnet9.py reshapes it to [N, 3, 32, 32]).

Sources:
- `archive`: the original python archive (https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz), at
  dataset.path = the .tar.gz, the extracted `cifar-10-batches-py` folder, or its parent. Its batches are
  Python pickles (the format CIFAR-10 ships in); only open an archive you trust.
- `hub`: Hugging Face `datasets` (default uoft-cs/cifar10: columns img, label), whose rows follow the
  archive's order (data_batch_1..5, test_batch).
Offline without either, loading stops at once with a GrassError saying what to fetch and that
`experiment=fmnist2_resnet9_tiny` is the offline stand-in.
"""

import io
import logging
import pickle
import tarfile
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from grass.data.classification import ClassificationData
from grass.data.hub import hub_unreachable
from grass.data.two_class import two_class_data
from grass.errors import GrassError

log = logging.getLogger(__name__)
SOURCES = ("hub", "archive")
ARCHIVE_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
OFFLINE_HINT = (f"download {ARCHIVE_URL} and set dataset.source=archive dataset.path=<that file or its extracted "
                "folder>, or, offline, run the stand-in experiment=fmnist2_resnet9_tiny (`make fashion-mnist` first)")


def load_cifar2(
    name: str = "cifar2",
    source: str = "hub",
    path: Optional[str] = None,
    hub_name: str = "uoft-cs/cifar10",
    classes: Sequence[int] = (3, 5),
    n_train: int = 5000,
    n_query: int = 500,
) -> ClassificationData:
    """CIFAR-2 as ClassificationData: x [n, 3072] float32 in [-1, 1], y [n] int64 (0 = classes[0])."""
    if source == "archive":
        train, test = _from_archive(path)
    elif source == "hub":
        train, test = _from_hub(hub_name)
    else:
        raise GrassError(f"dataset {name}: unknown source {source!r}; choose one of {list(SOURCES)}")
    log.info("%s: CIFAR-10 from %s, classes %s", name, source, list(classes))
    return two_class_data(name, _normalise_split(train), _normalise_split(test), tuple(classes), n_train, n_query)


def _normalise_split(split: tuple[np.ndarray, np.ndarray]) -> tuple[torch.Tensor, np.ndarray]:
    """(uint8 [N, 3072] channel-major, labels [N]) -> (float32 (x / 255 - 0.5) / 0.5, labels)."""
    pixels, labels = split
    x = (torch.from_numpy(np.asarray(pixels).astype(np.float32)) / 255.0 - 0.5) / 0.5
    return x, np.asarray(labels, dtype=np.int64)


def _from_archive(path: Optional[str]) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """((train pixels [50000, 3072] uint8, labels), (test pixels [10000, 3072], labels)) from the python archive."""
    if path is None:
        raise GrassError(f"dataset.source=archive needs dataset.path; {OFFLINE_HINT}")
    where = Path(path).expanduser()
    if where.is_file():
        with tarfile.open(where, "r:*") as tar:
            members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
            read = {b: _unpickle(tar.extractfile(members[b]).read(), f"{where}:{b}")
                    for b in (*TRAIN_BATCHES, TEST_BATCH) if b in members}
    else:
        folder = where / "cifar-10-batches-py" if (where / "cifar-10-batches-py").is_dir() else where
        if not folder.is_dir():
            raise GrassError(f"dataset.path={where} does not exist; {OFFLINE_HINT}")
        read = {b: _unpickle((folder / b).read_bytes(), str(folder / b))
                for b in (*TRAIN_BATCHES, TEST_BATCH) if (folder / b).is_file()}
    missing = [b for b in (*TRAIN_BATCHES, TEST_BATCH) if b not in read]
    if missing:
        raise GrassError(f"{where} is not the CIFAR-10 python archive: it lacks {missing}; {OFFLINE_HINT}")
    train = (np.concatenate([read[b][0] for b in TRAIN_BATCHES]), np.concatenate([read[b][1] for b in TRAIN_BATCHES]))
    return train, read[TEST_BATCH]


def _unpickle(raw: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 batch: a pickled dict with b"data" [n, 3072] uint8 (R, G, B planes) and b"labels"."""
    try:
        batch = pickle.load(io.BytesIO(raw), encoding="bytes")
        data, labels = np.asarray(batch[b"data"], dtype=np.uint8), np.asarray(batch[b"labels"], dtype=np.int64)
    except (pickle.UnpicklingError, KeyError, EOFError, TypeError, ValueError) as e:
        raise GrassError(f"{where} is not a CIFAR-10 batch ({type(e).__name__}: {e})") from None
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise GrassError(f"{where}: expected data [n, 3072] and n labels, got {data.shape} and {len(labels)}")
    return data, labels


def _from_hub(hub_name: str) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """The train and test splits of a hub copy of CIFAR-10 (image column img or image, label column label)."""
    unreachable = hub_unreachable(hub_name)
    if unreachable:
        raise GrassError(f"could not fetch {hub_name} from the Hugging Face hub ({unreachable}); {OFFLINE_HINT}")
    try:
        import datasets

        ds = datasets.load_dataset(hub_name)
    except Exception as e:  # network, hub and offline-mode failures all mean the same thing to the user
        raise GrassError(f"could not fetch {hub_name} from the Hugging Face hub ({type(e).__name__}: "
                         f"{str(e).strip()[:200]}); {OFFLINE_HINT}") from None
    out = []
    for split in ("train", "test"):
        if split not in ds:
            raise GrassError(f"{hub_name} has no {split!r} split (it has {list(ds)})")
        table = ds[split]
        column = "img" if "img" in table.column_names else "image"
        images = np.stack([np.asarray(img.convert("RGB"), dtype=np.uint8) for img in table[column]])  # [N, 32, 32, 3]
        out.append((images.transpose(0, 3, 1, 2).reshape(len(images), -1), np.asarray(table["label"])))
    return tuple(out)
