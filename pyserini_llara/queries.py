"""Encode topics once into Pyserini's encoded-queries format; search and fuse many times.

``python -m pyserini.search.faiss --encoded-queries DIR`` (and ``pyserini.search.hybrid dense
--encoded-queries DIR``) read ``DIR/embedding.pkl``, a pandas frame of ``id``, ``text`` and
``embedding``, and look each query up by its text, so a hybrid alpha sweep, a PRF experiment or
a re-run never loads the model again. ``DIR/meta.json`` (``records.EncodedQueriesMeta``) records the
model (name and ``model_fingerprint``), the prompt, the settings and the SHA-256 of ``embedding.pkl``;
a search checks that hash before Pyserini unpickles the file, and refuses an index built by another
model (``plugin.checks``). Both files are written in a staging directory beside ``DIR``, the record
last, and the directory is swapped in whole: a crash leaves the old encoded queries or the new ones.

Each query is encoded alone by default, exactly as ``pyserini.search.faiss`` encodes one on the
fly, so that both give byte-identical runs; a larger batch is faster and agrees within 1e-5.
``python -m pyserini.encode.query --encoder llara:MODEL ...`` runs this same command.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .atomic import STAGED, atomic_file
from .cli import add_debug_flag, report, setup_logging
from .encoder_config import EncoderConfig, add_encoder_arguments
from .proof import disproved, prove
from .records import META_FILE, EncodedQueriesMeta, IndexMeta, RecordError
from .template import PREFIX, PROMPT_SUFFIXES

logger = logging.getLogger(__name__)

EMBEDDING_FILE = "embedding.pkl"
TOPICS_FORMATS = ("default", "kilt")  # Pyserini's topic formats whose queries are plain text
PROMPT = PREFIX + "{query}" + PROMPT_SUFFIXES["query"]


class QueriesError(ValueError):
    """Queries that cannot be encoded as asked; the message says what to change."""


@dataclass(frozen=True)
class QueryEncodingConfig(EncoderConfig):
    """How to encode; float32 and one query at a time by default, as ``pyserini.search.faiss`` without
    ``--fp16`` encodes, so that a search with these encoded queries gives the same run."""

    dtype: str = "float32"
    batch_size: int = 1


def read_topics(topics: str, topics_format: str = "default") -> list[tuple[object, str]]:
    """(id, text) pairs as ``pyserini.search.faiss`` iterates them: its texts are the lookup keys."""
    from pyserini.query_iterator import TopicsFormat, get_query_iterator

    if topics_format not in TOPICS_FORMATS:
        raise QueriesError(f"topics format {topics_format!r} has no text queries to encode; "
                           f"choose one of {', '.join(TOPICS_FORMATS)}")
    pairs = list(get_query_iterator(topics, TopicsFormat(topics_format)))
    if not pairs:
        raise QueriesError(f"topics {topics} hold no queries")
    textless = [qid for qid, text in pairs if not isinstance(text, str)]
    if textless:
        raise QueriesError(f"topics {topics}: query {textless[0]!r} has no text (Pyserini reads a .jsonl topics file "
                           'as one {"qid": ..., "title": TEXT} per line)')
    return pairs


def output_directory(output: str | os.PathLike) -> Path:
    """``DIR`` or ``DIR/embedding.pkl`` (how Pyserini's own ``--output`` is often given) -> DIR."""
    path = Path(output)
    if path.name == EMBEDDING_FILE:
        return path.parent
    if path.suffix == ".pkl":
        raise QueriesError(f"--output {output}: give the encoded-queries directory; {EMBEDDING_FILE} is "
                           "written in it, the name that --encoded-queries DIR reads")
    return path


def _sibling(directory: Path, role: str) -> Path:
    directory = directory.absolute()
    return directory.with_name(f".{directory.name}.{role}")


def _remove_ours(directory: Path) -> None:
    """Remove the files an encoded-queries directory is made of; anything else, and so the directory, stays."""
    for name in (EMBEDDING_FILE, META_FILE):
        for path in (directory / name, directory / (name + STAGED)):
            if path.is_file():
                path.unlink()
    if directory.is_dir() and not any(directory.iterdir()):
        directory.rmdir()


def prepare_output(directory: Path, overwrite: bool) -> Path:
    """Before any encoding: refuse an output that is not ours to replace, and make the staging directory
    (which fails now, not after every query is encoded, on a read-only or full disk); returns it."""
    if directory.exists() and not directory.is_dir():
        raise QueriesError(f"--output {directory} exists and is not a directory; choose a directory for the "
                           "encoded queries")
    if IndexMeta.find(directory) is not None or IndexMeta.find(directory / "chunks") is not None:
        raise QueriesError(f"--output {directory} is an index directory; give the encoded queries a directory "
                           "of their own")
    entries = sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []
    existing = EncodedQueriesMeta.find(directory)
    foreign = [e for e in entries if existing is None or e not in (EMBEDDING_FILE, META_FILE)]
    if foreign:
        raise QueriesError(f"--output {directory} holds files that pyserini_llara.queries did not write "
                           f"({', '.join(foreign[:5])}); choose another --output")
    if existing is not None and not overwrite:
        raise QueriesError(f"{directory} already holds encoded queries; pass --overwrite to replace them, "
                           "or choose another --output")
    staging = _sibling(directory, "staging")
    for leftover in (staging, _sibling(directory, "replaced")):
        _remove_ours(leftover)
    try:
        staging.mkdir(parents=True)
    except OSError as error:
        raise QueriesError(f"cannot write encoded queries beside {directory} ({error.strerror}: {staging}); "
                           "choose a writable --output") from None
    return staging


def _swap_in(staging: Path, directory: Path) -> None:
    """``staging`` becomes ``directory`` whole; what it replaces (an empty directory or our own files) goes."""
    replaced = _sibling(directory, "replaced")
    if directory.exists():
        os.replace(directory, replaced)
    os.replace(staging, directory)
    _remove_ours(replaced)


def encode_queries(topics: str, output: str | os.PathLike, config: QueryEncodingConfig = QueryEncodingConfig(), *,
                   topics_format: str = "default", overwrite: bool = False, max_queries: int | None = None) -> Path:
    """Encode the queries of ``topics`` (a Pyserini topic name or a TSV/JSONL/... file) with LLaRA
    into the encoded-queries directory ``output``; returns it.

    An ``output`` that already holds encoded queries is refused unless ``overwrite``; one that
    holds anything else (an index, a user's files) is always refused. ``max_queries`` keeps the
    first N, as Pyserini 2.x's ``--max-queries``.
    """
    import pandas as pd
    from tqdm import tqdm

    from .fingerprint import model_fingerprint

    directory = output_directory(output)
    staging = prepare_output(directory, overwrite)
    pairs = read_topics(topics, topics_format)[:max_queries]
    name = config.model
    encoder = config.load()
    texts = [text for _, text in pairs]
    with tqdm(total=len(texts), desc="encoding queries", unit="query", dynamic_ncols=True) as bar:
        vectors = encoder.encode_queries(texts, progress=bar.update)

    frame = pd.DataFrame({"id": [qid for qid, _ in pairs], "text": texts, "embedding": list(vectors)})
    with atomic_file(staging / EMBEDDING_FILE, "wb") as out:
        frame.to_pickle(out)
    EncodedQueriesMeta(model=name, lora=config.lora, add_tokens=config.add_tokens,
                       model_fingerprint=model_fingerprint(name, config.lora), dimension=encoder.dimension,
                       dtype=str(encoder.model.dtype).removeprefix("torch."), max_length=config.max_length,
                       prompt=PROMPT, topics=str(topics), topics_format=topics_format, count=len(pairs),
                       files=prove(staging, [EMBEDDING_FILE], whole=True)).save(staging)
    _swap_in(staging, directory)
    logger.info("wrote %d encoded queries to %s", len(pairs), directory)
    return directory


def proved_record(directory: str | os.PathLike) -> EncodedQueriesMeta | None:
    """The record of the encoded queries in ``directory``, once ``embedding.pkl`` matches its hash: the check
    before anything unpickles it. None where there is no ``meta.json`` (Pyserini's own encoded queries)."""
    directory = Path(directory)
    if not (directory / META_FILE).exists():
        return None
    try:
        meta = EncodedQueriesMeta.load(directory)
    except RecordError as error:
        raise QueriesError(f"{error}; encode the queries again (python -m pyserini_llara.queries)") from None
    if meta.files is None:
        raise QueriesError(f"{directory / META_FILE} holds no hash of {EMBEDDING_FILE} (an older version wrote it); "
                           "encode the queries again (python -m pyserini_llara.queries)")
    damage = disproved(directory, meta.files, whole=True)
    if damage:
        raise QueriesError(f"encoded queries {directory}: {'; '.join(damage)}, so it is not what "
                           "pyserini_llara.queries wrote; encode the queries again")
    return meta


def _build_parser(prog: str, pyserini_flags: bool) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Encode topics with a LLaRA model into Pyserini's encoded-queries format (DIR/embedding.pkl, "
                    "and DIR/meta.json naming the model), for "
                    "`python -m pyserini.search.faiss --encoded-queries DIR` and `pyserini.search.hybrid`.",
        epilog="Each query is encoded alone by default, as pyserini.search.faiss encodes it on the fly, so that "
               "both give byte-identical runs; --batch-size 64 is faster (within 1e-5 of that).")
    parser.add_argument("--topics", required=True,
                        help="a Pyserini topic name (e.g. msmarco-passage-dev-subset) or a topics file "
                             "(.tsv/.txt: qid<TAB>text; .jsonl: {\"qid\": ..., \"title\": text}; .json; .trec)")
    parser.add_argument("--topics-format", default="default", choices=TOPICS_FORMATS,
                        help="Pyserini's topics format (default: default)")
    parser.add_argument("--output", required=True, help="encoded-queries directory to write")
    add_encoder_arguments(parser, QueryEncodingConfig(), unit=("query", "queries"),
                          dtype_help="model precision (default float32, as pyserini.search.faiss without --fp16; "
                                     "auto = the device's fast half precision, as with --fp16)")
    parser.add_argument("--overwrite", action="store_true", help="replace encoded queries already in --output")
    add_debug_flag(parser)
    if pyserini_flags:  # pyserini.encode.query's options (1.6, 2.x) for other encoders: accepted, they change nothing
        for flag in ("--pooling", "--prefx", "--prefix", "--weight-range", "--quant-range"):
            parser.add_argument(flag, help=argparse.SUPPRESS)
        parser.add_argument("--l2-norm", action="store_true", help=argparse.SUPPRESS)
        parser.add_argument("--bpr", action="store_true", help=argparse.SUPPRESS)
        parser.add_argument("--max-queries", type=int, help="encode the first N queries (Pyserini 2.x)")
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "python -m pyserini_llara.queries",
         pyserini_flags: bool = False) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    setup_logging()
    args = vars(_build_parser(prog, pyserini_flags).parse_args(argv))
    ignored = [flag for flag in ("pooling", "prefx", "prefix", "weight_range", "quant_range", "l2_norm")
               if args.pop(flag, None)]
    if ignored:
        logger.warning("ignoring %s: LLaRA pools its own placeholder tokens and normalises its vectors",
                       ", ".join("--" + flag.replace("_", "-") for flag in ignored))
    topics, output, topics_format = args.pop("topics"), args.pop("output"), args.pop("topics_format")
    overwrite, debug, max_queries = args.pop("overwrite"), args.pop("debug"), args.pop("max_queries", None)
    if args.pop("bpr", False):
        return report(QueriesError("--bpr asks for BPR's binary codes, which a LLaRA model does not make: drop --bpr"),
                      debug)
    if max_queries is not None and max_queries < 1:
        return report(QueriesError(f"--max-queries {max_queries}: give the number of queries to encode, 1 or more"),
                      debug)
    try:
        encode_queries(topics, output, QueryEncodingConfig(**args), topics_format=topics_format, overwrite=overwrite,
                       max_queries=max_queries)
    except (ValueError, OSError) as error:
        return report(error, debug)
    return 0


if __name__ == "__main__":
    sys.exit(main())
