"""The release's EBAE/EBAR example, ``{"input", "output_summarize", "output_predict"}``, and a file of them.

``input`` is the text the model reads, ``output_summarize`` the EBAE target (the text itself) and
``output_predict`` the EBAR target (the text that follows it). A release-format JSONL (the
release's own data, or what ``adaptation.prepare`` writes) is read as a map-style dataset.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pyserini_llara.corpus import check_encodable

READY_KEYS = ("input", "output_summarize", "output_predict")


class DataError(ValueError):
    """A source cannot be read or yields nothing usable; the message names it."""


def ready_example(name: str, record: dict) -> dict:
    """Check a release-format record and keep only its three fields."""
    bad = [k for k in READY_KEYS if not isinstance(record.get(k), str)]
    if bad:
        raise DataError(f"{name}: ready-made example lacks string field(s) {', '.join(bad)} "
                        f"(has {', '.join(sorted(record)) or 'none'})")
    for key in READY_KEYS:
        check_encodable(record[key], f"field {key!r}", name, DataError)
    return {k: record[k] for k in READY_KEYS}


def is_ready_made(path: str) -> bool:
    """A single JSONL whose first record has the release's three fields is used without re-chunking.

    Anything else (also a file that is not UTF-8 or not JSON objects) is read as raw text,
    whose reader names the bad line.
    """
    if not path.endswith(".jsonl") or not Path(path).is_file():
        return False
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    record = json.loads(line)
                    return isinstance(record, dict) and all(k in record for k in READY_KEYS)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return False
    return False


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
