"""Every door through which Pyserini turns a model name into a dense encoder gives LLaRA's vectors
(float32, within 1e-5 of LlaraEncoder) or one clear line of error, tested through Pyserini's own
entry points: its Python API, and its CLIs run as ``python -m`` runs them (runpy, in this process;
test_cli_e2e.py runs them in fresh processes)."""

import inspect
import json
import runpy
import shutil
import sys
import warnings
from types import SimpleNamespace

import faiss
import numpy as np
import pandas as pd
import pytest

from pyserini_llara.encoding import LlaraEncoder
from pyserini_llara.fingerprint import model_fingerprint
from pyserini_llara.index import IndexConfig, build_index
from pyserini_llara.plugin import hook, patches
from pyserini_llara.queries import QueriesError, QueryEncodingConfig, output_directory
from pyserini_llara.records import EncodedQueriesMeta
from pyserini_llara.template import join_title
from tiny import CORPUS, build_tiny_llama

pytestmark = pytest.mark.pyserini  # through Pyserini: runs on every CI leg

TOPICS = {"q1": "What is a llama?", "q2": "How does insurance work after an accident?",
          "q3": "Who writes Wikipedia?", "q4": "dense retrieval inner product vectors"}
HITS = 10
N_DOCS = 30


def documents():
    """Titled documents from ~40 to ~870 tokens: many beyond Pyserini's 256, some beyond the release's 512."""
    texts = [" ".join(CORPUS[(i + j) % len(CORPUS)] for j in range(1 + (i % 5) * 6)) + f" Document {i}."
             for i in range(N_DOCS)]
    return [(f"d{i}", f"Title {i}" if i % 4 else "", text) for i, text in enumerate(texts)]


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_llara):
    root = tmp_path_factory.mktemp("doors")
    (root / "corpus.jsonl").write_text("".join(json.dumps({"id": docid, "title": title, "text": text}) + "\n"
                                               for docid, title, text in documents()))
    (root / "topics.tsv").write_text("".join(f"{qid}\t{text}\n" for qid, text in TOPICS.items()))
    build_index(root / "corpus.jsonl", root / "index", IndexConfig(encoder=f"llara:{tiny_llara}", dtype="float32"))
    plain = root / "plain-model"  # a name without "llara": only --encoder-class can say what it is
    plain.symlink_to(tiny_llara, target_is_directory=True)
    reference = LlaraEncoder.from_pretrained(str(tiny_llara), dtype="float32")
    index = faiss.read_index(str(root / "index" / "index"))
    return SimpleNamespace(root=root, model=tiny_llara, plain=plain, reference=reference, index=root / "index",
                           docs=index.reconstruct_n(0, index.ntotal), docids=[d for d, _, _ in documents()],
                           queries=reference.encode_queries(list(TOPICS.values())))


def expected_run(world, query_vectors, hits=HITS):
    """{qid: [(docid, score)]}: exact inner-product search with the reference vectors."""
    run = {}
    for qid, vector in zip(TOPICS, query_vectors):
        scores = world.docs @ vector
        run[qid] = [(world.docids[i], float(scores[i])) for i in np.argsort(-scores)[:hits]]
    return run


def read_run(path):
    run = {}
    for line in path.read_text().splitlines():
        qid, _, docid, _, score, _ = line.split()
        run.setdefault(qid, []).append((docid, float(score)))
    return run


def assert_same_run(run, expected):
    assert run.keys() == expected.keys()
    for qid in expected:
        assert [d for d, _ in run[qid]] == [d for d, _ in expected[qid]], qid
        np.testing.assert_allclose([s for _, s in run[qid]], [s for _, s in expected[qid]], atol=1e-5)


def pyserini_cli(module, *args):
    """Run a Pyserini CLI as ``python -m module args`` would, in this process; its exit status."""
    argv = sys.argv
    sys.argv = [module, *map(str, args)]
    try:
        with warnings.catch_warnings():  # runpy's note that an earlier test imported the module
            warnings.filterwarnings("ignore", "'pyserini.*' found in sys.modules", RuntimeWarning)
            runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as done:
        return done.code or 0
    finally:
        sys.argv = argv
    return 0


def error_line(capsys):
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, lines
    return lines[0]


