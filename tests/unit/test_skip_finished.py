"""skip_finished=true: a pipeline=lds run whose folder already holds a finished metrics.json (an LDS, no
run/error) returns it without loading data or training; anything else runs (make reproduce-small-scale)."""

import json

import pytest

import grass.pipeline
from grass.pipeline import run, run_dir


class Loaded(Exception):
    pass


@pytest.fixture
def no_loading(monkeypatch):
    def refuse(*args, **kwargs):
        raise Loaded

    monkeypatch.setattr(grass.pipeline, "instantiate_node", refuse)


def _write(cfg, metrics: dict) -> None:
    folder = run_dir(cfg)
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps(metrics))


def test_a_finished_run_is_returned_not_recomputed(compose_cfg, no_loading, capsys):
    cfg = compose_cfg("skip_finished=true")
    assert run_dir(cfg) == run_dir(compose_cfg())  # not a result setting: the same folder
    _write(cfg, {"lds/mean": 0.25, "run/compressor": "sjlt"})
    assert run(cfg)["lds/mean"] == 0.25
    assert "LDS 0.2500  sjlt k=128  finished earlier, not recomputed" in capsys.readouterr().out


@pytest.mark.parametrize("skip, metrics", [
    (True, {"lds/mean": 0.25, "run/error": "KeyboardInterrupt: "}),  # a failed run
    (True, {"run/compressor": "sjlt"}),  # no LDS yet
    (False, {"lds/mean": 0.25}),  # the default: every run recomputes
])
def test_an_unfinished_run_or_skip_finished_false_runs_again(compose_cfg, no_loading, skip, metrics):
    cfg = compose_cfg(f"skip_finished={str(skip).lower()}")
    _write(cfg, metrics)
    with pytest.raises(Loaded):
        run(cfg)


def test_a_single_stage_is_never_skipped(compose_cfg, no_loading):
    cfg = compose_cfg("skip_finished=true", "stage=lds")
    _write(cfg, {"lds/mean": 0.25})
    with pytest.raises(Loaded):
        run(cfg)
