"""scikit-learn's 8x8 digits: 1,797 real handwritten digits, shipped with scikit-learn."""

import numpy as np
import torch

from grass.data.classification import ClassificationData, split_train_query, standardize


def load_digits(
    name: str = "digits", n_train: int = 1497, n_query: int = 300, split_seed: int = 0
) -> ClassificationData:
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    x = standardize(bunch.data, 16.0, 0.3, 0.4)  # pixels are 0..16
    y = torch.from_numpy(bunch.target.astype(np.int64))
    return split_train_query(name, x, y, n_train, n_query, split_seed)
