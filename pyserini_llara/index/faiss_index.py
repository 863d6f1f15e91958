"""faiss indexes from factory strings, and the one way an index is written: staged whole, then swapped in.

Every index is inner product (LLaRA's vectors are L2-normalised, so that is the cosine); a
type that needs training trains on a sample of the encoded vectors.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..atomic import STAGED, staged, sync
from ..proof import prove
from ..records import IndexMeta
from . import crashpoints
from .config import IndexBuildError
from .output import DOCID_FILE, INDEX_FILE

logger = logging.getLogger(__name__)

# Vectors a trained index type (IVF, PQ, SQ8) learns from; a random sample when there are more.
TRAIN_SAMPLE = 1 << 18


def _faiss_reason(error: RuntimeError) -> str:
    """faiss errors start with the C++ function and source line; keep what follows."""
    return re.sub(r"^Error in .*? at \S+:\d+: (Error: )?", "", str(error).strip())


def new_index(dimension: int, index_type: str, nprobe: int | None = None):
    """An empty inner-product faiss index from a factory string, e.g. Flat, HNSW32, IVF1024,PQ64, SQ8."""
    import faiss

    try:
        index = faiss.index_factory(dimension, index_type, faiss.METRIC_INNER_PRODUCT)
    except MemoryError:
        raise IndexBuildError(f"faiss cannot allocate index type {index_type!r} for dimension {dimension} in memory: "
                              "choose fewer IVF lists or a smaller dimension") from None
    except RuntimeError as error:
        raise IndexBuildError(
            f"faiss cannot make index type {index_type!r} for dimension {dimension}: "
            f"{_faiss_reason(error)}. Use a faiss factory string such as Flat, HNSW32, "
            "IVF1024,Flat, IVF1024,PQ64, PQ64, SQfp16 or SQ8 (PQ's number must divide the dimension)") from None
    # Polysemous training only serves a Hamming pre-filter nobody uses here, and takes minutes with 64-byte codes.
    inner = faiss.downcast_index(index)
    if getattr(inner, "do_polysemous_training", False):
        inner.do_polysemous_training = False
    if nprobe is not None:
        try:
            faiss.extract_index_ivf(index).nprobe = nprobe
        except RuntimeError:
            raise IndexBuildError(f"nprobe applies to IVF index types only, not {index_type!r}") from None
    return index


Part = Callable[[], tuple[list[str], np.ndarray]]


def _training_sample(parts: Sequence[Part], sizes: Sequence[int], limit: int = TRAIN_SAMPLE) -> np.ndarray:
    total = sum(sizes)
    chosen = np.sort(np.random.default_rng(0).choice(total, size=limit, replace=False)) if total > limit else None
    pieces, offset = [], 0
    for part, size in zip(parts, sizes):
        vectors = part()[1]
        if chosen is None:
            pieces.append(vectors)
        else:
            rows = chosen[(chosen >= offset) & (chosen < offset + size)] - offset
            pieces.append(vectors[rows])
        offset += size
    return np.ascontiguousarray(np.concatenate(pieces))


def write_index(directory: Path, parts: Sequence[Part], sizes: Sequence[int], meta: IndexMeta, stage: str) -> None:
    """Add the parts' vectors in order into a new index, then write ``docid``, ``index``, ``meta.json``.

    Parts are loaded one at a time (twice for trained types), so memory stays at the
    index plus one part. Both files are staged whole before any old file is touched; then a
    ``meta.json`` that says incomplete and lists the new files replaces the old one, and the
    complete one comes last, so a ``meta.json`` never vouches for a mix of old and new files
    and a rerun may replace whatever the swap left. ``stage`` (build or merge) names the crash points.
    """
    import faiss

    index = new_index(meta.dimension, meta.index_type, meta.nprobe)
    if not index.is_trained:
        sample = _training_sample(parts, sizes)
        logger.info("training %s on %d vectors", meta.index_type, len(sample))
        try:
            index.train(sample)
        except RuntimeError as error:
            raise IndexBuildError(f"training {meta.index_type!r} on {len(sample)} vectors failed: "
                                  f"{_faiss_reason(error)}. Choose fewer IVF lists or "
                                  "PQ centroids, or a Flat/HNSW index for a corpus this small") from None
    staged_docid, staged_index = staged(directory / DOCID_FILE), staged(directory / INDEX_FILE)
    with open(staged_docid, "w", encoding="utf-8") as out:
        for part in parts:
            docids, vectors = part()
            out.writelines(f"{docid}\n" for docid in docids)
            index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        sync(out)
    if index.ntotal != meta.count:
        raise IndexBuildError(f"expected {meta.count} vectors, found {index.ntotal}; rebuild with overwrite")
    faiss.write_index(index, str(staged_index))
    with open(staged_index, "rb+") as handle:
        sync(handle)
    crashpoints.reached(f"{stage}:staged")
    files = prove(directory, (DOCID_FILE + STAGED, INDEX_FILE + STAGED))
    files = {name.removesuffix(STAGED): proof for name, proof in files.items()}
    dataclasses.replace(meta, complete=False, files=files).save(directory)
    os.replace(staged_docid, directory / DOCID_FILE)
    crashpoints.reached(f"{stage}:swapping")
    os.replace(staged_index, directory / INDEX_FILE)
    crashpoints.reached(f"{stage}:swapped")
    dataclasses.replace(meta, complete=True, files=files).save(directory)
    crashpoints.reached(f"{stage}:written")
