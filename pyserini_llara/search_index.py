"""An index as a dense search reads it: one index directory, or the shards of one build searched in turn
without merging them; and faiss's search-time settings (IVF's ``nprobe``, HNSW's ``efSearch``).

A comma-separated list of shard directories (``--shard-id i --shard-num n`` builds) is read as one
``faiss.IndexShards``: each shard is searched in turn and the top-k of all are merged, with ids offset
by shard, so the run equals that of the merged Flat index. The shards are checked as a merge checks
them (complete, proved by their records, all of one build, each shard once) and memory-mapped, so
that the search needs no more memory than the pages it touches.
"""

from __future__ import annotations

import os
from pathlib import Path

from .records import IndexMeta, RecordError

SHARD_SEPARATOR = ","


class SearchIndexError(ValueError):
    """An index, or a search-time setting, a search cannot use as asked; the message says what to change."""


def shard_dirs(index) -> list[Path] | None:
    """The shard directories of a comma-separated index argument; None for anything else (one directory,
    a prebuilt index name, an index object)."""
    if not isinstance(index, (str, os.PathLike)) or SHARD_SEPARATOR not in str(index):
        return None
    return [Path(part) for part in str(index).split(SHARD_SEPARATOR) if part]


def recorded_meta(index) -> IndexMeta | None:
    """The record of an index directory, or of a shard list (its first shard's: shards of one build
    agree on the model, dimension and precision)."""
    dirs = shard_dirs(index)
    return IndexMeta.find(dirs[0] if dirs else index) if isinstance(index, (str, os.PathLike)) else None


def read_shards(dirs: list[Path]) -> tuple[object, list[str]]:
    """The shards as one faiss index searched shard by shard, and their docids in shard order."""
    import faiss

    from .index.config import IndexBuildError
    from .index.merge import complete_shards
    from .index.output import DOCID_FILE, INDEX_FILE

    try:
        shards = complete_shards(dirs)
    except (IndexBuildError, RecordError) as error:
        raise SearchIndexError(f"cannot search the shards {SHARD_SEPARATOR.join(map(str, dirs))}: {error}") from None
    index = faiss.IndexShards(shards[0][0].dimension, False, True)  # not threaded: in turn; successive ids
    docids: list[str] = []
    for _, directory in shards:
        index.add_shard(faiss.read_index(str(directory / INDEX_FILE), faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY))
        docids += (directory / DOCID_FILE).read_text(encoding="utf-8").splitlines()
    return index, docids


def set_search_parameter(index, name: str, value: int) -> None:
    """Set ``nprobe`` or ``efSearch`` through faiss's ``ParameterSpace``, which reaches into shards and wrappers."""
    import faiss

    kinds = {"nprobe": "IVF", "efSearch": "HNSW"}
    if not isinstance(value, int) or value < 1:
        raise SearchIndexError(f"{name} must be a positive integer, got {value!r}")
    try:
        faiss.ParameterSpace().set_index_parameter(index, name, value)
    except RuntimeError:
        kind = type(index).__name__
        raise SearchIndexError(f"{name} applies to {kinds[name]} indexes only, and this index is a {kind}: "
                               f"search it without --{name.replace('efSearch', 'ef-search')}") from None
