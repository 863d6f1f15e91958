import json
import random

import pytest

from adaptation.data.groups import read_examples
from adaptation.mine import (
    MineArguments,
    MiningError,
    judged_positives,
    main,
    mine,
    mine_negatives,
    read_qrels,
    sample_negatives,
)

pytestmark = pytest.mark.pyserini  # through Pyserini: runs on every CI leg

DOCS = {f"d{i}": f"passage {i} about {topic}" for i, topic in enumerate(
    ["llamas in the andes", "car insurance deductible", "life insurance payout", "dense retrieval vectors",
     "wikipedia volunteers", "llama wool", "home insurance flood", "inner product search",
     "encyclopedia articles", "alpaca and llama", "insurance claims", "faiss indexes"])}
QUERIES = {"q1": "llama passage", "q2": "insurance passage", "q3": "retrieval vectors passage"}
QRELS = [("q1", "d0", 1), ("q1", "d5", 2), ("q2", "d1", 1), ("q3", "d3", 1), ("q3", "d7", 0)]


@pytest.fixture
def judged(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"id": d, "contents": t}) + "\n" for d, t in DOCS.items()))
    queries = tmp_path / "queries.tsv"
    queries.write_text("".join(f"{q}\t{t}\n" for q, t in QUERIES.items()))
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("".join(f"{q} 0 {d} {g}\n" for q, d, g in QRELS))
    return tmp_path, corpus, queries, qrels


def test_sample_never_returns_a_positive_and_is_seeded():
    ranking = [f"d{i}" for i in range(30)]
    positives = {"d0", "d3", "d4", "d17"}
    for seed in range(50):
        got = sample_negatives(ranking, positives, 10, random.Random(seed), depth=20)
        assert not positives & set(got)
        assert len(got) == len(set(got)) == 10 and set(got) <= set(ranking[:20])
    assert sample_negatives(ranking, positives, 10, random.Random(1)) == sample_negatives(
        ranking, positives, 10, random.Random(1))
    # Fewer candidates than asked: all of them, still no positive; skip_top drops the head.
    assert sorted(sample_negatives(ranking, positives, 10, random.Random(0), depth=5)) == ["d1", "d2"]
    assert sample_negatives(ranking, positives, 10, random.Random(0), depth=4, skip_top=2) == ["d2"]


def test_mine_negatives_per_query_seed_independent_of_other_queries():
    rankings = {"a": [f"d{i}" for i in range(40)], "b": [f"d{i}" for i in range(40)]}
    both = mine_negatives(rankings, {"a": {"d1"}, "b": {"d2"}}, 5, seed=3)
    alone = mine_negatives(rankings, {"b": {"d2"}}, 5, seed=3)
    assert both["b"] == alone["b"]
    assert mine_negatives(rankings, {"a": {"d1"}, "b": {"d2"}}, 5, seed=4) != both


def test_unknown_docid_in_qrels_names_file_and_line(tmp_path):
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("q1 0 d0 1\nq1 0 nowhere 1\n")
    with pytest.raises(MiningError, match=r"qrels.txt, line 2: docid 'nowhere' is not in the corpus"):
        judged_positives({"q1": "x"}, read_qrels(qrels), {"d0"})
    with pytest.raises(MiningError, match=r"line 1: query 'q9' is not among the queries"):
        judged_positives({"q1": "x"}, [("q9", "d0", 1, "qrels.txt, line 1")], {"d0"})


def test_bad_qrels_line(tmp_path):
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("q1 0 d0 1\nq1 d0 1\n")
    with pytest.raises(MiningError, match=r"line 2: expected TREC qrels"):
        read_qrels(qrels)


