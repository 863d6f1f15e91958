"""An index directory as Pyserini reads it, and what one that already exists lets a build do.

Pyserini reads ``index`` (``faiss.write_index``) and ``docid`` (one id per line, in vector
order); ``meta.json`` records how they were made, and ``chunks/`` holds a build in progress.
A directory is inspected without changing anything, and a build or merge may replace only
these entries: a directory that holds anything else is never emptied.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ..atomic import STAGED
from ..records import META_FILE, IndexMeta
from .config import IndexBuildError

INDEX_FILE, DOCID_FILE, CHUNK_DIR = "index", "docid", "chunks"


@dataclass(frozen=True)
class Found:
    """What an output directory holds, read without changing anything."""

    entries: list[str]  # everything but staging leftovers
    complete: IndexMeta | None  # meta.json: a finished index
    building: IndexMeta | None  # chunks/meta.json: a build in progress

    @property
    def finished(self) -> bool:
        """A complete index, and no other build under way (a leftover of its own build may remain)."""
        return self.complete is not None and (
            self.building is None or self.building == dataclasses.replace(self.complete, complete=False))


def inspect_output(output: Path) -> Found:
    if output.exists() and not output.is_dir():
        raise IndexBuildError(f"{output} exists and is not a directory")
    entries = sorted(p.name for p in output.iterdir() if not p.name.endswith(STAGED)) if output.exists() else []
    # A meta.json that is not ours counts as none: --overwrite may replace it, --resume finds nothing to resume.
    complete, building = IndexMeta.find(output), IndexMeta.find(output / CHUNK_DIR)
    return Found(entries, complete if complete is not None and complete.complete else None, building)


def refuse_existing(output: Path, found: Found, resume: bool, overwrite: bool) -> None:
    if found.entries and not (resume or overwrite):
        raise IndexBuildError(f"{output} already exists and is not empty; pass --resume to continue an "
                              "interrupted build, --overwrite to replace it, or choose another --output")


def refuse_foreign(output: Path, found: Found) -> None:
    """Before replacing an index: never delete what is not one."""
    foreign = [e for e in found.entries if e not in (INDEX_FILE, DOCID_FILE, META_FILE, CHUNK_DIR)]
    if foreign:
        raise IndexBuildError(f"refusing to replace the index in {output}: it holds files that are not part of "
                              f"an index ({', '.join(foreign[:5])}); choose another --output")
