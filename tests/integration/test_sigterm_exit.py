"""A run killed with SIGTERM (a scheduler's preemption or timeout) exits 143, never 0 as if it had finished."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_sigterm_during_a_lightning_fit_exits_143(tmp_path):
    env = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1"}
    # epochs without end: the signal lands inside Lightning's fit, where Lightning turns it into a SystemExit
    proc = subprocess.Popen([sys.executable, "run.py", "experiment=tiny", f"paths.root={tmp_path / 'outputs'}",
                             "stage=finetune", "lds.num_subsets=2", "tda.num_checkpoints=1",
                             "finetune.epochs=1000000"],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    err: list[str] = []
    reader = threading.Thread(target=lambda: err.extend(iter(lambda: proc.stderr.read(1), "")), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 300
        while "finetune models" not in "".join(err):
            assert proc.poll() is None, "".join(err)[-3000:]
            assert time.monotonic() < deadline, "no fit started within 300 s"
            time.sleep(0.2)
        time.sleep(3)  # past the Trainer's setup, inside the epochs
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(timeout=10)
    assert rc == 143, "".join(err)[-3000:]
    (metrics,) = (tmp_path / "outputs").rglob("metrics.json")
    assert json.loads(metrics.read_text())["run/error"] == "SIGTERMException"  # the run folder says why, not ": "
