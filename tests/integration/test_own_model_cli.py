"""Bring your own model to the CLI: `model=custom model.target=<class>` and `model=hf_causal_lm
model.name_or_path=<folder>` each run with no key deletions, and name the run folder and metrics after the model."""

import json
import os
import subprocess
import sys
from pathlib import Path

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


def test_hf_causal_lm_from_a_local_folder(tmp_path, tiny_llama_dir, corpus):
    root = tmp_path / "out"
    res = _cli("experiment=tiny_lm", "model=hf_causal_lm", f"model.name_or_path={tiny_llama_dir}",
               f"dataset.path={corpus}", f"paths.root={root}", "lds.num_subsets=4")
    assert _last_line(res).startswith("LDS ")
    (metrics,) = (root / "tiny_lm" / "local_text-tiny-llama").glob("*/metrics.json")
    assert json.loads(metrics.read_text())["run/model"] == "tiny-llama"
