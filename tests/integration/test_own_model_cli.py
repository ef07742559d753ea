"""Bring your own model to the CLI: `model=custom model.target=<class>` and `model=hf_causal_lm
model.name_or_path=<folder>` each run with no key deletions, and name the run folder and metrics after the model."""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

import grass
from grass.data.text import lm_batch
from grass.instantiate import instantiate_node
from grass.models.causal_lm import hub_causal_lm

REPO = Path(__file__).resolve().parents[2]

NET = '''
import torch
from torch import nn


class TwoLayerNet(nn.Module):
    def __init__(self, in_features: int, num_classes: int, width: int = 16):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(in_features, width), nn.Tanh(), nn.Linear(width, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)
'''


def _cli(*args: str, pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1"}
    if pythonpath is not None:  # where the user's package lives, as a user would set it
        env["PYTHONPATH"] = os.pathsep.join([str(pythonpath), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "run.py", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=900)


def _last_line(res: subprocess.CompletedProcess) -> str:
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout.strip().splitlines()[-1]


def test_custom_classifier_with_its_own_arguments(tmp_path):
    (tmp_path / "mynets.py").write_text(NET)
    root = tmp_path / "out"
    res = _cli("experiment=tiny", "model=custom", "model.target=mynets.TwoLayerNet", "+model.width=8",
               f"paths.root={root}", "lds.num_subsets=4", "tda.num_checkpoints=1", pythonpath=tmp_path)
    assert _last_line(res).startswith("LDS ")
    (metrics,) = (root / "tiny" / "digits-TwoLayerNet").glob("*/metrics.json")
    assert json.loads(metrics.read_text())["run/model"] == "TwoLayerNet"


def test_hf_causal_lm_from_a_local_folder_and_the_api_agrees(tmp_path, tiny_llama_dir, corpus, compose_cfg):
    """run.py on a saved Llama folder; then the Python API on the CLI's fine-tuned checkpoint, the same blocks, seed
    and chosen damping gives the CLI's scores (the LM quickstart's calls)."""
    root = tmp_path / "out"
    overrides = ("model=hf_causal_lm", f"model.name_or_path={tiny_llama_dir}", f"dataset.path={corpus}",
                 "lds.num_subsets=4", "save_scores=true")
    res = _cli("experiment=tiny_lm", f"paths.root={root}", *overrides)
    assert _last_line(res).startswith("LDS ")
    (run_dir,) = (p.parent for p in (root / "tiny_lm" / "local_text-tiny-llama").glob("*/metrics.json"))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["run/model"] == "tiny-llama"

    cli = torch.load(run_dir / "scores.pt")["scores"]
    (models_dir,) = (root / "artifacts" / "models").glob("local_text-tiny-llama-*")
    model = hub_causal_lm(str(tiny_llama_dir), dtype="float32")  # the user's own copy, with the CLI's weights
    model.load_state_dict(torch.load(models_dir / "checkpoint_000.pt"))
    cfg = compose_cfg(*overrides, experiment="tiny_lm")
    data = instantiate_node(cfg.dataset, "dataset")  # the same blocks the CLI attributed

    def blocks(ids, mask):
        return [lm_batch(ids[i:i + 8], mask[i:i + 8]) for i in range(0, len(ids), 8)]

    attributor = grass.Attributor(grass.CausalLMTask(model), compressor="factgrass", proj_dim=cfg.proj_dim,
                                  tda="if_efim", damping=metrics["damping/chosen"], seed=cfg.seed, device="cpu",
                                  progress=False)
    scores = attributor.cache(blocks(data.train_ids, data.train_mask)).attribute(blocks(data.query_ids,
                                                                                        data.query_mask))
    torch.testing.assert_close(scores, cli, rtol=1e-4, atol=1e-6 * float(cli.abs().max()))
