"""A learned selective mask keeps inner-product rankings better than a random mask of the same k, measured
on HELD-OUT rows (not the rows it was learned on): synthetic gradients and real per-example MLP gradients."""

import torch
import torch.nn.functional as F

from grass.capture.flat import flat_grads
from grass.capture.linear import ClassifierTarget
from grass.compress.mask import RandomMask
from grass.data.digits import load_digits
from grass.models.mlp import MLP
from grass.selective.learn import inner_product_fidelity, learn_mask


def _held_out_fidelity(held: torch.Tensor, indices: torch.Tensor) -> float:
    """Mean Spearman over the first 20 % of held rows (queries) against the rest."""
    n_query = held.shape[0] // 5
    return inner_product_fidelity(held[:n_query], held[n_query:], indices)


def _compare(grads: torch.Tensor, n_fit: int, k: int, label: str, **hyper) -> tuple[float, float]:
    res = learn_mask(grads[:n_fit], k, early_stop=-1.0, seed=0, progress=False, **hyper)
    held = grads[n_fit:]
    learned = _held_out_fidelity(held, res.indices)
    random = sum(_held_out_fidelity(held, RandomMask(grads.shape[1], k, seed=s).indices) for s in range(5)) / 5
    print(f"\n{label}: held-out mean Spearman of inner products, k={k} of d={grads.shape[1]}: "
          f"selective mask {learned:.4f}, random mask (mean of 5) {random:.4f}")
    return learned, random


def test_synthetic_informative_coordinates():
    gen = torch.Generator().manual_seed(0)
    d, hot = 2000, 20
    g = torch.randn(400, d, generator=gen)
    g[:, torch.randperm(d, generator=gen)[:hot]] *= 8.0  # a few high-variance coordinates among noise
    learned, random = _compare(g, 250, hot, "synthetic", lr=0.01, reg=1e-2, temperature=0.01,
                               epochs=60, log_every=20)
    assert learned > 0.9 and learned > random + 0.5


def test_digits_mlp_per_example_gradients():
    data = load_digits(n_train=500, n_query=100)
    torch.manual_seed(0)
    model = MLP(data.num_features, data.num_classes, hidden=(32, 16), dropout=0.0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(30):  # a few steps: a partly trained model, as at a checkpoint
        idx = torch.randint(0, data.n_train, (64,))
        loss = F.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    g = flat_grads(model, ClassifierTarget("margin"), (data.x_train, data.y_train))  # [500, 2778]
    learned, random = _compare(g, 300, 64, "digits MLP", lr=0.01, reg=1e-4, temperature=0.01,
                               epochs=100, log_every=50)
    assert learned > random + 0.1
