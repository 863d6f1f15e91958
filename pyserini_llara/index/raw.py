"""The Lucene index that stores the raw documents of an index's corpus: what gives dense hits their text.

A dense index holds vectors and docids only. Pyserini pairs it with a Lucene index built with
``--storeRaw`` and reads a hit's text as ``LuceneSearcher(path).doc(docid).raw()``. ``attach_raw_index``
builds one with Pyserini's own indexer (``python -m pyserini.index.lucene``, a ``JsonCollection`` of
``{"id", "contents"}``, the text as it was encoded) from the corpus the index records, or takes an
existing one; checks that it holds the index's documents with their raw JSON; and records its path
in the index's ``meta.json`` (``raw_index``), where ``FaissSearcher`` finds it (``searcher.doc(docid)``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ..corpus import read_corpus
from ..records import IndexMeta
from .config import IndexBuildError
from .output import DOCID_FILE


def open_raw_index(raw_index: str | os.PathLike, corpus_count: int, docids: list[str]):
    """A ``LuceneSearcher`` of ``raw_index`` once it can give the text of this index's hits: a Lucene index
    with as many documents as the corpus and the raw JSON of the first and last docid."""
    from pyserini.search.lucene import LuceneSearcher

    try:
        searcher = LuceneSearcher(str(raw_index))
    except Exception as error:  # pyjnius raises the JVM's exceptions as JavaException
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise IndexBuildError(f"{raw_index} is not a Lucene index ({first_line})") from None
    if searcher.num_docs != corpus_count:
        raise IndexBuildError(f"Lucene index {raw_index} holds {searcher.num_docs} documents, the index's corpus "
                              f"{corpus_count}: build it from the same corpus")
    for docid in {docids[0], docids[-1]}:
        document = searcher.doc(docid)
        if document is None or document.raw() is None:
            raise IndexBuildError(f"Lucene index {raw_index} has no stored raw document for docid {docid!r}: "
                                  "build it from the same corpus with --storeRaw")
    return searcher


def _build_raw_index(corpus: str, raw_index: Path) -> None:
    """Pyserini's indexer over the corpus as JSON documents, into a fresh directory renamed into place."""
    raw_index.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=raw_index.parent, prefix=f".{raw_index.name}."))
    try:
        with tempfile.TemporaryDirectory() as collection:
            with open(Path(collection) / "docs.jsonl", "w", encoding="utf-8") as out:
                out.writelines(json.dumps({"id": doc.docid, "contents": doc.text}, ensure_ascii=False) + "\n"
                               for doc in read_corpus(corpus))
            done = subprocess.run([sys.executable, "-m", "pyserini.index.lucene", "--collection", "JsonCollection",
                                   "--input", collection, "--index", str(staging / "index"), "--generator",
                                   "DefaultLuceneDocumentGenerator", "--threads", "1", "--storeRaw"],
                                  capture_output=True, text=True)
        if done.returncode != 0:
            raise IndexBuildError(f"pyserini.index.lucene could not index {corpus} into {raw_index}: "
                                  f"{(done.stderr.strip().splitlines() or ['no output'])[-1]}")
        os.replace(staging / "index", raw_index)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def attach_raw_index(index_dir: str | os.PathLike, raw_index: str | os.PathLike) -> Path:
    """Record ``raw_index`` (built from the index's corpus first where it does not exist) in ``index_dir``'s
    ``meta.json``, once it is checked to hold the index's documents with their raw JSON."""
    index_dir, raw_index = Path(index_dir), Path(raw_index).resolve()
    meta = IndexMeta.find(index_dir)
    if meta is None or not meta.complete:
        raise IndexBuildError(f"{index_dir} holds no complete pyserini-llara index: build it first")
    if not raw_index.exists():
        _build_raw_index(meta.corpus, raw_index)
    docids = (index_dir / DOCID_FILE).read_text(encoding="utf-8").splitlines()
    open_raw_index(raw_index, meta.corpus_count, docids)
    dataclasses.replace(meta, raw_index=str(raw_index)).save(index_dir)
    return raw_index
