"""Selective-mask tests run torch single-threaded: their matrices are small, and on a shared 2-core
machine two threads contend (measured ~20x slower for a [40, 2000] x [2000, 160] matmul)."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
