"""Files that appear whole or not at all.

Everything a rerun trusts (an index's files and chunks, ``meta.json`` records, encoded queries,
prepared training examples, training checkpoints) is first written to ``NAME.tmp`` beside its
place, flushed to disk and then renamed onto ``NAME``: a crash leaves the old file or the new
one, never a part, and at worst a ``*.tmp`` that the next attempt overwrites.
"""

from __future__ import annotations

import itertools
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, Mapping

STAGED = ".tmp"


def staged(path: str | os.PathLike) -> Path:
    """Where ``path`` is written before it is renamed into place."""
    path = Path(path)
    return path.with_name(path.name + STAGED)


def sync(handle) -> None:
    """Flush ``handle`` to the disk, so that a rename after it never exposes a file the disk lacks."""
    handle.flush()
    os.fsync(handle.fileno())


@contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "w") -> Iterator:
    """A handle on ``PATH.tmp`` that becomes ``path`` when the block ends without an error."""
    path = Path(path)
    encoding = None if "b" in mode else "utf-8"
    with open(staged(path), mode, encoding=encoding) as handle:
        yield handle
        sync(handle)
    os.replace(staged(path), path)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_file(path) as out:
        out.write(text)


def write_jsonl(path: str | os.PathLike, records: Iterable[Mapping], limit: int = 0) -> int:
    """Write ``records`` as JSON lines (the first ``limit``; 0: all), creating parent directories; returns how many."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with atomic_file(path) as out:
        for record in itertools.islice(records, limit or None):
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    return count
