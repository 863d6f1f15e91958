"""Search-time nprobe / efSearch, and a search over the shards of a build without merging them,
through Pyserini's CLI and ``FaissSearcher`` (whichever Pyserini this interpreter has: 1.6 or 2.x)."""

import json

import faiss
import numpy as np
import pytest

from pyserini_llara.index import IndexConfig, build_index, merge_shards
from pyserini_llara.search_index import SearchIndexError
from test_doors import pyserini_cli
from tiny import CORPUS

pytestmark = pytest.mark.pyserini  # through Pyserini: runs on every CI leg

N_DOCS, NLIST = 40, 4
TOPICS = {"q1": "What is a llama?", "q2": "How does insurance work after an accident?",
          "q3": "Who writes Wikipedia?", "q4": "dense retrieval inner product vectors"}


@pytest.fixture(scope="module")
def built(tiny_llara, tmp_path_factory):
    """Three shards of one build, the merged Flat index, and an IVF index whose stored nprobe searches every list."""
    root = tmp_path_factory.mktemp("search")
    texts = [" ".join(CORPUS[(i + j) % len(CORPUS)] for j in range(1 + i % 3)) + f" Document {i}."
             for i in range(N_DOCS)]
    corpus = root / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"id": f"d{i}", "contents": t}) + "\n" for i, t in enumerate(texts)))
    (root / "topics.tsv").write_text("".join(f"{qid}\t{text}\n" for qid, text in TOPICS.items()))
    config = IndexConfig(encoder=f"llara:{tiny_llara}", dtype="float32", batch_size=8, chunk_size=8)
    shards = [build_index(corpus, root / f"shard{i}", IndexConfig(**{**config.__dict__, "shard_id": i, "shard_num": 3}))
              for i in range(3)]
    merged = merge_shards(shards, root / "flat")
    ivf = merge_shards(shards, root / "ivf", index_type=f"IVF{NLIST},Flat", nprobe=NLIST)
    return root, shards, merged, ivf


def run_all(commands, capsys):
    """Each CLI run as ``python -m`` would, in this process (Pyserini is imported once): its exit status and stderr."""
    capsys.readouterr()
    return [(pyserini_cli(*args), capsys.readouterr().err) for args in commands]


def ranking(run_text):
    return [line.split()[:3] for line in run_text.splitlines()]


@pytest.mark.slow
def test_cli_searches_shards_in_turn_and_sets_nprobe_at_search_time(built, tiny_llara, capsys):
    root, shards, merged, ivf = built
    shard_list = ",".join(str(s) for s in reversed(shards))  # any order: read in shard order
    encoder = ["--encoder", f"llara:{tiny_llara}"]
    commands = {"flat": [merged], "shards": [shard_list], "ivf": [ivf], "ivf1": [ivf, "--nprobe", "1"],
                "flat-nprobe": [merged, "--nprobe", "2"]}
    results = run_all([["pyserini.search.faiss", "--index", index, "--topics", root / "topics.tsv", *encoder,
                        "--output", root / f"run.{name}.trec", "--hits", "10", *flags]
                       for name, (index, *flags) in commands.items()], capsys)
    for name, (code, stderr) in zip(list(commands)[:4], results):
        assert code == 0, f"{name}: {stderr[-3000:]}"
    runs = {name: (root / f"run.{name}.trec").read_text() for name in list(commands)[:4]}
    assert len(runs["flat"].splitlines()) == 10 * len(TOPICS)
    assert runs["shards"] == runs["flat"]  # byte for byte
    assert ranking(runs["ivf"]) == ranking(runs["flat"])  # the stored nprobe = nlist: exhaustive
    assert ranking(runs["ivf1"]) != ranking(runs["flat"])  # --nprobe 1 overrides it: one list searched

    code, stderr = results[4]
    assert code == 1 and stderr.strip().splitlines()[-1].startswith("error: nprobe applies to IVF indexes only")
    assert not (root / "run.flat-nprobe.trec").exists()


