"""Build a dense LLaRA index that ``python -m pyserini.search.faiss --index DIR`` reads as it is.

An index directory holds ``index`` (``faiss.write_index``), ``docid`` (one id per line, in
vector order) and ``meta.json`` (model and its fingerprint, dtype, dimension, index type,
count, shard, corpus fingerprint), which resuming and merging check so that vectors from
different models, precisions or corpus versions never mix.

Encoding is the slow part, so it is saved as it goes: a build in progress lives in
``chunks/`` (its settings in ``chunks/meta.json``, each finished chunk of documents with a
fingerprint of their ids and texts, under an atomic rename), and a rerun with
``resume=True`` reuses every chunk whose documents are still the same. The faiss index is
built from the chunks at the end (index types needing training train on the encoded
vectors), staged as ``*.tmp`` files and swapped in only when complete, ``meta.json`` last:
an interrupted build or merge leaves the old index, or a state that a resume finishes
without encoding anything again.

Shards split the corpus into contiguous runs of whole chunks, so the merged shards hold the
same vectors, in the same order, as a single-process build. Shards keep exact (Flat)
vectors; the index type of the final index is chosen when merging. Under ``torchrun`` or
``accelerate launch`` every process builds the shard of its rank and rank 0 merges them.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
import sys
from dataclasses import asdict, dataclass
from datetime import timedelta
from itertools import islice
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from .cli import add_debug_flag, report
from .corpus import Document, read_corpus
from .encoder_config import EncoderConfig
from .modeling import model_fingerprint
from .precision import PRECISIONS, resolve_dtype
from .registration import DEFAULT_MODEL
from .template import DEFAULT_MAX_TEXT_TOKENS

logger = logging.getLogger(__name__)

INDEX_FILE, DOCID_FILE, META_FILE, CHUNK_DIR = "index", "docid", "meta.json", "chunks"
STAGED = ".tmp"  # files being written; never read, overwritten by the next attempt
# Settings that change the vectors: resumed chunks and merged shards must agree on them
# (the model by its fingerprint, however its path is spelt; dtype as resolved for the device).
ENCODING_KEYS = ("model_fingerprint", "add_tokens", "max_length", "dimension", "dtype")
# What makes two builds cut the same corpus into the same chunks and shards.
LAYOUT_KEYS = ("shard_id", "shard_num", "chunk_size")
CORPUS_KEYS = ("corpus_count", "corpus_fingerprint")
# Tests set it to a stage name to kill the process there (os._exit), as a crash would.
CRASH_ENV = "PYSERINI_LLARA_CRASH_AT"
# Vectors a trained index type (IVF, PQ, SQ8) learns from; a random sample when there are more.
TRAIN_SAMPLE = 1 << 18


class IndexBuildError(RuntimeError):
    """A build that cannot go on as asked; the message says what to change."""


@dataclass(frozen=True)
class IndexConfig(EncoderConfig):
    """How to encode and index; the CLI flags of the same names map onto these fields."""

    index_type: str = "Flat"
    nprobe: int | None = None
    chunk_size: int = 4096
    shard_id: int = 0
    shard_num: int = 1

    def __post_init__(self):
        super().__post_init__()
        for name in ("chunk_size", "shard_num"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0 <= self.shard_id < self.shard_num:
            raise ValueError(f"shard_id must be in 0..{self.shard_num - 1}, got {self.shard_id}")
        if self.shard_num > 1 and self.index_type != "Flat":
            raise ValueError("shards keep exact vectors: build them with index type Flat and choose "
                             f"{self.index_type!r} when merging them")


@dataclass(frozen=True)
class IndexMeta:
    """What ``meta.json`` records; ``start``/``end`` are the shard's document ordinals in the corpus."""

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

    @property
    def count(self) -> int:
        return self.end - self.start

    @property
    def model_label(self) -> str:
        """The model as messages name it: ``MODEL`` or ``MODEL + LoRA ADAPTER``."""
        return self.model + (f" + LoRA {self.lora}" if self.lora else "")

    def save(self, directory: Path) -> None:
        _atomic_write_text(directory / META_FILE, json.dumps({**asdict(self), "count": self.count}, indent=2) + "\n")

    @classmethod
    def load(cls, directory: Path) -> "IndexMeta":
        path = Path(directory) / META_FILE
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise IndexBuildError(f"cannot read {path} ({error}): {directory} is not a pyserini-llara index") from None
        missing = [f.name for f in dataclasses.fields(cls)
                   if f.name not in data and f.default is dataclasses.MISSING]
        if missing:
            raise IndexBuildError(f"{path} lacks {', '.join(missing)}: it was not written by pyserini-llara")
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data})

    @classmethod
    def find(cls, directory) -> "IndexMeta | None":
        """The ``meta.json`` in ``directory`` where there is one written by pyserini-llara; None otherwise."""
        if not (Path(directory) / META_FILE).is_file():
            return None
        try:
            return cls.load(Path(directory))
        except IndexBuildError:
            return None


