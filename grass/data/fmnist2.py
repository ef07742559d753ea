"""Fashion-MNIST-2: the offline stand-in for CIFAR-2, two visually close Fashion-MNIST classes relabelled 0/1.

Default classes: T-shirt/top (0) -> 0 and shirt (6) -> 1, the pair Fashion-MNIST classifiers confuse most,
as cat and dog are CIFAR-10's. Rows are chosen as for CIFAR-2 (grass/data/two_class.py): the first n_train
(5,000) of the train split in file order and the first n_query (500) of the t10k split.
Pixels: x = (pixel / 255 - 0.2860) / 0.3530 (Fashion-MNIST's mean and std), optionally average-pooled by
`downsample` (2: 28x28 -> 14x14, a quarter of the convolution cost), flattened: x [N, side * side] float32
(grass/models/resnet9.py reads it as 1-channel square images).

Files: the four IDX .gz files of Debian's `dataset-fashion-mnist`, fetched into data_cache/fashion-mnist by
`make fashion-mnist` (grass/data/fashion_fetch.py); any folder with the same IDX files works.
"""

import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from grass.data.classification import ClassificationData
from grass.data.idx import find_idx, read_idx
from grass.data.two_class import two_class_data
from grass.errors import GrassError

log = logging.getLogger(__name__)
_MEAN, _STD = 0.2860, 0.3530  # Fashion-MNIST train pixel statistics
SPLITS = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
          "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def load_fmnist2(
    name: str = "fmnist2",
    path: str = "data_cache/fashion-mnist",
    classes: Sequence[int] = (0, 6),
    n_train: int = 5000,
    n_query: int = 500,
    downsample: int = 1,
) -> ClassificationData:
    """Two Fashion-MNIST classes as ClassificationData: x [n, (28 / downsample)^2] float32, y [n] int64 in {0, 1}."""
    if int(downsample) < 1 or 28 % int(downsample):
        raise GrassError(f"dataset {name}: downsample={downsample} must divide 28 (1, 2, 4, 7, 14)")
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise GrassError(f"dataset {name}: {folder} does not exist; run `make fashion-mnist` to fetch Fashion-MNIST "
                         "there (or set dataset.path to a folder with its IDX files)")
    splits = {}
    for split, (images, labels) in SPLITS.items():
        x = read_idx(find_idx(folder, images))
        y = read_idx(find_idx(folder, labels))
        if x.ndim != 3 or x.shape[1:] != (28, 28) or len(y) != len(x):
            raise GrassError(f"{folder}: {images} holds {x.shape}, expected [n, 28, 28] with n = {len(y)} labels")
        splits[split] = (_pixels(x, int(downsample)), y.astype(np.int64))
    log.info("%s: Fashion-MNIST classes %s from %s, downsample %d", name, list(classes), folder, downsample)
    return two_class_data(name, splits["train"], splits["test"], tuple(classes), n_train, n_query)


def _pixels(images: np.ndarray, downsample: int) -> torch.Tensor:
    """uint8 [N, 28, 28] -> standardised float32 [N, (28 / downsample)^2] (mean over downsample^2 blocks)."""
    x = (torch.from_numpy(images.astype(np.float32)) / 255.0 - _MEAN) / _STD
    if downsample > 1:
        x = F.avg_pool2d(x.unsqueeze(1), downsample).squeeze(1)
    return x.reshape(len(x), -1).contiguous()
