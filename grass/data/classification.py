"""The in-memory form every classification dataset loads into, and its seeded train/query split."""

from dataclasses import dataclass

import numpy as np
import torch

from grass.errors import GrassError
from grass.seeding import generator


@dataclass
class ClassificationData:
    """x_train [n_train, F] float32, y_train [n_train] int64; the same for the query side."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_query: torch.Tensor
    y_query: torch.Tensor
    num_classes: int

    @property
    def num_features(self) -> int:
        return int(self.x_train[0].numel())

    @property
    def n_train(self) -> int:
        return len(self.y_train)

    @property
    def n_query(self) -> int:
        return len(self.y_query)


def standardize(x: np.ndarray, scale: float, mean: float, std: float) -> torch.Tensor:
    """Pixels [N, F] -> float32 tensor ((x / scale) - mean) / std."""
    return torch.from_numpy(((np.asarray(x, dtype=np.float32) / scale) - mean) / std)


def first_rows(name: str, x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor,
               n_train: int, n_query: int) -> ClassificationData:
    """The first n_train rows of a train split and the first n_query of a test split, in file order (dattri's
    benchmark layout: train `SubsetSampler(range(n_train))`, queries `range(n_query)` of the test split)."""
    if n_train <= 0 or n_query <= 0:
        raise GrassError(f"dataset {name}: n_train and n_query must be positive, got {n_train} and {n_query}")
    if n_train > len(y_train) or n_query > len(y_test):
        raise GrassError(f"dataset {name}: n_train={n_train} and n_query={n_query} exceed the {len(y_train)} train "
                         f"and {len(y_test)} test examples available")
    classes = int(max(y_train.max(), y_test.max())) + 1
    return ClassificationData(name, x_train[:n_train], y_train[:n_train], x_test[:n_query], y_test[:n_query], classes)


def split_train_query(
    name: str, x: torch.Tensor, y: torch.Tensor, n_train: int, n_query: int, split_seed: int
) -> ClassificationData:
    """A seeded random split of one pool into disjoint train and query sets (the pool may be sorted by class)."""
    if n_train <= 0 or n_query <= 0:
        raise GrassError(f"dataset {name}: n_train and n_query must be positive, got {n_train} and {n_query}")
    if n_train + n_query > len(y):
        raise GrassError(
            f"dataset {name}: n_train + n_query = {n_train + n_query} exceeds the {len(y)} examples available"
        )
    order = torch.randperm(len(y), generator=generator(split_seed, name, "train_query_split"))
    train, query = order[:n_train], order[n_train : n_train + n_query]
    return ClassificationData(name, x[train], y[train], x[query], y[query], int(y.max()) + 1)
