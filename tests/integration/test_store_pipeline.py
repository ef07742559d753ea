"""pipeline=store end to end on the tiny LM: split stages and workers equal stage=all, the prompt report, and
the fault cases (kill -9 mid-shard, a flipped byte, a changed setting, a full disk, a non-finite gradient)."""

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra.errors import ConfigCompositionException

from grass.capture.linear import LinearCapture
from grass.errors import GrassError
from grass.pipeline import run
from grass.store import FeatureStore

REPO = Path(__file__).resolve().parents[2]
N_TRAIN, CHUNK = 40, 8  # tiny_lm: 5 chunks


@pytest.fixture
def store_cfg(compose_cfg, corpus, tmp_path):
    """store_cfg(name, *overrides): the tiny LM under pipeline=store, its store in tmp_path/<name>."""

    def _cfg(name: str, *overrides: str):
        return compose_cfg(f"dataset.path={corpus}", "pipeline=store", "store.model=base",
                           f"store.chunk_size={CHUNK}", f"store.dir={tmp_path / name}", *overrides,
                           experiment="tiny_lm")

    return _cfg


def _read(folder: Path) -> torch.Tensor:
    """Every row of the finished store in `folder`, opened with the fingerprint it was written with."""
    meta = json.loads((folder / "store.json").read_text())
    return FeatureStore.open(folder, meta["fingerprint"]).read()


def _split_run(store_cfg, name: str, *overrides: str) -> None:
    for stage, worker in [("cache", "0/2"), ("cache", "1/2"), ("precondition", "0/1"), ("ifvp", "1/2"),
                          ("ifvp", "0/2"), ("attribute", "0/1"), ("self_influence", "0/1")]:
        run(store_cfg(name, f"stage={stage}", f"worker={worker}", *overrides))


def test_split_stages_and_workers_equal_stage_all_and_write_the_prompt_report(store_cfg, tmp_path):
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    (prompts / "a_letter.txt").write_text("She wrote a letter to her sister <dear> every morning.")
    walk = "The brother and the father took a walk in the evening, and the sister stayed at home. " * 3
    (prompts / "b_walk.txt").write_text(walk)  # 57 GPT-2 tokens: cut to the block size, 32
    full_vocab = "dataset.compact_vocab=false"  # prompts may use any GPT-2 token
    metrics = run(store_cfg("all", f"store.prompts_dir={prompts}", "profile=true", full_vocab))
    _split_run(store_cfg, "split", f"store.prompts_dir={prompts}", full_vocab)
    for part in ("train", "if_efim/ifvp", "if_efim/scores"):  # the train cache is shared, the rest per tda
        torch.testing.assert_close(_read(tmp_path / "split" / part), _read(tmp_path / "all" / part), rtol=1e-5,
                                   atol=1e-6)
    scores = _read(tmp_path / "all" / "if_efim" / "scores")
    assert scores.shape == (N_TRAIN, 2) and torch.isfinite(scores).all() and scores.abs().sum() > 0
    for key in ("cache/tokens_per_s", "ifvp/rows_per_s", "attribute/pairs_per_s", "cache/peak_rss_mb"):
        assert metrics[f"profile/{key}"] > 0
    md = (tmp_path / "all" / "if_efim" / "report.md").read_text()
    page = (tmp_path / "all" / "if_efim" / "report.html").read_text()
    assert "Query 0: a_letter.txt" in md and "Query 1: b_walk.txt" in md and md.count("### Most helpful") == 2
    assert "&lt;dear&gt;" in page and "<dear>" not in page  # prompt text is escaped in the HTML
    assert walk.strip() not in md and "*Note: cut to the block size: the first 32 of its 57 tokens" in md
    best = int(scores[:, 0].argmax())
    assert f"| 1 | {float(scores[best, 0]):.4g} | train {best} " in md  # rank 1 is the top score
    influence = torch.load(tmp_path / "all" / "if_efim" / "self_influence.pt")["self_influence"]
    assert influence.shape == (N_TRAIN,) and bool((influence > 0).all())  # <phi, P phi> with P positive definite


