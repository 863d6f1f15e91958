"""The training loop shared by EBAE/EBAR pretraining and contrastive fine-tuning.

A stage supplies a model, a map-style dataset, a collator and ``compute_loss``; this module
does the rest the same way for both: LoRA, gradient checkpointing, accelerate (mixed
precision, DDP / DeepSpeed / FSDP through ``accelerate launch``), seeded shuffling,
checkpoints that resume exactly, a NaN guard, progress and metrics, and the export that
``--encoder llara:DIR`` loads.

Exact resume: a checkpoint holds model, optimizer and RNG states (``accelerator.save_state``:
safetensors, and torch files that are only ever loaded with ``weights_only=True``) plus, in
``trainer_state.json``, the data position, the scheduler's step count (the schedule is a
function of the arguments and that count, so no pickled scheduler is needed) and the
arguments that define the run. Batch order is a function of ``seed`` and epoch only, and a
resumed run skips the batches already consumed, so an interrupted and resumed run takes the
same steps as an uninterrupted one. A resume with other defining arguments is refused
unless ``allow_changed_arguments``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import torch

from pyserini_llara.precision import check_mixed_precision, resolve_mixed_precision

logger = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
STATE_FILE = "trainer_state.json"
METRICS_FILE = "metrics.jsonl"
PLOT_FILE = "loss.png"
SET_ASIDE = ".nonfinite"  # suffix of checkpoints whose weights gave a non-finite loss
# Arguments that change how a run is run or saved, not what it computes: free to change on resume.
OPERATIONAL = ("output_dir", "save_steps", "save_total_limit", "logging_steps", "overwrite_output_dir",
               "save_adapter_only", "dataloader_num_workers", "gradient_checkpointing", "allow_changed_arguments")
RELEASE_SCHEDULE = "log_warmup_linear_decay"


def _help(text: str, **kwargs):
    return field(metadata={"help": text}, **kwargs)


@dataclass
class TrainingArguments:
    """How to train: optimisation, precision, LoRA, checkpoints and logging (shared by all stages)."""

    _argument_group_name = "training"

    output_dir: str = _help("Directory of the run: checkpoints/, metrics.jsonl, loss.png, and at the end "
                            "the model that `--encoder llara:DIR` loads. An unfinished run there is resumed.")
    learning_rate: float = _help("Peak learning rate of AdamW (release: 1e-5 full pretraining, 3e-4 LoRA fine-tuning).",
                                 default=1e-5)
    num_train_epochs: float = _help("Passes over the data (fractions allowed); ignored when max_steps > 0.",
                                    default=1.0)
    max_steps: int = _help("Optimizer steps to train; > 0 overrides num_train_epochs.", default=-1)
    per_device_train_batch_size: int = _help("Examples per device per forward pass.", default=1)
    gradient_accumulation_steps: int = _help("Forward passes per optimizer step (effective batch = "
                                             "per-device batch x accumulation x devices).", default=1)
    warmup_ratio: float = _help("Fraction of the steps spent warming the learning rate up from 0.", default=0.1)
    lr_scheduler_type: str = _help(f"{RELEASE_SCHEDULE}: the release's (DeepSpeed's WarmupDecayLR as its stage1.json "
                                   "runs it: log warmup, then linear decay to 0); or a transformers.get_scheduler "
                                   "name: linear (linear warmup and decay), cosine, constant_with_warmup, ...",
                                   default=RELEASE_SCHEDULE)
    weight_decay: float = _help("AdamW weight decay on matrices (not on norms and biases).", default=0.0)
    max_grad_norm: float = _help("Clip the gradient norm to this; 0 disables clipping.", default=1.0)
    mixed_precision: str = _help("auto | no | bf16 | fp16: the compute precision of autocast. auto = bf16 where "
                                 "the device runs it natively (recent GPUs, CPUs with AVX-512 BF16 or AMX), fp16 "
                                 "on older GPUs, none (fp32) on other CPUs, where bf16 is many times slower.",
                                 default="auto")
    gradient_checkpointing: bool = _help("Recompute activations in the backward pass: less memory, ~30% slower.",
                                         default=False)
    save_steps: int = _help("Write a resumable checkpoint every this many optimizer steps.", default=500)
    save_total_limit: int = _help("Keep only this many newest checkpoints (0 keeps all).", default=2)
    logging_steps: int = _help("Log averaged metrics (JSONL line, progress bar) every this many steps.", default=10)
    seed: int = _help("Seed of data order, LoRA initialisation and dropout.", default=42)
    overwrite_output_dir: bool = _help("Start over: delete the checkpoints and metrics of an earlier run in "
                                       "output_dir instead of resuming it.", default=False)
    use_lora: bool = _help("Train LoRA adapters (peft) instead of all weights.", default=False)
    lora_r: int = _help("LoRA rank.", default=64)
    lora_alpha: int = _help("LoRA scaling alpha.", default=16)
    lora_dropout: float = _help("Dropout on the LoRA branch.", default=0.1)
    lora_target_modules: str = _help("Comma-separated module names that get adapters.",
                                     default="q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj")
    lora_train_llara_tokens: bool = _help("With LoRA, also train the input-embedding rows of <s1>..<s16> "
                                          "(peft trainable tokens): rows added to a base model must learn their "
                                          "role. The release's LoRA pretraining leaves them frozen at their "
                                          "initialisation (False).", default=True)
    save_adapter_only: bool = _help("With LoRA, export the adapter (and tokenizer) instead of merged weights.",
                                    default=False)
    dataloader_num_workers: int = _help("Worker processes that collate batches (0: in the training process).",
                                        default=0)
    allow_changed_arguments: bool = _help(
        "Resume even though arguments that define the run (learning rate, schedule, batch size, seed, model, data, "
        "loss, ...) differ from the checkpoint's: training continues from its weights, optimizer state and step "
        "with the new values (the data position is carried over in examples).", default=False)

    def __post_init__(self):
        check_mixed_precision(self.mixed_precision)
        for name in ("per_device_train_batch_size", "gradient_accumulation_steps", "save_steps", "logging_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_steps <= 0 and self.num_train_epochs <= 0:
            raise ValueError("set max_steps > 0 or num_train_epochs > 0")
        if self.save_adapter_only and not self.use_lora:
            raise ValueError("save_adapter_only needs use_lora")


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the run stopped before updating the model with it."""


