"""LightningModule that trains M copies of a linear-stack classifier at once (issue #16, "subset models trained
together").

The members' parameters are stacked, one nn.Parameter [M, *shape] per parameter of the model, and one forward
runs every member on its own batch with torch.func: vmap over the member dimension of
functional_call(template, member's parameters + dropout noise, x_m). The loss is sum_m (mean cross-entropy of
member m on its batch), so member m's gradient is exactly its own loss's gradient; the optimizers of
grass.models.classifier_module are elementwise, so one optimizer over the stacked tensors is M independent
optimizers (own momentum / Adam moments). Lightning's Trainer runs it like any module.

Dropout: the template's nn.Dropout modules are replaced by ones that multiply by noise supplied per member. Each
member draws its noise from its own torch.Generator exactly as torch's CPU dropout does (bernoulli_(1 - p), then
/ (1 - p)), in forward order, so a member sees the noise a lone model would see from that generator; with the
generator cloned from the global state right after the member's model was built (grass.tasks.ensemble_fit), that
is the noise the one-Trainer-per-model path draws on the CPU (on a GPU the noise still comes from the members' CPU
generators, so there the members are not the lone GPU fits' models). Only linear stacks (grass.models.linear_stack)
are accepted: their only randomness is dropout and they hold no running statistics.
"""

from __future__ import annotations

import copy

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

from grass.errors import GrassError
from grass.models.classifier_module import OPTIMIZERS, SCHEDULES, make_optimizers
from grass.models.linear_stack import why_not_linear_stack


class SuppliedDropout(nn.Module):
    """Dropout whose scaled keep-mask [B, *feature] comes in as the buffer `noise` (functional_call supplies it)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = float(p)
        self.register_buffer("noise", torch.ones(0), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.p == 0.0 else x * self.noise


class EnsembleModule(L.LightningModule):
    """Members = the given models (same architecture, own initial weights), trained together.

    models: M built models (a linear stack each); generators: M torch.Generators for their dropout noise.
    Batches are (x [M, B, ...], y [M, B]): member m's batch is row m. `members()` returns the M models with the
    trained weights (CPU, eval mode). GrassError for a model that is not a linear stack or unequal architectures.
    """

    def __init__(self, models: list[nn.Module], generators: list[torch.Generator], lr: float, optimizer: str = "adam",
                 weight_decay: float = 0.0, momentum: float = 0.9, schedule: str = "constant"):
        super().__init__()
        if not models or len(models) != len(generators):
            raise GrassError(f"EnsembleModule needs one generator per model, got {len(models)} models and "
                             f"{len(generators)} generators")
        reason = why_not_linear_stack(models[0])
        if reason:
            raise GrassError(f"the ensemble trains linear stacks only: {reason}; set finetune.ensemble=false")
        if optimizer not in OPTIMIZERS or schedule not in SCHEDULES:
            raise GrassError(f"finetune.optimizer={optimizer!r} / schedule={schedule!r}; choose from "
                             f"{list(OPTIMIZERS)} / {list(SCHEDULES)}")
        self.lr, self.optimizer_name, self.weight_decay = lr, optimizer, weight_decay
        self.momentum, self.schedule = momentum, schedule
        self._models, self._generators = models, generators  # plain lists: not submodules, not trained directly
        self.names = [n for n, _ in models[0].named_parameters()]
        shapes = [tuple(p.shape) for p in models[0].parameters()]
        for m in models[1:]:
            if [tuple(p.shape) for p in m.parameters()] != shapes:
                raise GrassError("EnsembleModule: the members' parameter shapes differ")
        self.stacked = nn.ParameterList(
            [nn.Parameter(torch.stack([dict(m.named_parameters())[n].detach() for m in models]).clone())
             for n in self.names])
        template = copy.deepcopy(models[0])
        self.dropouts: list[tuple[str, float]] = []  # (buffer name, p) in forward order
        for name, module in list(template.named_modules()):
            if isinstance(module, nn.Dropout):
                template.set_submodule(name, SuppliedDropout(module.p))
                self.dropouts.append((f"{name}.noise", float(module.p)))
        object.__setattr__(self, "_template", template.train())  # not a submodule: functional_call supplies all
        self._noise_shapes: dict[tuple, list[tuple]] = {}

    @property
    def num_members(self) -> int:
        return len(self._models)

    def _shapes(self, x: torch.Tensor) -> list[tuple]:
        """The input shape of each dropout for a member batch x [B, ...] (found once per shape on the meta device)."""
        key = tuple(x.shape)
        if key not in self._noise_shapes:
            shapes = []
            hooks = [m.register_forward_pre_hook(lambda _m, args: shapes.append(tuple(args[0].shape)))
                     for m in self._template.modules() if isinstance(m, SuppliedDropout)]
            try:
                params = {n: torch.empty(t.shape[1:], device="meta") for n, t in zip(self.names, self.stacked)}
                noise = {n: torch.empty((), device="meta") for n, _ in self.dropouts}
                functional_call(self._template, {**params, **noise}, (torch.empty(key, device="meta"),))
            finally:
                for h in hooks:
                    h.remove()
            self._noise_shapes[key] = shapes
        return self._noise_shapes[key]

    def draw_noise(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Per dropout, the members' scaled keep-masks [M, B, *feature]: member m's drawn from generator m in
        forward order, as torch's CPU dropout draws them (p = 0: nothing drawn; p = 1: zeros)."""
        shapes = self._shapes(x[0])
        per_dropout: list[list[torch.Tensor]] = [[] for _ in self.dropouts]
        for g in self._generators:
            for noises, (_, p), shape in zip(per_dropout, self.dropouts, shapes):
                if p == 0.0:
                    noises.append(torch.ones(shape))
                elif p == 1.0:
                    noises.append(torch.zeros(shape))
                else:
                    noises.append(torch.empty(shape).bernoulli_(1 - p, generator=g).div_(1 - p))
        return [torch.stack(noises).to(x.device, x.dtype) for noises in per_dropout]

    def logits(self, x: torch.Tensor, noise: list[torch.Tensor]) -> torch.Tensor:
        """x [M, B, ...] and each dropout's noise [M, B, *feature] -> logits [M, B, C] (member m on row m)."""
        noise_names = [n for n, _ in self.dropouts]

        def member(params, masks, xm):
            return functional_call(self._template, {**dict(zip(self.names, params)),
                                                    **dict(zip(noise_names, masks))}, (xm,))

        return vmap(member)(tuple(self.stacked), tuple(noise), x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self.logits(x, self.draw_noise(x))  # [M, B, C]
        losses = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(y.shape).mean(dim=1)
        self.log("train/loss", losses.mean(), prog_bar=True, on_step=False, on_epoch=True)
        return losses.sum()

    def configure_optimizers(self):
        return make_optimizers(self, self.stacked.parameters())

    def members(self) -> list[nn.Module]:
        """The M models with the trained weights, on the CPU, in eval mode."""
        for i, model in enumerate(self._models):
            params = dict(model.named_parameters())
            with torch.no_grad():
                for name, stacked in zip(self.names, self.stacked):
                    params[name].copy_(stacked[i].detach().cpu())
        return [m.cpu().eval() for m in self._models]
