"""Build a dense LLaRA index that ``python -m pyserini.search.faiss --index DIR`` reads as it is.

An index directory holds ``index`` (``faiss.write_index``), ``docid`` (one id per line, in
vector order) and ``meta.json`` (model, dimension, index type, count, shard), which
resuming and merging check so that vectors from different models never mix.

Encoding is the slow part, so it is saved as it goes: each finished chunk of documents
lands in ``chunks/`` under an atomic rename, and a rerun with ``resume=True`` continues
after the last whole chunk. The faiss index is built from the chunks at the end (index
types needing training train on the encoded vectors), then the chunks are removed.

Shards split the corpus into contiguous runs of whole chunks, so the merged shards hold the
same vectors, in the same order, as a single-process build. Shards keep exact (Flat)
vectors; the index type of the final index is chosen when merging. Under ``torchrun`` or
``accelerate launch`` every process builds the shard of its rank and rank 0 merges them.
"""

from __future__ import annotations

import argparse
import dataclasses
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

from .corpus import read_corpus
from .modeling import model_fingerprint
from .precision import PRECISIONS
from .registration import DEFAULT_MODEL, model_name
from .template import DEFAULT_MAX_TEXT_TOKENS

logger = logging.getLogger(__name__)

INDEX_FILE, DOCID_FILE, META_FILE, CHUNK_DIR = "index", "docid", "meta.json", "chunks"
# Settings that change the vectors: resumed chunks and merged shards must agree on them.
ENCODING_KEYS = ("model", "lora", "add_tokens", "max_length", "dimension")
# Vectors a trained index type (IVF, PQ, SQ8) learns from; a random sample when there are more.
TRAIN_SAMPLE = 1 << 18


class IndexBuildError(RuntimeError):
    """A build that cannot go on as asked; the message says what to change."""


@dataclass(frozen=True)
class IndexConfig:
    """How to encode and index; the CLI flags of the same names map onto these fields."""

    encoder: str = "llara"
    lora: str | None = None
    add_tokens: bool = False
    device: str = "cpu"
    dtype: str = "auto"  # precision.resolve_dtype: bf16 where the device runs it natively, else float32
    batch_size: int = 32
    max_length: int = DEFAULT_MAX_TEXT_TOKENS
    index_type: str = "Flat"
    nprobe: int | None = None
    chunk_size: int = 4096
    shard_id: int = 0
    shard_num: int = 1

    def __post_init__(self):
        for name in ("batch_size", "max_length", "chunk_size", "shard_num"):
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

    @property
    def count(self) -> int:
        return self.end - self.start

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


