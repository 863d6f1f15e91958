"""``python -m pyserini_llara.index`` (``pyserini-llara-index``): build an index, ``merge`` shards, or attach
the ``raw`` documents' Lucene index."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from ..cli import add_debug_flag, report, setup_logging
from ..encoder_config import add_encoder_arguments
from .build import build_index
from .config import IndexBuildError, IndexConfig
from .distributed import build_index_distributed, launched_ranks
from .merge import merge_shards
from .raw import attach_raw_index

RAW_INDEX_HELP = ("Lucene index storing the corpus's raw documents, for the text of hits "
                  "(FaissSearcher.doc(docid).raw()): built with pyserini.index.lucene --storeRaw where it does "
                  "not exist, checked, recorded in meta.json")
INDEX_TYPE_HELP = ("faiss factory string, always with inner product: Flat (exact, default), HNSW32 (graph), "
                   "IVF4096,Flat / IVF4096,PQ64 / PQ64 (trained on the encoded vectors), SQfp16, SQ8; "
                   "benchmarks/README.md compares their size, build time, queries/s and recall@100 for 4096-d vectors")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pyserini_llara.index",
        description="Encode a corpus with a LLaRA model into a faiss index directory that "
                    "`python -m pyserini.search.faiss --index DIR --encoder llara:MODEL` searches.",
        epilog="Several processes on one machine: `torchrun --nproc-per-node N -m pyserini_llara.index ...` "
               "(CPU or GPU; on GPUs also `accelerate launch --multi_gpu --num_processes N -m "
               "pyserini_llara.index ...`) encodes one shard per process and merges them into --output; "
               "--device cuda puts each process on its own GPU. "
               "Several machines: run with --shard-id i --shard-num n on each (each writes a Flat index), "
               "then `python -m pyserini_llara.index merge --shards DIR... --output DIR [--index-type ...]`.")
    parser.add_argument("--corpus", required=True,
                        help="JSONL file or directory of *.jsonl / *.jsonl.gz (fields id/docid/_id and contents, "
                             "or title + text), or an ir-datasets id such as msmarco-passage")
    parser.add_argument("--output", required=True, help="index directory to write")
    add_encoder_arguments(parser, IndexConfig(), unit=("document", "documents"),
                          dtype_help="model weights dtype; auto (default) = bfloat16 where the device runs it "
                                     "natively (recent GPUs, CPUs with AVX-512 BF16 or AMX), float16 on older GPUs, "
                                     "float32 on other CPUs; meta.json records the one used")
    parser.add_argument("--index-type", default="Flat", help=INDEX_TYPE_HELP)
    parser.add_argument("--nprobe", type=int,
                        help="IVF lists searched per query, stored in the index "
                             "(Pyserini cannot set it; faiss default 1)")
    parser.add_argument("--chunk-size", type=int, default=4096,
                        help="documents encoded between saves; an interrupted build loses at most one chunk")
    parser.add_argument("--shard-id", type=int, default=0, help="which shard to encode, 0-based (default 0)")
    parser.add_argument("--shard-num", type=int, default=1, help="number of shards (default 1)")
    parser.add_argument("--raw-index", help=RAW_INDEX_HELP)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true",
                      help="continue an interrupted build in --output: saved chunks of unchanged documents are "
                           "reused; other settings, or a changed corpus where chunks were saved, are refused")
    mode.add_argument("--overwrite", action="store_true",
                      help="replace the index in --output; the old one stays until the new one is complete")
    add_debug_flag(parser)
    return parser


def _merge_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pyserini_llara.index merge",
        description="Merge complete shard indexes (same corpus, model and settings) into one index, in shard order.")
    parser.add_argument("--shards", nargs="+", required=True, help="shard index directories, in any order")
    parser.add_argument("--output", required=True, help="merged index directory to write")
    parser.add_argument("--index-type", help=INDEX_TYPE_HELP + " (default: the shards' type)")
    parser.add_argument("--nprobe", type=int, help="IVF lists searched per query, stored in the index")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="finish an interrupted merge into --output")
    mode.add_argument("--overwrite", action="store_true",
                      help="replace the index in --output; the old one stays until the new one is complete")
    add_debug_flag(parser)
    return parser


def _raw_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pyserini_llara.index raw",
        description="Give a complete index the Lucene index of its corpus's raw documents (the text of its hits).")
    parser.add_argument("--index", required=True, help="complete index directory")
    parser.add_argument("--raw-index", required=True, help=RAW_INDEX_HELP)
    add_debug_flag(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    setup_logging()
    command = argv[0] if argv[:1] in (["merge"], ["raw"]) else None
    parser = {"merge": _merge_parser, "raw": _raw_parser, None: _build_parser}[command]()
    args = vars(parser.parse_args(argv[1:] if command else argv))
    debug = args.pop("debug")
    try:
        if command == "merge":
            merge_shards(**args)
            return 0
        if command == "raw":
            attach_raw_index(args["index"], args["raw_index"])
            return 0
        corpus, output, raw_index = args.pop("corpus"), args.pop("output"), args.pop("raw_index")
        resume, overwrite = args.pop("resume"), args.pop("overwrite")
        build = build_index_distributed if launched_ranks()[1] > 1 else build_index
        build(corpus, output, IndexConfig(**args), resume=resume, overwrite=overwrite)
        if raw_index and launched_ranks()[0] == 0:
            attach_raw_index(output, raw_index)
    except (IndexBuildError, ValueError, OSError) as error:
        return report(error, debug)
    except KeyboardInterrupt:
        print("interrupted: finished chunks are saved; rerun the same command with --resume", file=sys.stderr)
        return 130
    return 0
