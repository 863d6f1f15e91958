"""What a run records as it goes: one JSON line per logging step (``metrics.jsonl``) and the loss curves
(``loss.png``)."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import torch

from pyserini_llara.atomic import write_text

logger = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
PLOT_FILE = "loss.png"


def keep_metrics_until(metrics_path: Path, step: int | None) -> None:
    """Start the metrics file of a run: a resumed run keeps the lines up to its checkpoint's ``step``."""
    kept = []
    if step is not None and metrics_path.exists():
        kept = [line for line in metrics_path.read_text().splitlines()
                if line.strip() and json.loads(line)["step"] <= step]
    write_text(metrics_path, "".join(line + "\n" for line in kept))


def append_metrics(metrics_path: Path, record: dict) -> None:
    with metrics_path.open("a") as handle:
        handle.write(json.dumps(record) + "\n")


def plot_metrics(metrics_path: str | Path, png_path: str | Path) -> Path | None:
    """Loss curves (total and each logged part) from the metrics JSONL; None, with a warning, without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logger.warning("matplotlib is not installed: no loss plot (the curves are in %s)", metrics_path)
        return None
    rows = [json.loads(line) for line in Path(metrics_path).read_text().splitlines() if line.strip()]
    if not rows:
        return None
    skip = {"step", "epoch", "lr", "tokens", "tokens_per_s", "elapsed_s"}
    keys = [k for k in rows[-1] if k not in skip and isinstance(rows[-1][k], (int, float))]
    figure, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.2), squeeze=False)
    for axis, key in zip(axes[0], keys):
        points = [(r["step"], r[key]) for r in rows if key in r]
        axis.plot(*zip(*points), marker="." if len(points) < 50 else None)
        axis.set_title(key)
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(png_path, dpi=100)
    plt.close(figure)
    return Path(png_path)


def num_tokens(batch) -> int:
    if isinstance(batch, dict):
        if "num_tokens" in batch:
            return int(batch["num_tokens"])
        masks = [v for k, v in batch.items() if k.endswith("attention_mask") and torch.is_tensor(v) and v.dim() == 2]
        return int(sum(m.sum() for m in masks))
    return 0


class MetricsWindow:
    """Sums of the logged parts over a window of micro-batches, reduced across processes when read."""

    def __init__(self):
        self.sums: dict[str, torch.Tensor] = {}
        self.batches = 0
        self.tokens = 0
        self.started = time.perf_counter()

    def add(self, parts: dict[str, torch.Tensor], tokens: int) -> None:
        for key, value in parts.items():
            if torch.is_tensor(value) and value.numel() == 1:
                value = value.detach().float().reshape(())
                self.sums[key] = self.sums[key] + value if key in self.sums else value
        self.batches += 1
        self.tokens += tokens

    def read(self, accelerator) -> tuple[dict[str, float], int, float]:
        keys = sorted(self.sums)
        counts = [torch.tensor(float(n), device=accelerator.device) for n in (self.batches, self.tokens)]
        local = torch.stack([self.sums[k] for k in keys] + counts)
        total = accelerator.reduce(local.to(accelerator.device), reduction="sum")
        means = {k: (total[i] / total[-2]).item() for i, k in enumerate(keys)}
        seconds = time.perf_counter() - self.started
        return means, int(total[-1].item()), seconds
