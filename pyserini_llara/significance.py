"""Is a difference between two runs real? Paired tests over the queries, as IR papers report them.

Per-query values come from ir-measures, the statistics from scipy: a paired t-test with the 95%
confidence interval of the mean difference, and a paired randomization test (the sign of each
query's difference flipped at random; Smucker et al., CIKM 2007, recommend it for IR). A judged
query that a run does not answer counts 0 for it (as ``trec_eval -c``), so that two runs are always
compared on the same queries.

    python -m pyserini_llara.significance qrels.txt run.a.trec run.b.trec --measure nDCG@10
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np

from .cli import HelpFormatter, one_line_errors

ALPHA = 0.05


def per_query(measure: str, qrels_path: str, run_path: str) -> dict[str, float]:
    """``measure`` of every judged query of ``qrels_path`` in ``run_path`` (0 where the run has none)."""
    import ir_measures

    parsed = ir_measures.parse_measure(measure)
    qrels = list(ir_measures.read_trec_qrels(qrels_path))
    values = {q.query_id: 0.0 for q in qrels}
    for metric in ir_measures.iter_calc([parsed], qrels, ir_measures.read_trec_run(run_path)):
        values[metric.query_id] = float(metric.value)
    return values


def mean_over_runs(runs: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Each query's mean over runs of one system (e.g. its seeds): the system's value for that query."""
    queries = set(runs[0])
    for run in runs[1:]:
        if set(run) != queries:
            raise ValueError("the runs cover different queries: score them against the same qrels")
    return {q: float(np.mean([run[q] for run in runs])) for q in sorted(queries)}


@dataclass(frozen=True)
class Comparison:
    """System a minus system b over the same queries."""

    queries: int
    mean_difference: float
    ci_low: float
    ci_high: float
    p_t_test: float
    p_randomization: float

    def significant(self, alpha: float = ALPHA) -> bool:
        """By the paired t-test, two-sided."""
        return self.p_t_test < alpha


def compare(a: Mapping[str, float], b: Mapping[str, float], resamples: int = 10_000, seed: int = 0) -> Comparison:
    """Paired tests of per-query values ``a`` against ``b`` (dicts query id -> value, same queries)."""
    from scipy import stats

    if set(a) != set(b):
        raise ValueError(f"paired tests need the same queries: {len(set(a) ^ set(b))} are in only one of the runs")
    if len(a) < 2:
        raise ValueError(f"paired tests need at least 2 queries, got {len(a)}")
    queries = sorted(a)
    x, y = np.array([a[q] for q in queries]), np.array([b[q] for q in queries])
    differences = x - y
    if not differences.any():  # identical runs: no difference to test (scipy's t is undefined there)
        return Comparison(len(queries), 0.0, 0.0, 0.0, 1.0, 1.0)
    t_test = stats.ttest_rel(x, y)
    interval = t_test.confidence_interval(0.95)
    randomization = stats.permutation_test(
        (x, y), lambda u, v, axis: np.mean(u - v, axis=axis), permutation_type="samples", vectorized=True,
        n_resamples=resamples, rng=np.random.default_rng(seed))
    return Comparison(len(queries), float(differences.mean()), float(interval.low), float(interval.high),
                      float(t_test.pvalue), float(randomization.pvalue))


def describe(comparison: Comparison) -> str:
    """One line: the difference, its 95% interval and both p-values."""
    c = comparison
    return (f"{c.mean_difference:+.4f} [95% CI {c.ci_low:+.4f}, {c.ci_high:+.4f}], paired t-test p = {c.p_t_test:.4f}, "
            f"randomization p = {c.p_randomization:.4f}, {c.queries} queries"
            + (" (significant at 0.05)" if c.significant() else ""))


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pyserini_llara.significance", description=__doc__,
                                     formatter_class=HelpFormatter)
    parser.add_argument("qrels", help="TREC qrels file")
    parser.add_argument("run_a", help="TREC run file of system a")
    parser.add_argument("run_b", help="TREC run file of system b (e.g. the baseline)")
    parser.add_argument("--measure", action="append", help="ir-measures name, repeatable (default nDCG@10)")
    parser.add_argument("--resamples", type=int, default=10_000, help="random sign flips of the randomization test")
    args = parser.parse_args(None if argv is None else list(argv))
    with one_line_errors():
        for measure in args.measure or ["nDCG@10"]:
            a, b = (per_query(measure, args.qrels, run) for run in (args.run_a, args.run_b))
            print(f"{measure}: a - b = {describe(compare(a, b, args.resamples))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