class CheckpointError(ValueError):
    """A checkpoint this run may not resume from; the message says which and what to do."""


class EpochSampler(torch.utils.data.Sampler):
    """A permutation of the dataset that depends only on (seed, epoch): what makes resuming exact."""

    def __init__(self, size: int, seed: int):
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(self.size, generator=generator).tolist())

    def __len__(self) -> int:
        return self.size


def process_state():
    """accelerate's process state, made once per process with the right device kind.

    Without a GPU, accelerate counts torchrun's processes only when told it runs on CPU;
    otherwise every process would train alone on all the data and write the same output.
    """
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def enable_gradient_checkpointing(model) -> None:
    """Non-reentrant checkpointing, which works with frozen inputs (LoRA) and 4-D masks alike."""
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x name
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.config.use_cache = False


def apply_lora(model, tokenizer, args: TrainingArguments):
    """Wrap any module (a causal LM, or a bare transformer body) in peft LoRA per ``args``."""
    from peft import LoraConfig, get_peft_model

    from pyserini_llara.template import SPECIAL_TOKENS, missing_special_tokens

    extra = {}
    if args.lora_train_llara_tokens and not missing_special_tokens(tokenizer):
        embeddings = model.get_input_embeddings()
        name = next(n for n, m in model.named_modules() if m is embeddings).rsplit(".", 1)[-1]
        extra["trainable_token_indices"] = {name: tokenizer.convert_tokens_to_ids(list(SPECIAL_TOKENS))}
    targets = [t.strip() for t in args.lora_target_modules.split(",") if t.strip()]
    config = LoraConfig(r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout,
                        target_modules=targets, **extra)
    try:
        return get_peft_model(model, config)
    except ValueError as error:
        raise ValueError(f"cannot apply LoRA to {type(model).__name__} with lora_target_modules="
                         f"{args.lora_target_modules!r}: {error}") from error


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


