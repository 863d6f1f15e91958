"""Fine-tuning recipes for the main job, compared on its own data: nDCG@10 (mean ± sd over seeds) and time.

    python benchmarks/insuranceqa_recipes.py --seeds 3                 # every variant, 3 seeds each
    python benchmarks/insuranceqa_recipes.py --variants start,chosen --seeds 3

Each variant fine-tunes the main job's adapted model of each seed (made here through the main job's
own stages, and shared with it: `--output` is the main job's directory) and is indexed and searched as
the main job does. The first variant, `start`, is the recipe the main job began with: the baseline
every other variant is read against; `group-2x8-lr1e-3` is the main job's recipe. Models and runs go
under OUTPUT/models/recipes and OUTPUT/runs/recipes; a rerun reuses every finished one by its
completion record.
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
# name -> (fine-tuning recipe, fine-tuning steps, adaptation steps)
VARIANTS = {
    "start": (START, 16, 15),
    "group-2x8": (GROUP_2X8, 16, 15),
    "group-2x8-lr1e-3": (replace(GROUP_2X8, learning_rate=1e-3), 16, 15),
    "group-2x8-lr1e-3-adapt-45": (replace(GROUP_2X8, learning_rate=1e-3), 16, 45),
}
MAIN_JOB = "group-2x8-lr1e-3"  # the main job's recipe (tests/test_benchmarks.py holds them equal)


def adapted_model(out: Path, base: Path, seed: int, steps: int) -> Path:
    """Where the main job keeps its adapted model of ``seed``; one adapted for other steps lives beside it."""
    if steps == demo.parse_args([]).adapt_steps:
        return out / "models" / f"seed-{seed}" / "adapted"
    return out / "models" / "recipes" / f"adapted-{steps}" / f"seed-{seed}"


def with_steps(job, adapt_steps: int, finetune_steps: int) -> argparse.Namespace:
    return argparse.Namespace(**{**vars(job), "adapt_steps": adapt_steps, "finetune_steps": finetune_steps})


def seconds_cell(times: list[dict | None]) -> str:
    """Mean wall / CPU seconds over the seeds, or n/a where some were made before they were timed."""
    if any(t is None for t in times):
        return "n/a"
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
    print(f"machine: {describe('cpu')}; precision {job.dtype}")
    timings_file = out / "runs" / "recipes" / "timings.json"
    timings = json.loads(timings_file.read_text()) if timings_file.exists() else {}

    def timed(key: str, model: Path, make) -> dict | None:
        """Train ``model`` (or reuse it by its record); its training time, as the run that made it measured it
        (None for a model made before this script timed it, e.g. by the main job)."""
        if demo.made(model) is None:
            t, cpu = time.time(), demo.children_cpu_seconds()
            make()
            timings[key] = {"wall": time.time() - t, "cpu": demo.children_cpu_seconds() - cpu}
            timings_file.parent.mkdir(parents=True, exist_ok=True)
            timings_file.write_text(json.dumps(timings, indent=2))
        make()  # reused by its completion record; made again if that record does not prove it
        return timings.get(key)

    rows = []
    for name in args.variants.split(","):
        recipe, steps, adapt_steps = VARIANTS[name]
        scores, seconds = [], []
        for seed in range(args.seed, args.seed + args.seeds):
            adapted = adapted_model(out, base, seed, adapt_steps)
            adapting = timed(f"adapted-{adapt_steps}/seed-{seed}", adapted,
                             lambda: demo.adapt(base, adapted, with_steps(job, adapt_steps, steps), seed))
            model = out / "models" / "recipes" / name / f"seed-{seed}"
            tuning = timed(f"{name}/seed-{seed}", model, lambda: demo.finetune(
                adapted, data_dir / "train.jsonl", model, with_steps(job, adapt_steps, steps), seed, recipe))
            run = demo.dense(f"recipes/{name}/seed-{seed}", model, data_dir, out, job)
            scores.append(fmean(per_query("nDCG@10", str(data_dir / "qrels.txt"), str(run)).values()))
            seconds.append((adapting, tuning))
        rows.append((name, adapt_steps, steps, recipe, scores, seconds))

    print("\n| variant | adaptation steps | fine-tuning steps | queries x group | grad. checkpointing | lr | "
          "temperature | nDCG@10 | seeds | adaptation s (wall / CPU) | fine-tuning s (wall / CPU) |")
    print("|---" * 11 + "|")
    for name, adapt_steps, steps, recipe, scores, seconds in rows:
        spread = f" ± {stdev(scores):.4f}" if len(scores) > 1 else ""
        print(f"| {name} | {adapt_steps} | {steps} | {recipe.queries_per_step} x {recipe.group_size} | "
              f"{'yes' if recipe.gradient_checkpointing else 'no'} | {recipe.learning_rate:g} | {recipe.temperature:g} "
              f"| {fmean(scores):.4f}{spread} | {len(scores)} | {seconds_cell([a for a, _ in seconds])} | "
              f"{seconds_cell([t for _, t in seconds])} |")
    print("\n" + json.dumps({name: asdict(recipe) | {"adapt_steps": a, "steps": steps, "ndcg@10": scores}
                             for name, a, steps, recipe, scores, _ in rows}))


if __name__ == "__main__":
    main()
