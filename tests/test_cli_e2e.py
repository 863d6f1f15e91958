"""Pyserini's own encoder CLI and ours build the same index, and Pyserini's search CLI reads both."""

import json

import faiss
import ir_measures
import numpy as np
import pytest
from ir_measures import RR, P, nDCG

from test_doors import pyserini_cli
from tiny import CORPUS

pytestmark = pytest.mark.pyserini  # through Pyserini: runs on every CI leg

TOPICS = {"q1": "What is a llama?", "q2": "How does insurance work after an accident?",
          "q3": "Who writes Wikipedia?", "q4": "dense retrieval inner product vectors"}


def run_all(*commands):
    """Run the CLIs as ``python -m`` would, in this process (each would spend most of its time importing Pyserini),
    and check every one succeeded."""
    for args in commands:
        assert pyserini_cli(*args) == 0, f"{args[0]} failed"


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    root = tmp_path_factory.mktemp("collection")
    docs = [" ".join(CORPUS[(i + j) % len(CORPUS)] for j in range(1 + i % 3)) + f" Document {i}." for i in range(30)]
    (root / "corpus.jsonl").write_text("".join(json.dumps({"id": f"d{i}", "contents": text}) + "\n"
                                               for i, text in enumerate(docs)))
    (root / "topics.tsv").write_text("".join(f"{qid}\t{text}\n" for qid, text in TOPICS.items()))
    qrels = [("q1", "d0"), ("q1", "d7"), ("q2", "d2"), ("q3", "d3"), ("q3", "d10"), ("q4", "d1")]
    (root / "qrels.txt").write_text("".join(f"{qid} 0 {docid} 1\n" for qid, docid in qrels))
    return root


@pytest.mark.slow
def test_pyserini_encode_and_our_builder_give_the_same_runs(collection, tiny_llara):
    """Also: queries encoded once by pyserini.encode.query give the on-the-fly run byte for byte."""
    encoder = f"llara:{tiny_llara}"
    corpus = collection / "corpus.jsonl"
    run_all(["pyserini.encode", "input", "--corpus", corpus, "--fields", "text",
             "output", "--embeddings", collection / "by-pyserini", "--to-faiss",
             "encoder", "--encoder", encoder, "--dimension", "64", "--device", "cpu"],
            ["pyserini_llara.index", "--corpus", corpus, "--output", collection / "by-llara", "--encoder", encoder,
             "--dtype", "float32"],  # pyserini.encode without --fp16 encodes in float32
            ["pyserini.encode.query", "--topics", collection / "topics.tsv", "--encoder", encoder,
             "--output", collection / "encoded-queries"])

    ours, theirs = collection / "by-llara", collection / "by-pyserini"
    assert (ours / "docid").read_text() == (theirs / "docid").read_text() == "".join(f"d{i}\n" for i in range(30))
    vectors = [faiss.read_index(str(d / "index")) for d in (ours, theirs)]
    np.testing.assert_allclose(*(v.reconstruct_n(0, v.ntotal) for v in vectors), atol=1e-5)

    run_all(*(["pyserini.search.faiss", "--index", collection / f"by-{name}", "--topics", collection / "topics.tsv",
               "--encoder", encoder, "--output", collection / f"run.{name}.trec", "--hits", "10"]
              for name in ("llara", "pyserini")),
            ["pyserini.search.faiss", "--index", collection / "by-llara", "--topics", collection / "topics.tsv",
             "--encoded-queries", collection / "encoded-queries", "--output", collection / "run.encoded.trec",
             "--hits", "10"])
    qrels = str(collection / "qrels.txt")
    scores = {name: ir_measures.calc_aggregate([nDCG @ 10, RR @ 10, P @ 5], ir_measures.read_trec_qrels(qrels),
                                               ir_measures.read_trec_run(str(collection / f"run.{name}.trec")))
              for name in ("llara", "pyserini")}
    ours_run = (collection / "run.llara.trec").read_text()
    assert ours_run == (collection / "run.pyserini.trec").read_text() == (collection / "run.encoded.trec").read_text()
    assert {line.split()[0] for line in ours_run.splitlines()} == set(TOPICS)
    assert len(ours_run.splitlines()) == 10 * len(TOPICS)
    assert len(scores["llara"]) == 3 and all(0 <= value <= 1 for value in scores["llara"].values())
    assert scores["llara"] == scores["pyserini"]
