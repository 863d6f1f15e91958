"""Pretraining data: raw text to EBAE/EBAR examples, streamed.

An example is the release's record ``{"input", "output_summarize", "output_predict"}``: a
chunk of a text, the EBAE target (the chunk itself) and the EBAR target (the chunk that
follows it in the same text). Texts are cut into consecutive chunks by a token budget, at
word boundaries. Sources are read lazily, one document at a time, so a corpus larger than
memory goes through; shuffling uses a bounded, seeded buffer.

Sources (a file, a directory of files, or ``irds:DATASET_ID``):

- plain text: documents separated by blank lines, each line a paragraph;
- JSONL: one document per line in ``"text"`` or ``"contents"`` (Pyserini's collection
  format) or a named field; or ready-made examples with the three release fields;
- a Wikipedia XML dump (name contains ``.xml``, optionally ``.bz2``), cleaned with gensim;
- the documents of an ir-datasets id (``irds:msmarco-passage``, ...).

``.gz`` and ``.bz2`` files are decompressed on the fly.
"""

from __future__ import annotations

import bz2
import gzip
import itertools
import json
import os
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence
from xml.etree import ElementTree

from pyserini_llara.corpus import check_encodable

READY_KEYS = ("input", "output_summarize", "output_predict")
TEXT_FIELDS = ("text", "contents")
IRDS_PREFIX = "irds:"


class DataError(ValueError):
    """A source cannot be read or yields nothing usable; the message names it."""


@dataclass(frozen=True)
class Document:
    """A text as a lazy sequence of paragraphs, named for error messages (file:line or dataset/doc id)."""

    name: str
    paragraphs: Iterable[str]


@dataclass
class DataStats:
    """What happened to the texts: the drop reasons a user needs to see to trust the data."""

    texts: int = 0
    examples: int = 0
    ready_made: int = 0
    dropped: Counter = field(default_factory=Counter)
    short_tails: int = 0

    def report(self) -> str:
        dropped = ", ".join(f"{n} {why}" for why, n in sorted(self.dropped.items())) or "none"
        return (f"{self.texts} texts read, {self.examples} examples ({self.ready_made} ready-made); "
                f"texts dropped: {dropped}; short final chunks dropped: {self.short_tails}")

    def as_dict(self) -> dict:
        return {"texts": self.texts, "examples": self.examples, "ready_made": self.ready_made,
                "dropped": dict(self.dropped), "short_tails": self.short_tails}


# ---------------------------------------------------------------- reading sources

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
    """Blank-line separated blocks; the lines of a block are its paragraphs (streamed, never held whole)."""
    for blank, group in itertools.groupby(_lines(path), key=lambda item: not item[1].strip()):
        if blank:
            continue
        first = next(group)
        yield Document(f"{path}:{first[0]}", (line for _, line in itertools.chain([first], group)))


def _jsonl_records(path: Path) -> Iterator[tuple[str, dict]]:
    for lineno, line in _lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"{path}:{lineno}: not valid JSON ({error.msg}); each line must be one JSON object") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(record).__name__}")
        yield f"{path}:{lineno}", record


def ready_example(name: str, record: dict) -> dict:
    """Check a release-format record and keep only its three fields."""
    bad = [k for k in READY_KEYS if not isinstance(record.get(k), str)]
    if bad:
        raise DataError(f"{name}: ready-made example lacks string field(s) {', '.join(bad)} "
                        f"(has {', '.join(sorted(record)) or 'none'})")
    for key in READY_KEYS:
        check_encodable(record[key], f"field {key!r}", name, DataError)
    return {k: record[k] for k in READY_KEYS}


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
                yield Document(f"{path}#{page_id} ({title})", wikipedia_paragraphs(markup))
    except (OSError, EOFError) as error:
        raise DataError(f"cannot read Wikipedia dump {path}: {error}") from error
    except (ElementTree.ParseError, ValueError) as error:  # malformed XML; XML that is no MediaWiki export
        raise DataError(f"{path} is not a Wikipedia XML dump: {error}") from error


def gensim_wikipedia_sample() -> Path:
    """The shortened English Wikipedia dump gensim ships for its own tests: adaptation data that needs no download."""
    import gensim

    return Path(gensim.__file__).parent / "test" / "test_data" / "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"


