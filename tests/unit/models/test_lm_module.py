"""models.lm_module: Lightning training of a causal LM on token blocks (AdamW, linear decay, masked CE)."""

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from grass.data.text import BlockDataset, lm_batch
from grass.errors import GrassError
from grass.models.gpt2 import gpt2_tiny
from grass.models.lm_module import CausalLMModule, linear_schedule

VOCAB, T = 1000, 16


def tiny_lm():
    return gpt2_tiny(vocab_size=VOCAB, n_layer=1, n_embd=32, n_head=2, n_positions=T, seed=0)


def fixed_blocks(n=8):
    return torch.randint(0, VOCAB, (n, T), generator=torch.Generator().manual_seed(0))


@torch.no_grad()
def eval_loss(module, batch):
    module.model.eval()
    return float(module.loss(batch))


def fit(module, loader, **trainer_kwargs):
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, **trainer_kwargs)
    trainer.fit(module, loader)
    return trainer


def test_one_training_step_lowers_the_loss():
    torch.set_num_threads(1)
    ids = fixed_blocks()
    batch = lm_batch(ids)
    module = CausalLMModule(tiny_lm(), lr=1e-2)
    before = eval_loss(module, batch)
    assert before == pytest.approx(float(torch.log(torch.tensor(float(VOCAB)))), rel=0.1)  # near-uniform start
    fit(module, DataLoader(BlockDataset(ids, torch.ones_like(ids)), batch_size=8), max_steps=1)
    after = eval_loss(module, batch)
    assert after < before - 0.05


def test_loss_is_mean_token_ce_ignoring_padding():
    module = CausalLMModule(tiny_lm(), lr=1e-3)
    ids = fixed_blocks(2)
    mask = torch.ones_like(ids)
    mask[1, 10:] = 0
    padded = ids.masked_fill(mask == 0, 7)
    with torch.no_grad():
        logits = module.model(input_ids=padded, attention_mask=mask).logits[:, :-1]
        labels = padded[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
        expected = F.cross_entropy(logits.reshape(-1, VOCAB), labels.reshape(-1), ignore_index=-100)
        # the labels may even leave padding unmarked: the attention mask alone excludes it
        got = module.loss({"input_ids": padded, "attention_mask": mask, "labels": padded})
        marked = module.loss(lm_batch(padded, mask))
    assert float(got) == pytest.approx(float(expected), rel=1e-5)
    assert float(marked) == pytest.approx(float(expected), rel=1e-5)


def test_linear_schedule_decays_to_zero_per_step():
    f = linear_schedule(warmup_steps=0, total_steps=4)
    assert [f(s) for s in range(5)] == [1.0, 0.75, 0.5, 0.25, 0.0]
    g = linear_schedule(warmup_steps=2, total_steps=6)
    assert [g(s) for s in range(7)] == [0.0, 0.5, 1.0, 0.75, 0.5, 0.25, 0.0]


class _ModeRecorder(CausalLMModule):
    def training_step(self, batch, batch_idx):
        self.modes = getattr(self, "modes", []) + [all(m.training for m in self.model.modules())]
        return super().training_step(batch, batch_idx)


def test_trainer_applies_the_schedule_each_step_in_train_mode():
    torch.set_num_threads(1)
    ids = fixed_blocks(12)
    module = _ModeRecorder(tiny_lm(), lr=1e-3, schedule="linear")
    assert not module.model.training  # gpt2_tiny is built in eval mode
    trainer = fit(module, DataLoader(BlockDataset(ids, torch.ones_like(ids)), batch_size=4), max_epochs=1)
    # 3 steps: lr factors 1, 2/3, 1/3 used; after the last step the scheduler sits at 0
    assert trainer.global_step == 3
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
    assert isinstance(trainer.optimizers[0], torch.optim.AdamW)
    assert module.modes == [True, True, True]  # dropout on while training


def test_bad_settings_are_refused():
    with pytest.raises(GrassError, match="schedule"):
        CausalLMModule(tiny_lm(), lr=1e-3, schedule="cosine")
    with pytest.raises(GrassError, match="lr > 0"):
        CausalLMModule(tiny_lm(), lr=0.0)
