"""Fine-tuning data: query groups in the layouts people share, their validation, and the groups as a dataset.

A training source (a JSONL file or a local Hugging Face dataset: ``records``) holds one record per
query, in one of three layouts, detected per source from its first record:

- FlagEmbedding: ``{"query": ..., "pos": [...], "neg": [...]}`` (what ``python -m adaptation.mine`` writes);
- Tevatron: ``{"query": ..., "positive_passages": [...], "negative_passages": [...]}``;
- Tevatron docids: ``{"query_text": ..., "positive_document_ids": [...], "negative_document_ids": [...]}``,
  every passage looked up in the corpus passed alongside.

A passage is a text (a string), a titled passage (``{"title": ..., "text": ...}``, Tevatron's
``{docid, title, text}`` among them, joined as the release does: ``title + " " + text``, ``-`` for
an empty title), or a corpus reference (``{"docid": ...}``, or a bare docid in the docids layout).
``collators.ContrastiveCollator`` makes the batches.
"""

from __future__ import annotations

import math
import os
import random
from dataclasses import dataclass
from typing import Mapping, Sequence

from torch.utils.data import Dataset

from pyserini_llara.corpus import check_encodable
from pyserini_llara.template import join_title

from .records import TrainDataError, is_dataset, read_records


@dataclass(frozen=True)
class Layout:
    """The field names of one training-data layout; ``by_docid``: its passages are bare docids."""

    name: str
    query: str
    positives: str
    negatives: str
    by_docid: bool = False

    def describe(self) -> str:
        return f"{self.name} ({self.query}, {self.positives}, {self.negatives})"


LAYOUTS = (Layout("FlagEmbedding", "query", "pos", "neg"),
           Layout("Tevatron", "query", "positive_passages", "negative_passages"),
           Layout("Tevatron docids", "query_text", "positive_document_ids", "negative_document_ids", by_docid=True))


def detect_layout(record, where: str) -> Layout:
    """The layout whose passage fields ``record`` has; an error naming the accepted layouts otherwise."""
    if isinstance(record, dict):
        for layout in LAYOUTS:
            if layout.positives in record or layout.negatives in record:
                return layout
    keys = ", ".join(sorted(record)) if isinstance(record, dict) else type(record).__name__
    raise TrainDataError(f"{where}: no known layout (found {keys or 'an empty record'}); training data must be "
                         f"{'; or '.join(layout.describe() for layout in LAYOUTS)}")


@dataclass(frozen=True)
class TrainExample:
    query: str
    positives: tuple[str, ...]
    negatives: tuple[str, ...]


def passage_text(item, where: str, corpus: Mapping[str, str] | None = None) -> str:
    """One passage item -> the passage text the model reads."""
    if isinstance(item, str):
        return item
    if isinstance(item, dict):
        if isinstance(item.get("text"), str):
            return join_title(item.get("title"), item["text"]) if "title" in item else item["text"]
        if "docid" in item:
            docid = str(item["docid"])
            if corpus is None:
                raise TrainDataError(f"{where}: passage {{'docid': {docid!r}}} has no text; pass the corpus "
                                     "it comes from (--corpus) or write the text into the file")
            if docid not in corpus:
                raise TrainDataError(f"{where}: docid {docid!r} is not in the corpus")
            return corpus[docid]
    raise TrainDataError(f"{where}: a passage must be a string, {{'title', 'text'}} or {{'docid'}}, got {item!r}")


