"""The records pyserini-llara keeps beside what it makes: the ``meta.json`` of an index and of encoded queries.

The index builder and the query encoder save them; resume and merge, the checks before a
Pyserini search and the reproduction harness read them. They live apart from all of these, so
that a reader needs neither the builder nor a command-line module.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, TypeVar

from .atomic import write_text

META_FILE = "meta.json"

Record = TypeVar("Record", bound="JsonRecord")


class RecordError(ValueError):
    """A ``meta.json`` that cannot be read, or that pyserini-llara did not write."""


class JsonRecord:
    """``meta.json`` for a frozen dataclass: one JSON object keyed by its fields, written atomically."""

    describes = "pyserini-llara output"  # what a directory with this record is, for error messages

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def save(self, directory: str | os.PathLike) -> None:
        write_text(Path(directory) / META_FILE, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls: type[Record], directory: str | os.PathLike) -> Record:
        path = Path(directory) / META_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise RecordError(f"cannot read {path} ({error}): {directory} is not a {cls.describes}") from None
        if not isinstance(data, dict):
            raise RecordError(f"{path} holds no JSON object: it was not written by pyserini-llara")
        fields = dataclasses.fields(cls)
        missing = [f.name for f in fields if f.default is dataclasses.MISSING and f.name not in data]
        if missing:
            raise RecordError(f"{path} lacks {', '.join(missing)}: it was not written by pyserini-llara")
        return cls(**{f.name: data[f.name] for f in fields if f.name in data})

    @classmethod
    def find(cls: type[Record], directory: str | os.PathLike | None) -> Record | None:
        """The record in ``directory`` where pyserini-llara wrote one; None otherwise (e.g. Pyserini's own outputs)."""
        if directory is None or not (Path(directory) / META_FILE).is_file():
            return None
        try:
            return cls.load(directory)
        except RecordError:
            return None


# Settings that change the vectors: resumed chunks and merged shards must agree on them
# (the model by its fingerprint, however its path is spelt; dtype as resolved for the device).
ENCODING_KEYS = ("model_fingerprint", "add_tokens", "max_length", "dimension", "dtype")
# What makes two builds cut the same corpus into the same chunks and shards.
LAYOUT_KEYS = ("shard_id", "shard_num", "chunk_size")
CORPUS_KEYS = ("corpus_count", "corpus_fingerprint")
MERGE_KEYS = ENCODING_KEYS + CORPUS_KEYS + ("shard_num", "chunk_size")


@dataclass(frozen=True)
class IndexMeta(JsonRecord):
    """An index (or a build in progress); ``start``/``end`` are the shard's document ordinals in the corpus."""

    describes = "pyserini-llara index"

    model: str
    lora: str | None
    add_tokens: bool
    max_length: int
    dimension: int
    dtype: str
    index_type: str
    nprobe: int | None
    corpus: str
    corpus_count: int
    shard_id: int
    shard_num: int
    start: int
    end: int
    chunk_size: int
    complete: bool = False
    model_fingerprint: str | None = None  # modeling.model_fingerprint: the model whatever its spelling
    corpus_fingerprint: str | None = None  # of the whole corpus's ids and texts, chunk by chunk
    files: dict | None = None  # proof.prove of index and docid: what a complete record vouches for
    raw_index: str | None = None  # index.raw: the Lucene index storing the corpus's raw documents

    @property
    def count(self) -> int:
        return self.end - self.start

    @property
    def model_label(self) -> str:
        """The model as messages name it: ``MODEL`` or ``MODEL + LoRA ADAPTER``."""
        return self.model + (f" + LoRA {self.lora}" if self.lora else "")

    def to_dict(self) -> dict:
        return {**super().to_dict(), "count": self.count}

    def differences(self, other: IndexMeta, keys: Sequence[str]) -> list[str]:
        """``key A vs B`` for each key on which the two differ; the model is shown by name and fingerprint."""
        out = []
        for key in keys:
            x, y = getattr(self, key), getattr(other, key)
            if x == y:
                continue
            if key == "model_fingerprint":
                out.append(f"model {self.model_label} vs {other.model_label} "
                           f"(other weights or tokenizer: fingerprint {x} vs {y})")
            else:
                out.append(f"{key} {x!r} vs {y!r}" + (" (not recorded by an older version)" if None in (x, y) else ""))
        return out


@dataclass(frozen=True)
class EncodedQueriesMeta(JsonRecord):
    """Queries encoded by ``pyserini_llara.queries``, beside their ``embedding.pkl``."""

    describes = "pyserini-llara encoded-queries directory"

    model: str
    lora: str | None
    add_tokens: bool
    model_fingerprint: str
    dimension: int
    dtype: str
    max_length: int
    prompt: str
    topics: str
    topics_format: str
    count: int
    files: dict | None = None  # proof.prove of embedding.pkl, hashed whole: checked before Pyserini unpickles it
