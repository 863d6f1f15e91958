"""EBAE/EBAR adaptation of a decoder-only LM into a LLaRA retriever (unsupervised, on plain text).

Adds <s1>..<s16> to a base model that lacks them, chunks the training text (or reads a
release-format JSONL as is), and trains one joint forward pass per example on
LM x lm_weight + EBAE x ebae_weight + EBAR x ebar_weight (release: 1, 0.05, 0.05). The result in
OUTPUT_DIR is what `--encoder llara:OUTPUT_DIR` loads. Rerunning the same command resumes an
interrupted run from its last checkpoint. Run it under `accelerate launch` for several GPUs or
nodes (configs in examples/accelerate/).

Examples:
  python -m adaptation.pretrain --model_name_or_path HuggingFaceTB/SmolLM2-135M \\
      --train_data enwiki-pages-articles.xml.bz2 --output_dir runs/smollm2-llara --max_steps 1000
  accelerate launch --config_file examples/accelerate/deepspeed_zero1.yaml -m adaptation.pretrain \\
      --model_name_or_path meta-llama/Llama-2-7b-hf --train_data pretrain.jsonl --output_dir runs/llara \\
      --gradient_checkpointing   # rows of 128 tokens, 1 example per GPU: the release
  python -m adaptation.pretrain args.json          # all arguments from a JSON file
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from pyserini_llara import completion
from pyserini_llara.cli import HelpFormatter, add_debug_flag, one_line_errors, setup_logging
from pyserini_llara.modeling import ModelLoadError

from .data.collators import PaperWindows, PretrainCollator, ReleaseWindows
from .data.examples import JsonlExamples, is_ready_made
from .data.sources import expand_sources
from .objective import LossWeights, PretrainObjective, sliding_window
from .prepare import ChunkArguments, PrepareArguments, prepare
from .training import NonFiniteLossError, TrainingArguments, process_state, train

logger = logging.getLogger(__name__)


@dataclass
class ModelArguments:
    _argument_group_name = "model"

    model_name_or_path: str = field(metadata={
        "help": "Base causal LM: hub id, local directory or .gguf file. It needs its LM head; the LLaRA "
                "tokens are added (and the embeddings resized) if missing."})
    dtype: str = field(default="auto", metadata={
        "help": "Dtype of the trained weights: auto = float32 (master weights: AdamW's small updates vanish in "
                "bf16; --mixed_precision gives the speed), or float32, bfloat16, float16."})
    attn_implementation: str = field(default="auto", metadata={
        "help": "auto (sdpa where the model has it, else eager: Gemma-2), sdpa or eager. Flash attention cannot "
                "take the EBAR mask (a 4-D float mask)."})
    new_token_init: Literal["random", "mean"] = field(default="random", metadata={
        "help": "Rows of <s1>..<s16> added to a base model that lacks them: random (transformers' default init, "
                "drawn from --seed: the release's resize_token_embeddings) or mean (every row the mean embedding, "
                "as zero-shot encoding uses)."})

    def __post_init__(self):
        if self.attn_implementation not in ("auto", "sdpa", "eager"):
            raise ValueError(f"attn_implementation must be auto, sdpa or eager, got {self.attn_implementation!r}")


@dataclass
class DataArguments(ChunkArguments):
    _argument_group_name = "data"

    train_data: list[str] = field(default_factory=list, metadata={
        "help": "Training text: a release-format JSONL (input/output_summarize/output_predict), or raw sources "
                "as for adaptation.prepare (text, JSONL, Wikipedia .xml.bz2, directories, irds:ID), chunked "
                "into OUTPUT_DIR/data/train.jsonl first."})
    windows: Literal["release", "paper"] = field(default="release", metadata={
        "help": "How much of an example the model reads and predicts. release: the release's pretrain/data.py, "
                "--cutoff_len caps the whole row (template included) and each target is tokenized with BOS and cut "
                "at --cutoff_len; paper: --max_text_tokens of text (template on top), targets cut at as many tokens."})
    cutoff_len: int | None = field(default=None, metadata={
        "help": "release windows: tokens per row, template included (LLaMA-2's template takes 39 of them); also "
                "the cut of each target. Unset (None): 128, as the release's README runs."})
    max_text_tokens: int | None = field(default=None, metadata={
        "help": "paper windows: text tokens per example (the template comes on top), also the cut of each "
                "target. Unset (None): 256."})
    remove_stopwords: bool = field(default=True, metadata={
        "help": "Drop English stop words (and all punctuation) from the bag-of-words targets, as the release's "
                "README runs it (--remove_stop_words True)."})

    def __post_init__(self):
        super().__post_init__()
        if not self.train_data:
            raise ValueError("missing --train_data")
        other = {"release": ("max_text_tokens", "cutoff_len"), "paper": ("cutoff_len", "max_text_tokens")}
        if self.windows not in other:
            raise ValueError(f"--windows must be release or paper, got {self.windows!r}")
        wrong, right = other[self.windows]
        if getattr(self, wrong) is not None:
            raise ValueError(f"--{wrong} applies to the other windows; --windows {self.windows} takes --{right}")

    def window_config(self) -> ReleaseWindows | PaperWindows:
        if self.windows == "release":
            return ReleaseWindows(self.cutoff_len) if self.cutoff_len is not None else ReleaseWindows()
        return PaperWindows(self.max_text_tokens) if self.max_text_tokens is not None else PaperWindows()


@dataclass
class ObjectiveArguments:
    _argument_group_name = "objective (loss weights)"

    lm_weight: float = field(default=1.0, metadata={"help": "Weight of the next-token LM loss on the text."})
    ebae_weight: float = field(default=0.05, metadata={
        "help": "Weight of EBAE (bag of words of the text itself, from <s1>..<s8>)."})
    ebar_weight: float = field(default=0.05, metadata={
        "help": "Weight of EBAR (bag of words of the next chunk, from <s9>..<s16>)."})

    def weights(self) -> LossWeights:
        return LossWeights(lm=self.lm_weight, ebae=self.ebae_weight, ebar=self.ebar_weight)


def check_lm_head(name_or_path: str) -> None:
    """Fail early on a saved transformer body: EBAE/EBAR predicts words through the LM head."""
    config = Path(name_or_path) / "config.json"
    if not config.is_file():
        return
    architectures = json.loads(config.read_text()).get("architectures") or []
    if architectures and not any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures):
        raise ModelLoadError(f"{name_or_path} holds {', '.join(architectures)}, a model without an LM head; EBAE/EBAR "
                        "pretraining needs the causal LM (e.g. the base model it came from, *ForCausalLM)")


def training_examples(data_args: DataArguments, tokenizer, output_dir: str, tokenizer_name: str) -> JsonlExamples:
    """The dataset: the given release-format JSONL, or OUTPUT_DIR/data/train.jsonl prepared once and reused
    while its completion record proves it: the same arguments and the same content of every source file."""
    sources = expand_sources(data_args.train_data)
    if len(sources) == 1 and is_ready_made(sources[0]):
        return JsonlExamples(sources[0], limit=data_args.max_examples)
    target = Path(output_dir) / "data" / "train.jsonl"
    chunking = {k: v for k, v in asdict(data_args).items() if k in ChunkArguments.__dataclass_fields__}
    settings = PrepareArguments(**chunking, input=list(data_args.train_data), output=str(target),
                                tokenizer=tokenizer_name)
    state = process_state()
    with state.main_process_first():
        if state.is_main_process:
            inputs = {"arguments": asdict(settings),
                      "sources": {source: completion.content_fingerprint(source) for source in sources}}
            record = completion.record_path(target)
            if completion.reuse(record, inputs, logger.info) is None:
                prepare(settings, tokenizer)
                completion.complete([target, str(target) + ".stats.json"], inputs, record)
    return JsonlExamples(target)


def pretrain(model_args: ModelArguments, data_args: DataArguments, objective_args: ObjectiveArguments,
             training_args: TrainingArguments) -> Path:
    """Load, adapt and export; returns the output directory (importable form of the CLI)."""
    from pyserini_llara.modeling import load_model
    from pyserini_llara.precision import resolve_training_dtype

    check_lm_head(model_args.model_name_or_path)
    dtype = resolve_training_dtype(model_args.dtype, process_state().device)
    model, tokenizer = load_model(model_args.model_name_or_path, dtype=dtype, add_tokens=True,
                                  causal_lm=True, attn_implementation=None if model_args.attn_implementation == "auto"
                                  else model_args.attn_implementation,
                                  new_token_init=model_args.new_token_init, seed=training_args.seed)
    if model.get_output_embeddings() is None:
        raise ModelLoadError(f"{model_args.model_name_or_path} loaded without an LM head; EBAE/EBAR needs a causal LM")
    dataset = training_examples(data_args, tokenizer, training_args.output_dir, model_args.model_name_or_path)
    collator = PretrainCollator(tokenizer, data_args.window_config(), data_args.remove_stopwords)
    prepared = dataset.path.parent == Path(training_args.output_dir) / "data"
    chunking = f", chunks of {data_args.chunk_tokens} tokens" if prepared else ""
    objective = PretrainObjective(collator.n_summarize, collator.n_predict, objective_args.weights(),
                                  sliding_window(model.config))
    card = {
        "title": f"LLaRA EBAE/EBAR-adapted {Path(model_args.model_name_or_path).name}",
        "summary": "Unsupervised LLaRA adaptation (arXiv 2312.15503): the embeddings of <s1>..<s8> (passages) and "
                   "<s9>..<s16> (queries) learn to predict the words of the text and of its continuation.",
        "base model": model_args.model_name_or_path,
        "data": f"{', '.join(data_args.train_data)} ({len(dataset)} examples{chunking}, "
                f"{data_args.window_config().describe()})",
        "objective": f"LM x {objective_args.lm_weight} + EBAE x {objective_args.ebae_weight} + EBAR x "
                     f"{objective_args.ebar_weight}, stop words {'removed' if data_args.remove_stopwords else 'kept'}",
    }
    return train(model, tokenizer, dataset, collator, objective, training_args, card=card,
                 stage_arguments={**asdict(model_args), **asdict(data_args), **asdict(objective_args)})


def parser():
    from transformers import HfArgumentParser

    return HfArgumentParser((ModelArguments, DataArguments, ObjectiveArguments, TrainingArguments),
                            prog="python -m adaptation.pretrain", description=__doc__, formatter_class=HelpFormatter)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args_parser = parser()
    add_debug_flag(args_parser)
    debug = False
    try:
        if len(argv) == 1 and argv[0].endswith(".json"):
            arguments = args_parser.parse_json_file(argv[0])
        else:
            *arguments, extra = args_parser.parse_args_into_dataclasses(args=argv)
            debug = extra.debug
    except ValueError as error:
        args_parser.error(str(error))
    setup_logging()
    with one_line_errors(debug, (ValueError, OSError, NonFiniteLossError)):
        output = pretrain(*arguments)
    print(output)


if __name__ == "__main__":
    main()