KILL_DRIVER = """
import os, signal, sys
import grass.store.feature_store as fs
from hydra import compose, initialize_config_dir
from grass.config import register_configs
from grass.pipeline import run

real, seen = fs.atomic_write_json, []
def dying(obj, path):
    if path.name.startswith("shard-"):
        seen.append(path)
        if len(seen) == 3:  # chunk 2: its data file is written, its manifest never will be
            os.kill(os.getpid(), signal.SIGKILL)
    return real(obj, path)
fs.atomic_write_json = dying
register_configs()
with initialize_config_dir(config_dir=sys.argv[1], version_base="1.3"):
    cfg = compose("config", overrides=sys.argv[2:])
run(cfg)
"""


def test_kill_9_during_cache_then_rerun_gives_identical_scores(store_cfg, tmp_path, corpus):
    run(store_cfg("reference"))
    overrides = [f"dataset.path={corpus}", "pipeline=store", "store.model=base", f"store.chunk_size={CHUNK}",
                 f"store.dir={tmp_path / 'killed'}", "stage=cache", "experiment=tiny_lm",
                 f"paths.root={tmp_path}/outputs", "logger=none"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", KILL_DRIVER, str(REPO / "conf"), *overrides], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == -9, done.stderr[-3000:]
    train = tmp_path / "killed" / "train"
    assert len(list(train.glob("shard-*.json"))) == 2 and (train / "shard-w000-c000002.npy").exists()
    run(store_cfg("killed"))  # stage=all: cache resumes (redoing chunk 2 only), then the rest
    meta = json.loads((train / "store.json").read_text())
    report = FeatureStore.open(train, meta["fingerprint"]).verify()
    assert report.ok and not report.orphans, report.describe()
    assert torch.equal(_read(tmp_path / "killed" / "if_efim" / "scores"),
                       _read(tmp_path / "reference" / "if_efim" / "scores"))


def test_a_flipped_byte_names_the_shard(store_cfg, tmp_path):
    run(store_cfg("s", "stage=cache"))
    shard = tmp_path / "s" / "train" / "shard-w000-c000003.npy"
    data = bytearray(shard.read_bytes())
    data[-5] ^= 0x01
    shard.write_bytes(bytes(data))
    with pytest.raises(GrassError, match="shard-w000-c000003.npy is corrupt"):
        run(store_cfg("s", "stage=precondition"))


def test_a_flipped_byte_in_the_preconditioner_or_the_lm_base_is_a_named_error(store_cfg, tmp_path):
    run(store_cfg("s", "stage=cache"))
    run(store_cfg("s", "stage=precondition"))
    preconditioner = tmp_path / "s" / "if_efim" / "preconditioner.pt"
    _flip(preconditioner)
    with pytest.raises(GrassError, match=r"preconditioner.pt is corrupt.*rerun stage=precondition"):
        run(store_cfg("s", "stage=ifvp"))
    (base,) = tmp_path.rglob("artifacts/base/*/base.pt")  # the tiny LM's base, pretrained by grass
    _flip(base)
    with pytest.raises(GrassError, match=r"base.pt is corrupt"):
        run(store_cfg("fresh", "stage=cache"))


def test_an_unreadable_prompt_is_refused_before_the_cache_stage(store_cfg, tmp_path):
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    (prompts / "x.txt").write_bytes(bytes([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0xFF]))
    with pytest.raises(GrassError, match=r"x\.txt is not UTF-8 text"):
        run(store_cfg("s", "stage=cache", f"store.prompts_dir={prompts}"))
    assert not (tmp_path / "s" / "train").exists()  # nothing was cached


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_compressor_setting_changed_after_cache_is_refused_by_name(store_cfg):
    run(store_cfg("s", "stage=cache"))
    with pytest.raises(GrassError, match=r"compressor.side_dim: cache=128, now=64"):
        run(store_cfg("s", "stage=precondition", "compressor.side_dim=64"))
    run(store_cfg("s", "stage=precondition"))
    run(store_cfg("s", "stage=ifvp"))
    with pytest.raises(GrassError, match=r"ifvp was made by a different config:\n  damping: cache=0.1, now=0.5"):
        run(store_cfg("s", "stage=attribute", "store.damping=0.5"))


def test_a_full_disk_during_a_shard_write_is_a_clean_error_and_leaves_no_partial_shard(store_cfg, tmp_path,
                                                                                        monkeypatch):
    from grass.store.shard import HashingWriter

    real, calls = HashingWriter.write, []

    def full_disk(self, data):
        calls.append(1)
        if len(calls) == 4:  # the second shard's data, after its header: part of it lands, then the disk is full
            self._f.write(bytes(memoryview(data).cast("B")[:100]))
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, data)

    monkeypatch.setattr(HashingWriter, "write", full_disk)
    with pytest.raises(GrassError, match="disk full while writing .*shard-w000-c000001.npy"):
        run(store_cfg("s", "stage=cache"))
    train = tmp_path / "s" / "train"
    assert sorted(p.name for p in train.iterdir()) == ["shard-w000-c000000.json", "shard-w000-c000000.npy",
                                                       "store.json"]
    monkeypatch.setattr(HashingWriter, "write", real)
    run(store_cfg("s", "stage=cache"))
    assert len(list(train.glob("shard-*.json"))) == 5


