"""Output functions of a classifier, shared by gradient capture (TRAK/influence) and ground truth."""

import torch
import torch.nn.functional as F

from grass.errors import GrassError


def margin(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """log p_y - log(1 - p_y) per row, computed stably as z_y - logsumexp_{j != y} z_j.  [B, C], [B] -> [B]"""
    true = logits.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    # a comparison mask, not F.one_hot: one_hot checks its range with .item(), which vmap cannot batch
    is_true = labels.unsqueeze(-1) == torch.arange(logits.shape[-1], device=logits.device)
    others = logits.masked_fill(is_true, float("-inf"))
    return true - torch.logsumexp(others, dim=-1)


def loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the true class per row.  [B, C], [B] -> [B]"""
    return F.cross_entropy(logits, labels, reduction="none")


def log_odds(logp: torch.Tensor) -> torch.Tensor:
    """logp - log(1 - exp(logp)): the margin of a probability given as its log (logp < 0).  [B] -> [B]

    The block margin of a sequence (SPEC 2.1: logp = mean token log-prob) for language-model blocks and music
    windows; expm1 keeps it accurate where p is small."""
    return logp - torch.log(-torch.expm1(logp))


def true_class_prob(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """p(y | x) per row, TRAK's Q = 1 - p uses it.  [B, C], [B] -> [B]"""
    return torch.softmax(logits, dim=-1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)


OUTPUT_FUNCTIONS = {"margin": margin, "loss": loss}


def output_function(name: str):
    """The per-example output function named in config (tda.target)."""
    if name not in OUTPUT_FUNCTIONS:
        raise GrassError(f"unknown output function {name!r}; choose one of {sorted(OUTPUT_FUNCTIONS)}")
    return OUTPUT_FUNCTIONS[name]
