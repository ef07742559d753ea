"""A fake dattri benchmark on local files: MNIST-format IDX files and a mirror laid out as the hub repo.

The models are dattri's own MLPMnist (random weights, its own `fc1./fc2./fc3.` keys) and the ground truth is
computed with them as dattri.metric.calculate_lds_ground_truth does (minus the per-query cross-entropy), so the
mapping onto grass is checked against dattri's code, not against grass's. Helpers are fixtures (not imports)
because tests run with --import-mode=importlib."""

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from dattri.benchmark.models.mlp import MLPMnist
from torch.nn import functional as F

N_TRAIN, N_TEST = 5000, 500  # dattri's mnist_mlp sizes (the config check insists on them)


def write_idx(path: Path, array: np.ndarray) -> None:
    """MNIST's IDX format: 0, 0, dtype 0x08 (uint8), ndim, big-endian dims, then the bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def standardized(images: np.ndarray) -> torch.Tensor:
    """dattri's MNIST transform: ToTensor (x / 255) then Normalize(0.1307, 0.3081); [N, 784] float32."""
    return torch.from_numpy(((images.reshape(len(images), -1).astype(np.float32) / 255.0) - 0.1307) / 0.3081)


@pytest.fixture(scope="module")
def mnist_idx(tmp_path_factory):
    """(folder, test images [500, 28, 28] uint8, test labels [500]) with 6,000 train and 600 test rows."""
    folder = tmp_path_factory.mktemp("mnist_idx")
    rng = np.random.default_rng(0)
    for split, n in (("train", N_TRAIN + 1000), ("t10k", N_TEST + 100)):
        write_idx(folder / f"{split}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        write_idx(folder / f"{split}-labels-idx1-ubyte", rng.integers(0, 10, n))
    from grass.data.idx import read_idx

    images = read_idx(folder / "t10k-images-idx3-ubyte")[:N_TEST]
    labels = read_idx(folder / "t10k-labels-idx1-ubyte")[:N_TEST].astype(np.int64)
    return folder, images, labels


def _make_benchmark(mirror: Path, images: np.ndarray, labels: np.ndarray, count: int = 6,
                   prefix: str = "", query_order=None) -> dict:
    """Write <mirror>/mnist_mlp/{mnist_mlp_half.zip, lds/indices_lds.pt, lds/target_values_lds.pt}.

    query_order: a permutation of the queries the ground truth is computed on (to fake other query rows)."""
    root = mirror / "mnist_mlp"
    (root / "lds").mkdir(parents=True, exist_ok=True)
    x = standardized(images).view(-1, 1, 28, 28)
    y = torch.from_numpy(labels)
    if query_order is not None:
        x, y = x[query_order], y[query_order]
    states, indices, targets = [], [], []
    with zipfile.ZipFile(root / "mnist_mlp_half.zip", "w") as zf:
        for i in range(count):
            torch.manual_seed(100 + i)
            model = MLPMnist().eval()
            rows = np.random.default_rng(i).choice(N_TRAIN, N_TRAIN // 2, replace=False)  # as dattri.retrain_lds
            buffer = io.BytesIO()
            torch.save(model.state_dict(), buffer)
            zf.writestr(f"{prefix}{i}/model_weights_0.pt", buffer.getvalue())
            zf.writestr(f"{prefix}{i}/indices.txt", "\n".join(map(str, rows)))
            with torch.no_grad():
                targets.append(-F.cross_entropy(model(x), y, reduction="none"))
            states.append(model.state_dict())
            indices.append(torch.from_numpy(rows))
        zf.writestr(f"{prefix}metadata.yml", f"mode: lds\nnum_subsets: {count}\n")
    indices, targets = torch.stack(indices), torch.stack(targets)
    torch.save(indices, root / "lds" / "indices_lds.pt")
    torch.save(targets, root / "lds" / "target_values_lds.pt")
    return {"states": states, "indices": indices, "targets": targets, "x_query": x, "y_query": y}


@pytest.fixture
def make_benchmark():
    """make_benchmark(mirror, images, labels, count=6, prefix="", query_order=None) -> what was written."""
    return _make_benchmark


@pytest.fixture
def dattri_cfg(compose_cfg, mnist_idx):
    """dattri_cfg(mirror, *overrides) -> experiment=mnist_mlp on the fake IDX files, finetune.source=dattri from
    the mirror, 6 subsets, 2 checkpoints."""

    def _compose(mirror: Path, *extra: str):
        return compose_cfg(*_overrides(mnist_idx[0], mirror, *extra), experiment="mnist_mlp")

    return _compose


def _overrides(idx_folder: Path, mirror: Path, *extra: str) -> list[str]:
    return ["dataset=mnist_dattri", "dataset.source=idx", f"dataset.path={idx_folder}", "finetune.source=dattri",
            f"finetune.dattri.mirror={mirror}", "lds.num_subsets=6", "tda.num_checkpoints=2", "logger=none", *extra]