def search(world, *args, output):
    return pyserini_cli("pyserini.search.faiss", "--topics", world.root / "topics.tsv", "--output", output,
                        "--hits", HITS, *args)


def test_the_hook_watches_every_module_it_patches():
    assert hook.AFTER == set(patches.PATCHES)
    assert {"pyserini.search.faiss.__main__", "pyserini.search.hybrid.__main__", "pyserini.encode.__main__",
            "pyserini.encode.query"} == hook.CLIS


# FaissSearcher, Pyserini's Python API


def test_faiss_searcher_takes_a_llara_model_name(world):
    from pyserini.search.faiss import FaissSearcher

    from pyserini_llara.plugin.encoders import LlaraQueryEncoder

    searcher = FaissSearcher(str(world.index), f"llara:{world.model}")
    assert isinstance(searcher.query_encoder, LlaraQueryEncoder)
    expected = expected_run(world, world.queries)
    found = {qid: [(hit.docid, hit.score) for hit in searcher.search(text, HITS)] for qid, text in TOPICS.items()}
    assert_same_run(found, expected)
    batch = searcher.batch_search(list(TOPICS.values()), list(TOPICS), HITS)
    assert_same_run({qid: [(hit.docid, hit.score) for hit in hits] for qid, hits in batch.items()}, expected)


def test_faiss_searcher_from_prebuilt_index_takes_a_llara_model_name(world, monkeypatch):
    from pyserini.search.faiss import FaissSearcher, _searcher

    monkeypatch.setattr(_searcher, "download_prebuilt_index", lambda name: str(world.index))
    monkeypatch.setattr(_searcher, "get_sparse_index", lambda name: None)
    monkeypatch.setattr(_searcher, "LuceneSearcher", SimpleNamespace(from_prebuilt_index=lambda name: None))
    searcher = FaissSearcher.from_prebuilt_index("a-llara-index", f"llara:{world.model}")
    hits = searcher.search(TOPICS["q1"], HITS)
    assert_same_run({"q1": [(hit.docid, hit.score) for hit in hits]},
                    {"q1": expected_run(world, world.queries)["q1"]})


# pyserini.search.faiss


@pytest.mark.parametrize("method", ["avg", "rocchio"])
def test_dense_prf_on_a_flat_llara_index(world, tmp_path, method):
    depth = 5
    options = {"avg": [], "rocchio": ["--rocchio-alpha", 0.8, "--rocchio-beta", 0.3, "--rocchio-gamma", 0.2,
                                      "--rocchio-topk", 3, "--rocchio-bottomk", 1]}[method]
    assert search(world, "--index", world.index, "--encoder", f"llara:{world.model}", "--prf-depth", depth,
                  "--prf-method", method, *options, output=tmp_path / "run") == 0
    feedback = []
    for vector in world.queries:
        top = world.docs[np.argsort(-(world.docs @ vector))[:depth]]
        if method == "avg":
            feedback.append(np.vstack([vector, top]).mean(axis=0))
        else:
            feedback.append(0.8 * vector + 0.3 * top[:3].mean(axis=0) - 0.2 * top[-1:].mean(axis=0))
    assert_same_run(read_run(tmp_path / "run"), expected_run(world, np.array(feedback)))


def test_dense_prf_on_an_index_without_stored_vectors_is_one_clear_error(world, tmp_path, capsys):
    """An IDMap index cannot return vectors; faiss's C++ message becomes one line naming the index."""
    idmap = tmp_path / "idmap"
    idmap.mkdir()
    index = faiss.index_factory(world.docs.shape[1], "IDMap,Flat", faiss.METRIC_INNER_PRODUCT)
    index.add_with_ids(world.docs, np.arange(N_DOCS))
    faiss.write_index(index, str(idmap / "index"))
    shutil.copy(world.index / "docid", idmap / "docid")
    assert search(world, "--index", idmap, "--encoder", f"llara:{world.model}", "--prf-depth", 3,
                  output=tmp_path / "run") == 1
    line = error_line(capsys)
    assert str(idmap) in line and "IndexIDMap" in line and "PRF" in line


@pytest.fixture(scope="module")
def other_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("others")
    return SimpleNamespace(same_size=build_tiny_llama(root / "other", seed=1),
                           narrow=build_tiny_llama(root / "narrow", hidden_size=32))


