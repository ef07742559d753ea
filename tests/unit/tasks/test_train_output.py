"""tda.train_output: train examples differentiated through the query's output (query) or, for music, the whole
window's block margin (sequence); keyed apart only when not the default; refused up front where undefined."""

import pytest
import torch

from grass.capture.flat import flat_grads
from grass.data.music import MusicSequences
from grass.errors import GrassError
from grass.models.music_transformer import TOKEN_PAD, music_transformer
from grass.run_context import RunContext
from grass.run_settings import result_settings
from grass.selective.artifact import mask_fingerprint
from grass.tasks.factory import make_task
from grass.tasks.music import MusicTarget, MusicWindowTarget
from grass.validate import validate_for_task

SMALL = ("model.n_layers=1", "model.num_heads=2", "model.d_model=16", "model.dim_feedforward=32",
         "model.max_sequence=8", "dataset.seq_len=8", "proj_dim=64")
TINY = dict(n_layers=2, num_heads=2, d_model=16, dim_feedforward=32, dropout=0.1, max_sequence=12)


def _windows(n=5, t=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    ev = torch.randint(0, TOKEN_PAD - 1, (n, t + 1), generator=g)
    return ev[:, :-1], ev[:, 1:]


def _music_task(cfg):
    x, y = _windows(n=11, t=8)
    return make_task(cfg, MusicSequences("music21", x[:6], y[:6], x[6:], y[6:]))


def test_window_margin_is_the_block_margin_of_every_event():
    torch.manual_seed(0)
    model = music_transformer(**TINY)
    x, y = _windows()
    with torch.no_grad():
        logp = torch.log_softmax(model(x), dim=-1).gather(2, y.unsqueeze(-1)).squeeze(-1).mean(1)  # [B]
        torch.testing.assert_close(MusicWindowTarget("margin")(model, (x, y)), logp - torch.log1p(-logp.exp()))
        torch.testing.assert_close(MusicWindowTarget("loss")(model, (x, y)), -logp)
        torch.testing.assert_close(MusicWindowTarget("margin").trak_weight(model, (x, y)), 1 - logp.exp())
        # not the last event's: every event of the window counts
        assert not torch.allclose(MusicWindowTarget("margin")(model, (x, y)), MusicTarget("margin")(model, (x, y)))


def test_flat_capture_of_the_window_margin_matches_a_one_example_loop():
    torch.manual_seed(0)
    model = music_transformer(**TINY)
    x, y = _windows(n=4)
    target = MusicWindowTarget("margin")
    flat = flat_grads(model, target, (x, y), chunk_size=3)
    for b in range(len(x)):
        model.zero_grad()
        target(model, (x[b:b + 1], y[b:b + 1])).sum().backward()
        loop = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
        torch.testing.assert_close(flat[b], loop, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("output, train_cls", [("query", MusicTarget), ("sequence", MusicWindowTarget)])
def test_the_run_context_differentiates_train_rows_by_train_output(compose_cfg, output, train_cls):
    cfg = compose_cfg(*SMALL, f"tda.train_output={output}", experiment="music21_music_tiny")
    task = _music_task(cfg)
    ctx = RunContext(cfg=cfg, run_dir=None, data=task.data, task=task, tracker=None)
    assert type(ctx.target("train")) is train_cls and type(ctx.target("query")) is MusicTarget  # queries: always
    assert ctx.target("train").kind == ctx.target("query").kind == "margin"


@pytest.mark.parametrize("experiment", ["tiny", "tiny_lm"])
def test_sequence_is_refused_where_the_task_has_no_other_output(compose_cfg, corpus, experiment):
    from grass.instantiate import instantiate_node

    data = [f"dataset.path={corpus}"] if experiment == "tiny_lm" else []  # a generated corpus, no download
    cfg = compose_cfg("tda.train_output=sequence", *data, experiment=experiment)
    task = make_task(cfg, instantiate_node(cfg.dataset, "dataset"))
    refusal = "tda.train_output='sequence'.*Task attributes one output.*use tda.train_output=query"
    with pytest.raises(GrassError, match=refusal):
        validate_for_task(cfg, task, ["attribute"])
    validate_for_task(cfg, task, ["finetune"])  # training does not differentiate anything: no refusal


def test_unknown_train_output_fails_when_composed(compose_cfg):
    with pytest.raises(Exception, match="window"):
        compose_cfg("tda.train_output=window")


def test_only_a_non_default_train_output_joins_the_run_and_mask_keys(compose_cfg):
    default = result_settings(compose_cfg(*SMALL, experiment="music21_music_tiny"))
    query = result_settings(compose_cfg(*SMALL, "tda.train_output=query", experiment="music21_music_tiny"))
    sequence = result_settings(compose_cfg(*SMALL, "tda.train_output=sequence", experiment="music21_music_tiny"))
    assert "train_output" not in query["tda"]  # folders of before the key existed
    assert sequence["tda"]["train_output"] == "sequence" and sequence != query
    assert (default == query) == (default["tda"].get("train_output") is None)
    base = mask_fingerprint("models", 0, "margin", {"epochs": 1}, 0)
    assert mask_fingerprint("models", 0, "margin", {"epochs": 1}, 0, train_output="query") == base
    assert mask_fingerprint("models", 0, "margin", {"epochs": 1}, 0, train_output="sequence") != base
