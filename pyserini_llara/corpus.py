"""Documents, streamed from a Pyserini JSONL collection or an ir-datasets corpus, and the checks on text
that every reader of the package's inputs shares.

Every record is checked while it streams, and a bad one stops the run with the file and
line it came from: an index built over a silently skipped or duplicated document would
give wrong evaluation numbers without any sign of it. An ir-datasets corpus is named by its
id, bare (``msmarco-passage``) or with the prefix ``irds:`` (``irds:msmarco-passage``).
"""

from __future__ import annotations

import gzip
import json
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .template import join_title

ID_FIELDS = ("id", "_id", "docid")  # Pyserini's order of preference.
JSONL_SUFFIXES = (".jsonl", ".jsonl.gz")
IRDS_PREFIX = "irds:"


class CorpusError(ValueError):
    """A corpus that cannot be indexed as it is; the message names the place and the fix."""


@dataclass(frozen=True)
class Document:
    """A text and its id (where a source has no ids, as pretraining's plain text, the place it was read from)."""

    docid: str
    text: str


def corpus_files(path: str | os.PathLike) -> list[Path]:
    """A JSONL file, or the *.jsonl / *.jsonl.gz files of a directory in name order (a stable order)."""
    path = Path(path)
    if path.is_file():
        return [path]
    files = sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith(JSONL_SUFFIXES))
    if not files:
        raise CorpusError(f"{path} holds no *.jsonl or *.jsonl.gz files")
    return files


def _valid_docid(docid: str) -> bool:
    # Pyserini's docid file is one id per line and TREC runs split on whitespace.
    return bool(docid) and not any(ch.isspace() for ch in docid)


