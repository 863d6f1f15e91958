"""One prepared check for a GPU machine (H100/H200): LLaMA-2-7B-shaped encoding, a LoRA pretraining step, flat search.

The model has LLaMA-2-7B's shape (hidden 4096, 32 layers, 32 heads, intermediate 11008,
vocab 32016) with random weights built from a ``LlamaConfig``: speed does not depend on the
weights, and nothing is downloaded. Their precision is ``--dtype`` (default auto: bf16 on cards
that have it, fp16 on older ones, and on a CPU bf16 only where it runs natively, else fp32).
Inputs are MS MARCO-like: 60-80 text tokens inside LLaMA-2's 21-token passage template
(BOS + ``"`` + text + 19-token summarize suffix).

1. encoding through ``LlaraEncoder.embed_ids`` in length-sorted batches: tokens/s, model FLOPs
   utilisation (2 x non-embedding parameters x real tokens / time / the card's dense bf16
   peak), and the hours to encode MS MARCO's 8.8M passages on 8 such GPUs; then the release's
   loop over the same ids (``_common.release_loop``) for speed, memory and embedding gap;
2. LoRA pretraining steps as ``adaptation.pretrain`` takes them (``apply_lora``, the joint
   EBAE/EBAR objective, ``PretrainCollator`` batches) with gradient checkpointing at the
   release's length (rows of 128 tokens, template included: its README's ``--cutoff_len``);
3. exact inner-product search over 1M x 4096 vectors: faiss's GPU flat index when faiss has
   GPU support, and the same search as a plain torch matrix product + top-k.

Run from the repository root (the package need not be installed):

    PYTHONPATH=. python3 benchmarks/gpu_check.py --out gpu_check.json
    PYTHONPATH=. python3 benchmarks/gpu_check.py --small --out small.json    # CPU-sized shapes
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np

from _common import machine
from pyserini_llara.precision import PRECISIONS, resolve_dtype

# Dense bf16 (= fp16) tensor-core peak (no sparsity), by a substring of torch.cuda.get_device_name.
PEAK_BF16_FLOPS = {"H100 PCIe": 756e12, "H100 NVL": 835e12, "H100": 989e12, "H200": 989e12, "A100": 312e12}
MSMARCO_PASSAGES = 8_841_823
LLAMA2_PASSAGE_OVERHEAD = 21   # BOS + '"' + 19-token summarize suffix with the LLaMA-2 tokenizer
PRETRAIN_ROW_TOKENS = 128      # the release's cutoff_len: the whole row, template included


@dataclass(frozen=True)
class Shape:
    hidden: int = 4096
    layers: int = 32
    heads: int = 32
    intermediate: int = 11008
    vocab: int = 32016
    encode_docs: int = 4096
    encode_batch: int = 256
    train_batch: int = 16
    train_steps: int = 4
    search_vectors: int = 1_000_000
    search_queries: int = 4096
    k: int = 100


SMALL = Shape(hidden=256, layers=2, heads=4, intermediate=688, encode_docs=512, encode_batch=64, train_batch=4,
              train_steps=2, search_vectors=10_000, search_queries=512)


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def peak_flops(device, dtype: str) -> float | None:
    """The card's dense half-precision tensor-core peak (bf16 and fp16 alike); None for fp32 or a CPU."""
    import torch

    if device.type != "cuda" or dtype == "float32":
        return None
    name = torch.cuda.get_device_name(device)
    return next((flops for key, flops in PEAK_BF16_FLOPS.items() if key in name), None)


def build_model(shape: Shape, tokenizer, device, dtype: str):
    """A random LlamaForCausalLM of the given shape and precision, built directly on the device."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=shape.vocab, hidden_size=shape.hidden, intermediate_size=shape.intermediate,
                         num_hidden_layers=shape.layers, num_attention_heads=shape.heads,
                         num_key_value_heads=shape.heads, max_position_embeddings=4096,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False)
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM._from_config(config, dtype=getattr(torch, dtype), attn_implementation="sdpa")
    return model.eval()


def tiny_tokenizer():
    """Any tokenizer holding <s1>..<s16> serves: the ids are made up and only the template's ids matter."""
    from pyserini_llara.template import ensure_pad_token
    from tests.tiny import train_tokenizer

    tokenizer = train_tokenizer()
    ensure_pad_token(tokenizer)
    return tokenizer