@pytest.fixture(scope="module")
def unfingerprinted_index(world, tmp_path_factory):
    """The index as an older pyserini-llara wrote it: meta.json without model_fingerprint."""
    copy = tmp_path_factory.mktemp("old") / "index"
    shutil.copytree(world.index, copy)
    meta = json.loads((copy / "meta.json").read_text())
    del meta["model_fingerprint"]
    (copy / "meta.json").write_text(json.dumps(meta))
    return copy


def test_an_index_searched_with_another_model_is_refused_in_one_line(world, other_models, tmp_path, capsys):
    assert search(world, "--index", world.index, "--encoder", f"llara:{other_models.same_size}",
                  output=tmp_path / "run") == 1
    line = error_line(capsys)
    assert f"built by {world.model}" in line and str(other_models.same_size) in line
    assert model_fingerprint(str(world.model)) in line and model_fingerprint(str(other_models.same_size)) in line
    assert not (tmp_path / "run").exists()


def test_an_index_searched_with_another_dimension_is_refused_in_one_line(world, other_models,
                                                                         unfingerprinted_index, tmp_path, capsys):
    assert search(world, "--index", unfingerprinted_index, "--encoder", f"llara:{other_models.narrow}",
                  output=tmp_path / "run") == 1
    line = error_line(capsys)
    assert "64-dimensional" in line and "32-dimensional" in line
    assert f"built by {world.model}" in line and str(other_models.narrow) in line
    assert not (tmp_path / "run").exists()


def test_an_index_without_a_fingerprint_is_searched_without_the_model_check(world, other_models,
                                                                           unfingerprinted_index, tmp_path):
    assert search(world, "--index", unfingerprinted_index, "--encoder", f"llara:{other_models.same_size}",
                  output=tmp_path / "run") == 0
    other = LlaraEncoder.from_pretrained(str(other_models.same_size), dtype="float32")
    assert_same_run(read_run(tmp_path / "run"), expected_run(world, other.encode_queries(list(TOPICS.values()))))


def test_a_llara_index_searched_with_a_pyserini_encoder_is_refused(world, tmp_path, capsys):
    """Without llara in the name nor --encoder-class llara, Pyserini picks its CLS-pooling AutoQueryEncoder."""
    assert search(world, "--index", world.index, "--encoder", world.plain, output=tmp_path / "run") == 1
    line = error_line(capsys)
    assert "AutoQueryEncoder" in line and f"--encoder llara:{world.model}" in line
    assert not (tmp_path / "run").exists()


def test_an_empty_topics_file_is_called_empty(world, tmp_path, capsys):
    (tmp_path / "empty.tsv").write_text("")
    assert pyserini_cli("pyserini.search.faiss", "--topics", tmp_path / "empty.tsv", "--index", world.index,
                        "--encoder", f"llara:{world.model}", "--output", tmp_path / "run") == 1
    assert f"topics file {tmp_path / 'empty.tsv'} holds no topics" in error_line(capsys)
    assert not (tmp_path / "run").exists()


# pyserini.encode.query and encoded queries


def test_pyserini_encode_query_init_encoder_gives_llara(world):
    from pyserini.encode.query import init_encoder

    bpr = {"bpr": False} if "bpr" in inspect.signature(init_encoder).parameters else {}  # Pyserini 2.x
    encoder = init_encoder(f"llara:{world.model}", device="cpu", pooling="cls", l2_norm=False, prefix=None, **bpr)
    np.testing.assert_allclose(np.stack([encoder.encode(text, max_length=256) for text in TOPICS.values()]),
                               world.queries, atol=1e-5)


@pytest.fixture(scope="module")
def encoded_queries(world):
    """``python -m pyserini.encode.query`` with a LLaRA encoder, Pyserini's flags and its habit of
    naming the pickle in --output."""
    output = world.root / "encoded" / "embedding.pkl"
    code = pyserini_cli("pyserini.encode.query", "--encoder", f"llara:{world.model}", "--topics",
                        world.root / "topics.tsv", "--output", output, "--pooling", "cls", "--device", "cpu")
    assert code == 0
    return output.parent


