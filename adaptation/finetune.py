"""Supervised contrastive fine-tuning of a LLaRA model (InfoNCE, hard + in-batch + cross-device negatives).

    python -m adaptation.finetune --model_name_or_path ADAPTED_DIR --train_data train.jsonl \\
        --output_dir FINETUNED_DIR

The training data is JSONL or a local Hugging Face dataset, in FlagEmbedding's ``{"query", "pos",
"neg"}`` layout (``python -m adaptation.mine`` writes it) or Tevatron's (see ``adaptation.data.groups``).
The output directory is a merged model that ``--encoder llara:FINETUNED_DIR`` loads. Defaults are
the release's. Its code's: LoRA r 64 / alpha 16 / dropout 0.1 on all projections (LoRA only: the
<s1>..<s16> rows stay frozen), temperature 0.02. Its README command's, where they differ from its
code's: groups of 16, query 64 and passage 160 tokens (template included), cross-device negatives,
lr 3e-4 with DeepSpeed's log warmup and linear decay, 1 query per device. Rerunning the same
command resumes an interrupted run from its last checkpoint.

Examples:
  python -m adaptation.mine --dataset beir/scifact/train --output scifact-train.jsonl
  python -m adaptation.finetune --model_name_or_path runs/llara --train_data scifact-train.jsonl \
      --output_dir runs/llara-scifact --per_device_train_batch_size 8
  accelerate launch --config_file examples/accelerate/deepspeed_zero1.yaml -m adaptation.finetune \
      --model_name_or_path runs/llara --train_data msmarco-train.jsonl --output_dir runs/llara-msmarco \
      --temperature 0.01 --gradient_checkpointing   # 1 query per GPU, as the release
  python -m adaptation.finetune args.json          # all arguments from a JSON file
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Sequence

from pyserini_llara.cli import HelpFormatter, add_debug_flag, one_line_errors, setup_logging

from .contrastive import contrastive_loss
from .data.collators import ContrastiveCollator
from .data.groups import ContrastiveDataset, read_corpus_texts, read_examples
from .embeddings import GradCache, embed
from .training import NonFiniteLossError, TrainingArguments, process_state, train
from .training.arguments import GradCacheArguments

logger = logging.getLogger(__name__)


@dataclass
class FinetuneArguments:
    model_name_or_path: str = field(metadata={
        "help": "the model to fine-tune: a LLaRA-adapted directory (adaptation.pretrain output), hub id or .gguf file"})
    train_data: str = field(metadata={
        "help": "query groups: a JSONL file, or a local Hugging Face dataset (a save_to_disk directory, .parquet or "
                ".json files), in the FlagEmbedding layout {query, pos, neg} (python -m adaptation.mine writes it), "
                "Tevatron's {query, positive_passages, negative_passages}, or Tevatron's docids {query_text, "
                "positive_document_ids, negative_document_ids} with --corpus"})
    corpus: str | None = field(default=None, metadata={
        "help": "corpus of the passages given by docid: Pyserini JSONL, an ir-datasets id, or a local Hugging Face "
                "dataset of {docid, title, text} (Tevatron's corpora)"})
    train_group_size: int = field(default=16, metadata={"help": "passages per query: 1 positive + N-1 negatives"})
    query_max_len: int = field(default=64, metadata={"help": "query tokens, template included"})
    passage_max_len: int = field(default=160, metadata={"help": "passage tokens, template included"})
    temperature: float = field(default=0.02, metadata={
        "help": "InfoNCE temperature (release default 0.02; its example script uses 0.01)"})
    negatives_cross_device: bool = field(default=True, metadata={
        "help": "on several processes, every process's passages are negatives for every query"})
    passage_chunk_size: int = field(default=0, metadata={
        "help": "passages per forward pass, sorted by length so each pass pads less (same embeddings); 0: all "
                "in one pass, as the release. Less padding is not always faster: measure with "
                "benchmarks/finetune_speed.py"})
    add_tokens: bool = field(default=False, metadata={
        "help": "add <s1>..<s16> to a model that lacks them (fine-tuning without LLaRA adaptation: an ablation)"})
    dtype: str = field(default="auto", metadata={
        "help": "Dtype of the weights: auto = float32 (master weights: AdamW's small updates vanish in bf16; "
                "--mixed_precision gives the speed), float32, or bfloat16, which halves the memory of LoRA's "
                "frozen base"})

    def __post_init__(self):
        if self.train_group_size < 1:
            raise ValueError(f"--train_group_size must be at least 1, got {self.train_group_size}")
        if self.passage_chunk_size < 0:
            raise ValueError(f"--passage_chunk_size must be >= 0, got {self.passage_chunk_size}")
        if self.temperature <= 0:
            raise ValueError(f"--temperature must be positive, got {self.temperature}")


@dataclass
class FinetuneTrainingArguments(GradCacheArguments, TrainingArguments):
    """Pretraining's training arguments with the release's fine-tuning defaults, and gradient caching."""

    learning_rate: float = field(default=3e-4, metadata={
        "help": "Peak learning rate of AdamW (release fine-tuning: 3e-4)."})
    use_lora: bool = field(default=True, metadata={
        "help": "Train LoRA adapters (the release's fine-tuning); --use_lora False trains all weights."})
    lora_train_llara_tokens: bool = field(default=False, metadata={
        "help": "With LoRA, also train the input-embedding rows of <s1>..<s16>. Off: the release's fine-tuning "
                "trains LoRA only and keeps the rows as adaptation left them."})

    def __post_init__(self):
        super().__post_init__()
        self.check_grad_cache()


@dataclass(frozen=True)
class ContrastiveObjective:
    """``compute_loss`` for ``adaptation.training.train``: queries and passages encoded in separate passes."""

    temperature: float
    group_size: int
    cross_device: bool = True
    passage_chunk_size: int = 0
    grad_cache: GradCache | None = None

    def __call__(self, model, batch: dict, accelerator=None) -> dict:
        if self.grad_cache is not None:
            queries, passages = self.grad_cache.embeddings(model, batch, accelerator)
        else:
            queries = embed(model, batch, "query")
            passages = embed(model, batch, "passage", self.passage_chunk_size)
        return contrastive_loss(queries, passages, temperature=self.temperature, group_size=self.group_size,
                                cross_device=self.cross_device)


def grad_cache(args: FinetuneArguments, training: FinetuneTrainingArguments) -> GradCache | None:
    """The gradient-cached step asked for, or None; refused where its replay in the backward pass is untested."""
    if not training.grad_cache:
        return None
    if args.passage_chunk_size:
        raise ValueError("--grad_cache chunks passages by --gc_p_chunk_size; drop --passage_chunk_size")
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true" or \
            os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true":
        raise ValueError("--grad_cache runs on one process or under DDP (examples/accelerate/multi_gpu.yaml), "
                         "not under DeepSpeed or FSDP")
    return GradCache(training.gc_q_chunk_size, training.gc_p_chunk_size)


def prepare(args: FinetuneArguments, training: FinetuneTrainingArguments):
    """Read and check the data, load the model body: ``(model, tokenizer, dataset, collator, objective, card)``."""
    from pyserini_llara.modeling import load_model
    from pyserini_llara.precision import resolve_training_dtype

    args = replace(args, dtype=resolve_training_dtype(args.dtype, process_state().device))
    corpus = None if args.corpus is None else read_corpus_texts(args.corpus)
    examples = read_examples(args.train_data, require_negatives=args.train_group_size > 1, corpus=corpus)
    model, tokenizer = load_model(args.model_name_or_path, dtype=args.dtype, add_tokens=args.add_tokens)
    dataset = ContrastiveDataset(examples, args.train_group_size, seed=training.seed)
    collator = ContrastiveCollator(tokenizer, args.query_max_len, args.passage_max_len)
    objective = ContrastiveObjective(args.temperature, args.train_group_size, args.negatives_cross_device,
                                     args.passage_chunk_size, grad_cache(args, training))
    card = {"title": "LLaRA retriever (contrastive fine-tuning)",
            "summary": "Fine-tuned with InfoNCE over LLaRA embeddings (pyserini-llara adaptation.finetune).",
            "base_model": args.model_name_or_path, "train_data": f"{args.train_data} ({len(examples)} queries)",
            **{k: v for k, v in asdict(args).items() if k not in ("model_name_or_path", "train_data")}}
    return model, tokenizer, dataset, collator, objective, card


def finetune(args: FinetuneArguments, training: FinetuneTrainingArguments) -> Path:
    """Fine-tune and export; returns the output directory (a model ``--encoder llara:DIR`` loads)."""
    model, tokenizer, dataset, collator, objective, card = prepare(args, training)
    return train(model, tokenizer, dataset, collator, objective, training, card=card, stage_arguments=asdict(args))


def parser():
    from transformers import HfArgumentParser

    return HfArgumentParser((FinetuneArguments, FinetuneTrainingArguments), prog="python -m adaptation.finetune",
                            description=__doc__, formatter_class=HelpFormatter)


def main(argv: Sequence[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    args_parser = parser()
    add_debug_flag(args_parser)
    debug = False
    try:
        if len(argv) == 1 and argv[0].endswith(".json"):
            args, training = args_parser.parse_json_file(argv[0])
        else:
            args, training, extra = args_parser.parse_args_into_dataclasses(args=argv)
            debug = extra.debug
    except ValueError as error:
        args_parser.error(str(error))
    setup_logging()
    with one_line_errors(debug, (ValueError, OSError, NonFiniteLossError)):
        output = finetune(args, training)
    print(output)


if __name__ == "__main__":
    main()
