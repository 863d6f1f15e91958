"""The prepared GPU script must run as is on a GPU machine: its CPU-sized run is checked here."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_gpu_check_small_runs_every_step(tmp_path):
    out = tmp_path / "small.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--small", "--device", "cpu", "--out", str(out)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads(out.read_text())
    encoding, pretraining, search = results["encoding"], results["pretraining"], results["search"]
    assert encoding["docs"] == 512 and 81 <= encoding["mean_tokens"] <= 101 and encoding["padding"] < 0.2
    # The release's loop pads each arrival-order batch to its longest row: more padding, same embeddings.
    assert encoding["release_loop"]["padding"] > encoding["padding"] and encoding["min_cosine"] > 0.999
    assert pretraining["sequence"] == 128 and pretraining["trainable_params"] > 0
    assert set(pretraining["last_losses"]) == {"loss", "lm", "ebae", "ebar"}
    assert all(math.isfinite(v) and v > 0 for v in pretraining["last_losses"].values())
    assert search["vectors"] == 10_000 and search["torch_qps"] > 0
    assert "MS MARCO" in run.stdout and "release loop" in run.stdout and "joint EBAE/EBAR objective" in run.stdout
