"""Fine-tuning data: the training file of query groups, its validation, and the groups as a dataset.

A training file holds one JSON object per line (the FlagEmbedding / Tevatron layout)::

    {"query": "what is a llama", "pos": [...], "neg": [...]}

Each item of ``pos`` / ``neg`` is a passage text (a string), a titled passage
(``{"title": ..., "text": ...}``, joined as the release does: ``title + " " + text``, ``-`` for
an empty title), or a corpus reference (``{"docid": ...}``, looked up in the corpus passed
alongside). ``python -m adaptation.mine`` writes this format; ``collators.ContrastiveCollator``
makes the batches.
"""

from __future__ import annotations

import json
import math
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from torch.utils.data import Dataset

from pyserini_llara.corpus import check_encodable, text_lines
from pyserini_llara.template import join_title


class TrainDataError(ValueError):
    """A training file that cannot be used as it is; the message names the file, line and fix."""


@dataclass(frozen=True)
class TrainExample:
    query: str
    positives: tuple[str, ...]
    negatives: tuple[str, ...]


def passage_text(item, where: str, corpus: Mapping[str, str] | None = None) -> str:
    """One ``pos`` / ``neg`` item -> the passage text the model reads."""
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


def parse_example(record, where: str, *, require_negatives: bool = True,
                  corpus: Mapping[str, str] | None = None) -> TrainExample:
    if not isinstance(record, dict):
        raise TrainDataError(f"{where}: expected a JSON object, got {type(record).__name__}")
    query = record.get("query")
    if not isinstance(query, str) or not query.strip():
        raise TrainDataError(f"{where}: missing or empty `query` string")
    lists = {}
    for field in ("pos", "neg"):
        items = record.get(field, [])
        if not isinstance(items, list):
            raise TrainDataError(f"{where}: `{field}` must be a list, got {type(items).__name__}")
        lists[field] = tuple(passage_text(item, f"{where}, {field}[{i}]", corpus) for i, item in enumerate(items))
    if not lists["pos"]:
        raise TrainDataError(f"{where}: query {query!r} has no positive passage (`pos` is missing or empty); "
                             "drop the line or add its relevant passage")
    if require_negatives and not lists["neg"]:
        raise TrainDataError(f"{where}: query {query!r} has no negative passage (`neg` is missing or empty); "
                             "mine some with `python -m adaptation.mine`, or train with group size 1 "
                             "(in-batch negatives only)")
    check_encodable(query, "the query", where, TrainDataError)
    for field, texts in lists.items():
        for i, text in enumerate(texts):
            check_encodable(text, f"passage {field}[{i}]", where, TrainDataError)
    return TrainExample(query, lists["pos"], lists["neg"])


def read_examples(path: str | os.PathLike, *, require_negatives: bool = True,
                  corpus: Mapping[str, str] | None = None) -> list[TrainExample]:
    """Read and check a whole training file: a bad line fails before any training starts."""
    path = Path(path)
    if not path.is_file():
        raise TrainDataError(f"training file {path} does not exist")
    examples = []
    for number, line in text_lines(path, TrainDataError):
        if not line.strip():
            continue
        where = f"{path}, line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise TrainDataError(f"{where}: malformed JSON ({error.msg} at column {error.colno})") from None
        examples.append(parse_example(record, where, require_negatives=require_negatives, corpus=corpus))
    if not examples:
        raise TrainDataError(f"training file {path} holds no examples")
    return examples


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
