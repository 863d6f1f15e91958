"""Fine-tuning recipes for the main job, compared on its own data: nDCG@10 (mean ± sd over seeds) and the
fine-tuning stage's time (training, indexing the pool, searching).

    python benchmarks/insuranceqa_recipes.py --seeds 3                 # every variant, 3 seeds each
    python benchmarks/insuranceqa_recipes.py --variants start,group-2x8-lr1e-3 --seeds 3

Each variant fine-tunes the main job's adapted model of each seed (made here through the main job's
own stages, and shared with it: `--output` is the main job's directory, e.g. after
`bash scripts/demo.sh --seeds 3`) and is indexed and searched as the main job does. The first
variant, `start`, is the recipe the main job began with: the baseline every other variant is read
against. `group-2x8-lr1e-3` is the main job's recipe: its models and runs are the main job's own.
The others go under OUTPUT/models/recipes and OUTPUT/runs/recipes; a rerun reuses every finished
one by its completion record.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from statistics import fmean, stdev

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
import insuranceqa_pipeline as demo  # noqa: E402

from pyserini_llara.significance import per_query  # noqa: E402

START = demo.Recipe(queries_per_step=4, group_size=4, passage_max_len=128, learning_rate=3e-4, temperature=0.02,
                    lora_r=64, gradient_checkpointing=True)
GROUP_2X8 = replace(START, gradient_checkpointing=False, group_size=2, queries_per_step=8)
VARIANTS = {  # name -> the recipe, each for the main job's number of fine-tuning steps
    "start": START,
    "group-2x8": GROUP_2X8,
    "group-2x8-lr1e-3": replace(GROUP_2X8, learning_rate=1e-3),
}
MAIN_JOB = "group-2x8-lr1e-3"  # the main job's recipe (tests/test_benchmarks.py holds them equal)


def seconds_cell(times: list[dict]) -> str:
    return f"{fmean(t['wall'] for t in times):.0f} / {fmean(t['cpu'] for t in times):.0f}"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=Path("outputs/insuranceqa"),
                        help="the main job's working directory (its data, models and stages are shared)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated names: " + ", ".join(VARIANTS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=13, help="the main job's --seed (data sample, first training)")
    args = parser.parse_args(argv)
    unknown = set(args.variants.split(",")) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}: choose from {', '.join(VARIANTS)}")

    from pyserini_llara.precision import describe, resolve_dtype

    out = args.output.resolve()
    job = demo.parse_args(["--output", str(out), "--seed", str(args.seed)])
    job.dtype = resolve_dtype(job.dtype, "cpu")
    data_dir, base = out / "data", out / "models" / "smollm2-135m-llara-init"
    if demo.made(data_dir) is None or demo.made(base) is None:
        raise SystemExit(f"{out} holds no finished main job: run `bash scripts/demo.sh --output {args.output}` first")
    print(f"machine: {describe('cpu')}; precision {job.dtype}; {job.finetune_steps} fine-tuning steps")
    timings_file = out / "runs" / "recipes" / "timings.json"
    timings = json.loads(timings_file.read_text()) if timings_file.exists() else {}
    # The main job's stage times (fine-tuning, indexing, search), for the models it made.
    main_job_times = json.loads((out / "timings.json").read_text()) if (out / "timings.json").exists() else {}

    rows = []
    for name in args.variants.split(","):
        recipe = VARIANTS[name]
        scores, seconds = [], []
        for seed in range(args.seed, args.seed + args.seeds):
            adapted = demo.adapt(base, out / "models" / f"seed-{seed}" / "adapted", job, seed)
            # The main job's recipe is the main job's own fine-tuned model and run: not trained twice.
            key = f"seed-{seed}/finetuned" if recipe == demo.RECIPE else f"recipes/{name}/seed-{seed}"
            model = out / "models" / key
            made_before = demo.made(model) is not None and demo.made(out / "runs" / f"{key}.trec") is not None
            t, cpu = time.time(), demo.cpu_seconds()
            run = demo.dense(key, demo.finetune(adapted, data_dir / "train.jsonl", model, job, seed, recipe),
                             data_dir, out, job)
            if not made_before:
                timings[key] = {"wall": time.time() - t, "cpu": demo.cpu_seconds() - cpu}
                timings_file.parent.mkdir(parents=True, exist_ok=True)
                timings_file.write_text(json.dumps(timings, indent=2))
            elif key not in timings and key in main_job_times.get("wall", {}):
                timings[key] = {kind: main_job_times[kind][key] for kind in ("wall", "cpu")}
            scores.append(fmean(per_query("nDCG@10", str(data_dir / "qrels.txt"), str(run)).values()))
            seconds.append(timings.get(key))
        rows.append((name, recipe, scores, seconds))

    print("\n| variant | queries x group | gradient checkpointing | lr | temperature | nDCG@10 | seeds | "
          "fine-tuning stage s (wall / CPU) |\n" + "|---" * 8 + "|")
    for name, recipe, scores, seconds in rows:
        spread = f" ± {stdev(scores):.4f}" if len(scores) > 1 else ""
        timing = "n/a" if None in seconds else seconds_cell(seconds)
        print(f"| {name} | {recipe.queries_per_step} x {recipe.group_size} | "
              f"{'yes' if recipe.gradient_checkpointing else 'no'} | {recipe.learning_rate:g} | {recipe.temperature:g} "
              f"| {fmean(scores):.4f}{spread} | {len(scores)} | {timing} |")
    print("\n" + json.dumps({name: asdict(recipe) | {"ndcg@10": scores} for name, recipe, scores, _ in rows}))


if __name__ == "__main__":
    main()
