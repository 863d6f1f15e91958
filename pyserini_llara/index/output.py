"""An index directory as Pyserini reads it, and what one that already exists lets a build do.

Pyserini reads ``index`` (``faiss.write_index``) and ``docid`` (one id per line, in vector
order); ``meta.json`` records how they were made and proves them by content, and ``chunks/``
holds a build in progress (its own ``meta.json`` names its chunks). A directory is inspected
without changing anything, and a build, a merge or a clean-up replaces or removes only the files
that one of these records lists: a user's own ``chunks/`` or ``index`` is never touched.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ..atomic import STAGED
from ..proof import disproved
from ..records import META_FILE, EncodedQueriesMeta, IndexMeta
from .config import IndexBuildError

INDEX_FILE, DOCID_FILE, CHUNK_DIR = "index", "docid", "chunks"
CHUNK_NAME = "{:06d}.npz"  # chunk number -> file name in CHUNK_DIR


def chunk_names(meta: IndexMeta) -> list[str]:
    """The chunk files a build in progress writes, as its ``chunks/meta.json`` lists them."""
    return [CHUNK_NAME.format(n) for n in range(-(-meta.count // meta.chunk_size))]


def index_files(meta: IndexMeta) -> list[str]:
    """The files an index record vouches for (a record of an older version proves none, but names both)."""
    return list(meta.files) if meta.files is not None else [INDEX_FILE, DOCID_FILE]


def index_damage(directory: Path, meta: IndexMeta) -> list[str]:
    """Why the files of a complete index no longer match its record; empty when they do."""
    if meta.files is None:
        return [f"{name} is missing" for name in index_files(meta) if not (directory / name).is_file()]
    return disproved(directory, meta.files)


@dataclass(frozen=True)
class Found:
    """What an output directory holds, read without changing anything."""

    entries: list[str]  # everything but staging leftovers
    record: IndexMeta | None  # meta.json when pyserini-llara wrote it, complete or not
    damage: list[str]  # why a record that says complete does not hold: its files differ
    building: IndexMeta | None  # chunks/meta.json: a build in progress
    ours: frozenset[str]  # the entries these records list

    @property
    def complete(self) -> IndexMeta | None:
        """A finished index whose files are the ones its record proves."""
        return self.record if self.record is not None and self.record.complete and not self.damage else None

    @property
    def finished(self) -> bool:
        """A complete index, and no other build under way (a leftover of its own build may remain)."""
        return self.complete is not None and (
            self.building is None
            or self.building == dataclasses.replace(self.complete, complete=False, files=None, raw_index=None))


def _chunks_ours(chunk_dir: Path, building: IndexMeta | None) -> bool:
    """``chunks/`` is a build in progress of ours only when its record lists everything in it."""
    if building is None:
        return False
    listed = {META_FILE, *chunk_names(building)}
    return all(p.name.removesuffix(STAGED) in listed for p in chunk_dir.iterdir())


def inspect_output(output: Path) -> Found:
    if output.exists() and not output.is_dir():
        raise IndexBuildError(f"{output} exists and is not a directory")
    entries = sorted(p.name for p in output.iterdir() if not p.name.endswith(STAGED)) if output.exists() else []
    if EncodedQueriesMeta.find(output) is not None:
        raise IndexBuildError(f"{output} holds encoded queries (pyserini_llara.queries), not an index; "
                              "choose another --output")
    # A meta.json that is not ours counts as none: it lists nothing, so nothing it names is replaced.
    record, building = IndexMeta.find(output), IndexMeta.find(output / CHUNK_DIR)
    ours = set()
    if record is not None:
        ours |= {META_FILE, *index_files(record)}
    if (output / CHUNK_DIR).is_dir() and _chunks_ours(output / CHUNK_DIR, building):
        ours.add(CHUNK_DIR)
    damage = index_damage(output, record) if record is not None and record.complete else []
    return Found(entries, record, damage, building, frozenset(ours))


def refuse_existing(output: Path, found: Found, resume: bool, overwrite: bool) -> None:
    if found.entries and not (resume or overwrite):
        raise IndexBuildError(f"{output} already exists and is not empty; pass --resume to continue an "
                              "interrupted build, --overwrite to replace it, or choose another --output")


def refuse_foreign(output: Path, found: Found) -> None:
    """Before replacing an index: never delete or overwrite what no record of ours lists."""
    foreign = [e for e in found.entries if e not in found.ours]
    if foreign:
        raise IndexBuildError(f"refusing to replace the index in {output}: it holds files that no pyserini-llara "
                              f"record lists ({', '.join(foreign[:5])}); move them or choose another --output")


def _remove(directory: Path, names: list[str]) -> None:
    for name in names:
        for path in (directory / name, directory / (name + STAGED)):
            if path.is_file():
                path.unlink()
    if directory.is_dir() and not any(directory.iterdir()):
        directory.rmdir()


def remove_build_in_progress(output: Path) -> None:
    """Remove ``chunks/``'s files as its record lists them (record last); anything else in it stays."""
    building = IndexMeta.find(output / CHUNK_DIR)
    if building is not None:
        _remove(output / CHUNK_DIR, chunk_names(building) + [META_FILE])


def remove_index(output: Path) -> None:
    """Remove an index directory's files as its records list them, then the directory if nothing else is left."""
    remove_build_in_progress(output)
    record = IndexMeta.find(output)
    if record is not None:
        _remove(output, index_files(record) + [META_FILE])
