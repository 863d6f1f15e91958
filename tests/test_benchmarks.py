"""The benchmark scripts: the prepared GPU script runs as is (its CPU-sized run is checked here), and the
recipe comparison names the main job's recipe."""

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


def test_the_index_type_table_measures_every_type_it_lists(tmp_path):
    """The script behind docs/indexing.md's index-type table, run small: each type's bytes per vector is its
    code size, Flat recalls everything (SQfp16 all but ties), and IVF-PQ (compressed, 16 of 32 lists probed) less."""
    out = tmp_path / "types.json"
    run = subprocess.run([sys.executable, "benchmarks/search_index_types.py", "--num-vectors", "2000", "--num-queries",
                          "20", "--dim", "64", "--growth", "0", "--out", str(out)],
                         cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = {row["index"].split(",")[0]: row for row in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"Flat", "HNSW32", "IVF32", "SQ8", "SQfp16"}
    for name, code_bytes in (("Flat", 4 * 64), ("SQfp16", 2 * 64), ("SQ8", 64)):
        assert code_bytes <= rows[name]["bytes_vector"] < code_bytes * 1.05, name
    assert rows["Flat"]["recall"] == 1.0 and rows["SQfp16"]["recall"] >= 0.99  # fp16 may swap ranks near k
    assert rows["HNSW32"]["bytes_vector"] > rows["Flat"]["bytes_vector"]  # the graph's links come on top
    assert 0 < rows["IVF32"]["recall"] < 1 and rows["IVF32"]["bytes_vector"] < rows["SQ8"]["bytes_vector"]
    assert all(row["qps"] > 0 and row["build_s"] >= 0 for row in rows.values())


def test_the_recipe_table_names_the_main_jobs_recipe():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import insuranceqa_recipes as recipes

    assert recipes.VARIANTS[recipes.MAIN_JOB] == recipes.demo.RECIPE
    assert recipes.VARIANTS["start"] != recipes.demo.RECIPE  # the baseline it is read against
