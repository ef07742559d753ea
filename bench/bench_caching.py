"""End-to-end gradient caching throughput (tokens/s) with LinearCapture, against dattri 0.3.0.

Run: `.venv/bin/python bench/bench_caching.py` (GRASS_BENCH_QUICK=1: seconds-long smoke sizes).
Writes caching.json. Models: gpt2_tiny (2 layers, 128 wide, 128-token blocks) and a GPT-2-small-shaped
model with random weights (12 layers, 768 wide, 12 heads, vocab 50257, 512-token blocks), both built by
grass.models.gpt2.gpt2_tiny (GPT2Config + seeded init + convert_conv1d_to_linear) with sdpa attention,
as the pretrained `gpt2` builder gets. All 49 (gpt2_tiny: 9) nn.Linear layers are captured, lm_head
included, as in the Table 2 experiments. One batch of a few blocks per call; every mode is warmed up,
then timed in GRASS_BENCH_ROUNDS interleaved rounds (each mode once per round), and the fraction of the
forward+backward-only throughput is the median over rounds of that round's time ratio.

Modes, all on the same batch and model:
  fwd_bwd_outputs  "no compression": the forward pass and the backward pass down to every captured
                   layer's output gradient (delta), exactly the part LinearCapture.capture runs before
                   its per-layer feature step (its own _output_grads, weights frozen, so no weight
                   gradient is formed). The cheapest any per-layer method can be; the 85 % target uses it.
                   (LinearCapture with compressors=None is not this: it materialises full gradients.)
  fwd_bwd_params   reference: forward + loss.backward() with weight gradients of the batch loss (a
                   training step without the optimizer); a per-example method never needs this.
  logra, factgrass LinearCapture(...).capture(batch) with build_factorized(conf/compressor/<m>.yaml, K);
                   each call also records the share of its own time spent inside the compressors
                   (compress_share_in_call), a drift-free measure of the compression overhead.
  dattri_logra, dattri_factgrass
                   dattri.algorithm.{LoGra,FactGraSS}Attributor(task, hessian="Identity", device="cpu",
                   proj_dim=K, offload="cpu", cache_dir=tmp).cache(loader) over one batch: its hooked
                   forward + loss.backward() + compressed gradients stored on CPU. The warm-up call also
                   sets up its compressors and runs its torch.compile. On CPU its FactGraSS uses a dense
                   `normal` stage 2 (its SJLT is CUDA-only). A failure is recorded as not run, with the error.
"""

from __future__ import annotations

import os

os.environ.setdefault("TQDM_DISABLE", "1")  # dattri's per-batch progress bars would drown the table

import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import benchlib  # noqa: E402
import torch  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from grass.capture.linear import LinearCapture, LMTarget, _frozen_eval, layer_dims  # noqa: E402
from grass.compress.factorized import build_factorized  # noqa: E402
from grass.models.gpt2 import gpt2_tiny  # noqa: E402

QUICK = benchlib.QUICK
K = 256 if QUICK else 4096
PATTERNS = ("*",)
CONF = Path(__file__).resolve().parents[1] / "conf" / "compressor"
# name, gpt2_tiny kwargs, block (tokens), blocks per batch
MODELS = (
    ("gpt2_tiny", {}, 32 if QUICK else 128, 2 if QUICK else 4),
    ("gpt2_small_shaped", {"n_layer": 1 if QUICK else 12, "n_embd": 768, "n_head": 12, "n_positions": 1024},
     32 if QUICK else 512, 2),
)
SMALL_FULL_LAYERS = 12
# dattri writes batch_metadata.json into its cache_dir (the working directory by default): keep it in a
# scratch folder removed at exit
SCRATCH = tempfile.TemporaryDirectory(prefix="grass_bench_dattri_")


def make_batch(vocab: int, blocks: int, tokens: int) -> dict:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, vocab, (blocks, tokens), generator=g)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def ours(model, target, batch) -> dict:
    """The four LinearCapture-side modes as callables."""
    probe = LinearCapture(model, target, PATTERNS)  # compressors=None: only its forward/backward is used

    def fwd_bwd_outputs():
        with _frozen_eval(model):
            probe._output_grads(batch)

    def fwd_bwd_params():
        model.eval()
        model.zero_grad(set_to_none=True)
        target(model, batch).sum().backward()
        model.zero_grad(set_to_none=True)

    modes = {"fwd_bwd_outputs": fwd_bwd_outputs, "fwd_bwd_params": fwd_bwd_params}
    for method in ("logra", "factgrass"):
        node = OmegaConf.load(CONF / f"{method}.yaml")
        comps = {n: TimedCompressor(build_factorized(node, in_dim=i, out_dim=o, proj_dim=K, seed=0, layer_name=n))
                 for n, (o, i) in layer_dims(model, PATTERNS).items()}
        capture = LinearCapture(model, target, PATTERNS, compressors=comps)
        modes[method] = in_call_share((lambda c: lambda: c.capture(batch))(capture), list(comps.values()))
    return modes


class TimedCompressor:
    """A factorized compressor that adds up the seconds spent in its calls (attributes pass through)."""

    def __init__(self, comp) -> None:
        self.comp, self.seconds = comp, 0.0

    def __getattr__(self, name):
        return getattr(self.comp, name)

    def __call__(self, *args, **kwargs):
        start = time.perf_counter()
        out = self.comp(*args, **kwargs)
        self.seconds += time.perf_counter() - start
        return out


def in_call_share(fn, timed: list[TimedCompressor]):
    """fn, also recording on itself (`.shares`) the fraction of each call's time spent in the compressors.

    Measured inside one call, this share is immune to the machine's drift between calls, which the
    throughput ratio of separately timed modes is not.
    """
    def run():
        for t in timed:
            t.seconds = 0.0
        start = time.perf_counter()
        fn()
        run.shares.append(sum(t.seconds for t in timed) / (time.perf_counter() - start))
    run.shares = []
    return run


