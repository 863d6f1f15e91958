"""Encoding a corpus into an index directory, resumable chunk by chunk.

A build first reads the whole corpus once, checking every record and fingerprinting it chunk
by chunk, so that a bad line stops it before hours of encoding. Encoded chunks are saved as the
build goes (``chunks``); a rerun with ``resume=True`` reuses every chunk whose documents are
still the same. The faiss index is written from the chunks at the end (``faiss_index``).
Shards split the corpus into contiguous runs of whole chunks, so merged shards hold the same
vectors, in the same order, as a single-process build.
"""

from __future__ import annotations

import logging
import os
from itertools import islice
from pathlib import Path
from typing import Iterator

from ..atomic import staged
from ..corpus import read_corpus
from ..fingerprint import model_fingerprint
from ..precision import resolve_dtype
from ..records import CORPUS_KEYS, ENCODING_KEYS, LAYOUT_KEYS, META_FILE, IndexMeta
from . import crashpoints
from .chunks import chunk_fingerprint, chunk_path, corpus_fingerprint, load_chunk, save_chunk, saved_fingerprint
from .config import IndexBuildError, IndexConfig
from .faiss_index import new_index, write_index
from .output import CHUNK_DIR, chunk_names, inspect_output, refuse_existing, refuse_foreign, remove_build_in_progress

logger = logging.getLogger(__name__)


