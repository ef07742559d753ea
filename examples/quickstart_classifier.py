"""Quickstart: attribute a torch classifier's predictions on your own tensors to its training examples.

    python examples/quickstart_classifier.py

Trains a small MLP on synthetic 2-class data (replace `make_data` / `Net` with yours), then asks grass which
training examples most helped each query: TRAK over two independently trained checkpoints, SJLT to 256 dims.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import grass


class Net(nn.Module):
    def __init__(self, in_features: int = 20, hidden: int = 32, num_classes: int = 2) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def make_data(n: int, seed: int, in_features: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
    """x [n, in_features] float32, y [n] long: two Gaussian blobs."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=gen)
    x = torch.randn(n, in_features, generator=gen) + 1.5 * (2 * y[:, None].float() - 1)
    return x, y


def train(x: torch.Tensor, y: torch.Tensor, seed: int, epochs: int = 20) -> Net:
    torch.manual_seed(seed)
    model = Net(x.shape[1])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(epochs):
        for xb, yb in DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True):
            opt.zero_grad()
            nn.functional.cross_entropy(model(xb), yb).backward()
            opt.step()
    return model.eval()


def main(n_train: int = 500, n_query: int = 50, epochs: int = 20, compressor: str = "sjlt", proj_dim: int = 256,
         tda: str = "trak", damping: float = 1e-2, checkpoints: int = 2) -> torch.Tensor:
    """Scores [n_train, n_query] (positive: the train example helped the query)."""
    x_train, y_train = make_data(n_train, seed=0)
    x_query, y_query = make_data(n_query, seed=1)
    models = [train(x_train, y_train, seed=s, epochs=epochs) for s in range(checkpoints)]

    task = grass.ClassifierTask(models)
    attributor = grass.Attributor(task, compressor=compressor, proj_dim=proj_dim, tda=tda, damping=damping,
                                  device="cpu")
    attributor.cache(DataLoader(TensorDataset(x_train, y_train), batch_size=128))  # no shuffling: row i = example i
    scores = attributor.attribute(DataLoader(TensorDataset(x_query, y_query), batch_size=128))
    values, indices = attributor.top_k(scores, k=3)
    for q in range(min(3, n_query)):
        print(f"query {q} (label {int(y_query[q])}): top train examples {indices[:, q].tolist()} "
              f"with labels {y_train[indices[:, q]].tolist()}")
    most = int(attributor.self_influence().argmax())
    print(f"scores {tuple(scores.shape)}; most self-influential train example: {most}")
    return scores


if __name__ == "__main__":
    main()