def _irds_documents(dataset_id: str) -> Iterator[Document]:
    try:
        import ir_datasets
    except ImportError:
        raise DataError(f"{IRDS_PREFIX}{dataset_id} needs ir-datasets (pip install ir-datasets)") from None
    try:
        dataset = ir_datasets.load(dataset_id)
    except KeyError as error:
        raise DataError(f"unknown ir-datasets id {dataset_id!r}: {error}") from error
    if not dataset.has_docs():
        raise DataError(f"ir-datasets {dataset_id!r} has no documents")
    try:
        for doc in dataset.docs_iter():
            text = doc.default_text() if hasattr(doc, "default_text") else doc.text
            yield Document(f"{dataset_id}/{doc.doc_id}", [text])
    except OSError as error:
        raise DataError(f"cannot read the documents of {dataset_id!r} ({error}); offline, place the source file "
                        f"under $IR_DATASETS_HOME as ir_datasets expects") from error


def expand_sources(sources: Sequence[str]) -> list[str]:
    """Directories become their files (sorted, hidden ones skipped); missing paths fail early, by name."""
    out = []
    for source in sources:
        if source.startswith(IRDS_PREFIX):
            out.append(source)
            continue
        path = Path(source)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
            if not files:
                raise DataError(f"directory {path} holds no files")
            out.extend(str(p) for p in files)
        elif path.is_file():
            out.append(source)
        else:
            raise DataError(f"no such file or directory: {source} (an ir-datasets id needs the prefix {IRDS_PREFIX})")
    return out


def read_source(source: str, text_field: str | None = None) -> Iterator[Document | dict]:
    """Documents of one source, or ready-made example dicts for a release-format JSONL."""
    if source.startswith(IRDS_PREFIX):
        yield from _irds_documents(source[len(IRDS_PREFIX):])
        return
    path = Path(source)
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
                yield Document(name, [_text_of(name, record, text_field)])


# ---------------------------------------------------------------- chunking

def _word_start(text: str, offsets: Sequence[tuple[int, int]], i: int) -> bool:
    start = offsets[i][0]
    return start == 0 or text[start - 1].isspace() or text[start].isspace()


