"""dataset=fmnist2 from a tiny fake IDX set, and `make fashion-mnist`'s fetch with apt replaced."""

import gzip
import struct

import numpy as np
import pytest
import torch

from grass.data import fashion_fetch
from grass.data.fmnist2 import _MEAN, _STD, load_fmnist2
from grass.errors import GrassError


def _write_idx(path, array: np.ndarray) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


TRAIN_LABELS = np.array([6, 1, 0, 0, 9, 6, 2, 6, 0])
TEST_LABELS = np.array([3, 0, 6, 6, 0])


def _images(labels: np.ndarray, start: int) -> np.ndarray:
    """[n, 28, 28]: image i is constant (start + i) in its top-left 2x2 block, 0 elsewhere."""
    x = np.zeros((len(labels), 28, 28), dtype=np.uint8)
    x[:, :2, :2] = (start + np.arange(len(labels)))[:, None, None]
    return x


@pytest.fixture
def idx_dir(tmp_path):
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    _write_idx(folder / "train-images-idx3-ubyte.gz", _images(TRAIN_LABELS, 10))
    _write_idx(folder / "train-labels-idx1-ubyte.gz", TRAIN_LABELS)
    _write_idx(folder / "t10k-images-idx3-ubyte.gz", _images(TEST_LABELS, 50))
    _write_idx(folder / "t10k-labels-idx1-ubyte.gz", TEST_LABELS)
    return folder


@pytest.mark.parametrize("downsample, side", [(1, 28), (2, 14)])
def test_two_classes_in_file_order_relabelled(idx_dir, downsample, side):
    data = load_fmnist2(path=str(idx_dir), classes=(0, 6), n_train=5, n_query=3, downsample=downsample)
    assert data.x_train.shape == (5, side * side) and data.x_query.shape == (3, side * side)
    assert data.y_train.tolist() == [1, 0, 0, 1, 1] and data.y_query.tolist() == [0, 1, 1]  # 0 -> 0, 6 -> 1
    train_ids = torch.tensor([10, 12, 13, 15, 17], dtype=torch.float32)  # rows 0, 2, 3, 5, 7 of the train file
    # The 2x2 block of value v pools to one pixel of v at downsample 2; standardised with Fashion-MNIST's stats.
    torch.testing.assert_close(data.x_train[:, 0], (train_ids / 255 - _MEAN) / _STD)
    torch.testing.assert_close(data.x_train[:, -1], torch.full((5,), -_MEAN / _STD))
    assert data.num_classes == 2


def test_missing_files_say_make_fashion_mnist(tmp_path):
    with pytest.raises(GrassError, match="make fashion-mnist"):
        load_fmnist2(path=str(tmp_path / "nowhere"))


def test_bad_settings_are_refused(idx_dir):
    with pytest.raises(GrassError, match="downsample=3"):
        load_fmnist2(path=str(idx_dir), downsample=3)
    with pytest.raises(GrassError, match="n_train=7.*6 examples"):
        load_fmnist2(path=str(idx_dir), n_train=7, n_query=1)
    with pytest.raises(GrassError, match="must differ"):
        load_fmnist2(path=str(idx_dir), classes=(6, 6), n_train=1, n_query=1)


def test_fetch_copies_the_idx_files_once(tmp_path, monkeypatch, idx_dir):
    calls = []

    def download(package, folder):
        calls.append(package)
        return folder / "pkg.deb"

    def extract(deb, folder):
        target = folder / fashion_fetch.PACKAGE_DIR
        target.mkdir(parents=True)
        for f in fashion_fetch.FILES:
            (target / f).write_bytes((idx_dir / f).read_bytes())
        return folder

    monkeypatch.setattr(fashion_fetch, "download_deb", download)
    monkeypatch.setattr(fashion_fetch, "extract_deb", extract)
    monkeypatch.setattr(fashion_fetch, "deb_version", lambda deb: "1.0-1")
    dest = tmp_path / "cache"
    assert fashion_fetch.main([str(dest)]) == 0
    assert fashion_fetch.fetch_fashion_mnist(dest) == dest and calls == ["dataset-fashion-mnist"]  # second: no fetch
    assert load_fmnist2(path=str(dest), n_train=5, n_query=3).n_train == 5
    (dest / "t10k-labels-idx1-ubyte.gz").write_bytes(b"")  # damaged: fetched again
    assert not fashion_fetch.is_complete(dest)
    fashion_fetch.fetch_fashion_mnist(dest)
    assert len(calls) == 2 and fashion_fetch.is_complete(dest)
