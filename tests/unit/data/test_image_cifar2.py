"""dataset=cifar2 from a small fake CIFAR-10 python archive: dattri's rows, labels and normalisation."""

import pickle
import tarfile

import numpy as np
import pytest
import torch

from grass.data.cifar2 import TEST_BATCH, TRAIN_BATCHES, load_cifar2
from grass.errors import GrassError


def _batch(labels: list[int], start: int) -> dict:
    """A CIFAR-10 batch: each image's red plane holds its running number (start, start + 1, ...) mod 256."""
    data = np.zeros((len(labels), 3072), dtype=np.uint8)
    data[:, :1024] = (np.arange(start, start + len(labels)) % 256)[:, None]
    data[:, 1024:2048] = 255  # green plane: white
    return {b"data": data, b"labels": labels, b"batch_label": b"fake"}


# 5 train batches of 4 images and one test batch; classes 3 (cat) and 5 (dog) among others.
TRAIN_LABELS = [[3, 1, 5, 5], [0, 3, 9, 5], [5, 3, 2, 3], [4, 4, 6, 5], [3, 8, 7, 5]]
TEST_LABELS = [5, 0, 3, 3, 1, 5]


@pytest.fixture
def archive_dir(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for i, (name, labels) in enumerate(zip(TRAIN_BATCHES, TRAIN_LABELS)):
        (folder / name).write_bytes(pickle.dumps(_batch(labels, 4 * i)))
    (folder / TEST_BATCH).write_bytes(pickle.dumps(_batch(TEST_LABELS, 100)))
    return folder


def _expected(labels_per_batch, start, n):
    flat = [lab for batch in labels_per_batch for lab in batch]
    rows = [i for i, lab in enumerate(flat) if lab in (3, 5)][:n]
    return [start + r for r in rows], [int(flat[r] == 5) for r in rows]


def _check(data, n_train, n_query):
    ids, labels = _expected(TRAIN_LABELS, 0, n_train)
    qids, qlabels = _expected([TEST_LABELS], 100, n_query)
    assert data.x_train.shape == (n_train, 3072) and data.x_train.dtype == torch.float32
    assert data.y_train.tolist() == labels and data.y_query.tolist() == qlabels and data.num_classes == 2
    # dattri's Normalize(0.5, 0.5): pixel v -> (v / 255 - 0.5) / 0.5; the red plane is the row's number.
    torch.testing.assert_close(data.x_train[:, 0], (torch.tensor(ids, dtype=torch.float32) / 255 - 0.5) / 0.5)
    torch.testing.assert_close(data.x_query[:, 1023], (torch.tensor(qids, dtype=torch.float32) / 255 - 0.5) / 0.5)
    assert torch.all(data.x_train[:, 1024:2048] == 1.0) and torch.all(data.x_train[:, 2048:] == -1.0)


def test_selects_the_first_cats_and_dogs_in_file_order(archive_dir):
    data = load_cifar2(source="archive", path=str(archive_dir), n_train=9, n_query=3)
    _check(data, 9, 3)
    assert data.y_train.tolist() == [0, 1, 1, 0, 1, 1, 0, 0, 1]  # cat -> 0, dog -> 1, across the five batches


def test_reads_the_tarball_and_the_parent_folder(archive_dir, tmp_path):
    tarball = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(archive_dir, arcname="cifar-10-batches-py")
    _check(load_cifar2(source="archive", path=str(tarball), n_train=11, n_query=4), 11, 4)
    _check(load_cifar2(source="archive", path=str(archive_dir.parent), n_train=11, n_query=4), 11, 4)


def test_asking_for_more_rows_than_the_classes_have_is_refused(archive_dir):
    with pytest.raises(GrassError, match="n_query=5.*4 examples of classes \\[3, 5\\]"):
        load_cifar2(source="archive", path=str(archive_dir), n_train=2, n_query=5)


def test_an_incomplete_archive_is_named(archive_dir):
    (archive_dir / "data_batch_3").unlink()
    with pytest.raises(GrassError, match="data_batch_3"):
        load_cifar2(source="archive", path=str(archive_dir), n_train=2, n_query=2)
    (archive_dir / "data_batch_2").write_bytes(b"not a pickle")
    (archive_dir / "data_batch_3").write_bytes(pickle.dumps(_batch([3], 0)))
    with pytest.raises(GrassError, match="data_batch_2 is not a CIFAR-10 batch"):
        load_cifar2(source="archive", path=str(archive_dir), n_train=2, n_query=2)


@pytest.mark.parametrize("kwargs", [{"source": "archive", "path": None}, {"source": "archive", "path": "/nonexistent"},
                                    {"source": "hub"}])
def test_offline_without_the_data_says_what_to_fetch_and_what_to_run_instead(kwargs):
    with pytest.raises(GrassError, match="cifar-10-python.tar.gz.*experiment=fmnist2_resnet9_tiny"):
        load_cifar2(**kwargs)  # tests run with HF_DATASETS_OFFLINE=1: the hub fails at once


def test_unknown_source_lists_the_choices():
    with pytest.raises(GrassError, match="\\['hub', 'archive'\\]"):
        load_cifar2(source="torchvision")