def dattri_mode(method: str, model, target, batch, proj_dim: int = K, batch_size: int | None = None):
    """A callable running dattri's attributor cache() over the batch (in loader batches of batch_size, default
    all of it at once), or raises what stops it."""
    from dattri.algorithm import FactGraSSAttributor, LoGraAttributor
    from dattri.task import AttributionTask

    # dattri rescales by the batch size, i.e. it expects the batch-mean loss
    task = AttributionTask(loss_func=lambda m, b, device: target(m, b).mean(), model=model,
                           checkpoints=model.state_dict())
    cls = {"dattri_logra": LoGraAttributor, "dattri_factgrass": FactGraSSAttributor}[method]
    examples = [{k: v[i] for k, v in batch.items()} for i in range(batch["input_ids"].shape[0])]
    loader = DataLoader(examples, batch_size=batch_size or len(examples))
    att = cls(task=task, hessian="Identity", device="cpu", proj_dim=proj_dim, offload="cpu",
              cache_dir=tempfile.mkdtemp(prefix=f"{method}_", dir=SCRATCH.name))  # its batch_metadata.json

    def run():
        try:
            att.cache(loader)
        finally:  # a failed call must not leave dattri's patched forwards on the shared model
            if att.hook_manager is not None:
                att.hook_manager.remove_hooks()
                att.hook_manager = None
    run.attributor = att
    return run


def bench_model(name: str, kwargs: dict, tokens: int, blocks: int) -> dict:
    model = gpt2_tiny(seed=0, attn_implementation="sdpa", **kwargs)
    vocab = model.config.vocab_size
    batch, target = make_batch(vocab, blocks, tokens), LMTarget("loss")
    n_tokens = blocks * tokens
    row = {"model": name, "config": {"n_layer": model.config.n_layer, "n_embd": model.config.n_embd,
                                     "n_head": model.config.n_head, "vocab": vocab},
           "layers": len(layer_dims(model, PATTERNS)), "block": tokens, "blocks": blocks, "K": K, "modes": {}}
    if name == "gpt2_small_shaped" and model.config.n_layer != SMALL_FULL_LAYERS:
        row["note"] = f"reduced to {model.config.n_layer} layer(s) (quick mode); not GPT-2 small's {SMALL_FULL_LAYERS}"
    modes = ours(model, target, batch)
    for method in ("dattri_logra", "dattri_factgrass"):
        try:
            modes[method] = dattri_mode(method, model, target, batch)
        except Exception as err:
            row["modes"][method] = {"not_run": f"{type(err).__name__}: {err}"}
    print(f"  {name}: {len(modes)} modes x {benchlib.ROUNDS} interleaved rounds ...", file=sys.stderr, flush=True)
    for mode, res in benchlib.time_interleaved(modes, benchlib.ROUNDS).items():
        if "ms" in res:
            res["tokens_per_s"] = n_tokens / (res["ms"] * 1e-3)
            att = getattr(modes[mode], "attributor", None)
            if att is not None:
                res["feature_dim_total"] = att.total_proj_dim  # checks dattri ran at the same per-layer K
            shares = getattr(modes[mode], "shares", None)
            if shares:  # the warm-up call is the first entry
                res["compress_share_in_call"] = statistics.median(shares[1:] or shares)
        row["modes"][mode] = res
        status = f"{res['tokens_per_s']:.0f} tokens/s" if "tokens_per_s" in res else res["not_run"]
        print(f"  {name} {mode}: {status}", file=sys.stderr, flush=True)
    base = row["modes"]["fwd_bwd_outputs"].get("round_ms")
    if base:  # per round, against the baseline call made minutes apart at most: drift mostly cancels
        row["fraction_of_fwd_bwd_outputs"] = {
            m: statistics.median(b / t for b, t in zip(base, r["round_ms"]))
            for m, r in row["modes"].items() if "round_ms" in r}
    return row


def markdown(info: dict, rows: list[dict]) -> str:
    lines = [f"Gradient caching throughput, per-layer K={K}, fp32; {benchlib.machine_line(info)}"
             + (" (QUICK sizes)" if QUICK else ""), "",
             "| model | layers | batch | mode | ms | tokens/s | vs fwd_bwd_outputs | compressors' share of the call |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        for mode, r in row["modes"].items():
            if "tokens_per_s" in r:
                frac = row.get("fraction_of_fwd_bwd_outputs", {}).get(mode)
                share = f"{r['compress_share_in_call']:.1%}" if "compress_share_in_call" in r else "-"
                lines.append(f"| {row['model']} | {row['layers']} | {row['blocks']}x{row['block']} | {mode} | "
                             f"{r['ms']:.0f} | {r['tokens_per_s']:.0f} | {'-' if frac is None else f'{frac:.0%}'} | "
                             f"{share} |")
            else:
                lines.append(f"| {row['model']} | {row['layers']} | {row['blocks']}x{row['block']} | {mode} | - | "
                             f"not run: {r['not_run'][:120]} | - | - |")
        if row.get("note"):
            lines.append(f"\n{row['model']}: {row['note']}\n")
    return "\n".join(lines)


def main() -> None:
    info = benchlib.machine()
    versions = {p: benchlib.package_version(p) for p in ("dattri", "traker", "transformers")}
    rows = [bench_model(*m) for m in MODELS]
    print(markdown(info, rows))
    benchlib.write_result("caching", {"machine": info, "versions": versions,
                                      "config": {"K": K, "patterns": PATTERNS, "attn_implementation": "sdpa",
                                                 "rounds": benchlib.ROUNDS},
                                      "rows": rows})


if __name__ == "__main__":
    main()
