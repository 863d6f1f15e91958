"""Raw text -> EBAE/EBAR examples in the release's JSONL format (``input``, ``output_summarize``, ``output_predict``).

Streams: documents are read, chunked and written one at a time, so corpora larger than memory
go through; ``--shuffle_buffer`` mixes examples from different documents in bounded memory.
The output is written to a temporary file and renamed when complete; a summary of what was
dropped, and why, goes to stderr and to OUTPUT.stats.json.

Examples:
  python -m adaptation.prepare --tokenizer MODEL --input enwiki-pages-articles.xml.bz2 --output wiki.jsonl
  python -m adaptation.prepare --tokenizer MODEL --input texts/ corpus.jsonl irds:vaswani --output train.jsonl \\
      --chunk_tokens 256 --shuffle_buffer 100000 --max_examples 1000000
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pyserini_llara.atomic import write_jsonl, write_text
from pyserini_llara.cli import HelpFormatter, add_debug_flag, one_line_errors, setup_logging

from .data.chunking import ChunkConfig, DataStats, iter_examples, shuffled
from .data.examples import DataError

logger = logging.getLogger(__name__)


@dataclass
class ChunkArguments:
    """How texts become examples (shared with ``adaptation.pretrain``)."""

    chunk_tokens: int = field(default=128, metadata={
        "help": "Token budget of a chunk (tokens of the model's tokenizer); texts are cut at word boundaries."})
    min_chunk_tokens: int = field(default=32, metadata={
        "help": "Chunks shorter than this are dropped (only a text's last chunk can be); a text needs two chunks "
                "(an input and its continuation) to give an example."})
    text_field: str | None = field(default=None, metadata={
        "help": "JSONL field holding the text (default: 'text', else 'contents', Pyserini's collection format)."})
    max_examples: int = field(default=0, metadata={"help": "Stop after this many examples (0: all)."})

    def __post_init__(self):
        if self.chunk_tokens < 1 or self.min_chunk_tokens < 1:
            raise ValueError("chunk_tokens and min_chunk_tokens must be >= 1")
        if self.min_chunk_tokens > self.chunk_tokens:
            raise ValueError(f"min_chunk_tokens ({self.min_chunk_tokens}) exceeds chunk_tokens ({self.chunk_tokens})")

    def chunk_config(self) -> ChunkConfig:
        return ChunkConfig(self.chunk_tokens, self.min_chunk_tokens, self.text_field)


@dataclass
class PrepareArguments(ChunkArguments):
    input: list[str] = field(default_factory=list, metadata={
        "help": "Sources: plain-text files (blank-line separated documents), JSONL files, Wikipedia XML dumps "
                "(.xml[.bz2]), directories of those, or irds:DATASET_ID. Release-format JSONL passes through."})
    output: str = field(default="", metadata={"help": "JSONL file to write."})
    tokenizer: str = field(default="", metadata={
        "help": "Model whose tokenizer measures chunks (hub id, directory or .gguf file); use the model you adapt."})
    shuffle_buffer: int = field(default=0, metadata={
        "help": "Shuffle examples through a buffer of this many (0: keep corpus order). Memory grows with it."})
    seed: int = field(default=42, metadata={"help": "Seed of the shuffle: same seed, same file."})

    def __post_init__(self):
        super().__post_init__()
        missing = [name for name in ("input", "output", "tokenizer") if not getattr(self, name)]
        if missing:
            raise ValueError(f"missing --{', --'.join(missing)}")


def prepare(args: PrepareArguments, tokenizer=None, progress: bool = True) -> DataStats:
    """Write ``args.output``; returns the statistics (also written to OUTPUT.stats.json). Fails on an empty result."""
    from tqdm.auto import tqdm

    if tokenizer is None:
        from pyserini_llara.modeling import load_tokenizer

        tokenizer = load_tokenizer(args.tokenizer)
    stats = DataStats()
    examples = shuffled(iter_examples(args.input, tokenizer, args.chunk_config(), stats), args.shuffle_buffer,
                        args.seed)
    bar = tqdm(examples, desc="examples", unit="ex", disable=not progress)
    written = write_jsonl(args.output, bar, args.max_examples)
    if written == 0:
        Path(args.output).unlink(missing_ok=True)
        raise DataError(f"no examples from {', '.join(args.input)}: {stats.report()}. A text needs at least "
                        f"{args.chunk_tokens + args.min_chunk_tokens} tokens for one example; lower --chunk_tokens "
                        "or --min_chunk_tokens, or add text.")
    summary = {**stats.as_dict(), "written": written, "arguments": asdict(args)}
    write_text(str(args.output) + ".stats.json", json.dumps(summary, indent=2) + "\n")
    logger.info("wrote %d examples to %s; %s", written, args.output, stats.report())
    return stats


def main(argv: list[str] | None = None) -> None:
    from transformers import HfArgumentParser

    parser = HfArgumentParser(PrepareArguments, prog="python -m adaptation.prepare", description=__doc__,
                              formatter_class=HelpFormatter)
    add_debug_flag(parser)
    try:
        args, extra = parser.parse_args_into_dataclasses(args=argv)
    except ValueError as error:
        parser.error(str(error))
    setup_logging()
    with one_line_errors(extra.debug):
        stats = prepare(args)
    print(stats.report(), file=sys.stderr)


if __name__ == "__main__":
    main()