def passage_ids(template, n: int, rng: np.random.Generator, text_tokens: tuple[int, int] = (60, 80)) -> list[list[int]]:
    """Templated ids whose lengths match LLaMA-2's: text tokens + the 21-token passage template."""
    high = min(template.summarize_ids + template.predict_ids)
    extra = LLAMA2_PASSAGE_OVERHEAD - template.overhead("passage")
    lengths = rng.integers(text_tokens[0], text_tokens[1] + 1, size=n) + extra
    return [template.wrap(rng.integers(3, high, size=max(1, m)).tolist(), "passage") for m in lengths]


def timed(device, work):
    """(result, seconds, peak GPU GiB or None) of ``work()``."""
    import torch

    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    sync(device)
    start = time.perf_counter()
    result = work()
    sync(device)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return result, seconds, peak


def check_encoding(model, tokenizer, shape: Shape, device, gpus: int, dtype: str) -> dict:
    """Our encoder (length-sorted batches, last hidden state only) against the release's loop, same ids."""
    from _common import release_loop
    from pyserini_llara.encoding import LlaraEncoder, length_sorted_batches

    encoder = LlaraEncoder(model.model, tokenizer, batch_size=shape.encode_batch)
    ids = passage_ids(encoder.template, shape.encode_docs, np.random.default_rng(0))
    batches = length_sorted_batches([len(x) for x in ids], shape.encode_batch)
    for batch in batches[:2]:  # warm-up: kernels, allocator
        encoder.embed_ids([ids[i] for i in batch])
    release_loop(model.model, tokenizer, ids[:shape.encode_batch], shape.encode_batch)

    def ours() -> np.ndarray:
        out = np.empty((len(ids), encoder.dimension), dtype=np.float32)
        for batch in batches:
            out[batch] = encoder.embed_ids([ids[i] for i in batch]).numpy()
        return out

    embeddings, seconds, peak_memory = timed(device, ours)
    (reference, naive_positions), naive_seconds, naive_memory = timed(
        device, lambda: release_loop(model.model, tokenizer, ids, shape.encode_batch))
    tokens = sum(len(x) for x in ids)
    positions = sum(len(b) * max(len(ids[i]) for i in b) for b in batches)
    params = sum(p.numel() for p in model.model.parameters()) - model.model.embed_tokens.weight.numel()
    peak = peak_flops(device, dtype)
    docs_s = len(ids) / seconds
    cosine = (embeddings * reference).sum(1)
    return {"docs": len(ids), "batch": shape.encode_batch, "mean_tokens": tokens / len(ids), "seconds": seconds,
            "docs_s": docs_s, "tokens_s": tokens / seconds, "padding": 1 - tokens / positions,
            "peak_gpu_gb": peak_memory, "non_embedding_params": params,
            "achieved_tflops": 2 * params * tokens / seconds / 1e12,
            "peak_tflops": peak / 1e12 if peak else None,
            "mfu": 2 * params * tokens / seconds / peak if peak else None,
            "msmarco_hours_on_gpus": MSMARCO_PASSAGES / (docs_s * gpus) / 3600, "gpus": gpus,
            "release_loop": {"seconds": naive_seconds, "docs_s": len(ids) / naive_seconds,
                             "tokens_s": tokens / naive_seconds, "padding": 1 - tokens / naive_positions,
                             "peak_gpu_gb": naive_memory},
            "speedup_vs_release_loop": naive_seconds / seconds,
            "max_abs_diff": float(np.abs(embeddings - reference).max()), "min_cosine": float(cosine.min())}


def pretrain_examples(n: int, rng: np.random.Generator) -> list[dict]:
    """Release-format examples whose texts outlast the token budget, so every row is cut to full length."""
    from tests.tiny import CORPUS

    def text() -> str:
        return " ".join(rng.choice(CORPUS, size=80))

    return [{"input": (t := text()), "output_summarize": t, "output_predict": text()} for _ in range(n)]


