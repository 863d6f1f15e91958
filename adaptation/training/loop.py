"""The training loop shared by EBAE/EBAR pretraining and contrastive fine-tuning.

A stage supplies a model, a map-style dataset, a collator and ``compute_loss``; ``train`` does the
rest the same way for both: LoRA, gradient checkpointing, accelerate (mixed precision, DDP /
DeepSpeed / FSDP through ``accelerate launch``), seeded shuffling, checkpoints that resume exactly,
a NaN guard, progress and metrics, and the export that ``--encoder llara:DIR`` loads.

Exact resume: batch order is a function of ``seed`` and epoch only, and a resumed run skips the
batches already consumed, so an interrupted and resumed run takes the same steps as an
uninterrupted one (``checkpoints`` says what is saved). A resume with other defining arguments is
refused unless ``allow_changed_arguments``.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import torch

from pyserini_llara.precision import resolve_mixed_precision

from ..export import export_model
from .arguments import TrainingArguments
from .checkpoints import (
    CHECKPOINTS,
    SET_ASIDE,
    find_resume,
    last_checkpoint,
    load_checkpoint,
    run_definition,
    save_checkpoint,
    set_aside_bad_checkpoints,
)
from .components import EpochSampler, apply_lora, enable_gradient_checkpointing, make_optimizer, process_state
from .metrics import (
    METRICS_FILE,
    PLOT_FILE,
    MetricsWindow,
    append_metrics,
    keep_metrics_until,
    num_tokens,
    plot_metrics,
)
from .schedules import make_scheduler

logger = logging.getLogger(__name__)


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the run stopped before updating the model with it."""


