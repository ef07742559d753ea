"""MusicTask on synthetic event windows: batches, ground truth = the target's margin, and the checks it adds."""

import pytest
import torch

from grass.data.music import MusicSequences
from grass.errors import GrassError
from grass.models.music_transformer import TOKEN_PAD
from grass.tasks.factory import make_task
from grass.tasks.music import MusicTask
from grass.validate import validate_for_task

SMALL = ("model.n_layers=1", "model.num_heads=2", "model.d_model=16", "model.dim_feedforward=32",
         "model.max_sequence=8", "dataset.seq_len=8", "proj_dim=64")


def _data(n_train=6, n_query=5, t=8):
    g = torch.Generator().manual_seed(0)
    ev = torch.randint(0, TOKEN_PAD - 1, (n_train + n_query, t + 1), generator=g)
    x, y = ev[:, :-1], ev[:, 1:]
    return MusicSequences("music21", x[:n_train], y[:n_train], x[n_train:], y[n_train:])


@pytest.fixture
def task(compose_cfg):
    cfg = compose_cfg(*SMALL, experiment="music21_music_tiny")
    return make_task(cfg, _data())


def test_factory_picks_the_music_task(task):
    assert isinstance(task, MusicTask) and (task.n_train, task.n_query) == (6, 5)


def test_batches_keep_order_and_rows(task):
    xs = [x for x, _ in task.batches("train", 4, torch.device("cpu"))]
    assert [len(x) for x in xs] == [4, 2] and torch.equal(torch.cat(xs), task.data.train_x)
    rows = torch.tensor([5, 0])
    (x, y), = task.batches("train", 8, torch.device("cpu"), rows=rows)
    assert torch.equal(x, task.data.train_x[rows]) and torch.equal(y, task.data.train_y[rows])
    with pytest.raises(GrassError, match="side"):
        next(task.batches("val", 4, torch.device("cpu")))


def test_ground_truth_is_the_margin_target(task):
    torch.manual_seed(0)
    model = task._build()
    got = task.query_outputs(model, torch.device("cpu"))
    with torch.no_grad():
        want = task.target("margin").value(model, (task.data.query_x, task.data.query_y))
    assert got.shape == (5,) and got.dtype == torch.float32
    torch.testing.assert_close(got, want)


def test_factorized_compressors_are_refused_up_front(compose_cfg):
    cfg = compose_cfg(*SMALL, "compressor=factgrass", experiment="music21_music_tiny")
    with pytest.raises(GrassError, match="compressor=factgrass.*flat compressor"):
        validate_for_task(cfg, make_task(cfg, _data()), ["attribute"])


def test_windows_longer_than_the_model_are_refused(compose_cfg):
    cfg = compose_cfg(*SMALL, experiment="music21_music_tiny")
    with pytest.raises(GrassError, match="max_sequence"):
        make_task(cfg, _data(t=12))