def _step_dirs(output_dir: str | Path) -> list[Path]:
    """The ``step-N`` directories (not their staging copies nor those set aside), oldest first."""
    found = [p for p in (Path(output_dir) / CHECKPOINTS).glob("step-*") if p.name[5:].isdigit()]
    return sorted(found, key=lambda p: int(p.name[5:]))


def _checkpoints(output_dir: str | Path) -> list[Path]:
    """Complete checkpoints (each holding its trainer state), oldest first."""
    return [p for p in _step_dirs(output_dir) if (p / STATE_FILE).is_file()]


def last_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest complete checkpoint, or None."""
    return next(iter(reversed(_checkpoints(output_dir))), None)


def _resolved(value):
    """Paths as the files they name, so that ``DIR/`` and ``DIR`` are the same argument."""
    if isinstance(value, str) and value and os.path.exists(value):
        return os.path.realpath(value)
    if isinstance(value, list):
        return [_resolved(item) for item in value]
    return value


def run_definition(args: TrainingArguments, processes: int, stage: dict | None = None) -> dict:
    """What a resume must find unchanged: every argument that changes what the run computes.

    ``stage`` holds the stage's own arguments (model, data, objective); its
    ``model_name_or_path`` is compared by ``model_fingerprint``, whatever its spelling.
    """
    from pyserini_llara.modeling import model_fingerprint

    defining = {key: value for key, value in asdict(args).items() if key not in OPERATIONAL}
    stage = {key: _resolved(value) for key, value in (stage or {}).items()}
    if "model_name_or_path" in stage:
        stage["model_fingerprint"] = model_fingerprint(stage.pop("model_name_or_path"))
    return json.loads(json.dumps({**defining, **stage, "processes": processes}, default=str))


def _unsafe_files(checkpoint: Path, process_index: int) -> list[str]:
    """Files of a checkpoint that would be unpickled with code execution allowed, or that cannot be read safely.

    accelerate loads registered objects (``custom_checkpoint_*.pkl``) with ``weights_only=False``; this
    loop registers none, so such a file was not written by it. The RNG state is read the way
    accelerate reads it (``weights_only=True``), which otherwise skips an unreadable one silently.
    """
    from accelerate.utils import load

    unsafe = sorted(p.name for p in checkpoint.glob("custom_checkpoint_*.pkl"))
    rng = checkpoint / f"random_states_{process_index}.pkl"
    if rng.is_file():
        try:
            load(rng)
        except Exception:  # any failure means it is not the plain RNG state this loop saved
            unsafe.append(rng.name)
    return unsafe


def _changes(saved: dict, now: dict) -> list[str]:
    return [f"{key}: {saved.get(key)!r} in the checkpoint, {now.get(key)!r} now"
            for key in sorted(set(saved) | set(now)) if saved.get(key) != now.get(key)]


def _all_finite(model, accelerator) -> bool:
    bad = torch.tensor(float(any(not bool(torch.isfinite(p.detach()).all()) for p in model.parameters())),
                       device=accelerator.device)
    return accelerator.reduce(bad, reduction="sum").item() == 0


def _set_aside_bad_checkpoints(output_dir: Path, failed_step: int) -> None:
    """Rename the checkpoints a rerun must not resume from.

    The loss of step N+1 is computed from the weights of step N, so the checkpoint of the
    step before a non-finite loss, and any later one, holds weights that give it; so does
    one whose weights were not all finite when saved.
    """
    for checkpoint in _checkpoints(output_dir):
        state = json.loads((checkpoint / STATE_FILE).read_text())
        if int(checkpoint.name[5:]) >= failed_step - 1 or not state.get("finite_weights", False):
            target = checkpoint.with_name(checkpoint.name + SET_ASIDE)
            shutil.rmtree(target, ignore_errors=True)
            checkpoint.rename(target)


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


def _num_tokens(batch) -> int:
    if isinstance(batch, dict):
        if "num_tokens" in batch:
            return int(batch["num_tokens"])
        masks = [v for k, v in batch.items() if k.endswith("attention_mask") and torch.is_tensor(v) and v.dim() == 2]
        return int(sum(m.sum() for m in masks))
    return 0


def _optimizer(model, args: TrainingArguments) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError(f"{type(model).__name__} has no trainable parameters")
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": args.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=args.learning_rate)


class _Metrics:
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
        local = torch.stack([self.sums[k] for k in keys] + [torch.tensor(float(self.batches), device=accelerator.device),
                                                            torch.tensor(float(self.tokens), device=accelerator.device)])
        total = accelerator.reduce(local.to(accelerator.device), reduction="sum")
        means = {k: (total[i] / total[-2]).item() for i, k in enumerate(keys)}
        seconds = time.perf_counter() - self.started
        return means, int(total[-1].item()), seconds


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
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm

    from .export import export_model

    output_dir = Path(args.output_dir)
    if len(dataset) == 0:
        raise ValueError("the training dataset is empty")
    # A process may train several stages (pretraining, then fine-tuning) with other settings;
    # accelerate keeps them in singletons, which are reset here (the distributed state is kept).
    AcceleratorState._reset_state()
    GradientState._reset_state()
    device = process_state().device
    # Resolved once, so that checkpoints, training_args.json and the card record what ran.
    args = replace(args, mixed_precision=resolve_mixed_precision(args.mixed_precision, device))
    accelerator = Accelerator(cpu=device.type == "cpu", mixed_precision=args.mixed_precision,
                              gradient_accumulation_steps=args.gradient_accumulation_steps)
    if args.mixed_precision == "fp16" and accelerator.device.type == "cpu":
        raise ValueError("mixed_precision=fp16 needs a GPU; use bf16 on CPU")
    main = accelerator.is_main_process
    if args.overwrite_output_dir and main:
        shutil.rmtree(output_dir / CHECKPOINTS, ignore_errors=True)
        for name in (METRICS_FILE, PLOT_FILE):
            (output_dir / name).unlink(missing_ok=True)
    accelerator.wait_for_everyone()
    resume_from = last_checkpoint(output_dir)
    definition = run_definition(args, accelerator.num_processes, stage_arguments)
    saved = json.loads((resume_from / STATE_FILE).read_text()) if resume_from is not None else None
    if saved is not None:
        if "definition" not in saved or "scheduler_steps" not in saved:
            raise CheckpointError(f"{resume_from} was written by an older version of this program and cannot be "
                                  "resumed; start over with --overwrite_output_dir")
        unsafe = _unsafe_files(resume_from, accelerator.process_index)
        if unsafe:
            raise CheckpointError(f"refusing to resume from {resume_from}: {', '.join(unsafe)} is not a file this "
                                  "program writes there, and unpickling it could run code; delete that checkpoint "
                                  "to resume from an earlier one, or start over with --overwrite_output_dir")
        changed = _changes(saved["definition"], definition)
        if changed and not args.allow_changed_arguments:
            raise CheckpointError(f"cannot resume {output_dir} from {resume_from.name}: the run was started with "
                                  f"other arguments ({'; '.join(changed)}); rerun with the checkpoint's values, add "
                                  "--allow_changed_arguments to continue with the new ones, or start over with "
                                  "--overwrite_output_dir")
        if changed and main:
            logger.warning("resuming with changed arguments: %s", "; ".join(changed))

    set_seed(args.seed)
    if args.gradient_checkpointing:
        enable_gradient_checkpointing(model)
    if args.use_lora:
        model = apply_lora(model, tokenizer, args)
    model.train()
    weights = str(next(p.dtype for p in model.parameters() if p.is_floating_point())).removeprefix("torch.")
    autocast = "no autocast" if args.mixed_precision == "no" else f"{args.mixed_precision} autocast"
    precision = f"{weights} weights, {autocast}"
    if main:
        logger.info("training precision: %s", precision)

    sampler = EpochSampler(len(dataset), args.seed)
    # Its own generator: starting an iterator must not draw from the global RNG (dropout's), or a
    # resumed run, which starts one more iterator, would drift from an uninterrupted one.
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.per_device_train_batch_size, sampler=sampler,
                                         collate_fn=collate_fn, num_workers=args.dataloader_num_workers,
                                         generator=torch.Generator().manual_seed(args.seed))
    optimizer = _optimizer(model, args)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    steps_per_epoch = math.ceil(len(loader) / args.gradient_accumulation_steps)
    total_steps = args.max_steps if args.max_steps > 0 else math.ceil(args.num_train_epochs * steps_per_epoch)
    # Stepped by hand once per optimizer step (accelerate's wrapper would step it once per process).
    scheduler = make_scheduler(args.lr_scheduler_type, optimizer, math.ceil(args.warmup_ratio * total_steps),
                               total_steps)

    state = {"step": 0, "epoch": 0, "batch_in_epoch": 0, "tokens": 0, "elapsed_s": 0.0}
    if saved is not None:
        try:
            accelerator.load_state(str(resume_from))
        except Exception as error:  # a damaged or foreign file: say which checkpoint, on one line
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise CheckpointError(f"cannot load {resume_from} ({reason}); delete it to resume from an earlier "
                                  "checkpoint, or start over with --overwrite_output_dir") from error
        state.update(saved["position"])
        # The schedule is a function of the arguments and its step count: replaying the steps restores it
        # (with changed arguments allowed, it becomes the new schedule at that step).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "scheduler stepped before the optimizer"
            for _ in range(saved["scheduler_steps"]):
                scheduler.step()
        before = saved["definition"]
        consumed = state["batch_in_epoch"] * before["per_device_train_batch_size"] * before["processes"]
        state["batch_in_epoch"] = consumed // (args.per_device_train_batch_size * accelerator.num_processes)
        if main:
            logger.warning("resuming %s from %s (step %d of %d)", output_dir, resume_from, state["step"], total_steps)
    metrics_path = output_dir / METRICS_FILE
    if main:
        output_dir.mkdir(parents=True, exist_ok=True)
        kept = []
        if resume_from is not None and metrics_path.exists():
            kept = [line for line in metrics_path.read_text().splitlines()
                    if line.strip() and json.loads(line)["step"] <= state["step"]]
        metrics_path.write_text("".join(line + "\n" for line in kept))

    def save_checkpoint() -> None:
        final = output_dir / CHECKPOINTS / f"step-{state['step']}"
        staging = final.with_name(final.name + ".tmp")
        if main:
            shutil.rmtree(staging, ignore_errors=True)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(staging))
        finite = _all_finite(model, accelerator)
        if main:
            (staging / STATE_FILE).write_text(json.dumps({
                "position": state, "total_steps": total_steps, "scheduler_steps": scheduler.last_epoch,
                "finite_weights": finite, "definition": definition, "args": asdict(args)}, indent=2))
            shutil.rmtree(final, ignore_errors=True)
            staging.rename(final)  # a run killed while saving keeps the previous complete checkpoint
            older = [p for p in _step_dirs(output_dir) if p != final]
            if args.save_total_limit > 0:
                for stale in older[:max(0, len(older) - args.save_total_limit + 1)]:
                    shutil.rmtree(stale)
            plot_metrics(metrics_path, output_dir / PLOT_FILE)
        accelerator.wait_for_everyone()

    progress = tqdm(total=total_steps, initial=state["step"], disable=not main, desc="training", unit="step")
    window = _Metrics()
    last_logged: dict = {}
    run_started = time.perf_counter() - state["elapsed_s"]
    while state["step"] < total_steps:
        batches = accelerator.skip_first_batches(loader, state["batch_in_epoch"]) if state["batch_in_epoch"] else loader
        # accelerate's loaders set their sampler's epoch from their own pass counter, which a
        # resumed run's fresh loader would restart at 0: set it explicitly on both.
        batches.set_epoch(state["epoch"])
        sampler.set_epoch(state["epoch"])
        for batch in batches:
            with accelerator.accumulate(model):
                parts = compute_loss(model, batch, accelerator)
                loss = parts["loss"]
                bad = torch.tensor(0.0 if bool(torch.isfinite(loss.detach()).all()) else 1.0, device=accelerator.device)
                if accelerator.reduce(bad, reduction="sum").item() > 0:
                    values = ", ".join(f"{k} {v.detach().float().item():.4g}" for k, v in parts.items()
                                       if torch.is_tensor(v) and v.numel() == 1)
                    if main:
                        _set_aside_bad_checkpoints(output_dir, state["step"] + 1)
                    accelerator.wait_for_everyone()
                    good = last_checkpoint(output_dir)
                    raise NonFiniteLossError(
                        f"non-finite loss at step {state['step'] + 1} (epoch {state['epoch']}, batch "
                        f"{state['batch_in_epoch']}): {values}. The model was not updated with it. Checkpoints "
                        f"whose weights give it (step {state['step']} on) were renamed *{SET_ASIDE}; "
                        + (f"a rerun resumes from {good}, whose weights and loss were finite. "
                           if good is not None else
                           "no checkpoint with finite weights and loss is left, so a rerun starts over. ")
                        + "Lower the learning rate (resuming with it needs --allow_changed_arguments), prefer bf16 "
                          "over fp16, or check the data.")
                accelerator.backward(loss)
                if accelerator.sync_gradients and args.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad()
            state["batch_in_epoch"] += 1
            window.add(parts, _num_tokens(batch))
            if not accelerator.sync_gradients:
                continue
            if not accelerator.optimizer_step_was_skipped:
                scheduler.step()
            state["step"] += 1
            progress.update(1)
            if state["step"] % args.logging_steps == 0 or state["step"] == total_steps:
                means, tokens, seconds = window.read(accelerator)
                state["tokens"] += tokens
                state["elapsed_s"] = time.perf_counter() - run_started
                last_logged = {"step": state["step"], "epoch": round(state["step"] / steps_per_epoch, 4),
                               "lr": scheduler.get_last_lr()[0], **means, "tokens": state["tokens"],
                               "tokens_per_s": round(tokens / seconds, 1), "elapsed_s": round(state["elapsed_s"], 1)}
                if main:
                    with metrics_path.open("a") as handle:
                        handle.write(json.dumps(last_logged) + "\n")
                    progress.set_postfix(loss=f"{means['loss']:.4f}", tok_s=f"{tokens / seconds:.0f}")
                window = _Metrics()
            if state["step"] % args.save_steps == 0 or state["step"] == total_steps:
                save_checkpoint()
            if state["step"] >= total_steps:
                break
        else:
            state["epoch"] += 1
            state["batch_in_epoch"] = 0
    progress.close()

    card = {**(card or {}), "steps": state["step"], "epochs": round(state["step"] / steps_per_epoch, 3),
            "tokens trained": state["tokens"], "training time": f"{state['elapsed_s'] / 60:.1f} min",
            "final metrics (last logging window)": {k: v for k, v in last_logged.items()
                                                    if k not in ("step", "epoch", "lr", "tokens", "elapsed_s")},
            "lora": (f"r {args.lora_r}, alpha {args.lora_alpha}, modules {args.lora_target_modules}"
                     if args.use_lora else "no (full fine-tuning)"),
            "learning rate": args.learning_rate,
            "batch": f"{args.per_device_train_batch_size} x {args.gradient_accumulation_steps} accumulation x "
                     f"{accelerator.num_processes} processes", "precision": precision}
    export_model(model, tokenizer, output_dir, adapter_only=args.save_adapter_only, accelerator=accelerator,
                 card=card, arguments=asdict(args))
    if main:
        plot_metrics(metrics_path, output_dir / PLOT_FILE)
    accelerator.end_training()
    return output_dir
