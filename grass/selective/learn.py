"""Learn a selective mask (SPEC 4): which k coordinates keep the ranking of gradient inner products.

Input is flat per-example gradients g [N, d] (one side), or one linear layer's gradients with two sides,
input and output gradient, whose masks are learned jointly: the paired one-token factors
(a [N, d_in], delta [N, d_out]) of G = delta a^T, or LayerGrads(G [N, O, I']) summed over many tokens
(grass.selective.gradsets computes the weighted inner products of each shape).

Rows are split once (seeded, 80/20) into "train" rows i and "query" rows t; every side uses the same
row split, so the input and output factors of one example stay paired.

With soft masks m_s = sigmoid(S_s / T) (S_s ~ N(0, 0.01^2) seeded, one logit per coordinate):
  A[t, i] = <G_t, G_i>                                      (fixed, [Nq, Nt])
  B[t, i] = <M(G_t), M(G_i)>, M scaling coordinate j of side s by m_{s,j}
  loss    = -mean_t pearson(A[t, :], B[t, :]) + reg * sum_s sum_j m_{s,j}
Adam on S, one step per batch. An epoch is one pass over the query rows: the whole [Nq, Nt] matrix in one
step (batch_size=None, the default) or mini-batches of query rows against all train rows (a query's
correlation always spans all train rows). "Keep at least k entries active": a side's reg term is dropped
for a step while no more than k of its entries have m > 0.5, so sparsity pressure cannot push the
active set below k. Every log_every epochs the fidelity (mean Spearman over query rows of A[t, :] vs
B[t, :]) is measured; training stops when it falls below early_stop. The result is the top-k of m at
that point (ties broken by the lower index), exactly k sorted indices per side.

Temperature matters: a uniform mask gives B = c * A, the maximum of the correlation term, where its
gradient is zero. With T = 1 and S ~ N(0, 0.01^2) the start is almost uniform, so only the (uniform)
reg pressure acts and the top-k is close to random (measured on MNIST-MLP gradients, k = 2048: held-out
fidelity 0.80, random masks 0.80-0.84). T = 0.01 makes the initial mask non-uniform (logits ~ N(0, 1)) and
the correlation term then selects (same data: 0.96).

The soft objective has a deeper flaw at small k: any uniform mask maximizes it (Pearson is scale invariant),
so nothing in it rewards concentrating on k coordinates, and on gpt2_tiny layer gradients at 16x16 the top-k
of the soft mask came out below random masks on held-out rows. Two decisions against SPEC 4 fix that, both
switchable back to the letter of the SPEC (init="random", relaxation="soft"):
- relaxation="straight_through": B uses the hard top-k mask h itself (w = h + m - stop_grad(m)), so the
  loss is the fidelity of the mask that will be used, and its gradient still reaches every coordinate through
  m. The result is the best hard mask among the log points (by the fidelity on the split's query rows).
- init="energy": logits start ordered by each coordinate's squared gradient mass (rank-normalized to unit
  spread, plus the seeded N(0, 0.01^2) noise), so training starts from the energy top-k, a strong mask, rather
  than from a random one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import NamedTuple, Sequence, Union

import torch
from torch import Tensor
from tqdm.auto import tqdm

from grass.compress.mask import check_mask_size
from grass.errors import GrassError
from grass.lds.metric import spearman_columns
from grass.seeding import generator
from grass.selective.gradsets import Grads, RowSet, as_rowset

log = logging.getLogger(__name__)

STOP_METRICS = ("soft", "topk")
INITS = ("energy", "random")
RELAXATIONS = ("straight_through", "soft")
INIT_STD = 0.01


class CurvePoint(NamedTuple):
    """One log point. spearman: the metric the stop rule uses (see stop_on); spearman_topk: hard top-k masks."""

    epoch: int
    spearman: float
    loss: float
    spearman_topk: float


@dataclass
class MaskResult:
    """indices: LongTensor [k] sorted (flat), or a tuple of one per side (k_s each) for paired input.

    stopped_early: the fidelity rule fired (at epoch epochs_run, the last curve point).
    selected_epoch: the curve point whose hard masks are returned (the last one for relaxation="soft").

    train_rows / query_rows: LongTensor row numbers of the split the mask was learned on (all sides).
    """

    indices: Union[Tensor, tuple[Tensor, ...]]
    curve: list[CurvePoint]
    stopped_early: bool
    epochs_run: int
    train_rows: Tensor
    query_rows: Tensor
    selected_epoch: int = 0


def split_rows(n: int, seed: int, query_fraction: float = 0.2) -> tuple[Tensor, Tensor]:
    """Seeded split of n rows into (train_rows [n - q], query_rows [q]), each sorted; q = round(fraction * n)."""
    if not 0.0 < query_fraction < 1.0:
        raise GrassError(f"selective mask: query_fraction must lie in (0, 1), got {query_fraction}")
    n_query = int(round(query_fraction * n))
    if n_query < 1 or n - n_query < 2:
        raise GrassError(f"selective mask: {n} gradient rows are too few to split {1 - query_fraction:.0%}/"
                         f"{query_fraction:.0%} (need >= 1 query row and >= 2 train rows)")
    perm = torch.randperm(n, generator=generator(seed, "selective_mask", "split"))
    return perm[n_query:].sort().values, perm[:n_query].sort().values


def gram(query: Grads, train: Grads, weights: Sequence[Tensor] | None = None) -> Tensor:
    """Inner products [Nq, Nt] of query rows with train rows, side s weighted by w_s [d_s] (None: exact)."""
    return as_rowset(query).gram(as_rowset(train), weights)


def row_spearman(exact: Tensor, approx: Tensor) -> float:
    """Mean over rows t of Spearman(exact[t, :], approx[t, :]); a constant approx row counts as 0.

    Rows with constant `exact` must be removed by the caller (their correlation is undefined).
    """
    rho = spearman_columns(approx.T.detach(), exact.T.detach())
    return float(torch.nan_to_num(rho, nan=0.0).mean())  # NaN only where approx is constant: no ranking


def _index_list(rows: RowSet, indices) -> list[Tensor]:
    idx = [indices] if isinstance(indices, Tensor) else list(indices)
    if len(idx) != len(rows.widths):
        raise GrassError(f"selective mask: {len(rows.widths)} sides but {len(idx)} index sets")
    return idx


def inner_product_fidelity(query: Grads, train: Grads, indices) -> float:
    """Mean Spearman, over query rows, of exact vs masked inner products with the train rows.

    query/train: g [Nq, d] / [Nt, d], paired sides, or LayerGrads; indices: LongTensor [k] or one per side.
    Query rows whose exact inner products are constant are skipped.
    """
    q, t = as_rowset(query), as_rowset(train)
    idx = _index_list(q, indices)
    exact = q.gram(t)
    keep = (exact.std(dim=1) > 0).nonzero().flatten()
    if not keep.numel():
        raise GrassError("inner_product_fidelity: every query row has constant inner products")
    q = q.take(keep)
    return row_spearman(exact[keep], q.select(idx).gram(t.select(idx)))


def _pearson_rows(exact_unit: Tensor, approx: Tensor) -> Tensor:
    """[Nq] Pearson of each approx row with exact rows given centred and unit-normed (exact_unit)."""
    centred = approx - approx.mean(dim=1, keepdim=True)
    norm = centred.norm(dim=1).clamp_min(torch.finfo(approx.dtype).tiny)  # constant row -> correlation 0
    return (exact_unit * centred).sum(dim=1) / norm


def _top_k(m: Tensor, k: int) -> Tensor:
    """Sorted indices of the k largest entries of m; ties go to the lower index (stable sort)."""
    return torch.sort(m.detach().cpu(), descending=True, stable=True).indices[:k].sort().values


def _initial_logits(width: int, energy: Tensor | None, seed: int, side: int, temperature: float) -> Tensor:
    """Seeded N(0, 0.01^2) logits; with energy [width], shifted by rank-normalized energy (unit std) times T."""
    noise = torch.randn(width, generator=generator(seed, "selective_mask", "init", side)) * INIT_STD
    if energy is None:
        return noise
    ranks = torch.empty(width)
    ranks[torch.sort(energy.detach().cpu().double(), stable=True).indices] = torch.arange(width, dtype=torch.float32)
    spread = ranks.std() if width > 1 else torch.tensor(1.0)
    return temperature * ((ranks - ranks.mean()) / spread + noise)


def _hard(m: Tensor, k: int) -> Tensor:
    """0/1 mask of the top-k of m (same tie rule as _top_k)."""
    h = torch.zeros_like(m)
    h[_top_k(m, k).to(m.device)] = 1.0
    return h


def _check_hyper(lr, reg, epochs, log_every, temperature, stop_on, batch_size, init, relaxation) -> None:
    if init not in INITS:
        raise GrassError(f"selective mask: init={init!r}; choose one of {list(INITS)}")
    if relaxation not in RELAXATIONS:
        raise GrassError(f"selective mask: relaxation={relaxation!r}; choose one of {list(RELAXATIONS)}")
    if not lr > 0 or reg < 0 or not temperature > 0:
        raise GrassError(f"selective mask: need lr > 0, reg >= 0, temperature > 0; got {lr}, {reg}, {temperature}")
    if epochs < 1 or log_every < 1:
        raise GrassError(f"selective mask: need epochs >= 1 and log_every >= 1, got {epochs}, {log_every}")
    if stop_on not in STOP_METRICS:
        raise GrassError(f"selective mask: stop_on={stop_on!r}; choose one of {list(STOP_METRICS)}")
    if batch_size is not None and batch_size < 1:
        raise GrassError(f"selective mask: batch_size must be >= 1 or null (whole matrix), got {batch_size}")


def learn_mask(grads: Grads, k, lr: float = 5e-5, reg: float = 1e-6, epochs: int = 5000, log_every: int = 500,
               early_stop: float = 0.9, seed: int = 0, temperature: float = 1.0, query_fraction: float = 0.2,
               batch_size: int | None = None, stop_on: str = "soft", init: str = "energy",
               relaxation: str = "straight_through", progress: bool = True) -> MaskResult:
    """Learn k coordinates per side of grads: g [N, d], paired (a [N, I'], delta [N, O]), or LayerGrads.

    k: int (every side) or one int per side (sides in SIDES order: input, output). A side whose k equals
    its width is kept whole (weight 1, no logits). stop_on: "soft" measures B with the soft mask m
    (SPEC 4's B); "topk" measures it with the hard top-k masks that will be used. Both go in the curve.
    init / relaxation: see the module docstring ("random" / "soft" follow SPEC 4 to the letter).
    """
    rows = as_rowset(grads)
    widths = rows.widths
    ks = [int(k)] * len(widths) if hasattr(k, "__index__") else [int(v) for v in k]
    if len(ks) != len(widths):
        raise GrassError(f"selective mask: {len(widths)} sides but {len(ks)} values of k")
    for s, (width, kk) in enumerate(zip(widths, ks)):
        if kk < 1:
            raise GrassError(f"selective mask: k must be >= 1, got {kk} for side {s}")
        check_mask_size(kk, width, f"selective mask (side {s})")
    _check_hyper(lr, reg, epochs, log_every, temperature, stop_on, batch_size, init, relaxation)

    train_rows, query_rows = split_rows(rows.n, seed, query_fraction)
    train, query = rows.take(train_rows), rows.take(query_rows)  # same rows on every side: pairs stay paired
    exact = query.gram(train)  # A [Nq, Nt]
    keep = (exact.std(dim=1) > 0).nonzero().flatten()  # a constant A row has no ranking to preserve
    if not keep.numel():
        raise GrassError("selective mask: every query row has constant inner products (all-zero gradients?)")
    if keep.numel() < exact.shape[0]:
        log.info("selective mask: %d of %d query rows have constant inner products; skipped",
                 exact.shape[0] - keep.numel(), exact.shape[0])
    query, exact = query.take(keep), exact[keep]
    centred = exact - exact.mean(dim=1, keepdim=True)
    exact_unit = centred / centred.norm(dim=1, keepdim=True)

    device = exact.device
    learned = [kk < width for width, kk in zip(widths, ks)]  # a full-width side is kept whole
    energies = train.energy() if init == "energy" and any(learned) else [None] * len(widths)
    logits = {s: _initial_logits(width, energies[s], seed, s, temperature).to(device).requires_grad_()
              for s, width in enumerate(widths) if learned[s]}
    if not logits:
        log.info("selective mask: k equals the width on every side; keeping every coordinate")
    opt = torch.optim.Adam(list(logits.values()), lr=lr) if logits else None
    batch_gen = generator(seed, "selective_mask", "batches")
    n_query = exact.shape[0]

    def soft_masks() -> list[Tensor]:
        return [torch.sigmoid(logits[s] / temperature) if s in logits else torch.ones(w, device=device)
                for s, w in enumerate(widths)]

    def train_weights(masks: list[Tensor]) -> list[Tensor]:
        if relaxation == "soft":
            return [m * m for m in masks]
        # forward: the hard top-k mask; backward: d/dm as if the weight were m, so unselected coordinates
        # get a gradient too
        return [_hard(m.detach(), kk) + m - m.detach() if s in logits else m
                for s, (m, kk) in enumerate(zip(masks, ks))]

    def loss_of(batch: Tensor | None) -> Tensor:
        masks = soft_masks()
        q = query if batch is None else query.take(batch)
        a = exact_unit if batch is None else exact_unit[batch]
        loss = -_pearson_rows(a, q.gram(train, train_weights(masks))).mean()
        for s in logits:
            if int((masks[s].detach() > 0.5).sum()) > ks[s]:  # keep at least k entries active
                loss = loss + reg * masks[s].sum()
        return loss

    def hard_indices() -> list[Tensor]:
        return [_top_k(m, kk) for m, kk in zip(soft_masks(), ks)]

    def measure(epoch: int) -> CurvePoint:
        with torch.no_grad():
            soft = row_spearman(exact, query.gram(train, [m * m for m in soft_masks()]))
            top = hard_indices()
            hard = row_spearman(exact, query.select(top).gram(train.select(top)))
            return CurvePoint(epoch, soft if stop_on == "soft" else hard, float(loss_of(None)), hard)

    curve = [measure(0)]
    with torch.no_grad():
        best = (curve[0].spearman_topk, 0, tuple(hard_indices()))
    stopped, epoch = False, 0
    bar = tqdm(range(1, epochs + 1), desc="selective mask", unit="epoch", disable=not progress or opt is None)
    for epoch in bar:
        if opt is None:  # nothing to learn
            break
        if batch_size is None:
            batches = [None]
        else:
            perm = torch.randperm(n_query, generator=batch_gen).to(device)
            batches = list(perm.split(batch_size))
        for batch in batches:
            opt.zero_grad(set_to_none=True)
            loss_of(batch).backward()
            opt.step()
        if epoch % log_every == 0 or epoch == epochs:
            point = measure(epoch)
            curve.append(point)
            bar.set_postfix(spearman=f"{point.spearman:.4f}", topk=f"{point.spearman_topk:.4f}")
            log.info("selective mask: epoch %d spearman(%s) %.4f topk %.4f loss %.5f",
                     epoch, stop_on, point.spearman, point.spearman_topk, point.loss)
            if point.spearman_topk > best[0]:
                with torch.no_grad():
                    best = (point.spearman_topk, epoch, tuple(hard_indices()))
            if point.spearman < early_stop:
                stopped = True
                log.info("selective mask: fidelity %.4f < early_stop %.4f at epoch %d; stopping",
                         point.spearman, early_stop, epoch)
                break
    bar.close()
    if relaxation == "soft":  # SPEC 4: the top-k of m where training ended
        with torch.no_grad():
            best = (curve[-1].spearman_topk, curve[-1].epoch, tuple(hard_indices()))
    indices = best[2]
    return MaskResult(indices=indices[0] if isinstance(grads, Tensor) else indices, curve=curve, stopped_early=stopped,
                      epochs_run=epoch if opt is not None else 0, train_rows=train_rows, query_rows=query_rows,
                      selected_epoch=best[1])