def _check_output(path, depth_docids=None):
    records = [json.loads(line) for line in path.read_text().splitlines()]
    positives = {q: {d for qq, d, g in QRELS if qq == q and g >= 1} for q in QUERIES}
    assert {r["query_id"] for r in records} == {"q1", "q2", "q3"}
    for record in records:
        negatives = {n["docid"] for n in record["neg"]}
        assert negatives and not negatives & positives[record["query_id"]]
        assert {p["docid"] for p in record["pos"]} == positives[record["query_id"]]
        assert all(n["text"] == DOCS[n["docid"]] for n in record["neg"])
    assert len(read_examples(path)) == 3  # what fine-tuning reads
    return records


def test_mine_from_run_file(judged):
    tmp, corpus, queries, qrels = judged
    run = tmp / "run.trec"
    # Every query ranks every document, positives first: the sampler must skip them.
    run.write_text("".join(f"{q} Q0 d{i} {i + 1} {100 - i} r\n" for q in QUERIES for i in range(12)))
    args = dict(queries=str(queries), qrels=str(qrels), corpus=str(corpus), run=str(run), num_negatives=4, depth=8)
    first = _check_output(mine(MineArguments(output=str(tmp / "a.jsonl"), **args)))
    again = _check_output(mine(MineArguments(output=str(tmp / "b.jsonl"), **args)))
    assert first == again  # deterministic for one seed
    assert all(len(r["neg"]) == 4 and {n["docid"] for n in r["neg"]} <= {f"d{i}" for i in range(8)} for r in first)


def test_run_with_foreign_docid(judged):
    tmp, corpus, queries, qrels = judged
    run = tmp / "run.trec"
    run.write_text("q1 Q0 elsewhere 1 9.0 r\n")
    with pytest.raises(MiningError, match="'elsewhere', which is not in the corpus"):
        mine(MineArguments(output=str(tmp / "o.jsonl"), queries=str(queries), qrels=str(qrels),
                           corpus=str(corpus), run=str(run)))


def test_missing_inputs_are_explained():
    with pytest.raises(MiningError, match="--dataset"):
        MineArguments(output="x.jsonl")
    with pytest.raises(MiningError, match="--model_name_or_path"):
        MineArguments(output="x.jsonl", queries="q", qrels="r", corpus="c", retriever="dense")


def test_mine_dense_with_llara_model(judged, tiny_llara):
    tmp, corpus, queries, qrels = judged
    out = mine(MineArguments(output=str(tmp / "dense.jsonl"), queries=str(queries), qrels=str(qrels),
                             corpus=str(corpus), retriever="dense", model_name_or_path=str(tiny_llara),
                             num_negatives=3, depth=10))
    assert all(len(r["neg"]) == 3 for r in _check_output(out))


@pytest.mark.slow
def test_mine_bm25_cli(judged):
    tmp, corpus, queries, qrels = judged
    out = tmp / "bm25.jsonl"
    main(["--output", str(out), "--queries", str(queries), "--qrels", str(qrels),
                "--corpus", str(corpus), "--num_negatives", "2", "--depth", "4", "--threads", "1"])
    records = _check_output(out)
    # BM25's top 4 for the insurance query are the 4 insurance passages: its negatives are the other three.
    q2 = next(r for r in records if r["query_id"] == "q2")
    assert all("insurance" in n["text"] for n in q2["neg"])
    assert (tmp / "bm25.jsonl.index").is_dir()


def test_mine_dense_refuses_an_index_of_another_model(judged, tiny_llara, tiny_base):
    tmp, corpus, queries, qrels = judged
    common = dict(queries=str(queries), qrels=str(qrels), corpus=str(corpus), retriever="dense",
                  num_negatives=3, depth=10)
    mine(MineArguments(output=str(tmp / "first.jsonl"), index_dir=str(tmp / "index"),
                       model_name_or_path=str(tiny_llara), **common))
    argv = ["--output", str(tmp / "other.jsonl"), "--index", str(tmp / "index"), "--model_name_or_path",
            str(tiny_base), *[f"--{key}={value}" for key, value in common.items()]]
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    line = str(exit_.value.code)
    assert line.startswith("error:") and "\n" not in line
    assert f"was built by {tiny_llara}" in line and str(tiny_base) in line
    assert not (tmp / "other.jsonl").exists()
