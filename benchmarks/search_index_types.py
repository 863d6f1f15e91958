"""Faiss index types for 4096-d LLaRA vectors: memory, build time, queries/s and recall@k against exact search.

Every index is built by ``pyserini_llara.index.new_index`` from the factory string that
``pyserini-llara-index --index-type`` takes, on unit vectors so inner product =
cosine. Recall@k is the overlap of each index's top k with the exact (Flat) top k.

Without ``--vectors`` the vectors are synthetic but structured like LLM embeddings: a common
direction (LLM embeddings are anisotropic), cluster centres of unequal popularity in a
low-rank subspace, a spread within each cluster, and isotropic noise; queries come from the
same mixture. Random isotropic vectors would make every neighbour list meaningless.

    python benchmarks/search_index_types.py                          # defaults, ~3 minutes on 2 cores
    python benchmarks/search_index_types.py --num-vectors 200000 --growth 50000,100000,200000
    python benchmarks/search_index_types.py --vectors docs.npy --queries queries.npy
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from _common import machine, table

# {nlist} is filled per corpus size (see nlist_for); search-time settings sit beside each type.
DEFAULT_TYPES = ("Flat", "HNSW32", "IVF{nlist},PQ64x4fs", "SQ8", "SQfp16")
SEARCH_PARAMS = {"HNSW": "efSearch={ef}", "IVF": "nprobe=16"}
TRAIN_SAMPLE = 10240  # >= 39 x 256: enough for 8-bit PQ codebooks, and bounds training time


@dataclass(frozen=True)
class Mixture:
    """A fixed random mixture to draw corpus and queries from."""

    mean: np.ndarray     # [d] shared direction
    centres: np.ndarray  # [clusters, rank]
    weights: np.ndarray  # [clusters] cluster popularity
    basis: np.ndarray    # [rank, d]

    @classmethod
    def make(cls, dim: int, clusters: int = 256, rank: int = 128, seed: int = 0) -> "Mixture":
        rng = np.random.default_rng(seed)
        mean = rng.standard_normal(dim).astype(np.float32)
        basis = rng.standard_normal((rank, dim)).astype(np.float32)
        weights = rng.dirichlet(np.full(clusters, 0.5))
        return cls(mean / np.linalg.norm(mean), rng.standard_normal((clusters, rank)).astype(np.float32),
                   weights, basis / np.linalg.norm(basis, axis=1, keepdims=True))

    def sample(self, n: int, seed: int, chunk: int = 8192) -> np.ndarray:
        """[n, d] float32 unit vectors: 0.6 shared + cluster signal + 0.35 noise (norms before normalising)."""
        rng = np.random.default_rng(seed)
        dim = self.basis.shape[1]
        out = np.empty((n, dim), dtype=np.float32)
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            cluster = rng.choice(len(self.weights), size=m, p=self.weights)
            latent = self.centres[cluster] + 0.6 * rng.standard_normal((m, self.centres.shape[1]), dtype=np.float32)
            signal = latent @ self.basis
            signal /= np.linalg.norm(signal, axis=1, keepdims=True)
            noise = rng.standard_normal((m, dim), dtype=np.float32) * (0.35 / np.sqrt(dim))
            rows = 0.6 * self.mean + signal + noise
            out[start:start + m] = rows / np.linalg.norm(rows, axis=1, keepdims=True)
        return out


def nlist_for(n: int) -> int:
    """A power of two near sqrt(n), leaving >= 39 training points per list as faiss asks."""
    nlist = 2 ** round(np.log2(max(np.sqrt(n), 1)))
    return int(max(1, min(nlist, min(n, TRAIN_SAMPLE) // 39)))


def resolve(spec: str, n: int) -> str:
    return spec.format(nlist=nlist_for(n))


def serialized_bytes(index) -> int:
    import faiss

    with tempfile.NamedTemporaryFile(suffix=".faiss") as tmp:
        faiss.write_index(index, tmp.name)
        return os.path.getsize(tmp.name)


def build(spec: str, vectors: np.ndarray, seed: int = 0):
    """Train (on a sample of at most TRAIN_SAMPLE vectors) and add, as the index builder does.

    Returns (index, seconds).
    """
    from pyserini_llara.index import new_index

    start = time.perf_counter()
    index = new_index(vectors.shape[1], spec)
    if not index.is_trained:
        sample = np.random.default_rng(seed).choice(len(vectors), size=min(len(vectors), TRAIN_SAMPLE), replace=False)
        index.train(vectors[np.sort(sample)])
    index.add(vectors)
    return index, time.perf_counter() - start


def configure(index, spec: str, k: int) -> str:
    """Apply the search-time settings for this index type; returns them for the table."""
    import faiss

    settings = ",".join(p.format(ef=max(2 * k, 64)) for key, p in SEARCH_PARAMS.items() if key in spec)
    if settings:
        faiss.ParameterSpace().set_index_parameters(index, settings)
    return settings or "-"


def recall_at(found: np.ndarray, truth: np.ndarray) -> float:
    k = truth.shape[1]
    return float(np.mean([len(set(f) & set(t)) / k for f, t in zip(found, truth)]))


def measure(spec: str, vectors: np.ndarray, queries: np.ndarray, k: int, truth: np.ndarray | None):
    index, seconds = build(spec, vectors)
    settings = configure(index, spec, k)
    start = time.perf_counter()
    _, found = index.search(queries, k)
    search_seconds = time.perf_counter() - start
    size = serialized_bytes(index)
    row = {"index": spec, "search": settings, "bytes": size, "mb": size / 2**20,
           "bytes_vector": size / len(vectors), "build_s": seconds, "qps": len(queries) / search_seconds,
           "recall": recall_at(found, truth) if truth is not None else 1.0}
    return row, found


def load_or_make(args) -> tuple[np.ndarray, np.ndarray, str]:
    if args.vectors:
        vectors = np.ascontiguousarray(np.load(args.vectors), dtype=np.float32)
        if args.queries:
            queries = np.ascontiguousarray(np.load(args.queries), dtype=np.float32)
        else:
            vectors, queries = vectors[:-args.num_queries], vectors[-args.num_queries:]
        if args.num_vectors:
            vectors = vectors[:args.num_vectors]
        return vectors, queries, f"vectors from {args.vectors}"
    mixture = Mixture.make(args.dim, seed=args.seed)
    n = args.num_vectors or 20000
    return mixture.sample(n, seed=args.seed + 1), mixture.sample(args.num_queries, seed=args.seed + 2), \
        "synthetic low-rank Gaussian mixture + noise"


def main(argv: list[str] | None = None) -> None:
    import faiss

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vectors", type=Path, help=".npy [n, d] float32 corpus vectors (default: synthetic)")
    parser.add_argument("--queries", type=Path,
                        help=".npy [q, d] query vectors (default: the last --num-queries vectors)")
    parser.add_argument("--num-vectors", type=int, help="corpus size (synthetic default 20000)")
    parser.add_argument("--num-queries", type=int, default=500)
    parser.add_argument("--dim", type=int, default=4096, help="synthetic vector size")
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--index-types", type=lambda s: s.split(";"), default=list(DEFAULT_TYPES),
                        help="';'-separated faiss factory strings; '{nlist}' is filled per size")
    parser.add_argument("--growth", type=lambda s: [int(x) for x in s.split(",")],
                        help="comma-separated corpus sizes for the build-cost growth table "
                             "(default n/4,n/2,n; '0' skips)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)

    threads = os.cpu_count() or 1
    faiss.omp_set_num_threads(threads)
    start = time.perf_counter()
    vectors, queries, source = load_or_make(args)
    made = time.perf_counter() - start
    n, dim = vectors.shape
    print(f"machine: {machine()}; faiss {faiss.__version__}, {threads} threads")
    print(f"{n} x {dim} vectors ({source}, {made:.1f} s), {len(queries)} queries, recall@{args.k} against Flat",
          flush=True)
    rows, truth = [], None
    for spec in args.index_types:
        spec = resolve(spec, n)
        row, found = measure(spec, vectors, queries, args.k, truth)
        truth = found if truth is None else truth
        rows.append(row)
        print(f"  {spec}: built in {row['build_s']:.1f} s, recall {row['recall']:.3f}", flush=True)
    if resolve(args.index_types[0], n) != "Flat":
        print(f"note: recall is against {rows[0]['index']}, the first type, not exact search")
    print()
    print(table(rows, [("index", "index (factory)"), ("search", "search setting"), ("mb", "serialized MB"),
                       ("bytes_vector", "bytes/vector"), ("build_s", "build s"), ("qps", "queries/s"),
                       ("recall", f"recall@{args.k}")]))

    sizes = args.growth if args.growth is not None else [n // 4, n // 2, n]
    sizes = [s for s in sizes if 0 < s <= n]
    growth = []
    if len(sizes) > 1:
        for spec in args.index_types:
            first = None
            for size in sizes:
                done = next((r for r in rows if r["index"] == resolve(spec, size)), None) if size == n else None
                seconds = done["build_s"] if done else build(resolve(spec, size), vectors[:size])[1]
                first = first or (size, seconds)
                growth.append({"index": resolve(spec, size), "n": size, "build_s": seconds,
                               "us_vector": 1e6 * seconds / size,
                               "ratio": (seconds / first[1]) / (size / first[0])})
                print(f"  {resolve(spec, size)} x {size}: {seconds:.2f} s", flush=True)
        print("\nbuild-cost growth (ratio = time growth / size growth; 1.0 = linear)")
        print(table(growth, [("index", "index"), ("n", "vectors"), ("build_s", "build s"),
                             ("us_vector", "us/vector"), ("ratio", "ratio")]))
    if args.out:
        args.out.write_text(json.dumps({"machine": machine(), "faiss": faiss.__version__, "n": n, "dim": dim,
                                        "queries": len(queries), "k": args.k, "source": source,
                                        "rows": rows, "growth": growth}, indent=2))


if __name__ == "__main__":
    sys.exit(main())
