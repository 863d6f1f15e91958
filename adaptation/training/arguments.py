"""How to train: the arguments every stage shares (optimisation, precision, LoRA, checkpoints, logging)."""

from __future__ import annotations

from dataclasses import dataclass, field

from pyserini_llara.precision import check_mixed_precision

from .schedules import RELEASE_SCHEDULE

# Arguments that change how a run is run or saved, not what it computes: free to change on resume.
OPERATIONAL = ("output_dir", "save_steps", "save_total_limit", "logging_steps", "overwrite_output_dir",
               "save_adapter_only", "dataloader_num_workers", "gradient_checkpointing", "allow_changed_arguments")


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


@dataclass
class GradCacheArguments:
    """Gradient caching of the contrastive step, under Tevatron's flag names (fine-tuning only)."""

    grad_cache: bool = _help("Gradient-cached step (GradCache): embeddings of the whole batch first, without a graph, "
                             "then each chunk again with one; the gradient of the un-chunked step in the memory of "
                             "one chunk, for about a third more compute. With it, --per_device_train_batch_size "
                             "sets the in-batch negatives and the chunk sizes the memory.", default=False)
    gc_q_chunk_size: int = _help("Queries per chunk of a gradient-cached step.", default=4)
    gc_p_chunk_size: int = _help("Passages per chunk of a gradient-cached step.", default=32)

    def check_grad_cache(self):
        if self.gc_q_chunk_size < 1 or self.gc_p_chunk_size < 1:
            raise ValueError(f"--gc_q_chunk_size and --gc_p_chunk_size must be >= 1, got {self.gc_q_chunk_size} "
                             f"and {self.gc_p_chunk_size}")
