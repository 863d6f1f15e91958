"""Learning-rate schedules: the release's, and any of ``transformers.get_scheduler``."""

from __future__ import annotations

import math

import torch

RELEASE_SCHEDULE = "log_warmup_linear_decay"


def log_warmup_linear_decay(optimizer, warmup_steps: int, total_steps: int):
    """DeepSpeed's ``WarmupDecayLR`` (``warmup_type`` log, min lr 0) as the release runs it under the HF Trainer.

    With W = max(2, warmup_steps), DeepSpeed's iteration i gives lr x log(i + 1) / log(W) while
    i < W, then lr x (total - i) / (total - W). Its first optimizer step runs before the first
    ``step()`` call, at the min lr, so optimizer step k uses iteration k - 2; here LambdaLR's
    counter s (k - 1 at step k) maps to i = s - 1.
    """
    warmup = max(2, warmup_steps)

    def factor(step: int) -> float:
        i = step - 1
        if i < 0:
            return 0.0
        if i < warmup:
            return math.log(i + 1) / math.log(warmup)
        return max(0.0, (total_steps - i) / max(1.0, total_steps - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def make_scheduler(name: str, optimizer, warmup_steps: int, total_steps: int):
    from transformers import get_scheduler

    if name == RELEASE_SCHEDULE:
        return log_warmup_linear_decay(optimizer, warmup_steps, total_steps)
    return get_scheduler(name, optimizer, num_warmup_steps=warmup_steps, num_training_steps=total_steps)