def shard_range(total: int, chunk_size: int, shard_id: int, shard_num: int) -> tuple[int, int]:
    """Ordinals ``[start, end)`` of one shard: a contiguous run of whole chunks.

    Chunks start at multiples of ``chunk_size`` whatever the sharding, so every chunk is
    encoded in the same batches, and merged shards equal a single build bit for bit.
    """
    chunks = -(-total // chunk_size)
    first, last = shard_id * chunks // shard_num, (shard_id + 1) * chunks // shard_num
    return min(first * chunk_size, total), min(last * chunk_size, total)


def differences(a: IndexMeta, b: IndexMeta, keys: Sequence[str]) -> list[str]:
    """``key A vs B`` for each key on which ``a`` and ``b`` differ; the model is shown by name and fingerprint."""
    out = []
    for key in keys:
        x, y = getattr(a, key), getattr(b, key)
        if x == y:
            continue
        if key == "model_fingerprint":
            out.append(f"model {a.model_label} vs {b.model_label} (other weights or tokenizer: fingerprint {x} vs {y})")
        else:
            out.append(f"{key} {x!r} vs {y!r}" + (" (not recorded by an older version)" if None in (x, y) else ""))
    return out


def chunk_fingerprint(docs: Sequence[Document]) -> str:
    """A hash of the ids and texts of a chunk's documents: a saved chunk is reused only for the same ones."""
    digest = hashlib.blake2b(digest_size=16)
    for doc in docs:
        for value in (doc.docid, doc.text):
            data = value.encode("utf-8")
            digest.update(len(data).to_bytes(8, "little"))
            digest.update(data)
    return digest.hexdigest()


def corpus_fingerprint(chunk_fingerprints: Sequence[str]) -> str:
    return hashlib.blake2b("".join(chunk_fingerprints).encode(), digest_size=16).hexdigest()


def _reached(stage: str) -> None:
    """A named point of a build or merge. Crash-recovery tests kill the process here (``CRASH_ENV``)."""
    if os.environ.get(CRASH_ENV) == stage:
        os._exit(137)


def _faiss_reason(error: RuntimeError) -> str:
    """faiss errors start with the C++ function and source line; keep what follows."""
    return re.sub(r"^Error in .*? at \S+:\d+: (Error: )?", "", str(error).strip())


def new_index(dimension: int, index_type: str, nprobe: int | None = None):
    """An empty inner-product faiss index from a factory string, e.g. Flat, HNSW32, IVF1024,PQ64, SQ8."""
    import faiss

    try:
        index = faiss.index_factory(dimension, index_type, faiss.METRIC_INNER_PRODUCT)
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
    index plus one part. Both files are staged whole before any old file is touched; the
    old ``meta.json`` goes first and the new one comes last, so a ``meta.json`` never
    describes a mix of old and new files. ``stage`` (build or merge) names the crash points.
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
    staged_docid, staged_index = directory / (DOCID_FILE + STAGED), directory / (INDEX_FILE + STAGED)
    with open(staged_docid, "w", encoding="utf-8") as out:
        for part in parts:
            docids, vectors = part()
            out.writelines(f"{docid}\n" for docid in docids)
            index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        _sync(out)
    if index.ntotal != meta.count:
        raise IndexBuildError(f"expected {meta.count} vectors, found {index.ntotal}; rebuild with overwrite")
    faiss.write_index(index, str(staged_index))
    with open(staged_index, "rb+") as handle:
        os.fsync(handle.fileno())
    _reached(f"{stage}:staged")
    (directory / META_FILE).unlink(missing_ok=True)
    os.replace(staged_docid, directory / DOCID_FILE)
    _reached(f"{stage}:swapping")
    os.replace(staged_index, directory / INDEX_FILE)
    dataclasses.replace(meta, complete=True).save(directory)
    _reached(f"{stage}:written")


def _sync(handle) -> None:
    handle.flush()
    os.fsync(handle.fileno())


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + STAGED)
    with open(tmp, "w", encoding="utf-8") as out:
        out.write(text)
        _sync(out)
    os.replace(tmp, path)


