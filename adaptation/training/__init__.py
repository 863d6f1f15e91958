"""The training loop both stages share, and what it is made of.

``arguments`` (how to train), ``components`` (process state, data order, LoRA, gradient
checkpointing, optimizer), ``schedules`` (learning rates), ``checkpoints`` (save, resume, set
aside), ``metrics`` (``metrics.jsonl``, ``loss.png``) and ``loop`` (``train``).
"""

from .arguments import TrainingArguments
from .checkpoints import CheckpointError, last_checkpoint, run_definition
from .components import apply_lora, enable_gradient_checkpointing, process_state
from .loop import NonFiniteLossError, train
from .metrics import plot_metrics
from .schedules import RELEASE_SCHEDULE, make_scheduler

__all__ = ["RELEASE_SCHEDULE", "CheckpointError", "NonFiniteLossError", "TrainingArguments", "apply_lora",
           "enable_gradient_checkpointing", "last_checkpoint", "make_scheduler", "plot_metrics", "process_state",
           "run_definition", "train"]