def parse_example(record, where: str, *, layout: Layout = LAYOUTS[0], require_negatives: bool = True,
                  corpus: Mapping[str, str] | None = None) -> TrainExample:
    if not isinstance(record, dict):
        raise TrainDataError(f"{where}: expected a JSON object, got {type(record).__name__}")
    query = record.get(layout.query)
    if not isinstance(query, str) or not query.strip():
        raise TrainDataError(f"{where}: missing or empty `{layout.query}` string")
    lists = {}
    for kind, field in (("pos", layout.positives), ("neg", layout.negatives)):
        items = record.get(field) or []
        if not isinstance(items, list):
            raise TrainDataError(f"{where}: `{field}` must be a list, got {type(items).__name__}")
        if layout.by_docid:
            items = [{"docid": item} if isinstance(item, (str, int)) else item for item in items]
        lists[kind] = tuple(passage_text(item, f"{where}, {field}[{i}]", corpus) for i, item in enumerate(items))
    if not lists["pos"]:
        raise TrainDataError(f"{where}: query {query!r} has no positive passage (`{layout.positives}` is missing or "
                             "empty); drop the record or add its relevant passage")
    if require_negatives and not lists["neg"]:
        raise TrainDataError(f"{where}: query {query!r} has no negative passage (`{layout.negatives}` is missing or "
                             "empty); mine some with `python -m adaptation.mine`, or train with group size 1 "
                             "(in-batch negatives only)")
    check_encodable(query, "the query", where, TrainDataError)
    for kind, texts in lists.items():
        for i, text in enumerate(texts):
            check_encodable(text, f"passage {kind}[{i}]", where, TrainDataError)
    return TrainExample(query, lists["pos"], lists["neg"])


def read_examples(path: str | os.PathLike, *, require_negatives: bool = True,
                  corpus: Mapping[str, str] | None = None) -> list[TrainExample]:
    """Read and check a whole training source (JSONL or a local Hugging Face dataset): a bad record fails before
    any training starts."""
    examples = []
    layout = None
    for where, record in read_records(path):
        layout = layout or detect_layout(record, where)
        examples.append(parse_example(record, where, layout=layout, require_negatives=require_negatives,
                                      corpus=corpus))
    if not examples:
        raise TrainDataError(f"training data {path} holds no examples")
    return examples


def read_corpus_texts(source: str) -> dict[str, str]:
    """docid -> passage text of a ``--corpus``: a local Hugging Face dataset of ``{docid, title, text}`` (Tevatron's
    corpora), or what ``pyserini_llara.corpus.read_corpus`` reads (Pyserini JSONL, ir-datasets ids)."""
    if not is_dataset(source):
        from pyserini_llara.corpus import read_corpus

        return {doc.docid: doc.text for doc in read_corpus(source)}
    texts = {}
    for where, record in read_records(source):
        if not isinstance(record, dict) or "docid" not in record or not isinstance(record.get("text"), str):
            raise TrainDataError(f"{where}: a corpus record needs `docid` and `text` (and may have `title`)")
        texts[str(record["docid"])] = passage_text(record, where)
    return texts


def sample_group(example: TrainExample, group_size: int, rng: random.Random) -> list[str]:
    """One positive, then ``group_size - 1`` negatives (repeated when the list is shorter), as the release does."""
    negatives = list(example.negatives)
    need = group_size - 1
    if need and len(negatives) < need:
        negatives = negatives * math.ceil(need / len(negatives))
    return [rng.choice(example.positives), *rng.sample(negatives, need)]


class ContrastiveDataset(Dataset):
    """Map-style dataset of ``(query, [positive, negative, ...])``.

    The group drawn for an index depends only on ``seed`` and the index, so a resumed run
    sees exactly the groups an uninterrupted one would.
    """

    def __init__(self, examples: Sequence[TrainExample], group_size: int, seed: int = 42):
        if group_size < 1:
            raise ValueError(f"group size must be at least 1 (the positive), got {group_size}")
        if group_size > 1:
            empty = next((i for i, e in enumerate(examples) if not e.negatives), None)
            if empty is not None:
                raise TrainDataError(f"example {empty} ({examples[empty].query!r}) has no negatives "
                                     f"but the group size {group_size} needs {group_size - 1}")
        self.examples = examples
        self.group_size = group_size
        self.seed = seed

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> tuple[str, list[str]]:
        example = self.examples[index]
        rng = random.Random(f"{self.seed}:{index}")
        return example.query, sample_group(example, self.group_size, rng)
