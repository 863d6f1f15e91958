"""A LLaRA model as an MTEB encoder: queries get the query (EBAR) prompt, passages the passage (EBAE) prompt.

    python -m pyserini_llara.mteb --model BAAI/LLARA-passage --device cuda:0 --output-folder mteb-results

runs the 15 retrieval tasks of MTEB(eng, v1) (or ``--tasks``) and prints each task's main score
(nDCG@10) and their mean. Encoding is :class:`~pyserini_llara.encoding.LlaraEncoder`'s: texts are
sorted by length into batches and an embedding does not depend on its batch, so MTEB's own
batching changes nothing. A passage is ``title text`` with ``-`` for a missing title, as the
release joins MS MARCO passages. Needs the ``mteb`` extra (``pip install pyserini-llara[mteb]``).

The results carry a full ``ModelMeta``, as mteb's registered models do (``model_meta``): the revision is
the model's fingerprint (its weights and tokenizer, however the model is spelt), and the training
datasets are named where known, so that MTEB does not count a fine-tuning set as zero-shot.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from typing import Any, Sequence

import numpy as np

try:
    from mteb.models.abs_encoder import AbsEncoder
    from mteb.models.model_meta import ModelMeta, ScoringFunction
    from mteb.types import PromptType
except ImportError as error:
    raise ImportError(f"pyserini_llara.mteb needs mteb ({error}): pip install 'pyserini-llara[mteb]'") from error

from .encoder_config import EncoderConfig
from .encoding import LlaraEncoder
from .fingerprint import local_model_dir, model_fingerprint
from .names import DEFAULT_MODEL
from .precision import PRECISIONS
from .template import DEFAULT_MAX_TEXT_TOKENS, join_title

BENCHMARK = "MTEB(eng, v1)"
# MTEB's names of the data a released checkpoint was fine-tuned on (its model card and the paper: MS MARCO
# passage with hard negatives); other checkpoints are left unknown (None) rather than guessed.
RELEASED_TRAINING_DATASETS = {"BAAI/LLARA-passage": {"MSMARCO"}}
# The line of the card ``adaptation.export`` writes beside a trained model that names the model it started from.
BASE_MODEL_LINE = re.compile(r"^- \*\*base model\*\*: (\S+)\s*$", re.MULTILINE)


def _trained_from(model: str) -> str | None:
    """The model a local checkpoint was fine-tuned from, as the card ``adaptation.finetune`` writes names it."""
    directory = local_model_dir(model)
    card = directory / "README.md" if directory is not None and directory.is_dir() else None
    if card is None or not card.is_file():
        return None
    found = BASE_MODEL_LINE.search(card.read_text(encoding="utf-8", errors="replace"))
    return found.group(1) if found else None


def model_meta(config: EncoderConfig, encoder: LlaraEncoder) -> ModelMeta:
    """What mteb records of the model beside its results; training datasets only where they are known."""
    model = encoder.model
    parameters = list(model.parameters())
    return ModelMeta.create_empty({
        "name": config.model + (f"+{config.lora}" if config.lora else ""),
        "revision": model_fingerprint(config.model, config.lora),
        "n_parameters": sum(p.numel() for p in parameters),
        "n_embedding_parameters": model.get_input_embeddings().weight.numel(),
        "memory_usage_mb": round(sum(p.numel() * p.element_size() for p in parameters) / 2**20),
        "max_tokens": getattr(model.config, "max_position_embeddings", None),
        "embed_dim": encoder.dimension,
        "similarity_fn_name": ScoringFunction.DOT_PRODUCT,
        "framework": ["PyTorch"],
        "training_datasets": None if config.lora else RELEASED_TRAINING_DATASETS.get(config.model),
        "adapted_from": _trained_from(config.model),
        "reference": None if os.path.exists(config.model) else f"https://huggingface.co/{config.model}",
        "model_type": ["dense"],
    })


class LlaraMtebEncoder(AbsEncoder):
    """What ``mteb.evaluate`` calls; the vectors are L2-normalised, so MTEB scores by dot product."""

    def __init__(self, model: str = DEFAULT_MODEL, revision: str | None = None, *, encoder: LlaraEncoder | None = None,
                 device: str | None = None, dtype: str = "auto", lora: str | None = None, batch_size: int = 32,
                 max_length: int = DEFAULT_MAX_TEXT_TOKENS, **_mteb_kwargs: Any):
        config = EncoderConfig(encoder=model, lora=lora, device=device or "cpu", dtype=dtype, batch_size=batch_size,
                               max_length=max_length)
        self.encoder = encoder or config.load()
        self.mteb_model_meta = model_meta(config, self.encoder)

    def encode(self, inputs, *, task_metadata, hf_split: str, hf_subset: str, prompt_type: PromptType | None = None,
               **kwargs) -> np.ndarray:
        if prompt_type is None:
            raise ValueError(f"MTEB gave no prompt type for {task_metadata.name} ({task_metadata.type}): LLaRA "
                             "encodes queries and passages with different prompts, so evaluate retrieval tasks")
        batches = list(inputs)
        if prompt_type == PromptType.query:
            return self.encoder.encode_queries([text for batch in batches for text in batch["text"]])
        passages = []
        for batch in batches:
            bodies = batch.get("body", batch["text"])
            titles = batch.get("title") or [None] * len(bodies)
            passages += [join_title(title, body) for title, body in zip(titles, bodies)]
        return self.encoder.encode_passages(passages)


def retrieval_tasks(names: Sequence[str] | None = None) -> list:
    """The named MTEB tasks, or the retrieval tasks of MTEB(eng, v1) (15, CQADupStack as one)."""
    import mteb

    if names:
        return list(mteb.get_tasks(tasks=list(names)))
    return [task for task in mteb.get_benchmark(BENCHMARK).tasks if task.metadata.type == "Retrieval"]


def evaluate(encoder: LlaraMtebEncoder, tasks: Sequence, output_folder: str | None = None,
             batch_size: int = 32) -> dict[str, float]:
    """Each task's main score; results are cached in ``output_folder``, so a rerun only runs what is missing."""
    import mteb

    cache = mteb.ResultCache(output_folder) if output_folder else None
    result = mteb.evaluate(encoder, list(tasks), cache=cache, encode_kwargs={"batch_size": batch_size})
    return {task_result.task_name: float(task_result.get_score()) for task_result in result.task_results}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pyserini_llara.mteb", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help=f"llara:MODEL, a hub id or a directory (default {DEFAULT_MODEL})")
    parser.add_argument("--lora", help="LoRA adapter directory to merge into the model")
    parser.add_argument("--tasks", nargs="+", help=f"MTEB task names (default: the 15 retrieval tasks of {BENCHMARK})")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--dtype", default="auto", choices=PRECISIONS,
                        help="model weights dtype; auto = the device's fast half precision, else float32")
    parser.add_argument("--batch-size", type=int, default=32, help="texts per forward pass (default 32)")
    parser.add_argument("--max-length", type=int, default=DEFAULT_MAX_TEXT_TOKENS,
                        help=f"text tokens per query or passage, prompt extra (default {DEFAULT_MAX_TEXT_TOKENS})")
    parser.add_argument("--output-folder", help="MTEB results cache; a rerun skips the tasks already there")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    encoder = LlaraMtebEncoder(args.model, device=args.device, dtype=args.dtype, lora=args.lora,
                               batch_size=args.batch_size, max_length=args.max_length)
    tasks = retrieval_tasks(args.tasks)
    scores = evaluate(encoder, tasks, args.output_folder, args.batch_size)
    main_scores = {task.metadata.name: task.metadata.main_score for task in tasks}
    for task, score in scores.items():
        print(f"{task}: {main_scores[task]}\t{score:.6f}")
    mean = "nDCG@10" if set(main_scores.values()) == {"ndcg_at_10"} else "mean main score"
    print(f"{mean}\t{np.mean(list(scores.values())):.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