def check_encodable(value: str, what: str, where: str, error: type[Exception] = CorpusError) -> None:
    """A lone surrogate (JSON ``"\\ud800"``) decodes into a str that no UTF-8 writer or tokenizer accepts."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as bad:
        raise error(f"{where}: {what} holds {value[bad.start]!r} at character {bad.start + 1}, a lone "
                    "surrogate that is not text (an escape cut in half?); fix or drop that escape") from None


def parse_record(record, where: str) -> Document:
    """One decoded JSON line -> Document. Text: ``contents``, else ``title`` + ``text``, else ``text``."""
    if not isinstance(record, dict):
        raise CorpusError(f"{where}: expected a JSON object, got {type(record).__name__}")
    field = next((f for f in ID_FIELDS if f in record), None)
    if field is None:
        raise CorpusError(f"{where}: no document id; give each line an {' / '.join(ID_FIELDS)} field")
    docid = record[field]
    if isinstance(docid, bool) or not isinstance(docid, (str, int)):
        raise CorpusError(f"{where}: {field} must be a string or an integer, got {docid!r}")
    docid = str(docid)
    check_encodable(docid, "the document id", where)
    if not _valid_docid(docid):
        raise CorpusError(f"{where}: document id {docid!r} is empty or contains whitespace, "
                          "which Pyserini's docid file and TREC runs cannot hold")
    if isinstance(record.get("contents"), str):
        text = record["contents"]
    elif isinstance(record.get("text"), str):
        title = record.get("title")
        if "title" in record and title is not None and not isinstance(title, str):
            raise CorpusError(f"{where}: title of document {docid!r} must be a string, got {title!r}")
        text = join_title(title, record["text"]) if "title" in record else record["text"]
    else:
        raise CorpusError(f"{where}: document {docid!r} has no text; give it a string `contents` field "
                          "(or `text`, optionally with `title`)")
    check_encodable(text, f"the text of document {docid!r}", where)
    return Document(docid, text)


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    compressed = path.name.endswith(".gz")
    number = 0
    try:
        with (gzip.open if compressed else open)(path, "rb") as handle:
            for number, line in enumerate(handle, start=1):
                yield number, line
    except (OSError, EOFError, zlib.error) as error:
        if not compressed:
            raise CorpusError(f"cannot read {path} after line {number}: {error}") from None
        raise CorpusError(f"{path}: the gzip data is truncated or corrupt after line {number} ({error}); "
                          "download or compress the file again") from None


def text_lines(path: str | os.PathLike, error: type[Exception] = CorpusError) -> Iterator[tuple[int, str]]:
    """(line number, line) of a UTF-8 text file, gzipped or not; bytes that are not UTF-8 name the file and line."""
    for number, raw in _lines(Path(path)):
        try:
            yield number, raw.decode("utf-8")
        except UnicodeDecodeError as bad:
            raise error(f"{path}, line {number}: not valid UTF-8 (byte {bad.start}); "
                        "re-encode the file as UTF-8") from None


def read_jsonl(path: str | os.PathLike) -> Iterator[Document]:
    """Stream the documents of a JSONL file or directory, failing at the first bad line."""
    seen: set[str] = set()
    for file in corpus_files(path):
        for number, line in text_lines(file):
            where = f"{file}, line {number}"
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise CorpusError(f"{where}: malformed JSON ({error.msg} at character {error.pos + 1})") from None
            doc = parse_record(record, where)
            if doc.docid in seen:
                raise CorpusError(f"{where}: duplicate document id {doc.docid!r} "
                                  f"(first at {_first_location(path, doc.docid)})")
            seen.add(doc.docid)
            yield doc


def _first_location(path: str | os.PathLike, docid: str) -> str:
    """Found again on error only, so the normal pass keeps no per-document location."""
    for file in corpus_files(path):
        for number, raw in _lines(file):
            try:
                record = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue
            field = next((f for f in ID_FIELDS if f in record), None) if isinstance(record, dict) else None
            if field is not None and str(record[field]) == docid:
                return f"{file}, line {number}"
    return "an earlier line"


def ir_dataset_id(source: str | os.PathLike) -> str | None:
    """The ir-datasets id that ``source`` names (``irds:ID``, or a registered ``ID``); None for anything else."""
    name = str(source)
    if name.startswith(IRDS_PREFIX):
        return name[len(IRDS_PREFIX):]
    import ir_datasets

    return name if name in ir_datasets.registry else None


def read_ir_dataset(dataset_id: str) -> Iterator[Document]:
    """Stream an ir-datasets corpus. Documents with ``title`` and ``text`` are joined as JSONL ones are."""
    import ir_datasets

    try:
        dataset = ir_datasets.load(dataset_id)
    except KeyError:
        raise CorpusError(f"unknown ir-datasets id {dataset_id!r}; `ir_datasets list` shows the ids") from None
    if not dataset.has_docs():
        raise CorpusError(f"ir-datasets {dataset_id!r} has no documents; name the corpus, e.g. its parent id")
    seen: set[str] = set()
    try:
        for number, doc in enumerate(dataset.docs_iter(), start=1):
            yield _ir_dataset_document(doc, f"ir-datasets {dataset_id}, document {number}", seen)
    except OSError as error:
        raise CorpusError(f"cannot read the documents of ir-datasets {dataset_id!r} ({error}); offline, place "
                          "its source file under $IR_DATASETS_HOME as ir_datasets expects") from error


def _ir_dataset_document(doc, where: str, seen: set[str]) -> Document:
    check_encodable(doc.doc_id, "the document id", where)
    if not _valid_docid(doc.doc_id):
        raise CorpusError(f"{where}: document id {doc.doc_id!r} is empty or contains whitespace")
    if doc.doc_id in seen:
        raise CorpusError(f"{where}: duplicate document id {doc.doc_id!r}")
    seen.add(doc.doc_id)
    fields = doc._fields
    if "title" in fields and "text" in fields:
        text = join_title(doc.title, doc.text)
    elif hasattr(doc, "default_text"):
        text = doc.default_text()
    else:
        raise CorpusError(f"{where}: {type(doc).__name__} has neither title/text fields nor default_text()")
    if not isinstance(text, str):
        raise CorpusError(f"{where}: document {doc.doc_id!r} has no text")
    check_encodable(text, f"the text of document {doc.doc_id!r}", where)
    return Document(doc.doc_id, text)


def read_corpus(source: str | os.PathLike) -> Iterator[Document]:
    """An existing path is read as JSONL; any other name as an ir-datasets id (``ID`` or ``irds:ID``)."""
    if os.path.exists(source):
        return read_jsonl(source)
    dataset_id = ir_dataset_id(source)
    if dataset_id is not None:
        return read_ir_dataset(dataset_id)
    raise CorpusError(f"{source} is neither an existing JSONL file or directory nor an ir-datasets id")
