"""Helpers shared by the benchmark scripts: the default model and corpus, memory, tables, subprocess workers.

Each benchmark compares against a naive baseline in the same run; memory peaks are taken in a
fresh subprocess per variant so that one variant's peak never hides in another's.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
from pathlib import Path
from typing import Sequence


def smollm2_gguf() -> str:
    """The default model, or a clear exit naming the alternative (``--model DIR``)."""
    from pyserini_llara.modeling import ModelLoadError
    from pyserini_llara.offline import smollm2_gguf_path

    try:
        return smollm2_gguf_path()
    except ModelLoadError as error:
        raise SystemExit(f"{error}; or pass --model DIR") from None


def insuranceqa_answers(n: int) -> list[str]:
    """The first ``n`` InsuranceQA v2 answers in id order: real text of mixed lengths (a few words to ~1k)."""
    try:
        import insuranceqa_data
    except ImportError:
        raise SystemExit("the default corpus needs `pip install insuranceqa-data==1.0`") from None
    answers = insuranceqa_data.load_answers()
    ids = sorted(answers, key=int)[:n]
    if len(ids) < n:
        raise SystemExit(f"InsuranceQA has only {len(ids)} answers; asked for {n}")
    return [" ".join(answers[i]["en"].split()) for i in ids]


def release_loop(body, tokenizer, ids: Sequence[Sequence[int]], batch_size: int):
    """The authors' README inference loop over templated ids, the baseline of the encoding benchmarks.

    Arrival order; each batch left-padded by ``tokenizer.pad`` to its longest row (a multiple
    of 8); a plain forward of the transformer body under ``no_grad`` with
    ``output_hidden_states``; the normalised mean of ``hidden_states[-1]`` at the last 8
    positions. Returns the [N, H] float32 embeddings and the positions computed (padding included).
    """
    import numpy as np
    import torch
    import torch.nn.functional as F

    device = next(body.parameters()).device
    outputs, positions = [], 0
    for start in range(0, len(ids), batch_size):
        batch = [list(x) for x in ids[start:start + batch_size]]
        inputs = tokenizer.pad({"input_ids": batch, "attention_mask": [[1] * len(x) for x in batch]}, padding=True,
                               pad_to_multiple_of=8, padding_side="left", return_tensors="pt").to(device)
        with torch.no_grad():
            hidden = body(**inputs, return_dict=True, output_hidden_states=True).hidden_states[-1]
        outputs.append(F.normalize(hidden[:, -8:, :].float().mean(dim=1), dim=-1).cpu().numpy())
        positions += inputs["input_ids"].numel()
    return np.concatenate(outputs), positions


def set_threads(threads: int = 0) -> int:
    """``threads`` torch threads, 0 = all cores (torch's default may be fewer inside containers)."""
    import torch

    threads = threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    return threads


def matmul_gflops(dtype: str = "float32", size: int = 2048, repeats: int = 3) -> float:
    """GFLOP/s of one large square matmul on torch's threads: the practical peak a model's GFLOP/s is read against."""
    import time

    import torch

    a, b = (torch.randn(size, size).to(getattr(torch, dtype)) for _ in range(2))
    a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def rss_mb() -> float:
    """Resident memory now."""
    return _status_kb("VmRSS") / 1024


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (Linux >= 4.0), so a later peak covers only what follows."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """Peak resident memory since start or the last ``reset_peak_rss``."""
    hwm = _status_kb("VmHWM")
    if hwm:
        return hwm / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def process_peak_rss_mb() -> float:
    """Peak resident memory of the whole process (``ru_maxrss``; survives ``reset_peak_rss`` only partly)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _status_kb(field: str) -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def machine(device: str = "cpu") -> str:
    """The table header's machine line: CPU, its kernel level and what ``auto`` picks on ``device``, load."""
    import torch

    from pyserini_llara.precision import describe

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    where = describe("cpu") + ("" if str(device).startswith("cpu") else f"; {describe(device)}")
    return (f"{os.cpu_count()} cores, {mem_gb:.0f} GiB RAM, {gpu}; {where}; load average "
            f"{os.getloadavg()[0]:.2f}; Python {platform.python_version()}, torch {torch.__version__}")


def run_worker(script: str, args: Sequence[str]) -> dict:
    """Run ``python script args`` in a fresh process; its last stdout line is a JSON result."""
    proc = subprocess.run([sys.executable, script, *args], stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"worker {' '.join(args)} failed with exit code {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def emit(result: dict) -> None:
    """Worker side of ``run_worker``."""
    print(json.dumps(result), flush=True)


def table(rows: Sequence[dict], columns: Sequence[tuple[str, str]]) -> str:
    """Markdown table; ``columns`` are (key, header) pairs, floats rounded for reading."""

    def cell(value) -> str:
        if isinstance(value, float):
            if value == 0 or 0.01 <= abs(value) < 1e5:
                return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
            return f"{value:.1e}"
        return str(value)

    lines = ["| " + " | ".join(h for _, h in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(k, "")) for k, _ in columns) + " |" for row in rows]
    return "\n".join(lines)