def test_pyserini_encode_query_writes_llara_encoded_queries(world, encoded_queries):
    frame = pd.read_pickle(encoded_queries / "embedding.pkl")
    assert list(frame["id"]) == list(TOPICS) and list(frame["text"]) == list(TOPICS.values())
    np.testing.assert_allclose(np.stack(frame["embedding"]), world.queries, atol=1e-5)
    meta = EncodedQueriesMeta.find(encoded_queries)
    assert meta.model == str(world.model) and meta.model_fingerprint == model_fingerprint(str(world.model))
    assert meta.prompt == '"{query}", predict the following passage within eight words: ' + \
        "".join(f"<s{i}>" for i in range(9, 17))
    assert (meta.dimension, meta.dtype, meta.max_length, meta.count) == (64, "float32", 512, len(TOPICS))


def test_pyserini_2_encode_query_flags_with_a_llara_encoder(world, tmp_path, capsys):
    """Pyserini 2.x's --prefix, --max-queries and --bpr, on either Pyserini: the LLaRA door reads them itself."""
    output = tmp_path / "first-two"
    assert pyserini_cli("pyserini.encode.query", "--encoder", f"llara:{world.model}", "--topics",
                        world.root / "topics.tsv", "--output", output, "--prefix", "query:", "--max-queries", 2) == 0
    frame = pd.read_pickle(output / "embedding.pkl")
    assert list(frame["id"]) == list(TOPICS)[:2]
    np.testing.assert_allclose(np.stack(frame["embedding"]), world.queries[:2], atol=1e-5)
    assert pyserini_cli("pyserini.encode.query", "--encoder", f"llara:{world.model}", "--topics",
                        world.root / "topics.tsv", "--output", tmp_path / "bpr", "--bpr") == 1
    assert "--bpr" in error_line(capsys) and not (tmp_path / "bpr").exists()


def test_encoded_queries_of_another_model_are_refused(world, other_models, tmp_path, capsys):
    from pyserini_llara.queries import encode_queries

    other = encode_queries(str(world.root / "topics.tsv"), tmp_path / "other",
                           QueryEncodingConfig(encoder=str(other_models.same_size)))
    assert search(world, "--index", world.index, "--encoded-queries", other, output=tmp_path / "run") == 1
    line = error_line(capsys)
    assert f"queries in {other} were encoded by {other_models.same_size}" in line
    assert not (tmp_path / "run").exists()


def test_encoded_queries_give_the_same_run_as_on_the_fly_encoding(world, encoded_queries, tmp_path):
    """Both commands' encoded queries; on the fly through --encoder-class llara and a name without llara."""
    from pyserini_llara.queries import encode_queries

    ours = encode_queries(str(world.root / "topics.tsv"), tmp_path / "ours", QueryEncodingConfig(str(world.model)))
    assert search(world, "--index", world.index, "--encoder-class", "llara", "--encoder", world.plain,
                  output=tmp_path / "run.fly") == 0
    for name, queries in (("pyserini", encoded_queries), ("ours", ours)):
        assert search(world, "--index", world.index, "--encoded-queries", queries, output=tmp_path / f"run.{name}") == 0
        assert (tmp_path / f"run.{name}").read_bytes() == (tmp_path / "run.fly").read_bytes()
    assert_same_run(read_run(tmp_path / "run.fly"), expected_run(world, world.queries))


def test_topics_without_text_are_named(tmp_path):
    from pyserini_llara.queries import read_topics

    topics = tmp_path / "topics.jsonl"
    topics.write_text('{"qid": "q1", "query": "what is a llama"}\n')
    with pytest.raises(QueriesError, match="'q1' has no text"):
        read_topics(str(topics))
    topics.write_text('{"qid": "q1", "title": "what is a llama"}\n')
    assert read_topics(str(topics)) == [("q1", "what is a llama")]


def test_the_encoded_queries_output_is_a_directory(tmp_path):
    assert output_directory(tmp_path / "q") == tmp_path / "q"
    assert output_directory(tmp_path / "q" / "embedding.pkl") == tmp_path / "q"
    with pytest.raises(QueriesError, match="directory"):
        output_directory(tmp_path / "queries.pkl")


