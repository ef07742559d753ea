"""Classifiers on in-memory features (MNIST, digits, ...): Lightning training, true-class margins."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from grass.capture.linear import ClassifierTarget
from grass.data.classification import ClassificationData
from grass.errors import GrassError
from grass.models.build import build_classifier, load_classifier
from grass.models.classifier_module import ClassifierModule
from grass.models.linear_stack import why_not_linear_stack
from grass.tasks.base import Task, fit_on_rows
from grass.tasks.ensemble_fit import fit_ensemble


class ClassificationTask(Task):
    data: ClassificationData

    def skeleton(self) -> nn.Module:
        with torch.device("meta"):
            return build_classifier(self.cfg.model, self.data)

    def train_one(self, ctx, seed: int, rows: torch.Tensor) -> nn.Module:
        ft = self.cfg.finetune
        return fit_on_rows(ctx, seed, lambda: build_classifier(self.cfg.model, self.data),
                           lambda model: ClassifierModule(model, lr=ft.lr, optimizer=ft.optimizer,
                                                          weight_decay=ft.weight_decay, momentum=ft.momentum,
                                                          schedule=ft.schedule),
                           self.data.x_train[rows], self.data.y_train[rows])

    def ensemble_refusal(self) -> str | None:
        reason = why_not_linear_stack(self.skeleton())
        return None if reason is None else f"model {self.cfg.model.name}: {reason}"

    def train_many(self, ctx, seeds: list[int], rows: list[torch.Tensor]) -> list[nn.Module]:
        return fit_ensemble(ctx, seeds, rows, lambda: build_classifier(self.cfg.model, self.data),
                            self.data.x_train, self.data.y_train)

    def load(self, ctx, path: Path) -> nn.Module:
        return load_classifier(self.cfg.model, self.data, path, ctx.models_settings())

    @torch.no_grad()
    def query_outputs(self, model: nn.Module, device: torch.device, batch_size: int = 1024) -> torch.Tensor:
        """Margin of the true class on every query [n_query] (the target attribution differentiates)."""
        model.eval()
        f = self.target("margin").value
        return torch.cat([f(model, batch).cpu() for batch in self.batches("query", batch_size, device)])

    def target(self, kind: str) -> ClassifierTarget:
        return ClassifierTarget(kind)

    def batches(self, side: str, batch_size: int, device: torch.device, rows: torch.Tensor | None = None):
        x, y = _side(self.data, side)
        if rows is not None:
            x, y = x[rows], y[rows]
        for i in range(0, len(y), batch_size):
            yield x[i:i + batch_size].to(device), y[i:i + batch_size].to(device)


def _side(data: ClassificationData, side: str):
    if side == "train":
        return data.x_train, data.y_train
    if side == "query":
        return data.x_query, data.y_query
    raise GrassError(f"side must be 'train' or 'query', got {side!r}")
