"""bergson's `build` gradient collection, timed: runs INSIDE bench/.venv-bergson (never the project's .venv).

Started by bench/bench_bergson.py as `bench/.venv-bergson/bin/python bench/bergson_build.py` with the JSON spec
path in GRASS_BERGSON_SPEC: {"model": HF folder, "data": .jsonl of {"input_ids": [...]} blocks, "run_path",
"projection_dim", "token_batch_size", "threads"}. It does what bergson 2.5.1's `build_worker`
(bergson/build.py) does for one process on CPU -- setup_data_pipeline, setup_model_and_peft, create_processor,
allocate_batches, collect_gradients -- and times collect_gradients alone (the pass over the blocks, as grass's
stage=cache profile times its pass over the rows; model loading is outside both). Prints one JSON line:
{"seconds", "tokens", "blocks", "modules", "feature_dim", "bergson", "torch"}.
It calls the library functions rather than `python -m bergson build` because bergson's CLI imports its
`magic` subcommand, which needs torchopt (a compiled extension built against other torch versions); `build`
itself never does.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import bergson
import torch
from bergson.collection import collect_gradients
from bergson.config.config import DataConfig, DistributedConfig, IndexConfig, PreprocessConfig
from bergson.data import allocate_batches
from bergson.utils.worker_utils import create_processor, setup_data_pipeline, setup_model_and_peft


def main() -> None:
    spec = json.loads(Path(os.environ["GRASS_BERGSON_SPEC"]).read_text())
    torch.set_num_threads(int(spec["threads"]))
    cfg = IndexConfig(run_path=spec["run_path"], model=spec["model"], data=DataConfig(dataset=spec["data"]),
                      projection_dim=int(spec["projection_dim"]), token_batch_size=int(spec["token_batch_size"]),
                      precision="fp32", distributed=DistributedConfig(nproc_per_node=1))
    cfg.partial_run_path.mkdir(parents=True, exist_ok=True)
    ds, _ = setup_data_pipeline(cfg)
    model, target_modules = setup_model_and_peft(cfg)
    processor = create_processor(model, cfg, target_modules)
    batches = allocate_batches(ds["length"][:], cfg.token_batch_size, max_batch_size=cfg.max_batch_size)
    start = time.perf_counter()
    collect_gradients(model=model, data=ds, processor=processor, cfg=cfg, batches=batches,
                      target_modules=target_modules, attention_cfgs={}, preprocess_cfg=PreprocessConfig())
    seconds = time.perf_counter() - start
    modules = sorted(target_modules) if target_modules else None
    print(json.dumps({"seconds": seconds, "tokens": int(sum(ds["length"][:])), "blocks": len(ds),
                      "batches": len(batches), "modules": modules, "bergson": bergson.__version__,
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