def check_pretraining(model, tokenizer, shape: Shape, device, dtype: str) -> dict:
    """LoRA pretraining steps as ``adaptation.pretrain`` takes them, at LLaMA-2's lengths.

    The release's LoRA (r 64, alpha 16, all projections; with the 16 LLaRA token rows trained
    as ``adaptation.training`` does by default), gradient checkpointing, the joint EBAE/EBAR
    pass of ``adaptation.objective`` on batches from ``adaptation.data.collators.PretrainCollator``, AdamW.
    """
    import torch

    from adaptation.data.collators import PretrainCollator, ReleaseWindows
    from adaptation.objective import PretrainObjective
    from adaptation.training import TrainingArguments, apply_lora, enable_gradient_checkpointing

    length = PRETRAIN_ROW_TOKENS
    collator = PretrainCollator(tokenizer, ReleaseWindows(length))
    objective = PretrainObjective(collator.n_summarize, collator.n_predict)
    batch = collator(pretrain_examples(shape.train_batch, np.random.default_rng(1)))
    if batch["input_ids"].shape[1] != length:
        raise RuntimeError(f"pretraining rows are {batch['input_ids'].shape[1]} tokens, expected {length}")
    batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}

    enable_gradient_checkpointing(model)
    lora = apply_lora(model, tokenizer, TrainingArguments(output_dir="unused", use_lora=True))
    lora.train()
    optimizer = torch.optim.AdamW([p for p in lora.parameters() if p.requires_grad], lr=1e-4)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def step() -> dict[str, float]:
        losses = objective(lora, batch)
        losses["loss"].backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return {name: value.detach().item() for name, value in losses.items()}

    step()  # warm-up
    sync(device)
    start = time.perf_counter()
    for _ in range(shape.train_steps):
        last = step()
    sync(device)
    seconds = (time.perf_counter() - start) / shape.train_steps
    params = sum(p.numel() for p in lora.parameters() if not p.requires_grad)
    trainable = sum(p.numel() for p in lora.parameters() if p.requires_grad)
    tokens = int(batch["attention_mask"].sum())
    peak = peak_flops(device, dtype)
    # 6 N per token: forward 2N, backward ~2N (no frozen-weight gradients), recomputed forward 2N.
    flops = 6 * params * tokens / seconds
    return {"objective": "adaptation.objective joint EBAE/EBAR pass (LM 1, EBAE 0.05, EBAR 0.05)",
            "last_losses": last, "batch": shape.train_batch, "sequence": length, "seconds_per_step": seconds,
            "tokens_s": tokens / seconds, "frozen_params": params, "trainable_params": trainable,
            "achieved_tflops_6N": flops / 1e12, "mfu_6N": flops / peak if peak else None,
            "peak_gpu_gb": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None}


def check_search(shape: Shape, device) -> dict:
    """Exact inner-product top-k over random unit vectors: faiss GPU flat, and torch matmul + topk."""
    import torch

    dim = shape.hidden
    generator = torch.Generator(device=device).manual_seed(0)
    chunk = 65536
    vectors = torch.empty((shape.search_vectors, dim), dtype=torch.float32, device=device)
    for start in range(0, shape.search_vectors, chunk):
        block = torch.randn((min(chunk, shape.search_vectors - start), dim), generator=generator, device=device)
        vectors[start:start + len(block)] = torch.nn.functional.normalize(block, dim=1)
    queries = torch.nn.functional.normalize(torch.randn((shape.search_queries, dim), generator=generator,
                                                        device=device), dim=1)
    result = {"vectors": shape.search_vectors, "dim": dim, "queries": shape.search_queries, "k": shape.k}

    sync(device)
    start = time.perf_counter()
    found = []
    for q in queries.split(1024):
        found.append(torch.topk(q @ vectors.T, shape.k, dim=1).indices)
    sync(device)
    seconds = time.perf_counter() - start
    result["torch_qps"] = shape.search_queries / seconds
    torch_ids = torch.cat(found).cpu().numpy()

    try:
        import faiss
    except ImportError:
        faiss = None
    if faiss is None or not hasattr(faiss, "StandardGpuResources") or faiss.get_num_gpus() == 0:
        print("faiss GPU flat search skipped: faiss with GPU support is not installed "
              "(pip uninstall faiss-cpu, then pip install faiss-gpu-cu12); torch matmul + top-k measured instead")
        result["faiss_gpu"] = "skipped: no faiss GPU support"
        return result
    resources = faiss.StandardGpuResources()
    index = faiss.GpuIndexFlatIP(resources, dim)
    start = time.perf_counter()
    for block in vectors.split(chunk):
        index.add(block.cpu().numpy())
    result["faiss_add_s"] = time.perf_counter() - start
    del vectors
    host_queries = queries.cpu().numpy()
    index.search(host_queries[:64], shape.k)  # warm-up
    start = time.perf_counter()
    _, ids = index.search(host_queries, shape.k)
    result["faiss_gpu_qps"] = shape.search_queries / (time.perf_counter() - start)
    result["faiss_vs_torch_overlap"] = float(np.mean([len(set(a) & set(b)) / shape.k
                                                      for a, b in zip(ids, torch_ids)]))
    return result


