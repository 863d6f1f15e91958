"""Raw text for adaptation, read lazily one document at a time, so that a corpus larger than memory goes through.

Sources (a file, a directory of files, or an ir-datasets id, ``irds:ID`` or a registered ``ID``):

- plain text: documents separated by blank lines, each line a paragraph (a document is read whole);
- JSONL: one document per line in ``"text"`` or ``"contents"`` (Pyserini's collection
  format) or a named field; or ready-made examples with the three release fields;
- a Wikipedia XML dump (name contains ``.xml``, optionally ``.bz2``), cleaned with gensim;
- the documents of an ir-datasets corpus (``irds:msmarco-passage``, ...).

``.gz`` and ``.bz2`` files are decompressed on the fly. A document is a ``corpus.Document`` whose
id says where it was read (file:line, dump#page, dataset/docid) and whose lines are its paragraphs.
"""

from __future__ import annotations

import bz2
import gzip
import itertools
import json
import os
import re
from pathlib import Path
from typing import Iterator, Sequence
from xml.etree import ElementTree

from pyserini_llara.corpus import Document, check_encodable, ir_dataset_id, read_ir_dataset

from .examples import READY_KEYS, DataError, ready_example

TEXT_FIELDS = ("text", "contents")


def _open_text(path: Path):
    opener = {".gz": gzip.open, ".bz2": bz2.open}.get(path.suffix, open)
    try:
        return opener(path, "rt", encoding="utf-8")
    except OSError as error:
        raise DataError(f"cannot read {path}: {error}") from error


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, line) pairs; read and decode errors name the file and line."""
    lineno = 0
    try:
        with _open_text(path) as handle:
            for lineno, line in enumerate(handle, start=1):
                yield lineno, line
    except (OSError, EOFError, UnicodeDecodeError) as error:
        raise DataError(f"cannot read {path} after line {lineno}: {error}; the file must be UTF-8 text") from error


def source_kind(path: Path) -> str:
    name = path.name.lower()
    if ".xml" in name:
        return "wikipedia"
    if re.search(r"\.jsonl?(\.gz|\.bz2)?$", name):
        return "jsonl"
    return "text"


def _plain_text_documents(path: Path) -> Iterator[Document]:
    """Blank-line separated blocks; the lines of a block are its paragraphs."""
    for blank, group in itertools.groupby(_lines(path), key=lambda item: not item[1].strip()):
        if blank:
            continue
        lines = list(group)
        yield Document(f"{path}:{lines[0][0]}", "\n".join(line.rstrip("\n") for _, line in lines))


def _one_paragraph(text: str) -> str:
    """A record's text is one paragraph, its line breaks spaces."""
    return " ".join(text.split())


def _jsonl_records(path: Path) -> Iterator[tuple[str, dict]]:
    for lineno, line in _lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"{path}:{lineno}: not valid JSON ({error.msg}); each line must be one JSON object"
                            ) from None
        if not isinstance(record, dict):
            raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(record).__name__}")
        yield f"{path}:{lineno}", record


def _text_of(name: str, record: dict, text_field: str | None) -> str:
    fields = (text_field,) if text_field else TEXT_FIELDS
    for key in fields:
        if key in record:
            value = record[key]
            if not isinstance(value, str):
                raise DataError(f"{name}: field {key!r} is {type(value).__name__}, not text")
            check_encodable(value, f"field {key!r}", name, DataError)
            return value
    raise DataError(f"{name}: no text field {' or '.join(repr(f) for f in fields)} "
                    f"(has {', '.join(sorted(record)) or 'none'}); pass --text_field")


_WIKI_MARKUP = re.compile(r"'{2,}")
_WIKI_SKIP = re.compile(r"^\s*(=|\*|#|\||!|\{|\}|:|;)")


def wikipedia_paragraphs(markup: str) -> list[str]:
    """Article wikitext -> prose paragraphs: gensim strips links/templates; headings, lists and captions go."""
    from gensim.corpora.wikicorpus import filter_wiki

    paragraphs = []
    for line in filter_wiki(markup).splitlines():
        line = _WIKI_MARKUP.sub("", line).strip()
        if line and not _WIKI_SKIP.match(line) and len(line.split()) >= 5:
            paragraphs.append(line)
    return paragraphs


def _wikipedia_documents(path: Path) -> Iterator[Document]:
    try:
        from gensim.corpora.wikicorpus import extract_pages
    except ImportError:
        raise DataError(f"{path} is a Wikipedia dump: reading it needs gensim (pip install gensim)") from None
    opener = bz2.open if path.suffix == ".bz2" else open
    try:
        with opener(path, "rb") as handle:
            for title, markup, page_id in extract_pages(handle, filter_namespaces=("0",)):
                if markup.lstrip()[:9].lower() == "#redirect":
                    continue
                yield Document(f"{path}#{page_id} ({title})", "\n".join(wikipedia_paragraphs(markup)))
    except (OSError, EOFError) as error:
        raise DataError(f"cannot read Wikipedia dump {path}: {error}") from error
    except (ElementTree.ParseError, ValueError) as error:  # malformed XML; XML that is no MediaWiki export
        raise DataError(f"{path} is not a Wikipedia XML dump: {error}") from error


def expand_sources(sources: Sequence[str]) -> list[str]:
    """Directories become their files (sorted, hidden ones skipped); missing paths fail early, by name."""
    out = []
    for source in sources:
        path = Path(source)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
            if not files:
                raise DataError(f"directory {path} holds no files")
            out.extend(str(p) for p in files)
        elif path.is_file() or ir_dataset_id(source) is not None:
            out.append(source)
        else:
            raise DataError(f"no such file or directory: {source}, nor an ir-datasets id")
    return out


def read_source(source: str, text_field: str | None = None) -> Iterator[Document | dict]:
    """Documents of one source, or ready-made example dicts for a release-format JSONL."""
    path = Path(source)
    dataset_id = None if path.exists() else ir_dataset_id(source)
    if dataset_id is not None:
        for doc in read_ir_dataset(dataset_id):
            yield Document(f"{dataset_id}/{doc.docid}", _one_paragraph(doc.text))
        return
    if not os.access(path, os.R_OK):
        raise DataError(f"cannot read {path}: permission denied")
    kind = source_kind(path)
    if kind == "wikipedia":
        yield from _wikipedia_documents(path)
    elif kind == "text":
        yield from _plain_text_documents(path)
    else:
        ready = None
        for name, record in _jsonl_records(path):
            if ready is None:
                ready = all(k in record for k in READY_KEYS)
            if ready:
                yield ready_example(name, record)
            else:
                yield Document(name, _one_paragraph(_text_of(name, record, text_field)))
