"""profile=true: throughput and peak memory of one stage, into metrics (and from there W&B)."""

import resource
import sys
import time
from contextlib import contextmanager

import torch


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, MiB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


@contextmanager
def profiled(ctx, stage: str, unit: str):
    """Yields a dict; the stage adds the units of work it did to box["count"]. With profile=true, writes
    profile/<stage>/{<unit>_per_s, seconds, peak_rss_mb[, peak_cuda_mb]}."""
    box = {"count": 0}
    cuda = ctx.device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(ctx.device)
    start = time.perf_counter()
    yield box
    if cuda:
        torch.cuda.synchronize(ctx.device)
    seconds = time.perf_counter() - start
    ctx.metrics[f"time/{stage}_s"] = ctx.metrics.get(f"time/{stage}_s", 0.0) + seconds
    if ctx.cfg.profile:
        out = {f"{unit}_per_s": box["count"] / seconds if seconds > 0 else 0.0, "seconds": seconds,
               unit: box["count"], "peak_rss_mb": peak_rss_mb()}
        if cuda:
            out["peak_cuda_mb"] = torch.cuda.max_memory_allocated(ctx.device) / 2**20
        for key, value in out.items():
            ctx.metrics[f"profile/{stage}/{key}"] = value
        ctx.tracker.log({f"profile/{stage}/{k}": v for k, v in out.items()})