def report_encoding(enc: dict) -> str:
    mfu = f"{100 * enc['mfu']:.1f}% MFU" if enc["mfu"] else "MFU n/a (no known peak for this device)"
    naive = enc["release_loop"]
    return (f"encoding: {enc['docs_s']:.1f} docs/s, {enc['tokens_s']:.0f} tokens/s, "
            f"{enc['achieved_tflops']:.3g} TFLOP/s, {mfu}; MS MARCO ({MSMARCO_PASSAGES:,} passages) on "
            f"{enc['gpus']} such devices: {enc['msmarco_hours_on_gpus']:.2f} h\n"
            f"  release loop (arrival order, pad to longest, output_hidden_states): {naive['docs_s']:.1f} docs/s, "
            f"padding {naive['padding']:.1%} vs ours {enc['padding']:.1%}; ours {enc['speedup_vs_release_loop']:.2f}x; "
            f"max abs diff {enc['max_abs_diff']:.1e}, min cosine {enc['min_cosine']:.5f}")


def report_pretraining(pre: dict) -> str:
    mfu = f"{100 * pre['mfu_6N']:.1f}% MFU (6N)" if pre["mfu_6N"] else "MFU n/a"
    memory = f", peak GPU memory {pre['peak_gpu_gb']:.1f} GiB" if pre["peak_gpu_gb"] else ""
    return (f"LoRA pretraining step ({pre['batch']} x {pre['sequence']} tokens, gradient checkpointing, joint "
            f"EBAE/EBAR objective, loss {pre['last_losses']['loss']:.2f}): {pre['seconds_per_step']:.3f} s/step, "
            f"{pre['tokens_s']:.0f} tokens/s, {mfu}{memory}")


def report_search(search: dict) -> str:
    line = (f"exact search {search['vectors']:,} x {search['dim']}, {search['queries']} queries, k {search['k']}: "
            f"torch matmul+topk {search['torch_qps']:.0f} queries/s")
    if "faiss_gpu_qps" in search:
        line += (f"; faiss GPU flat {search['faiss_gpu_qps']:.0f} queries/s (add {search['faiss_add_s']:.1f} s, "
                 f"top-{search['k']} overlap with torch {search['faiss_vs_torch_overlap']:.3f})")
    return line


def main(argv: list[str] | None = None) -> int:
    import torch

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true",
                        help="CPU-sized shapes (hidden 256, 2 layers, 10k x 256 vectors)")
    parser.add_argument("--device", help="default: cuda when available, else cpu")
    parser.add_argument("--gpus", type=int, default=8, help="GPUs in the MS MARCO encoding projection")
    parser.add_argument("--dtype", default="auto", choices=PRECISIONS,
                        help="weights precision; auto = bf16 on cards (and CPUs) that run it natively, fp16 on "
                             "older cards, fp32 on other CPUs")
    parser.add_argument("--out", type=Path, help="write the results as JSON here (after every step)")
    args = parser.parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = resolve_dtype(args.dtype, device)
    shape = SMALL if args.small else Shape()
    results = {"machine": machine(device), "device": str(device), "dtype": dtype, "shape": asdict(shape),
               "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None}
    print(f"machine: {results['machine']}; device {device}, {dtype}; shape {'small' if args.small else 'LLaMA-2-7B'}",
          flush=True)

    def attempt(name: str, work, report) -> None:
        """One step; a failing step is reported and the others still run, since GPU time is scarce."""
        try:
            results[name] = work()
            print(report(results[name]), flush=True)
        except Exception as error:
            traceback.print_exc()
            results[name] = {"error": f"{type(error).__name__}: {error}"}
        if args.out:
            args.out.write_text(json.dumps(results, indent=2))

    start = time.perf_counter()
    tokenizer = tiny_tokenizer()
    model = build_model(shape, tokenizer, device, dtype)
    results["build_model_s"] = time.perf_counter() - start
    print(f"model built in {results['build_model_s']:.1f} s", flush=True)
    attempt("encoding", partial(check_encoding, model, tokenizer, shape, device, args.gpus, dtype), report_encoding)
    attempt("pretraining", partial(check_pretraining, model, tokenizer, shape, device, dtype), report_pretraining)
    del model
    if device.type == "cuda":
        torch.cuda.empty_cache()
    attempt("search", lambda: check_search(shape, device), report_search)
    failed = [name for name in ("encoding", "pretraining", "search") if "error" in results[name]]
    if args.out:
        print(f"results written to {args.out}")
    if failed:
        print(f"failed: {', '.join(failed)} (tracebacks above)", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
