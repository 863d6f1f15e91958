"""The pieces the training loop assembles: the process state, the data order, gradient checkpointing, LoRA and
the optimizer."""

from __future__ import annotations

import torch

from .arguments import TrainingArguments


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


def make_optimizer(model, args: TrainingArguments) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError(f"{type(model).__name__} has no trainable parameters")
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": args.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=args.learning_rate)
