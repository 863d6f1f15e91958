"""The text of dense hits: the Lucene index with the corpus's raw documents, built or pointed to, recorded in
meta.json, and read by ``FaissSearcher.doc(docid).raw()`` as Pyserini reads it for its prebuilt indexes."""

import json
import logging
import shutil

import pytest

from pyserini_llara.index import IndexMeta
from pyserini_llara.index.cli import main
from tiny import CORPUS

pytestmark = pytest.mark.pyserini  # through Pyserini: runs on every CI leg

TEXTS = {f"d{i}": f"{CORPUS[i % len(CORPUS)]} Passage number {i}." for i in range(12)}


@pytest.fixture(scope="module")
def built(tiny_llara, tmp_path_factory):
    root = tmp_path_factory.mktemp("raw")
    corpus = root / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"id": docid, "contents": text}) + "\n" for docid, text in TEXTS.items()))
    code = main(["--corpus", str(corpus), "--output", str(root / "index"), "--encoder", f"llara:{tiny_llara}",
                 "--dtype", "float32", "--chunk-size", "4", "--raw-index", str(root / "lucene")])
    assert code == 0
    return root


def test_hits_come_with_their_text(built, tiny_llara):
    from pyserini.search.faiss import FaissSearcher

    assert IndexMeta.load(built / "index").raw_index == str((built / "lucene").resolve())
    searcher = FaissSearcher(str(built / "index"), f"llara:{tiny_llara}")
    hits = searcher.search("What is a llama?", k=5)
    assert len(hits) == 5
    for hit in hits:
        assert json.loads(searcher.doc(hit.docid).raw()) == {"id": hit.docid, "contents": TEXTS[hit.docid]}


def test_a_lucene_index_of_another_corpus_is_refused(built, tiny_llara, tmp_path, capsys):
    other = tmp_path / "corpus.jsonl"
    other.write_text("".join(json.dumps({"id": d, "contents": t}) + "\n" for d, t in list(TEXTS.items())[:5]))
    shutil.copytree(built / "index", tmp_path / "index")
    meta = IndexMeta.load(tmp_path / "index")
    meta.__class__(**{**meta.__dict__, "corpus": str(other), "raw_index": None}).save(tmp_path / "index")
    assert main(["raw", "--index", str(tmp_path / "index"), "--raw-index", str(tmp_path / "lucene")]) == 1
    assert "holds 5 documents, the index's corpus 12: build it from the same corpus" in capsys.readouterr().err
    assert IndexMeta.load(tmp_path / "index").raw_index is None


def test_without_a_recorded_or_with_a_missing_raw_index_doc_is_none(built, tiny_llara, tmp_path, caplog):
    from pyserini.search.faiss import FaissSearcher

    shutil.copytree(built / "index", tmp_path / "index")
    shutil.copytree(built / "lucene", tmp_path / "lucene")
    assert main(["raw", "--index", str(tmp_path / "index"), "--raw-index", str(tmp_path / "lucene")]) == 0
    assert FaissSearcher(str(tmp_path / "index"), f"llara:{tiny_llara}").doc("d3").raw() is not None
    shutil.rmtree(tmp_path / "lucene")
    with caplog.at_level(logging.WARNING):
        searcher = FaissSearcher(str(tmp_path / "index"), f"llara:{tiny_llara}")
    assert searcher.doc("d3") is None
    assert "is not a Lucene index" in caplog.text