def test_encoded_queries_are_not_overwritten_unless_asked(world, encoded_queries, capsys):
    from pyserini_llara.queries import main

    argv = ["--topics", str(world.root / "topics.tsv"), "--output", str(encoded_queries), "--encoder",
            f"llara:{world.model}"]
    assert main(argv) == 1
    assert "--overwrite" in error_line(capsys)
    with pytest.raises(QueriesError, match="--overwrite"):  # --debug: the traceback, not the line
        main([*argv, "--debug"])


# pyserini.search.hybrid


@pytest.fixture(scope="module")
def lucene_index(world):
    from pyserini.index.lucene import LuceneIndexer

    path = world.root / "lucene"
    indexer = LuceneIndexer(str(path), threads=1)
    for docid, title, text in documents():
        indexer.add_doc_dict({"id": docid, "contents": f"{title} {text}"})
    indexer.close()
    return path


def test_hybrid_dense_side_is_llara(world, lucene_index, tmp_path):
    """With alpha 0 and every document in the dense hits, the fused score is the dense score."""
    code = pyserini_cli("pyserini.search.hybrid", "dense", "--index", world.index, "--encoder-class", "llara",
                        "--encoder", world.plain, "sparse", "--index", lucene_index, "fusion", "--alpha", 0,
                        "--hits", N_DOCS, "run", "--topics", world.root / "topics.tsv", "--output", tmp_path / "run",
                        "--hits", HITS)
    assert code == 0
    assert_same_run(read_run(tmp_path / "run"), expected_run(world, world.queries))


@pytest.mark.parametrize("index_dtype,fast,expected", [
    ("bfloat16", "bfloat16", "bfloat16"), ("bfloat16", None, "float32"), ("float32", "bfloat16", "float32")])
def test_hybrid_takes_the_precision_of_the_index(world, tmp_path, monkeypatch, index_dtype, fast, expected):
    """Hybrid cannot pass --fp16: the query encoder follows the index (where that precision is fast here)."""
    import torch
    from pyserini.search.faiss import FaissSearcher
    from pyserini.search.faiss.__main__ import init_query_encoder

    from pyserini_llara import precision

    monkeypatch.setattr(precision, "fast_low_precision", lambda device: fast)
    index = tmp_path / "index"
    shutil.copytree(world.index, index)
    meta = json.loads((index / "meta.json").read_text())
    (index / "meta.json").write_text(json.dumps({**meta, "dtype": index_dtype}))
    encoder = init_query_encoder(f"llara:{world.model}", None, None, "topics", None, "cpu", 256, "cls", False, None)
    FaissSearcher(str(index), encoder)
    assert encoder.encoder.model.dtype == getattr(torch, expected)
    reference = LlaraEncoder.from_pretrained(str(world.model), dtype=expected)
    np.testing.assert_allclose(encoder.encode(TOPICS["q1"]), reference.encode_queries([TOPICS["q1"]])[0], atol=1e-5)


# pyserini.encode


def test_pyserini_encode_gives_the_builder_vectors_for_long_titled_documents(world, tmp_path):
    """Titles joined as the release does, and 512 text tokens unless --max-length says otherwise."""
    def encode(output, *options):
        return pyserini_cli("pyserini.encode", "input", "--corpus", world.root / "corpus.jsonl", "--fields", "title",
                            "text", "output", "--embeddings", output, "--to-faiss", "encoder", "--encoder-class",
                            "llara", "--encoder", world.plain, "--fields", "title", "text", "--dimension", 64,
                            "--device", "cpu", "--batch-size", 8, *options)

    assert encode(tmp_path / "default") == 0
    assert encode(tmp_path / "300", "--max-length", 300) == 0
    by_pyserini = faiss.read_index(str(tmp_path / "default" / "index"))
    np.testing.assert_allclose(by_pyserini.reconstruct_n(0, N_DOCS), world.docs, atol=1e-5)
    assert (tmp_path / "default" / "docid").read_text() == (world.index / "docid").read_text()
    titled = [join_title(title, text) for _, title, text in documents()]
    np.testing.assert_allclose(world.docs, world.reference.encode_passages(titled), atol=1e-5)
    assert max(len(ids) for ids in world.reference.tokenize(titled, "passage")) > 512
    shorter = faiss.read_index(str(tmp_path / "300" / "index"))
    np.testing.assert_allclose(shorter.reconstruct_n(0, N_DOCS),
                               world.reference.encode_passages(titled, max_text_tokens=300), atol=1e-5)
