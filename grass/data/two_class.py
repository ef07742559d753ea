"""Two classes of a labelled image set, relabelled 0/1, selected the way dattri's CIFAR-2 benchmark does.

dattri (benchmark/datasets/cifar/data.py `get_cifar2_indices_and_adjust_labels`, benchmark/load.py
`SAMPLERSIZE_MAP["cifar2_resnet9"] = [5000, 500]`) keeps the examples of the two classes in file order,
relabels the first class 0 and the second 1, and attributes the first 5,000 of the train split to the first
500 of the test split. Keeping that order lets dattri's ground truth line up with our rows.
"""

import numpy as np
import torch

from grass.data.classification import ClassificationData
from grass.errors import GrassError


def class_rows(labels: np.ndarray, classes: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(indices [m] of the examples whose label is in `classes`, in file order; their new labels [m] int64:
    0 for classes[0], 1 for classes[1])."""
    first, second = (int(c) for c in classes)
    if first == second:
        raise GrassError(f"the two classes must differ, got {list(classes)}")
    labels = np.asarray(labels)
    rows = np.flatnonzero((labels == first) | (labels == second))
    return rows, (labels[rows] == second).astype(np.int64)


def two_class_data(name: str, train: tuple[torch.Tensor, np.ndarray], test: tuple[torch.Tensor, np.ndarray],
                   classes: tuple[int, int], n_train: int, n_query: int) -> ClassificationData:
    """The first n_train two-class examples of `train` and the first n_query of `test`, relabelled 0/1.

    train / test: (x [N, F] float32 already normalised, labels [N] of the original classes).
    Raises GrassError when a split has fewer examples of the two classes than asked for.
    """
    if len(classes) != 2:
        raise GrassError(f"dataset {name}: classes must name exactly two labels, got {list(classes)}")
    parts = []
    for (x, labels), n, split, key in ((train, n_train, "train", "n_train"), (test, n_query, "test", "n_query")):
        rows, y = class_rows(labels, tuple(classes))
        if n <= 0 or n > len(rows):
            raise GrassError(f"dataset {name}: {key}={n}, but the {split} split has {len(rows)} examples of "
                             f"classes {list(classes)} (choose 1..{len(rows)})")
        keep = torch.from_numpy(rows[:n])
        parts += [x[keep], torch.from_numpy(y[:n])]
    return ClassificationData(name, parts[0], parts[1], parts[2], parts[3], num_classes=2)