def chunk_paragraphs(paragraphs: Iterable[str], tokenizer, chunk_tokens: int) -> Iterator[tuple[str, int]]:
    """Consecutive chunks of about ``chunk_tokens`` tokens: ``(text, tokens)`` pairs, the last one possibly short.

    Cuts fall on word boundaries (a word longer than the budget is cut inside), so a chunk
    never ends mid-word; paragraphs inside a chunk are joined by newlines. Each paragraph is
    tokenised once with offsets, so cutting costs no re-tokenisation.
    """
    if chunk_tokens < 1:
        raise ValueError(f"chunk_tokens must be positive, got {chunk_tokens}")
    parts: list[str] = []
    count = 0
    for paragraph in paragraphs:
        paragraph = " ".join(paragraph.split())
        if not paragraph:
            continue
        offsets = tokenizer(paragraph, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        start = 0
        while len(offsets) - start + count >= chunk_tokens and len(offsets) > start:
            cut = start + chunk_tokens - count
            if cut < len(offsets):
                lowest = start if parts else start + 1
                boundary = next((i for i in range(cut, lowest - 1, -1) if _word_start(paragraph, offsets, i)), cut)
                cut = boundary
            if cut > start:
                parts.append(paragraph[offsets[start][0]:offsets[cut - 1][1]].strip())
            yield "\n".join(parts), count + cut - start
            parts, count, start = [], 0, cut
        if start < len(offsets):
            parts.append(paragraph[offsets[start][0]:].strip())
            count += len(offsets) - start
    if parts:
        yield "\n".join(parts), count


def document_examples(doc: Document, tokenizer, chunk_tokens: int, min_chunk_tokens: int,
                      stats: DataStats) -> Iterator[dict]:
    """EBAE/EBAR examples of one document: each chunk paired with the next; a short last chunk is dropped."""
    stats.texts += 1
    has_text = False

    def paragraphs():
        nonlocal has_text
        for paragraph in doc.paragraphs:
            has_text = has_text or bool(paragraph.strip())
            yield paragraph

    previous = None
    chunks = 0
    for text, tokens in chunk_paragraphs(paragraphs(), tokenizer, chunk_tokens):
        if tokens < min_chunk_tokens:
            # Only the last chunk can be short; it would make a poor EBAR target.
            stats.short_tails += chunks > 0
            break
        chunks += 1
        if previous is not None:
            stats.examples += 1
            yield {"input": previous, "output_summarize": previous, "output_predict": text}
        previous = text
    if chunks < 2:
        stats.dropped["too short" if has_text else "empty"] += 1


@dataclass(frozen=True)
class ChunkConfig:
    chunk_tokens: int = 256
    min_chunk_tokens: int = 32
    text_field: str | None = None


def iter_examples(sources: Sequence[str], tokenizer, config: ChunkConfig, stats: DataStats | None = None) -> Iterator[dict]:
    """Release-format examples from all sources, in source order, streamed."""
    stats = stats if stats is not None else DataStats()
    for source in expand_sources(sources):
        for item in read_source(source, config.text_field):
            if isinstance(item, dict):
                stats.ready_made += 1
                stats.examples += 1
                yield item
            else:
                yield from document_examples(item, tokenizer, config.chunk_tokens, config.min_chunk_tokens, stats)


def shuffled(items: Iterable[dict], buffer_size: int, seed: int) -> Iterator[dict]:
    """Seeded buffer shuffle: memory bounded by ``buffer_size``; 0 or 1 keeps the order."""
    if buffer_size <= 1:
        yield from items
        return
    rng = random.Random(seed)
    buffer: list[dict] = []
    for item in items:
        if len(buffer) < buffer_size:
            buffer.append(item)
            continue
        i = rng.randrange(buffer_size)
        yield buffer[i]
        buffer[i] = item
    rng.shuffle(buffer)
    yield from buffer


# ---------------------------------------------------------------- prepared examples on disk

class JsonlExamples:
    """Map-style view of a release-format JSONL: only line offsets live in memory (8 bytes per example)."""

    def __init__(self, path: str | Path, limit: int = 0):
        self.path = Path(path)
        offsets = []
        try:
            with open(self.path, "rb") as handle:
                position = 0
                for line in handle:
                    if line.strip():
                        offsets.append(position)
                    position += len(line)
        except OSError as error:
            raise DataError(f"cannot read {self.path}: {error}") from error
        self._offsets = offsets[:limit] if limit > 0 else offsets
        self._handle = None
        self._pid = None

    def __len__(self) -> int:
        return len(self._offsets)

    def __getitem__(self, index: int) -> dict:
        if self._handle is None or self._pid != os.getpid():  # one handle per DataLoader worker
            self._handle, self._pid = open(self.path, "rb"), os.getpid()
        self._handle.seek(self._offsets[index])
        line = self._handle.readline()
        name = f"{self.path} (example {index})"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"{name}: not valid JSON ({error.msg})") from None
        return ready_example(name, record)

    def __getstate__(self):
        return {**self.__dict__, "_handle": None, "_pid": None}


# ---------------------------------------------------------------- batches

@dataclass(frozen=True)
class ReleaseWindows:
    """The release's ``pretrain/data.py``: ``cutoff_len`` caps the whole row, template included.

    The text keeps ``cutoff_len`` minus the template's tokens (BOS, ``"``, both suffixes: 39 on
    LLaMA-2); a target is tokenized as the release does, with the tokenizer's special tokens
    (LLaMA-2: BOS), and cut at ``cutoff_len``. So an EBAE target, stop words removed first, can
    reach beyond the visible text. Rows are padded to a multiple of 8, as the release's collator.
    """

    cutoff_len: int = 128
    pad_to_multiple_of = 8

    def text_budget(self, overhead: int) -> int:
        budget = self.cutoff_len - overhead
        if budget < 1:
            raise ValueError(f"cutoff_len {self.cutoff_len} leaves no room for text: the template alone is "
                             f"{overhead} tokens; raise --cutoff_len")
        return budget

    def target_ids(self, tokenizer, texts: Sequence[str]) -> list[list[int]]:
        return tokenizer(list(texts), truncation=True, max_length=self.cutoff_len)["input_ids"]

    def describe(self) -> str:
        return f"release windows: rows of {self.cutoff_len} tokens, template included"


@dataclass(frozen=True)
class PaperWindows:
    """The paper's wording: the model reads ``max_text_tokens`` of text (template on top) and a
    target is the first ``max_text_tokens`` tokens of its text, tokenized alone."""

    max_text_tokens: int = 256
    pad_to_multiple_of = None

    def text_budget(self, overhead: int) -> int:
        if self.max_text_tokens < 1:
            raise ValueError(f"max_text_tokens must be >= 1, got {self.max_text_tokens}")
        return self.max_text_tokens

    def target_ids(self, tokenizer, texts: Sequence[str]) -> list[list[int]]:
        return [ids[:self.max_text_tokens] for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]

    def describe(self) -> str:
        return f"paper windows: text cut at {self.max_text_tokens} tokens"