def shard_range(total: int, chunk_size: int, shard_id: int, shard_num: int) -> tuple[int, int]:
    """Ordinals ``[start, end)`` of one shard: a contiguous run of whole chunks.

    Chunks start at multiples of ``chunk_size`` whatever the sharding, so every chunk is
    encoded in the same batches, and merged shards equal a single build bit for bit.
    """
    chunks = -(-total // chunk_size)
    first, last = shard_id * chunks // shard_num, (shard_id + 1) * chunks // shard_num
    return min(first * chunk_size, total), min(last * chunk_size, total)


def differences(a: IndexMeta, b: IndexMeta, keys: Sequence[str]) -> list[str]:
    return [f"{key} {getattr(a, key)!r} vs {getattr(b, key)!r}" for key in keys if getattr(a, key) != getattr(b, key)]


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


def write_index(directory: Path, parts: Sequence[Part], sizes: Sequence[int], meta: IndexMeta) -> None:
    """Add the parts' vectors in order into a new index, then write ``docid``, ``index``, ``meta.json``.

    Parts are loaded one at a time (twice for trained types), so memory stays at the
    index plus one part.
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
    tmp_docid = directory / (DOCID_FILE + ".tmp")
    with open(tmp_docid, "w", encoding="utf-8") as out:
        for part in parts:
            docids, vectors = part()
            out.writelines(f"{docid}\n" for docid in docids)
            index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    if index.ntotal != meta.count:
        raise IndexBuildError(f"expected {meta.count} vectors, found {index.ntotal}; rebuild with overwrite")
    faiss.write_index(index, str(directory / (INDEX_FILE + ".tmp")))
    os.replace(tmp_docid, directory / DOCID_FILE)
    os.replace(directory / (INDEX_FILE + ".tmp"), directory / INDEX_FILE)
    dataclasses.replace(meta, complete=True).save(directory)


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _chunk_path(directory: Path, number: int) -> Path:
    return directory / CHUNK_DIR / f"{number:06d}.npz"


def _save_chunk(path: Path, docids: list[str], vectors: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as out:
        np.savez(out, docids=np.array(docids, dtype=str), vectors=vectors.astype(np.float32, copy=False))
    os.replace(tmp, path)


def _load_chunk(path: Path) -> tuple[list[str], np.ndarray]:
    with np.load(path) as data:
        return data["docids"].tolist(), data["vectors"]


def _check_output(output: Path, resume: bool, overwrite: bool) -> tuple[list[str], IndexMeta | None]:
    """What ``output`` holds and, to resume, its metadata; raises where a build may not go on there. Changes nothing."""
    if output.exists() and not output.is_dir():
        raise IndexBuildError(f"{output} exists and is not a directory")
    entries = sorted(p.name for p in output.iterdir()) if output.exists() else []
    if not entries:
        return entries, None
    if resume:
        if META_FILE not in entries:
            raise IndexBuildError(f"cannot resume: {output} has no {META_FILE}, so it is not a pyserini-llara index")
        return entries, IndexMeta.load(output)
    if not overwrite:
        raise IndexBuildError(f"{output} already exists and is not empty; pass --resume to continue an "
                              "interrupted build, --overwrite to replace it, or choose another --output")
    ours = {INDEX_FILE, DOCID_FILE, META_FILE, CHUNK_DIR}
    foreign = [e for e in entries if e not in ours and not e.endswith(".tmp")]
    if foreign:
        raise IndexBuildError(f"refusing to overwrite {output}: it holds files that are not part of an index "
                              f"({', '.join(foreign[:5])}); choose another --output")
    return entries, None


def _prepare_output(output: Path, resume: bool, overwrite: bool) -> IndexMeta | None:
    """The metadata of a build to resume, or None for a fresh start in an empty directory."""
    entries, previous = _check_output(output, resume, overwrite)
    if not entries:
        output.mkdir(parents=True, exist_ok=True)
    elif previous is None:
        for entry in entries:
            path = output / entry
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    return previous


def _count(corpus: str) -> int:
    """A full validating pass first: a bad line is reported before hours of encoding, and totals give an ETA."""
    from tqdm import tqdm

    return sum(1 for _ in tqdm(read_corpus(corpus), desc="checking corpus", unit="doc"))


def _batched(iterable: Iterator, size: int) -> Iterator[list]:
    while batch := list(islice(iterable, size)):
        yield batch


def build_index(corpus: str | os.PathLike, output: str | os.PathLike, config: IndexConfig = IndexConfig(), *,
                resume: bool = False, overwrite: bool = False) -> Path:
    """Encode ``corpus`` (JSONL file/directory or ir-datasets id) with LLaRA into index directory ``output``.

    With ``resume`` an interrupted build continues after its last saved chunk; an
    ``output`` that already holds something is refused otherwise, unless ``overwrite``.
    """
    from tqdm import tqdm

    from .encoding import LlaraEncoder

    if resume and overwrite:
        raise ValueError("choose resume or overwrite, not both")
    output, corpus = Path(output), str(corpus)
    previous = _prepare_output(output, resume, overwrite)
    encoder = LlaraEncoder.from_pretrained(model_name(config.encoder), lora=config.lora, dtype=config.dtype,
                                           device=config.device, add_tokens=config.add_tokens,
                                           batch_size=config.batch_size, max_text_tokens=config.max_length)
    new_index(encoder.dimension, config.index_type, config.nprobe)  # a bad index type fails before encoding
    total = _count(corpus)
    if total == 0:
        raise IndexBuildError(f"{corpus} holds no documents")
    start, end = shard_range(total, config.chunk_size, config.shard_id, config.shard_num)
    meta = IndexMeta(model=model_name(config.encoder), lora=config.lora, add_tokens=config.add_tokens,
                     max_length=config.max_length, dimension=encoder.dimension, dtype=encoder.dtype_name,
                     index_type=config.index_type, nprobe=config.nprobe, corpus=corpus, corpus_count=total,
                     shard_id=config.shard_id, shard_num=config.shard_num, start=start, end=end,
                     chunk_size=config.chunk_size,
                     model_fingerprint=model_fingerprint(model_name(config.encoder), config.lora))
    if previous is not None:
        changed = differences(previous, meta, ENCODING_KEYS + ("corpus_count", "shard_id", "shard_num", "chunk_size"))
        if changed:
            raise IndexBuildError(f"cannot resume {output}: it was built with other settings "
                                  f"({'; '.join(changed)}, on disk vs now); use --overwrite to start again")
        if previous.complete:
            if (previous.index_type, previous.nprobe) != (meta.index_type, meta.nprobe):
                raise IndexBuildError(f"{output} is already complete as a {previous.index_type} index; "
                                      "use --overwrite to build another type")
            shutil.rmtree(output / CHUNK_DIR, ignore_errors=True)
            logger.info("%s is already complete", output)
            return output
    meta.save(output)
    (output / CHUNK_DIR).mkdir(exist_ok=True)
    for stale in (output / CHUNK_DIR).glob("*.tmp"):
        stale.unlink()

    chunks = _batched(islice(read_corpus(corpus), start, end), config.chunk_size)
    with tqdm(total=meta.count, desc=f"encoding shard {config.shard_id}/{config.shard_num}", unit="doc",
              dynamic_ncols=True, smoothing=0.05) as bar:
        for number, docs in enumerate(chunks):
            path, docids = _chunk_path(output, number), [doc.docid for doc in docs]
            if path.exists():
                if _load_chunk(path)[0] != docids:
                    raise IndexBuildError(f"cannot resume: saved chunk {path} holds other documents than "
                                          f"{corpus} now has there; the corpus changed, use --overwrite")
                bar.update(len(docs))
                continue
            vectors = encoder.encode_passages([doc.text for doc in docs], progress=bar.update)
            _save_chunk(path, docids, vectors)

    paths = [_chunk_path(output, n) for n in range(-(-meta.count // config.chunk_size))]
    sizes = [min(config.chunk_size, meta.count - n * config.chunk_size) for n in range(len(paths))]
    write_index(output, [lambda p=p: _load_chunk(p) for p in paths], sizes, meta)
    shutil.rmtree(output / CHUNK_DIR)
    logger.info("wrote %s: %d documents, %s, dimension %d", output, meta.count, meta.index_type, meta.dimension)
    return output


def merge_shards(shards: Sequence[str | os.PathLike], output: str | os.PathLike, *, index_type: str | None = None,
                 nprobe: int | None = None, overwrite: bool = False) -> Path:
    """Concatenate complete shard indexes in shard order into one index of ``index_type`` (default: theirs)."""
    import faiss

    if not shards:
        raise IndexBuildError("no shards to merge")
    metas = sorted(((IndexMeta.load(Path(s)), Path(s)) for s in shards), key=lambda item: item[0].shard_id)
    first, first_dir = metas[0]
    for meta, directory in metas:
        if not meta.complete:
            raise IndexBuildError(f"shard {directory} is not complete; finish it with --resume first")
        changed = differences(first, meta, ENCODING_KEYS + ("corpus_count", "shard_num", "chunk_size"))
        if changed:
            raise IndexBuildError(f"shards {first_dir} and {directory} differ ({'; '.join(changed)}): "
                                  "only shards of one corpus encoded by one model with the same settings merge")
    found = [meta.shard_id for meta, _ in metas]
    if found != list(range(first.shard_num)):
        raise IndexBuildError(f"need each of shards 0..{first.shard_num - 1} exactly once, got shard ids {found}")
    output = Path(output)
    _prepare_output(output, resume=False, overwrite=overwrite)

    def part(directory: Path) -> tuple[list[str], np.ndarray]:
        index = faiss.read_index(str(directory / INDEX_FILE))
        docids = (directory / DOCID_FILE).read_text(encoding="utf-8").splitlines()
        return docids, index.reconstruct_n(0, index.ntotal)

    merged = dataclasses.replace(first, index_type=index_type or first.index_type,
                                 nprobe=nprobe if index_type else first.nprobe,
                                 shard_id=0, shard_num=1, start=0, end=first.corpus_count, complete=False)
    write_index(output, [lambda d=d: part(d) for _, d in metas], [m.count for m, _ in metas], merged)
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
    them, merges them into ``output`` as ``config.index_type`` and removes the shards. The
    store alone is enough for that, and unlike a gloo process group its teardown cannot abort
    a finished build. After a crash, rerunning with ``resume`` and the same number of
    processes continues every shard where it stopped.
    """
    import torch.distributed as dist

    rank, world, local_rank = launched_ranks()
    if config.shard_num > 1:
        raise ValueError("under torchrun / accelerate launch each process builds the shard of its rank: "
                         "drop --shard-id/--shard-num")
    output = Path(output)
    previous = _check_output(output, resume, overwrite)[1]  # before hours of encoding, not at the merge
    if previous is not None and previous.complete:
        logger.info("%s is already complete", output)
        return output
    work = output.with_name(output.name + ".shards")
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
    mode.add_argument("--resume", action="store_true", help="continue an interrupted build in --output")
    mode.add_argument("--overwrite", action="store_true", help="replace the index in --output")
    return parser


def _merge_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pyserini_llara.index merge",
        description="Merge complete shard indexes (same corpus, model and settings) into one index, in shard order.")
    parser.add_argument("--shards", nargs="+", required=True, help="shard index directories, in any order")
    parser.add_argument("--output", required=True, help="merged index directory to write")
    parser.add_argument("--index-type", help=INDEX_TYPE_HELP + " (default: the shards' type)")
    parser.add_argument("--nprobe", type=int, help="IVF lists searched per query, stored in the index")
    parser.add_argument("--overwrite", action="store_true", help="replace the index in --output")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    for name in ("pyserini_llara", __name__):  # __name__ is __main__ under python -m
        logging.getLogger(name).setLevel(logging.INFO)
    try:
        if argv[:1] == ["merge"]:
            args = _merge_parser().parse_args(argv[1:])
            merge_shards(args.shards, args.output, index_type=args.index_type, nprobe=args.nprobe,
                         overwrite=args.overwrite)
            return 0
        args = vars(_build_parser().parse_args(argv))
        corpus, output = args.pop("corpus"), args.pop("output")
        resume, overwrite = args.pop("resume"), args.pop("overwrite")
        build = build_index_distributed if launched_ranks()[1] > 1 else build_index
        build(corpus, output, IndexConfig(**args), resume=resume, overwrite=overwrite)
    except (IndexBuildError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: finished chunks are saved; rerun the same command with --resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
