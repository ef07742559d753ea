"""hardware.small_matrix_threads: a set count wins; null decides once per process from the CPUs other jobs leave
idle (never below 1, never above hardware.num_threads); and the thread count does not change the trained weights,
which is why a run may choose it by load."""

from types import SimpleNamespace

import psutil
import pytest
import torch
from omegaconf import OmegaConf

from grass import hardware
from grass.models.mlp import MLP
from grass.tasks.ensemble_fit import fit_ensemble


def _hw(**kw):
    return OmegaConf.create({"small_matrix_threads": None, "num_threads": None, **kw})


@pytest.fixture
def cpus(monkeypatch):
    """cpus(count, busy_percent): what psutil reports; the per-process decision forgotten."""
    def _set(count: int, busy: float):
        monkeypatch.setattr(hardware, "_AUTO_THREADS", {})
        monkeypatch.setattr(psutil, "cpu_count", lambda *a, **k: count)
        monkeypatch.setattr(psutil, "cpu_percent", lambda *a, **k: busy)
    return _set


def test_set_count_wins(cpus):
    cpus(2, 100.0)
    assert hardware.small_matrix_threads(_hw(small_matrix_threads=2)) == 2


@pytest.mark.parametrize("count,busy,cap,expected", [
    (2, 3.0, 2, 2),     # idle box: every core
    (2, 55.0, 2, 1),    # one other job on one core
    (2, 100.0, 2, 1),   # loaded: still one
    (8, 30.0, 8, 6),
    (8, 0.0, 4, 4),     # never above hardware.num_threads
])
def test_auto_follows_idle_cpus(cpus, count, busy, cap, expected):
    cpus(count, busy)
    assert hardware.small_matrix_threads(_hw(num_threads=cap)) == expected


def test_auto_decided_once_per_process(cpus, monkeypatch):
    cpus(2, 0.0)
    assert hardware.small_matrix_threads(_hw(num_threads=2)) == 2
    monkeypatch.setattr(psutil, "cpu_percent", lambda *a, **k: 100.0)
    assert hardware.small_matrix_threads(_hw(num_threads=2)) == 2


def test_thread_count_keeps_the_weights(compose_cfg, tmp_path):
    """An ensemble of MNIST-MLP-sized members (784-128-128-10) trained on 1 and on 2 threads: the same bits."""
    cfg = compose_cfg("finetune.epochs=1", "finetune.batch_size=64", "finetune.optimizer=sgd", "finetune.lr=0.05")
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(640, 784, generator=g), torch.randint(0, 10, (640,), generator=g)
    rows = [torch.randperm(640, generator=g)[:320] for _ in range(3)]
    states = []
    for threads in (1, 2):
        cfg.hardware.small_matrix_threads = threads
        ctx = SimpleNamespace(cfg=cfg, run_dir=tmp_path)
        models = fit_ensemble(ctx, [1, 2, 3], rows, lambda: MLP(784, 10, hidden=(128, 128)), x, y)
        states.append([m.state_dict() for m in models])
    for one, two in zip(*states):
        for name in one:
            assert torch.equal(one[name], two[name]), name
