"""Merging complete shards into one index, in shard order, of any faiss type.

Only shards of one corpus version, encoded by one model with the same settings, merge; the
merged index equals a single-process build vector for vector.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ..records import MERGE_KEYS, META_FILE, IndexMeta
from .config import IndexBuildError
from .faiss_index import write_index
from .output import (
    DOCID_FILE,
    INDEX_FILE,
    index_damage,
    inspect_output,
    refuse_existing,
    refuse_foreign,
    remove_build_in_progress,
)

logger = logging.getLogger(__name__)


def _check_shard(directory: Path, meta: IndexMeta) -> None:
    """A shard's files as its record says: proved by content, and as many docids as vectors of its dimension
    (read from the index's header, memory-mapped), so that no docid is paired with another's vector."""
    import faiss

    damage = index_damage(directory, meta)
    if damage:
        raise IndexBuildError(f"shard {directory} does not match its {META_FILE} ({'; '.join(damage)}); "
                              "build it again with --overwrite")
    try:
        index = faiss.read_index(str(directory / INDEX_FILE), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
    except RuntimeError as error:
        raise IndexBuildError(f"cannot read shard index {directory / INDEX_FILE} ({error}); build it again "
                              "with --overwrite") from None
    with open(directory / DOCID_FILE, "rb") as handle:
        docids = sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 24), b""))
    if not docids == index.ntotal == meta.count or index.d != meta.dimension:
        raise IndexBuildError(f"shard {directory} is inconsistent: {docids} docids, {index.ntotal} vectors of "
                              f"dimension {index.d}, and its {META_FILE} says {meta.count} of dimension "
                              f"{meta.dimension}; build it again with --overwrite")


def complete_shards(shards: Sequence[str | os.PathLike]) -> list[tuple[IndexMeta, Path]]:
    """The records and directories of all the shards of one build, in shard order, each checked by content:
    what a merge, or a search over the shards, may read as one index."""
    if not shards:
        raise IndexBuildError("no shards given")
    metas = sorted(((IndexMeta.load(Path(s)), Path(s)) for s in shards), key=lambda item: item[0].shard_id)
    first, first_dir = metas[0]
    for meta, directory in metas:
        if not meta.complete:
            raise IndexBuildError(f"shard {directory} is not complete; finish it with --resume first")
        _check_shard(directory, meta)
        changed = first.differences(meta, MERGE_KEYS)
        if changed:
            raise IndexBuildError(f"shards {first_dir} and {directory} differ ({'; '.join(changed)}): only shards "
                                  "of one corpus encoded by one model with the same settings merge")
    found = [meta.shard_id for meta, _ in metas]
    if found != list(range(first.shard_num)):
        raise IndexBuildError(f"need each of shards 0..{first.shard_num - 1} exactly once, got shard ids {found}")
    return metas


def merge_shards(shards: Sequence[str | os.PathLike], output: str | os.PathLike, *, index_type: str | None = None,
                 nprobe: int | None = None, overwrite: bool = False, resume: bool = False) -> Path:
    """Concatenate complete shard indexes in shard order into one index of ``index_type`` (default: theirs).

    Only shards of one corpus version, encoded by one model with the same settings, merge.
    ``resume`` finishes an interrupted merge (merging costs no encoding, so it starts over)
    and leaves an identical complete one as it is.
    """
    import faiss

    if resume and overwrite:
        raise ValueError("choose resume or overwrite, not both")
    metas = complete_shards(shards)
    first = metas[0][0]
    merged = dataclasses.replace(first, index_type=index_type or first.index_type,
                                 nprobe=nprobe if index_type else first.nprobe,
                                 shard_id=0, shard_num=1, start=0, end=first.corpus_count, complete=False)
    output = Path(output)
    existing = inspect_output(output)
    refuse_existing(output, existing, resume, overwrite)
    if resume and existing.complete is not None:
        changed = existing.complete.differences(merged, MERGE_KEYS + ("index_type", "nprobe"))
        if changed:
            raise IndexBuildError(f"cannot resume the merge into {output}: it holds another complete index "
                                  f"({'; '.join(changed)}, on disk vs now); use --overwrite to replace it")
        logger.info("%s is already complete", output)
        return output
    refuse_foreign(output, existing)
    output.mkdir(parents=True, exist_ok=True)

    def part(directory: Path) -> tuple[list[str], np.ndarray]:
        index = faiss.read_index(str(directory / INDEX_FILE))
        docids = (directory / DOCID_FILE).read_text(encoding="utf-8").splitlines()
        return docids, index.reconstruct_n(0, index.ntotal)

    write_index(output, [lambda d=d: part(d) for _, d in metas], [m.count for m, _ in metas], merged, stage="merge")
    remove_build_in_progress(output)  # a build that was in progress there is replaced
    logger.info("merged %d shards into %s: %d documents, %s", len(metas), output, merged.count, merged.index_type)
    return output