@dataclass
class Position:
    """Where a run stands; every checkpoint saves it."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    tokens: int = 0
    elapsed_s: float = 0.0


def _accelerator(args: TrainingArguments):
    """A fresh ``Accelerator`` for this run, and ``args`` with its mixed precision resolved for the device.

    A process may train several stages (pretraining, then fine-tuning) with other settings;
    accelerate keeps them in singletons, which are reset here (the distributed state is kept).
    The precision is resolved once, so that checkpoints, training_args.json and the card record what ran.
    """
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state()
    GradientState._reset_state()
    device = process_state().device
    args = replace(args, mixed_precision=resolve_mixed_precision(args.mixed_precision, device))
    accelerator = Accelerator(cpu=device.type == "cpu", mixed_precision=args.mixed_precision,
                              gradient_accumulation_steps=args.gradient_accumulation_steps)
    if args.mixed_precision == "fp16" and accelerator.device.type == "cpu":
        raise ValueError("mixed_precision=fp16 needs a GPU; use bf16 on CPU")
    return accelerator, args


def _start_over(output_dir: Path) -> None:
    """``overwrite_output_dir``: remove what an earlier run wrote there, and nothing else."""
    shutil.rmtree(output_dir / CHECKPOINTS, ignore_errors=True)
    for name in (METRICS_FILE, PLOT_FILE):
        (output_dir / name).unlink(missing_ok=True)


def _trainable(model, tokenizer, args: TrainingArguments):
    if args.gradient_checkpointing:
        enable_gradient_checkpointing(model)
    if args.use_lora:
        model = apply_lora(model, tokenizer, args)
    model.train()
    return model


def _precision(model, args: TrainingArguments) -> str:
    """What runs, as the card says it: e.g. ``float32 weights, bf16 autocast``."""
    weights = str(next(p.dtype for p in model.parameters() if p.is_floating_point())).removeprefix("torch.")
    autocast = "no autocast" if args.mixed_precision == "no" else f"{args.mixed_precision} autocast"
    return f"{weights} weights, {autocast}"


@dataclass
class _Run:
    """A run under way: the prepared pieces, and what stepping, logging and saving change."""

    accelerator: object
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object
    loader: object
    sampler: EpochSampler
    compute_loss: Callable
    args: TrainingArguments
    definition: dict
    total_steps: int
    steps_per_epoch: int
    position: Position
    window: MetricsWindow = field(default_factory=MetricsWindow)
    last_logged: dict = field(default_factory=dict)

    @property
    def output_dir(self) -> Path:
        return Path(self.args.output_dir)

    @property
    def main(self) -> bool:
        return self.accelerator.is_main_process

    def train(self) -> None:
        from tqdm.auto import tqdm

        position, accelerator = self.position, self.accelerator
        progress = tqdm(total=self.total_steps, initial=position.step, disable=not self.main, desc="training",
                        unit="step")
        started = time.perf_counter() - position.elapsed_s
        while position.step < self.total_steps:
            skip = position.batch_in_epoch
            batches = accelerator.skip_first_batches(self.loader, skip) if skip else self.loader
            # accelerate's loaders set their sampler's epoch from their own pass counter, which a
            # resumed run's fresh loader would restart at 0: set it explicitly on both.
            batches.set_epoch(position.epoch)
            self.sampler.set_epoch(position.epoch)
            for batch in batches:
                parts = self._learn(batch)
                position.batch_in_epoch += 1
                self.window.add(parts, num_tokens(batch))
                if not accelerator.sync_gradients:
                    continue
                if not accelerator.optimizer_step_was_skipped:
                    self.scheduler.step()
                position.step += 1
                progress.update(1)
                if position.step % self.args.logging_steps == 0 or position.step == self.total_steps:
                    self._log(progress, started)
                if position.step % self.args.save_steps == 0 or position.step == self.total_steps:
                    self._save()
                if position.step >= self.total_steps:
                    break
            else:
                position.epoch += 1
                position.batch_in_epoch = 0
        progress.close()

    def _learn(self, batch) -> dict:
        """One forward and backward pass (an optimizer step when gradients are synchronised); the loss parts."""
        accelerator = self.accelerator
        with accelerator.accumulate(self.model):
            parts = self.compute_loss(self.model, batch, accelerator)
            loss = parts["loss"]
            bad = torch.tensor(0.0 if bool(torch.isfinite(loss.detach()).all()) else 1.0, device=accelerator.device)
            if accelerator.reduce(bad, reduction="sum").item() > 0:
                self._stop_non_finite(parts)
            accelerator.backward(loss)
            if accelerator.sync_gradients and self.args.max_grad_norm > 0:
                accelerator.clip_grad_norm_(self.model.parameters(), self.args.max_grad_norm)
            self.optimizer.step()
            self.optimizer.zero_grad()
        return parts

    def _stop_non_finite(self, parts: dict) -> None:
        position = self.position
        values = ", ".join(f"{k} {v.detach().float().item():.4g}" for k, v in parts.items()
                           if torch.is_tensor(v) and v.numel() == 1)
        if self.main:
            set_aside_bad_checkpoints(self.output_dir, position.step + 1)
        self.accelerator.wait_for_everyone()
        good = last_checkpoint(self.output_dir)
        raise NonFiniteLossError(
            f"non-finite loss at step {position.step + 1} (epoch {position.epoch}, batch "
            f"{position.batch_in_epoch}): {values}. The model was not updated with it. Checkpoints "
            f"whose weights give it (step {position.step} on) were renamed *{SET_ASIDE}; "
            + (f"a rerun resumes from {good}, whose weights and loss were finite. "
               if good is not None else
               "no checkpoint with finite weights and loss is left, so a rerun starts over. ")
            + "Lower the learning rate (resuming with it needs --allow_changed_arguments), prefer bf16 "
              "over fp16, or check the data.")

    def _log(self, progress, started: float) -> None:
        position = self.position
        means, tokens, seconds = self.window.read(self.accelerator)
        position.tokens += tokens
        position.elapsed_s = time.perf_counter() - started
        self.last_logged = {"step": position.step, "epoch": round(position.step / self.steps_per_epoch, 4),
                            "lr": self.scheduler.get_last_lr()[0], **means, "tokens": position.tokens,
                            "tokens_per_s": round(tokens / seconds, 1), "elapsed_s": round(position.elapsed_s, 1)}
        if self.main:
            append_metrics(self.output_dir / METRICS_FILE, self.last_logged)
            progress.set_postfix(loss=f"{means['loss']:.4f}", tok_s=f"{tokens / seconds:.0f}")
        self.window = MetricsWindow()

    def _save(self) -> None:
        state = {"position": asdict(self.position), "total_steps": self.total_steps,
                 "scheduler_steps": self.scheduler.last_epoch, "definition": self.definition,
                 "args": asdict(self.args)}
        save_checkpoint(self.accelerator, self.model, self.output_dir, self.position.step, state,
                        self.args.save_total_limit)
        if self.main:
            plot_metrics(self.output_dir / METRICS_FILE, self.output_dir / PLOT_FILE)


def train(model, tokenizer, dataset, collate_fn: Callable, compute_loss: Callable, args: TrainingArguments,
          card: dict | None = None, stage_arguments: dict | None = None) -> Path:
    """Train ``model`` on ``dataset`` and export it to ``args.output_dir``; returns that directory.

    ``dataset``: map-style torch Dataset; ``collate_fn(list_of_items) -> batch``;
    ``compute_loss(model, batch, accelerator) -> {"loss": total, **parts}`` (scalar tensors;
    every part is logged). A batch may carry ``num_tokens`` (non-pad tokens) for tokens/s,
    otherwise 2-D ``*attention_mask`` tensors are counted. With ``use_lora`` the given module
    gets adapters (a causal LM or a transformer body alike). An unfinished run in
    ``output_dir`` resumes from its last checkpoint unless ``overwrite_output_dir``;
    ``stage_arguments`` (the stage's model, data and objective arguments) and ``args``
    must then be those the run started with, unless ``args.allow_changed_arguments``.
    """
    from accelerate.utils import set_seed

    output_dir = Path(args.output_dir)
    if len(dataset) == 0:
        raise ValueError("the training dataset is empty")
    accelerator, args = _accelerator(args)
    main = accelerator.is_main_process
    if args.overwrite_output_dir and main:
        _start_over(output_dir)
    accelerator.wait_for_everyone()
    definition = run_definition(args, accelerator.num_processes, stage_arguments)
    resume = find_resume(output_dir, definition, args.allow_changed_arguments, accelerator.process_index)

    set_seed(args.seed)
    model = _trainable(model, tokenizer, args)
    precision = _precision(model, args)
    if main:
        logger.info("training precision: %s", precision)

    sampler = EpochSampler(len(dataset), args.seed)
    # Its own generator: starting an iterator must not draw from the global RNG (dropout's), or a
    # resumed run, which starts one more iterator, would drift from an uninterrupted one.
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.per_device_train_batch_size, sampler=sampler,
                                         collate_fn=collate_fn, num_workers=args.dataloader_num_workers,
                                         generator=torch.Generator().manual_seed(args.seed))
    optimizer = make_optimizer(model, args)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    steps_per_epoch = math.ceil(len(loader) / args.gradient_accumulation_steps)
    total_steps = args.max_steps if args.max_steps > 0 else math.ceil(args.num_train_epochs * steps_per_epoch)
    # Stepped by hand once per optimizer step (accelerate's wrapper would step it once per process).
    scheduler = make_scheduler(args.lr_scheduler_type, optimizer, math.ceil(args.warmup_ratio * total_steps),
                               total_steps)

    position = Position()
    if resume is not None:
        checkpoint, saved = resume
        load_checkpoint(accelerator, checkpoint, scheduler, saved["scheduler_steps"])
        position = Position(**saved["position"])
        before = saved["definition"]
        consumed = position.batch_in_epoch * before["per_device_train_batch_size"] * before["processes"]
        position.batch_in_epoch = consumed // (args.per_device_train_batch_size * accelerator.num_processes)
        if main:
            logger.warning("resuming %s from %s (step %d of %d)", output_dir, checkpoint, position.step, total_steps)
    if main:
        output_dir.mkdir(parents=True, exist_ok=True)
        keep_metrics_until(output_dir / METRICS_FILE, position.step if resume is not None else None)

    run = _Run(accelerator, model, optimizer, scheduler, loader, sampler, compute_loss, args, definition,
               total_steps, steps_per_epoch, position)
    run.train()

    card = {**(card or {}), "steps": position.step, "epochs": round(position.step / steps_per_epoch, 3),
            "tokens trained": position.tokens, "training time": f"{position.elapsed_s / 60:.1f} min",
            "final metrics (last logging window)": {k: v for k, v in run.last_logged.items()
                                                    if k not in ("step", "epoch", "lr", "tokens", "elapsed_s")},
            "lora": (f"r {args.lora_r}, alpha {args.lora_alpha}, modules {args.lora_target_modules}"
                     if args.use_lora else "no (full fine-tuning)"),
            "learning rate": args.learning_rate,
            "batch": f"{args.per_device_train_batch_size} x {args.gradient_accumulation_steps} accumulation x "
                     f"{accelerator.num_processes} processes", "precision": precision}
    export_model(model, tokenizer, output_dir, adapter_only=args.save_adapter_only, accelerator=accelerator,
                 card=card, arguments=asdict(args))
    if main:
        plot_metrics(output_dir / METRICS_FILE, output_dir / PLOT_FILE)
    accelerator.end_training()
    return output_dir