def test_faiss_searcher_nprobe_is_faiss_nprobe(built, tiny_llara):
    from pyserini.search.faiss import FaissSearcher

    _, _, merged, ivf = built
    queries = list(TOPICS.values())
    searcher = FaissSearcher(str(ivf), f"llara:{tiny_llara}")
    exact = FaissSearcher(str(merged), searcher.query_encoder)
    vectors = np.stack([searcher.query_encoder.encode(q) for q in queries]).astype("float32")
    index = faiss.read_index(str(ivf / "index"))
    for nprobe in (1, 2, NLIST):
        searcher.set_ivf_nprobe(nprobe)
        index.nprobe = nprobe
        _, ids = index.search(vectors, 10)
        hits = searcher.batch_search(queries, list(TOPICS), k=10)
        docids = open(ivf / "docid").read().split()
        assert [[h.docid for h in hits[qid]] for qid in TOPICS] == [[docids[i] for i in row if i >= 0] for row in ids]
    full = exact.batch_search(queries, list(TOPICS), k=10)
    assert all([h.docid for h in hits[q]] == [h.docid for h in full[q]] for q in TOPICS)
    searcher.set_ivf_nprobe(1)
    assert any([h.docid for h in searcher.batch_search(queries, list(TOPICS), k=10)[q]]
               != [h.docid for h in full[q]] for q in TOPICS)
    with pytest.raises(SearchIndexError, match="nprobe applies to IVF indexes only, and this index is a IndexFlatIP"):
        exact.set_ivf_nprobe(2)
    with pytest.raises(SearchIndexError, match="efSearch applies to HNSW indexes only"):
        exact.set_hnsw_ef_search(64)


def test_faiss_searcher_over_shards_equals_the_merged_index(built, tiny_llara, tmp_path):
    from pyserini.search.faiss import FaissSearcher

    _, shards, merged, _ = built
    queries = list(TOPICS.values())
    whole = FaissSearcher(str(merged), f"llara:{tiny_llara}")
    parts = FaissSearcher(",".join(map(str, shards)), whole.query_encoder)
    assert parts.num_docs == whole.num_docs == N_DOCS
    for k in (1, 10, N_DOCS):
        got, want = (s.batch_search(queries, list(TOPICS), k=k) for s in (parts, whole))
        assert {q: [(h.docid, h.score) for h in got[q]] for q in TOPICS} == \
               {q: [(h.docid, h.score) for h in want[q]] for q in TOPICS}
    with pytest.raises(ValueError, match="shards .* cannot return their stored vectors, which dense PRF"):
        parts.search(queries[0], k=3, return_vector=True)
    with pytest.raises(SearchIndexError, match=r"need each of shards 0..2 exactly once, got shard ids \[0, 2\]"):
        FaissSearcher(f"{shards[0]},{shards[2]}", whole.query_encoder)
    (tmp_path / "meta.json").write_text("{}")
    with pytest.raises(SearchIndexError, match="lacks .*not written by pyserini-llara"):
        FaissSearcher(f"{shards[0]},{tmp_path}", whole.query_encoder)


@pytest.mark.slow
def test_hybrid_takes_nprobe_and_shards_on_its_dense_side(built, tiny_llara, capsys):
    from pyserini_llara.index.raw import attach_raw_index

    root, shards, merged, ivf = built
    lucene = attach_raw_index(merged, root / "lucene")  # Pyserini's own indexer over the same corpus
    topics = root / "topics.tsv"

    def hybrid(name, index, *flags):
        return ["pyserini.search.hybrid", "dense", "--index", index, "--encoder", f"llara:{tiny_llara}", *flags,
                "sparse", "--index", lucene, "fusion", "--alpha", "0", "run", "--topics", topics,
                "--output", root / f"hybrid.{name}.trec", "--hits", "10"]

    commands = {"flat": hybrid("flat", merged), "shards": hybrid("shards", ",".join(map(str, shards))),
                "ivf1": hybrid("ivf1", ivf, "--nprobe", "1"), "ivf4": hybrid("ivf4", ivf, "--nprobe", str(NLIST)),
                "flat-nprobe": hybrid("flat-nprobe", merged, "--nprobe", "2")}
    results = dict(zip(commands, run_all(commands.values(), capsys)))
    for name in ("flat", "shards", "ivf1", "ivf4"):
        assert results[name][0] == 0, f"{name}: {results[name][1][-3000:]}"
    runs = {name: (root / f"hybrid.{name}.trec").read_text() for name in ("flat", "shards", "ivf1", "ivf4")}
    assert runs["shards"] == runs["flat"]
    assert ranking(runs["ivf4"]) == ranking(runs["flat"]) != ranking(runs["ivf1"])
    code, stderr = results["flat-nprobe"]
    assert code == 1 and "nprobe applies to IVF indexes only" in stderr