def _chunk_path(directory: Path, number: int) -> Path:
    return directory / CHUNK_DIR / f"{number:06d}.npz"


def _save_chunk(path: Path, docids: list[str], fingerprint: str, vectors: np.ndarray) -> None:
    tmp = path.with_name(path.name + STAGED)
    with open(tmp, "wb") as out:
        np.savez(out, docids=np.array(docids, dtype=str), fingerprint=np.array(fingerprint),
                 vectors=vectors.astype(np.float32, copy=False))
        _sync(out)
    os.replace(tmp, path)


def _load_chunk(path: Path) -> tuple[list[str], np.ndarray]:
    with np.load(path) as data:
        return data["docids"].tolist(), data["vectors"]


def _saved_fingerprint(path: Path) -> str | None:
    with np.load(path) as data:
        return str(data["fingerprint"]) if "fingerprint" in data.files else None


@dataclass(frozen=True)
class _Found:
    """What an output directory holds, read without changing anything."""

    entries: list[str]  # everything but staging leftovers
    complete: IndexMeta | None  # meta.json: a finished index
    building: IndexMeta | None  # chunks/meta.json: a build in progress

    @property
    def finished(self) -> bool:
        """A complete index, and no other build under way (a leftover of its own build may remain)."""
        return self.complete is not None and (
            self.building is None or self.building == dataclasses.replace(self.complete, complete=False))


def _inspect(output: Path) -> _Found:
    if output.exists() and not output.is_dir():
        raise IndexBuildError(f"{output} exists and is not a directory")
    entries = sorted(p.name for p in output.iterdir() if not p.name.endswith(STAGED)) if output.exists() else []
    # A meta.json that is not ours counts as none: --overwrite may replace it, --resume finds nothing to resume.
    complete, building = IndexMeta.find(output), IndexMeta.find(output / CHUNK_DIR)
    return _Found(entries, complete if complete is not None and complete.complete else None, building)


def _refuse_existing(output: Path, found: _Found, resume: bool, overwrite: bool) -> None:
    if found.entries and not (resume or overwrite):
        raise IndexBuildError(f"{output} already exists and is not empty; pass --resume to continue an "
                              "interrupted build, --overwrite to replace it, or choose another --output")


