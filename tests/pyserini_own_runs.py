"""Runs Pyserini's own dense doors with a non-LLaRA model, in one process, as ``python -m`` runs them.

``python tests/pyserini_own_runs.py MODEL WORK OUT``: MODEL is a BERT directory (``tiny.build_tiny_bert``),
WORK holds ``corpus/docs.jsonl`` and ``topics.tsv``; every output lands in OUT, and what the process saw of
the plugin in ``WORK/OUT.doors.json``. test_do_no_harm runs this with the plugin's doors open and closed and
compares OUT byte for byte.
"""

import json
import runpy
import sys
from pathlib import Path


def run_module(name: str, *argv) -> None:
    sys.argv = [name, *map(str, argv)]
    try:
        runpy.run_module(name, run_name="__main__", alter_sys=True)
    except SystemExit as done:
        if done.code:
            raise


def doors() -> dict:
    """What the plugin did to Pyserini in this process: its keys first in the class maps, its wrappers."""
    import pyserini.encode as encode
    from pyserini.search.faiss import FaissSearcher

    return {"first keys": [next(iter(encode.query_encoder_class_map)), next(iter(encode.document_encoder_class_map))],
            "wrapped": [hasattr(FaissSearcher.__init__, "__wrapped__"), hasattr(encode.QueryEncoder.__init__,
                                                                                "__wrapped__")]}


def main(model: Path, work: Path, out: Path) -> None:
    topics = work / "topics.tsv"
    dense, queries = out / "dense", out / "queries"
    run_module("pyserini.encode", "input", "--corpus", work / "corpus", "--fields", "text",
               "output", "--embeddings", dense, "--to-faiss",
               "encoder", "--encoder", model, "--encoder-class", "auto", "--fields", "text", "--dimension", 32,
               "--device", "cpu", "--batch-size", 2)
    queries.mkdir(parents=True)  # Pyserini 1.6 writes into an existing directory only
    run_module("pyserini.encode.query", "--topics", topics, "--encoder", model, "--output", queries / "embedding.pkl",
               "--device", "cpu")
    search = ["--index", dense, "--topics", topics, "--hits", 5]
    run_module("pyserini.search.faiss", *search, "--encoder", model, "--encoder-class", "auto", "--device", "cpu",
               "--output", out / "run.encoder")
    run_module("pyserini.search.faiss", *search, "--encoder", model, "--device", "cpu", "--output", out / "run.auto")
    run_module("pyserini.search.faiss", *search, "--encoded-queries", queries, "--output", out / "run.encoded")
    run_module("pyserini.search.faiss", *search, "--encoded-queries", queries, "--prf-depth", 2,
               "--prf-method", "avg", "--output", out / "run.prf")
    run_module("pyserini.index.lucene", "--collection", "JsonCollection", "--input", work / "lucene-corpus",
               "--index", work / f"lucene-{out.name}", "--threads", 1)
    run_module("pyserini.search.hybrid", "dense", "--index", dense, "--encoder", model, "--encoder-class", "auto",
               "--device", "cpu", "sparse", "--index", work / f"lucene-{out.name}", "fusion", "--alpha", 0.5,
               "run", "--topics", topics, "--hits", 5, "--output", out / "run.hybrid")

    from pyserini.encode import AutoQueryEncoder
    from pyserini.search.faiss import FaissSearcher

    searcher = FaissSearcher(str(dense), AutoQueryEncoder(str(model), device="cpu"))
    hits = [(qid, hit.docid, f"{hit.score:.6f}") for qid, text in
            (line.split("\t") for line in topics.read_text().splitlines()) for hit in searcher.search(text, k=5)]
    (out / "run.python").write_text("".join(" ".join(hit) + "\n" for hit in hits))
    (work / f"{out.name}.doors.json").write_text(json.dumps(doors()))


if __name__ == "__main__":
    main(*map(Path, sys.argv[1:]))