def shard_range(total: int, chunk_size: int, shard_id: int, shard_num: int) -> tuple[int, int]:
    """Ordinals ``[start, end)`` of one shard: a contiguous run of whole chunks.

    Chunks start at multiples of ``chunk_size`` whatever the sharding, so every chunk is
    encoded in the same batches, and merged shards equal a single build bit for bit.
    """
    chunks = -(-total // chunk_size)
    first, last = shard_id * chunks // shard_num, (shard_id + 1) * chunks // shard_num
    return min(first * chunk_size, total), min(last * chunk_size, total)


def _scan(corpus: str, chunk_size: int) -> tuple[int, list[str]]:
    """A full validating pass first: a bad line is reported before hours of encoding, the total gives an
    ETA, and each chunk's fingerprint is what a resume and a merge check."""
    from tqdm import tqdm

    total, fingerprints = 0, []
    for docs in _batched(iter(tqdm(read_corpus(corpus), desc="checking corpus", unit="doc")), chunk_size):
        total += len(docs)
        fingerprints.append(chunk_fingerprint(docs))
    return total, fingerprints


def _batched(iterable: Iterator, size: int) -> Iterator[list]:
    while batch := list(islice(iterable, size)):
        yield batch


def build_index(corpus: str | os.PathLike, output: str | os.PathLike, config: IndexConfig = IndexConfig(), *,
                resume: bool = False, overwrite: bool = False) -> Path:
    """Encode ``corpus`` (JSONL file/directory or ir-datasets id) with LLaRA into index directory ``output``.

    With ``resume`` an interrupted build continues, reusing each saved chunk whose documents
    are unchanged; an ``output`` that already holds something is refused otherwise, unless
    ``overwrite``, which replaces its index once the new one is complete.
    """
    from tqdm import tqdm

    if resume and overwrite:
        raise ValueError("choose resume or overwrite, not both")
    output, corpus = Path(output), str(corpus)
    found = inspect_output(output)
    refuse_existing(output, found, resume, overwrite)
    if overwrite:
        refuse_foreign(output, found)
    if resume and found.entries and found.record is None and found.building is None:
        raise IndexBuildError(f"cannot resume: {output} holds neither an index nor a build in progress (no "
                              f"{META_FILE} or {CHUNK_DIR}/{META_FILE}); use --overwrite to replace it")
    encoder = config.load()
    new_index(encoder.dimension, config.index_type, config.nprobe)  # a bad index type fails before encoding
    total, fingerprints = _scan(corpus, config.chunk_size)
    if total == 0:
        raise IndexBuildError(f"{corpus} holds no documents")
    start, end = shard_range(total, config.chunk_size, config.shard_id, config.shard_num)
    meta = IndexMeta(model=config.model, lora=config.lora, add_tokens=config.add_tokens,
                     max_length=config.max_length, dimension=encoder.dimension,
                     dtype=resolve_dtype(config.dtype, config.device), index_type=config.index_type,
                     nprobe=config.nprobe, corpus=corpus, corpus_count=total, shard_id=config.shard_id,
                     shard_num=config.shard_num, start=start, end=end, chunk_size=config.chunk_size,
                     model_fingerprint=model_fingerprint(config.model, config.lora),
                     corpus_fingerprint=corpus_fingerprint(fingerprints))
    # What a resume continues: a complete index (it may need no work) or a build in progress. The corpus
    # of a build in progress may have changed where nothing was encoded yet: each saved chunk is checked below.
    previous = (found.complete if found.finished else found.building or found.record) if resume else None
    if resume and found.damage:
        logger.warning("%s: %s; building the index again", output, "; ".join(found.damage))
    if previous is not None:
        changed = previous.differences(meta, ENCODING_KEYS + LAYOUT_KEYS)
        if changed:
            raise IndexBuildError(f"cannot resume {output}: it was built with other settings "
                                  f"({'; '.join(changed)}, on disk vs now); use --overwrite to start again")
    if resume and found.finished:
        changed = found.complete.differences(meta, CORPUS_KEYS)
        if changed:
            raise IndexBuildError(f"{output} is complete, but {corpus} changed since it was built "
                                  f"({'; '.join(changed)}); use --overwrite to build it again")
        if (found.complete.index_type, found.complete.nprobe) != (meta.index_type, meta.nprobe):
            raise IndexBuildError(f"{output} is already complete as a {found.complete.index_type} index; "
                                  "use --overwrite to build another type")
        remove_build_in_progress(output)
        logger.info("%s is already complete", output)
        return output
    if previous is None:  # a fresh start; an index being overwritten stays until the new one is complete
        output.mkdir(parents=True, exist_ok=True)
        remove_build_in_progress(output)
    (output / CHUNK_DIR).mkdir(exist_ok=True)
    for name in chunk_names(meta):
        staged(output / CHUNK_DIR / name).unlink(missing_ok=True)
    meta.save(output / CHUNK_DIR)
    crashpoints.reached("build:started")

    first = start // config.chunk_size
    chunks = _batched(islice(read_corpus(corpus), start, end), config.chunk_size)
    seen = 0
    with tqdm(total=meta.count, desc=f"encoding shard {config.shard_id}/{config.shard_num}", unit="doc",
              dynamic_ncols=True, smoothing=0.05) as bar:
        for number, docs in enumerate(chunks):
            path, fingerprint = chunk_path(output, number), chunk_fingerprint(docs)
            where = f"documents {start + seen + 1}-{start + seen + len(docs)}"
            seen += len(docs)
            if first + number >= len(fingerprints) or fingerprint != fingerprints[first + number]:
                raise IndexBuildError(f"{corpus} changed while it was being indexed ({where} differ from the "
                                      "check before encoding); rerun with --resume")
            if path.exists():
                if saved_fingerprint(path) != fingerprint:
                    raise IndexBuildError(f"cannot resume: saved chunk {path} was encoded from other ids or texts "
                                          f"than {where} of {corpus} now; the corpus changed, use --overwrite")
                bar.update(len(docs))
                continue
            vectors = encoder.encode_passages([doc.text for doc in docs], progress=bar.update)
            save_chunk(path, [doc.docid for doc in docs], fingerprint, vectors)
            crashpoints.reached("build:chunk")
    if seen != meta.count:
        raise IndexBuildError(f"{corpus} changed while it was being indexed (it ended after {start + seen} of "
                              f"{total} documents); rerun with --resume")
    crashpoints.reached("build:encoded")

    paths = [chunk_path(output, n) for n in range(-(-meta.count // config.chunk_size))]
    sizes = [min(config.chunk_size, meta.count - n * config.chunk_size) for n in range(len(paths))]
    write_index(output, [lambda p=p: load_chunk(p) for p in paths], sizes, meta, stage="build")
    remove_build_in_progress(output)
    logger.info("wrote %s: %d documents, %s, dimension %d", output, meta.count, meta.index_type, meta.dimension)
    return output