def _refuse_foreign(output: Path, found: _Found) -> None:
    """Before replacing an index: never delete what is not one."""
    foreign = [e for e in found.entries if e not in (INDEX_FILE, DOCID_FILE, META_FILE, CHUNK_DIR)]
    if foreign:
        raise IndexBuildError(f"refusing to replace the index in {output}: it holds files that are not part of "
                              f"an index ({', '.join(foreign[:5])}); choose another --output")


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
    found = _inspect(output)
    _refuse_existing(output, found, resume, overwrite)
    if overwrite:
        _refuse_foreign(output, found)
    if resume and found.entries and found.complete is None and found.building is None:
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
    previous = (found.complete if found.finished else found.building) if resume else None
    if previous is not None:
        changed = differences(previous, meta, ENCODING_KEYS + LAYOUT_KEYS)
        if changed:
            raise IndexBuildError(f"cannot resume {output}: it was built with other settings "
                                  f"({'; '.join(changed)}, on disk vs now); use --overwrite to start again")
    if resume and found.finished:
        changed = differences(found.complete, meta, CORPUS_KEYS)
        if changed:
            raise IndexBuildError(f"{output} is complete, but {corpus} changed since it was built "
                                  f"({'; '.join(changed)}); use --overwrite to build it again")
        if (found.complete.index_type, found.complete.nprobe) != (meta.index_type, meta.nprobe):
            raise IndexBuildError(f"{output} is already complete as a {found.complete.index_type} index; "
                                  "use --overwrite to build another type")
        shutil.rmtree(output / CHUNK_DIR, ignore_errors=True)
        logger.info("%s is already complete", output)
        return output
    if previous is None:  # a fresh start; an index being overwritten stays until the new one is complete
        output.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(output / CHUNK_DIR, ignore_errors=True)
    (output / CHUNK_DIR).mkdir(exist_ok=True)
    for stale in (output / CHUNK_DIR).glob("*" + STAGED):
        stale.unlink()
    meta.save(output / CHUNK_DIR)
    _reached("build:started")

    first = start // config.chunk_size
    chunks = _batched(islice(read_corpus(corpus), start, end), config.chunk_size)
    seen = 0
    with tqdm(total=meta.count, desc=f"encoding shard {config.shard_id}/{config.shard_num}", unit="doc",
              dynamic_ncols=True, smoothing=0.05) as bar:
        for number, docs in enumerate(chunks):
            path, fingerprint = _chunk_path(output, number), chunk_fingerprint(docs)
            where = f"documents {start + seen + 1}-{start + seen + len(docs)}"
            seen += len(docs)
            if first + number >= len(fingerprints) or fingerprint != fingerprints[first + number]:
                raise IndexBuildError(f"{corpus} changed while it was being indexed ({where} differ from the "
                                      "check before encoding); rerun with --resume")
            if path.exists():
                if _saved_fingerprint(path) != fingerprint:
                    raise IndexBuildError(f"cannot resume: saved chunk {path} was encoded from other ids or texts "
                                          f"than {where} of {corpus} now; the corpus changed, use --overwrite")
                bar.update(len(docs))
                continue
            vectors = encoder.encode_passages([doc.text for doc in docs], progress=bar.update)
            _save_chunk(path, [doc.docid for doc in docs], fingerprint, vectors)
            _reached("build:chunk")
    if seen != meta.count:
        raise IndexBuildError(f"{corpus} changed while it was being indexed (it ended after {start + seen} of "
                              f"{total} documents); rerun with --resume")
    _reached("build:encoded")

    paths = [_chunk_path(output, n) for n in range(-(-meta.count // config.chunk_size))]
    sizes = [min(config.chunk_size, meta.count - n * config.chunk_size) for n in range(len(paths))]
    write_index(output, [lambda p=p: _load_chunk(p) for p in paths], sizes, meta, stage="build")
    shutil.rmtree(output / CHUNK_DIR)
    logger.info("wrote %s: %d documents, %s, dimension %d", output, meta.count, meta.index_type, meta.dimension)
    return output


MERGE_KEYS = ENCODING_KEYS + CORPUS_KEYS + ("shard_num", "chunk_size")


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
    if not shards:
        raise IndexBuildError("no shards to merge")
    metas = sorted(((IndexMeta.load(Path(s)), Path(s)) for s in shards), key=lambda item: item[0].shard_id)
    first, first_dir = metas[0]
    for meta, directory in metas:
        if not meta.complete:
            raise IndexBuildError(f"shard {directory} is not complete; finish it with --resume first")
        changed = differences(first, meta, MERGE_KEYS)
        if changed:
            raise IndexBuildError(f"shards {first_dir} and {directory} differ ({'; '.join(changed)}): only shards "
                                  "of one corpus encoded by one model with the same settings merge")
    found = [meta.shard_id for meta, _ in metas]
    if found != list(range(first.shard_num)):
        raise IndexBuildError(f"need each of shards 0..{first.shard_num - 1} exactly once, got shard ids {found}")
    merged = dataclasses.replace(first, index_type=index_type or first.index_type,
                                 nprobe=nprobe if index_type else first.nprobe,
                                 shard_id=0, shard_num=1, start=0, end=first.corpus_count, complete=False)
    output = Path(output)
    existing = _inspect(output)
    _refuse_existing(output, existing, resume, overwrite)
    if resume and existing.complete is not None:
        changed = differences(existing.complete, merged, MERGE_KEYS + ("index_type", "nprobe"))
        if changed:
            raise IndexBuildError(f"cannot resume the merge into {output}: it holds another complete index "
                                  f"({'; '.join(changed)}, on disk vs now); use --overwrite to replace it")
        logger.info("%s is already complete", output)
        return output
    _refuse_foreign(output, existing)
    output.mkdir(parents=True, exist_ok=True)

    def part(directory: Path) -> tuple[list[str], np.ndarray]:
        index = faiss.read_index(str(directory / INDEX_FILE))
        docids = (directory / DOCID_FILE).read_text(encoding="utf-8").splitlines()
        return docids, index.reconstruct_n(0, index.ntotal)

    write_index(output, [lambda d=d: part(d) for _, d in metas], [m.count for m, _ in metas], merged, stage="merge")
    shutil.rmtree(output / CHUNK_DIR, ignore_errors=True)  # a build that was in progress there is replaced
    logger.info("merged %d shards into %s: %d documents, %s", len(metas), output, merged.count, merged.index_type)
    return output


def launched_ranks() -> tuple[int, int, int]:
    """(rank, world size, local rank) as ``torchrun`` and ``accelerate launch`` export them; (0, 1, 0) otherwise."""
    return tuple(int(os.environ.get(name, default)) for name, default in
                 (("RANK", 0), ("WORLD_SIZE", 1), ("LOCAL_RANK", 0)))


def build_index_distributed(corpus: str | os.PathLike, output: str | os.PathLike, config: IndexConfig = IndexConfig(),
                            *, resume: bool = False, overwrite: bool = False) -> Path:
    """``build_index`` split over the processes of ``torchrun`` / ``accelerate launch``: one shard each, then one index.

    Each rank encodes its shard into ``OUTPUT.shards/RANK`` (on ``cuda:LOCAL_RANK`` when the
    device is ``cuda``) and says so in the launcher's key-value store; rank 0 waits for all of
    them, merges them into ``output`` as ``config.index_type`` and only then removes the
    shards. The store alone is enough for that, and unlike a gloo process group its teardown
    cannot abort a finished build. After a crash at any point, rerunning with ``resume`` and
    the same number of processes continues every shard where it stopped and merges again.
    """
    import torch.distributed as dist

    rank, world, local_rank = launched_ranks()
    if config.shard_num > 1:
        raise ValueError("under torchrun / accelerate launch each process builds the shard of its rank: "
                         "drop --shard-id/--shard-num")
    output = Path(output)
    work = output.with_name(output.name + ".shards")
    found = _inspect(output)  # checked before hours of encoding, not at the merge
    _refuse_existing(output, found, resume, overwrite)
    _refuse_foreign(output, found)
    if resume and found.building is not None:
        raise IndexBuildError(f"cannot resume {output} under torchrun: it holds a single-process build in "
                              "progress; resume it without torchrun, or use --overwrite")
    if resume and found.finished and not work.exists():
        if rank == 0:  # compares settings and corpus with the index's, as a single-process resume does
            build_index(corpus, output, config, resume=True)
        return output
    # From here on the shards are the build in progress: a resume finishes them and merges again
    # (cheap, no encoding), also over an index that was being overwritten or already merged.
    shards = [work / f"{r:05d}" for r in range(world)]
    device = f"cuda:{local_rank}" if config.device == "cuda" else config.device
    shard = dataclasses.replace(config, device=device, index_type="Flat", nprobe=None, shard_id=rank, shard_num=world)
    # Rank 0 waits here for the slowest shard, which may take hours of encoding.
    store = next(dist.rendezvous("env://", timeout=timedelta(days=7)))[0]
    build_index(corpus, shards[rank], shard, resume=resume, overwrite=overwrite)
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")  # a restarted launch must not see old keys
    store.set(f"pyserini_llara/{attempt}/shard/{rank}", "done")
    if rank == 0:
        store.wait([f"pyserini_llara/{attempt}/shard/{r}" for r in range(world)], timedelta(days=7))
        _reached("merge:shards-done")
        merge_shards(shards, output, index_type=config.index_type, nprobe=config.nprobe, overwrite=True)
        shutil.rmtree(work)
    return output


INDEX_TYPE_HELP = ("faiss factory string, always with inner product: Flat (exact, default), HNSW32 (graph), "
                   "IVF4096,Flat / IVF4096,PQ64 / PQ64 (trained on the encoded vectors), SQfp16, SQ8; "
                   "benchmarks/README.md compares their size, build time, queries/s and recall@100 for 4096-d vectors")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pyserini_llara.index",
        description="Encode a corpus with a LLaRA model into a faiss index directory that "
                    "`python -m pyserini.search.faiss --index DIR --encoder llara:MODEL` searches.",
        epilog="Several processes on one machine: `torchrun --nproc-per-node N -m pyserini_llara.index ...` "
               "(CPU or GPU; on GPUs also `accelerate launch --multi_gpu --num_processes N -m "
               "pyserini_llara.index ...`) encodes one shard per process and merges them into --output; "
               "--device cuda puts each process on its own GPU. "
               "Several machines: run with --shard-id i --shard-num n on each (each writes a Flat index), "
               "then `python -m pyserini_llara.index merge --shards DIR... --output DIR [--index-type ...]`.")
    parser.add_argument("--corpus", required=True,
                        help="JSONL file or directory of *.jsonl / *.jsonl.gz (fields id/docid/_id and contents, "
                             "or title + text), or an ir-datasets id such as msmarco-passage")
    parser.add_argument("--output", required=True, help="index directory to write")
    parser.add_argument("--encoder", default="llara",
                        help="llara:MODEL, a model directory, a .gguf file or a hub id "
                             f"(default llara = {DEFAULT_MODEL})")
    parser.add_argument("--lora", help="LoRA adapter directory to merge into the model")
    parser.add_argument("--add-tokens", action="store_true",
                        help="add <s1>..<s16> to a base LLM that lacks them (zero-shot, unadapted)")
    parser.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:1, mps (default cpu)")
    parser.add_argument("--dtype", default="auto", choices=PRECISIONS,
                        help="model weights dtype; auto (default) = bfloat16 where the device runs it natively "
                             "(recent GPUs, CPUs with AVX-512 BF16 or AMX), float16 on older GPUs, float32 on "
                             "other CPUs; meta.json records the one used")
    parser.add_argument("--batch-size", type=int, default=32, help="documents per forward pass (default 32)")
    parser.add_argument("--max-length", type=int, default=DEFAULT_MAX_TEXT_TOKENS,
                        help="text tokens kept per document; the prompt is added on top "
                             f"(default {DEFAULT_MAX_TEXT_TOKENS})")
    parser.add_argument("--index-type", default="Flat", help=INDEX_TYPE_HELP)
    parser.add_argument("--nprobe", type=int,
                        help="IVF lists searched per query, stored in the index "
                             "(Pyserini cannot set it; faiss default 1)")
    parser.add_argument("--chunk-size", type=int, default=4096,
                        help="documents encoded between saves; an interrupted build loses at most one chunk")
    parser.add_argument("--shard-id", type=int, default=0, help="which shard to encode, 0-based (default 0)")
    parser.add_argument("--shard-num", type=int, default=1, help="number of shards (default 1)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true",
                      help="continue an interrupted build in --output: saved chunks of unchanged documents are "
                           "reused; other settings, or a changed corpus where chunks were saved, are refused")
    mode.add_argument("--overwrite", action="store_true",
                      help="replace the index in --output; the old one stays until the new one is complete")
    add_debug_flag(parser)
    return parser


def _merge_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pyserini_llara.index merge",
        description="Merge complete shard indexes (same corpus, model and settings) into one index, in shard order.")
    parser.add_argument("--shards", nargs="+", required=True, help="shard index directories, in any order")
    parser.add_argument("--output", required=True, help="merged index directory to write")
    parser.add_argument("--index-type", help=INDEX_TYPE_HELP + " (default: the shards' type)")
    parser.add_argument("--nprobe", type=int, help="IVF lists searched per query, stored in the index")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="finish an interrupted merge into --output")
    mode.add_argument("--overwrite", action="store_true",
                      help="replace the index in --output; the old one stays until the new one is complete")
    add_debug_flag(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    for name in ("pyserini_llara", __name__):  # __name__ is __main__ under python -m
        logging.getLogger(name).setLevel(logging.INFO)
    merging = argv[:1] == ["merge"]
    args = vars(_merge_parser().parse_args(argv[1:]) if merging else _build_parser().parse_args(argv))
    debug = args.pop("debug")
    try:
        if merging:
            merge_shards(**args)
            return 0
        corpus, output = args.pop("corpus"), args.pop("output")
        resume, overwrite = args.pop("resume"), args.pop("overwrite")
        build = build_index_distributed if launched_ranks()[1] > 1 else build_index
        build(corpus, output, IndexConfig(**args), resume=resume, overwrite=overwrite)
    except (IndexBuildError, ValueError, OSError) as error:
        return report(error, debug)
    except KeyboardInterrupt:
        print("interrupted: finished chunks are saved; rerun the same command with --resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