def test_a_non_finite_gradient_names_the_example(store_cfg, monkeypatch):
    real, rows_seen = LinearCapture.capture, [0]

    def poisoned(self, batch):
        out = real(self, batch)
        first, n = rows_seen[0], next(iter(out.values())).shape[0]
        rows_seen[0] += n
        if first <= 13 < first + n:
            out[next(iter(out))][13 - first, 0] = float("nan")
        return out

    monkeypatch.setattr(LinearCapture, "capture", poisoned)
    with pytest.raises(GrassError, match="train example 13 has a non-finite gradient"):
        run(store_cfg("s", "stage=cache"))


def test_store_pipeline_input_errors(store_cfg, tmp_path):
    with pytest.raises(GrassError, match="not a stage of pipeline=store: run it with pipeline=lds"):
        run(store_cfg("s", "stage=selective_mask"))
    with pytest.raises(ConfigCompositionException):  # a name no pipeline has fails when the config is composed
        store_cfg("s", "stage=score")
    with pytest.raises(GrassError, match="hardware.grad_memory_gb=1e-09 does not hold one example"):
        run(store_cfg("s", "compressor=sjlt", "hardware.grad_memory_gb=1e-9"))
    with pytest.raises(GrassError, match="worker='2/2'"):
        run(store_cfg("s", "stage=cache", "worker=2/2"))
    with pytest.raises(GrassError, match="no feature store"):
        run(store_cfg("s", "stage=precondition"))
    with pytest.raises(GrassError, match="pipeline=lds stage=finetune, or .* store.model=base"):
        run(store_cfg("s", "stage=cache", "store.model=checkpoint"))
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    (prompts / "p.txt").write_text("Zebras quarrel about quantum chromodynamics.")
    run(store_cfg("s", "stage=cache"))
    run(store_cfg("s", "stage=precondition"))
    run(store_cfg("s", "stage=ifvp"))
    with pytest.raises(GrassError, match="prompt .*p.txt uses tokens .*compact_vocab=true"):
        run(store_cfg("s", "stage=attribute", f"store.prompts_dir={prompts}"))  # tiny_lm compacts its vocabulary
    binary = tmp_path / "binary"
    binary.mkdir()
    (binary / "image.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(GrassError, match=r"image\.txt is not UTF-8 text .*iconv -t UTF-8"):
        run(store_cfg("s", "stage=attribute", f"store.prompts_dir={binary}"))


def test_submitit_local_launcher_runs_two_cache_workers(tmp_path, corpus):
    """hardware=slurm's launcher path (Hydra's submitit plugin) on submitit's local executor: a 2-task array."""
    store = tmp_path / "store"
    cmd = [sys.executable, "run.py", "-m", "hardware=slurm", "hydra/launcher=submitit_local",
           "hydra.launcher.gpus_per_node=0", "hydra.launcher.timeout_min=10", "hardware.device=cpu",
           "hardware.accelerator=cpu", "experiment=tiny_lm", f"dataset.path={corpus}", "pipeline=store",
           "store.model=base", f"store.chunk_size={CHUNK}", f"store.dir={store}", "stage=cache",
           "worker=0/2,1/2", f"paths.root={tmp_path}/outputs", "logger=none"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    shards = sorted(p.name for p in (store / "train").glob("shard-*.json"))
    assert shards == ["shard-w000-c000000.json", "shard-w000-c000001.json", "shard-w000-c000002.json",
                      "shard-w001-c000003.json", "shard-w001-c000004.json"]
    runs = sorted(p.parent.name for p in (tmp_path / "outputs").rglob("metrics.json"))
    assert runs == ["cache-w0of2", "cache-w1of2"]


def test_torchrun_ranks_cache_one_share_each(tmp_path, corpus):
    """cache data-parallel under torch.distributed: worker=rank takes RANK/WORLD_SIZE from torchrun."""
    store = tmp_path / "store"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "run.py",
           "experiment=tiny_lm", f"dataset.path={corpus}", "pipeline=store", "store.model=base",
           f"store.chunk_size={CHUNK}", f"store.dir={store}", "stage=cache", "worker=rank",
           f"paths.root={tmp_path}/outputs", "logger=none"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    shards = sorted(p.name[:10] for p in (store / "train").glob("shard-*.json"))
    assert shards == ["shard-w000"] * 3 + ["shard-w001"] * 2
    runs = sorted(p.parent.name for p in (tmp_path / "outputs").rglob("metrics.json"))
    assert runs == ["cache-w0of2", "cache-w1of2"]


@pytest.mark.parametrize("tda", ["if_efim", "grad_dot"])
def test_store_scores_equal_the_lds_pipelines_scores_with_the_damping_chosen_on_validation(compose_cfg, corpus,
                                                                                           store_cfg, tmp_path, tda):
    """Same fine-tuned model (store.model=checkpoint), compressors and tda: pipeline=store chooses the same damping
    from damping_grid on the same validation queries (store.damping_from=auto) and reproduces pipeline=lds's scores
    to float32 rounding (rtol 1e-3, atol 1e-4; scores here are O(1e-2..1e1))."""
    lds = run(compose_cfg(f"dataset.path={corpus}", f"tda={tda}", "save_scores=true", experiment="tiny_lm"))
    reference = torch.load(next((tmp_path / "outputs").rglob(f"*-{tda}-*/scores.pt")))["scores"]
    store = run(store_cfg("ckpt", f"tda={tda}", "store.model=checkpoint"))
    assert store["damping/chosen"] == lds["damping/chosen"]
    if tda == "if_efim":
        assert store["damping/val_lds"].keys() == lds["damping/val_lds"].keys()
        for lam, value in lds["damping/val_lds"].items():
            assert store["damping/val_lds"][lam] == pytest.approx(value, abs=1e-6)
    else:
        assert lds["damping/chosen"] is None and not (tmp_path / "ckpt" / tda / "ifvp").exists()
    torch.testing.assert_close(_read(tmp_path / "ckpt" / tda / "scores"), reference, rtol=1e-3, atol=1e-4)
    influence = torch.load(tmp_path / "ckpt" / tda / "self_influence.pt")["self_influence"]
    train = _read(tmp_path / "ckpt" / "train")
    if tda == "grad_dot":  # P = I: <phi, phi>
        torch.testing.assert_close(influence, (train * train).sum(dim=1), rtol=1e-5, atol=1e-6)


def test_store_scores_equal_the_lds_pipelines_if_efim_scores_at_a_fixed_damping(compose_cfg, corpus, store_cfg,
                                                                                tmp_path):
    """store.damping_from=fixed: the scores at store.damping equal pipeline=lds's at that damping (its one-value
    grid), to float32 rounding; the store fingerprints keep the two methods' products apart."""
    run(compose_cfg(f"dataset.path={corpus}", "save_scores=true", "damping_grid=[0.01]", experiment="tiny_lm"))
    reference = torch.load(next((tmp_path / "outputs").rglob("scores.pt")))["scores"]
    metrics = run(store_cfg("ckpt", "store.model=checkpoint", "store.damping_from=fixed", "store.damping=0.01"))
    assert metrics["damping/chosen"] == 0.01 and metrics["attribute/damping"] == 0.01
    torch.testing.assert_close(_read(tmp_path / "ckpt" / "if_efim" / "scores"), reference, rtol=1e-3, atol=1e-4)
    with pytest.raises(GrassError, match=r"ifvp was made by a different config:\n  damping: cache=0.01, now=0.1"):
        run(store_cfg("ckpt", "store.model=checkpoint", "store.damping_from=fixed", "stage=attribute"))


@pytest.mark.parametrize("tda, checkpoints", [("trak", 2), ("if_efim", 2), ("grad_dot", 1)])
def test_flat_store_scores_equal_the_lds_pipelines_scores(compose_cfg, tmp_path, tda, checkpoints):
    """A flat compressor (sjlt over the tiny MLP's whole-model gradients): the cache writes one flat block per
    checkpoint, and pipeline=store reproduces pipeline=lds's scores and chosen damping to float32 rounding (rtol
    1e-3, atol 1e-4 x the largest score); trak with its Q weights and 1 / sqrt(p) scale, over 2 checkpoints."""
    common = (f"tda={tda}", "compressor=sjlt", f"tda.num_checkpoints={checkpoints}")
    # pipeline=store searches the whole damping grid; pipeline=lds's default local search may stop on another peak
    lds = run(compose_cfg(*common, "save_scores=true", "damping_search=grid"))
    reference = torch.load(next((tmp_path / "outputs").rglob(f"*-{tda}-*/scores.pt")))["scores"]
    store = run(compose_cfg(*common, "pipeline=store", "store.chunk_size=64", f"store.dir={tmp_path / 'flat'}"))
    assert store["damping/chosen"] == lds["damping/chosen"]
    meta = json.loads((tmp_path / "flat" / "train" / "store.json").read_text())
    assert meta["layers"] == ([["flat", 128]] if checkpoints == 1 else [["ckpt0/flat", 128], ["ckpt1/flat", 128]])
    scores = _read(tmp_path / "flat" / tda / "scores")
    torch.testing.assert_close(scores, reference, rtol=1e-3, atol=1e-4 * float(reference.abs().max()))


def test_a_cache_of_one_checkpoint_is_not_read_as_two(compose_cfg, tmp_path):
    """The store's model identity names the checkpoints, so features of one are refused for two."""
    run(compose_cfg("stage=finetune"))  # the tiny MLP's checkpoints (pipeline=lds)
    common = ("tda=if_efim", "compressor=sjlt", "pipeline=store", f"store.dir={tmp_path / 'flat'}",
              "store.damping_from=fixed")
    run(compose_cfg(*common, "tda.num_checkpoints=1", "stage=cache"))
    with pytest.raises(GrassError, match=r"checkpoint: cache=0, now=\[0, 1\]"):
        run(compose_cfg(*common, "tda.num_checkpoints=2", "stage=precondition"))