class PretrainCollator:
    """Release-format examples -> a left-padded joint batch for ``adaptation.objective``.

    Row = prefix + text (cut to the windows' text budget) + summarize suffix + predict suffix;
    LM labels on the text tokens only. Bag-of-words targets are the distinct ids of the target
    text (stop words removed first if asked, then tokenized and cut as ``windows`` says), without
    the tokenizer's special ids (the release drops ids <= 2: unk, bos, eos for LLaMA).
    """

    def __init__(self, tokenizer, windows: ReleaseWindows | PaperWindows = ReleaseWindows(),
                 remove_stopwords: bool = True):
        from pyserini_llara.template import NUM_PLACEHOLDERS, Template

        self.tokenizer = tokenizer
        self.template = Template.from_tokenizer(tokenizer)
        self.summarize_suffix = list(self.template.suffix_ids["passage"])
        self.predict_suffix = list(self.template.suffix_ids["query"])
        if (tuple(self.summarize_suffix[-NUM_PLACEHOLDERS:]) != self.template.summarize_ids
                or tuple(self.predict_suffix[-NUM_PLACEHOLDERS:]) != self.template.predict_ids):
            raise ValueError("the LLaRA suffixes must end with their 8 placeholder tokens")
        self.windows = windows
        self.text_tokens = windows.text_budget(len(self.template.prefix_ids) + self.n_summarize + self.n_predict)
        self.remove_stopwords = remove_stopwords
        self.drop_ids = set(tokenizer.all_special_ids) | {tokenizer.pad_token_id}

    @property
    def n_summarize(self) -> int:
        return len(self.summarize_suffix)

    @property
    def n_predict(self) -> int:
        return len(self.predict_suffix)

    def targets(self, texts: Sequence[str]) -> list[list[int]]:
        from .stopwords import remove_stopwords

        if self.remove_stopwords:
            texts = [remove_stopwords(t) for t in texts]
        return [[i for i in dict.fromkeys(ids) if i not in self.drop_ids]
                for ids in self.windows.target_ids(self.tokenizer, texts)]

    def __call__(self, examples: Sequence[dict]) -> dict:
        import torch

        from .objective import IGNORE_INDEX, joint_position_ids

        texts = self.tokenizer([e["input"] for e in examples], add_special_tokens=False)["input_ids"]
        texts = [ids[:self.text_tokens] for ids in texts]
        rows = [[*self.template.prefix_ids, *ids, *self.summarize_suffix, *self.predict_suffix] for ids in texts]
        length = max(map(len, rows))
        if self.windows.pad_to_multiple_of:
            length = -(-length // self.windows.pad_to_multiple_of) * self.windows.pad_to_multiple_of
        input_ids = torch.full((len(rows), length), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), length), dtype=torch.long)
        labels = torch.full((len(rows), length), IGNORE_INDEX, dtype=torch.long)
        suffixes = self.n_summarize + self.n_predict
        for row, (seq, text) in enumerate(zip(rows, texts)):
            input_ids[row, length - len(seq):] = torch.tensor(seq)
            mask[row, length - len(seq):] = 1
            if text:
                labels[row, length - suffixes - len(text):length - suffixes] = torch.tensor(text)
        batch = {"input_ids": input_ids, "attention_mask": mask, "labels": labels,
                 "position_ids": joint_position_ids(mask, self.n_summarize, self.n_predict),
                 "num_tokens": int(mask.sum())}
        for name, key in (("ebae", "output_summarize"), ("ebar", "output_predict")):
            ids = self.targets([e[key] for e in examples])
            width = max(1, max(map(len, ids)))
            batch[f"{name}_ids"] = torch.zeros((len(ids), width), dtype=torch.long)
            batch[f"{name}_mask"] = torch.zeros((len(ids), width), dtype=torch.bool)
            for row, values in enumerate(ids):
                batch[f"{name}_ids"][row, :len(values)] = torch.tensor(values, dtype=torch.long)
                batch[f"{name}_mask"][row, :len(values)] = True
        return batch
