"""Where music21's encoded corpus is cached (dataset.cache_dir, under paths.root) names no model and no run: the
same settings under another paths.root reuse the same models key and run folder name."""

import torch

from grass.data.music import MusicSequences
from grass.models.music_transformer import TOKEN_PAD
from grass.run_context import RunContext
from grass.run_settings import result_settings
from grass.tasks.factory import make_task

SMALL = ("model.n_layers=1", "model.num_heads=2", "model.d_model=16", "model.dim_feedforward=32",
         "model.max_sequence=8", "dataset.seq_len=8")


def _ctx(cfg):
    ev = torch.randint(0, TOKEN_PAD - 1, (11, 9), generator=torch.Generator().manual_seed(0))
    task = make_task(cfg, MusicSequences("music21", ev[:6, :-1], ev[:6, 1:], ev[6:, :-1], ev[6:, 1:]))
    return RunContext(cfg=cfg, run_dir=None, data=task.data, task=task, tracker=None)


def test_the_cache_folder_is_not_part_of_the_models_key_or_the_run_hash(compose_cfg, tmp_path):
    here = compose_cfg(*SMALL, experiment="music21_music_tiny")
    there = compose_cfg(*SMALL, f"paths.root={tmp_path}/elsewhere", experiment="music21_music_tiny")
    assert here.dataset.cache_dir != there.dataset.cache_dir
    assert _ctx(here).models_settings() == _ctx(there).models_settings()
    assert result_settings(here) == result_settings(there)
    other = compose_cfg(*SMALL, "dataset.n_train=300", experiment="music21_music_tiny")  # what the data is: keyed
    assert _ctx(other).models_settings() != _ctx(here).models_settings()
