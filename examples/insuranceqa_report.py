"""The main job's report: every row scored per question, as mean ± sd over the training seeds, the
paired tests that say which differences are real, the table and results.png."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from statistics import fmean, stdev

from pyserini_llara.significance import Comparison, compare, describe, mean_over_runs, per_query

TESTED = "nDCG@10"
# (row, baseline, mark): the paired tests, each marking its row's nDCG@10 when p < 0.05.
TESTS = (("finetuned", "bm25", "†"), ("finetuned", "ablation", "‡"), ("finetuned-bm25", "bm25", "†"))


def mean(values) -> float:
    values = list(values)
    return fmean(values) if values else 0.0


def sd(values: list[float]) -> float:
    """Over the seeds; 0 for a row made once."""
    return stdev(values) if len(values) > 1 else 0.0


@dataclass
class Results:
    """Per row: each measure's value in each run of it (one run per seed); the tests on ``TESTED``."""

    scores: dict[str, dict[str, list[float]]]
    tests: dict[tuple[str, str], Comparison]
    questions: int

    def cell(self, row: str, measure: str) -> str:
        values = self.scores[row][measure]
        text = f"{mean(values):.4f}" + (f" ± {stdev(values):.4f}" if len(values) > 1 else "")
        if measure == TESTED:
            text += "".join(mark for a, b, mark in TESTS if a == row and self.tests[a, b].significant())
        return text

    def to_json(self) -> dict:
        return {"scores": {row: {m: {"mean": mean(v), "sd": sd(v), "runs": v}
                                 for m, v in measures.items()} for row, measures in self.scores.items()},
                "tests": {f"{a} vs {b}": vars(c) for (a, b), c in self.tests.items()}}


def evaluate(qrels: Path, runs: dict[str, list[Path]], measures) -> Results:
    """Score every run per question; test each of ``TESTS`` on the per-question means over the seeds."""
    values = {row: {m: [per_query(m, str(qrels), str(r)) for r in files] for m in measures}
              for row, files in runs.items()}
    scores = {row: {m: [mean(run.values()) for run in per_run] for m, per_run in by_measure.items()}
              for row, by_measure in values.items()}
    tests = {(a, b): compare(mean_over_runs(values[a][TESTED]), mean_over_runs(values[b][TESTED]))
             for a, b, _ in TESTS}
    return Results(scores, tests, len(values["bm25"][TESTED][0]))


def render(results: Results, names: dict[str, str], seconds: dict[str, dict[str, float]]) -> str:
    measures = list(next(iter(results.scores.values())))
    seeds = max(len(v) for row in results.scores.values() for v in row.values())
    lines = ["| system | " + " | ".join(measures) + " | stage time (s) | CPU time (s) |",
             "|---" * (len(measures) + 3) + "|"]
    for row, name in names.items():
        cells = " | ".join(results.cell(row, m) for m in measures)
        lines.append(f"| {name} | {cells} | {seconds['wall'][row]:.0f} | {seconds['cpu'][row]:.0f} |")
    over = f"each system's per-question mean over its {seeds} seeds" if seeds > 1 else "one seed"
    lines += ["", f"Paired tests on {TESTED} over the {results.questions} test questions ({over}; scipy's t-test "
              "and a 10,000-resample randomization test). † significantly different from BM25, ‡ from fine-tuning "
              "without EBAE/EBAR (t-test, p < 0.05). Mean ± sd over the seeds; stage times are per seed."]
    lines += [f"- {names[a]} vs {names[b]}: {describe(results.tests[a, b])}" for a, b, _ in TESTS]
    return "\n".join(lines)


def plot(results: Results, names: dict[str, str], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(names)
    values = [results.scores[row][TESTED] for row in rows]
    means = [mean(v) for v in values]
    errors = [sd(v) for v in values]
    fig, ax = plt.subplots(figsize=(9, 4))
    colours = ["tab:gray" if row == "ablation" else "tab:blue" for row in rows]
    bars = ax.bar(range(len(rows)), means, yerr=errors, capsize=5, color=colours)
    ax.bar_label(bars, labels=[results.cell(row, TESTED) for row in rows], fontsize=7, padding=3)
    ax.set_xticks(range(len(rows)), [names[row] for row in rows], rotation=15, fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel(TESTED)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
