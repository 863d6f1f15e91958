"""The paired tests that mark a difference between two runs as significant."""

import itertools

import numpy as np
import pytest

from pyserini_llara.significance import compare, main, mean_over_runs, per_query

# Student (1908) / Cushny & Peebles: extra hours of sleep of 10 patients under two drugs, the textbook paired
# t-test (R's `sleep` data): t = -4.0621 on 9 df, p = 0.002833, 95% CI of the mean difference [-2.4599, -0.7001].
DRUG_1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
DRUG_2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]


def as_queries(values):
    return {f"q{i}": v for i, v in enumerate(values)}


def exact_randomization_p(a, b):
    """Every sign assignment of the 10 differences (2^10): the exact two-sided randomization test."""
    d = np.array(a) - np.array(b)
    observed = abs(d.mean())
    means = [abs((d * signs).mean()) for signs in itertools.product((1, -1), repeat=len(d))]
    return sum(m >= observed - 1e-12 for m in means) / len(means)


def test_the_textbook_paired_t_test_and_the_exact_randomization_test():
    c = compare(as_queries(DRUG_1), as_queries(DRUG_2))
    assert c.queries == 10
    assert c.mean_difference == pytest.approx(-1.58)
    assert (c.ci_low, c.ci_high) == pytest.approx((-2.4599, -0.7001), abs=1e-4)
    assert c.p_t_test == pytest.approx(0.002833, abs=1e-6)
    # 10,000 resamples exceed the 1,024 sign assignments, so scipy enumerates them all: the exact p.
    assert c.p_randomization == pytest.approx(exact_randomization_p(DRUG_1, DRUG_2))
    assert c.significant()


def test_a_difference_within_the_noise_is_not_significant_and_identical_runs_give_p_1():
    a = as_queries([0.5, 0.6, 0.4, 0.7, 0.5, 0.6])
    b = as_queries([0.6, 0.5, 0.5, 0.6, 0.4, 0.7])
    assert not compare(a, b).significant()
    same = compare(a, a)
    assert (same.mean_difference, same.p_t_test, same.p_randomization) == (0.0, 1.0, 1.0)


def test_runs_on_other_queries_are_refused():
    with pytest.raises(ValueError, match="same queries: 1 are in only one"):
        compare(as_queries([1.0, 0.0]), as_queries([1.0, 0.0, 0.5]))
    with pytest.raises(ValueError, match="different queries"):
        mean_over_runs([as_queries([1.0, 0.0]), as_queries([1.0, 0.0, 0.5])])


def test_a_judged_query_the_run_does_not_answer_counts_zero(tmp_path):
    qrels, run = tmp_path / "qrels.txt", tmp_path / "run.trec"
    qrels.write_text("q1 0 d1 1\nq2 0 d2 1\nq3 0 d3 1\n")
    run.write_text("q1 Q0 d1 1 2.0 t\nq1 Q0 d9 2 1.0 t\nq2 Q0 d9 1 2.0 t\nq2 Q0 d2 2 1.0 t\n")
    values = per_query("RR@10", str(qrels), str(run))
    assert values == {"q1": 1.0, "q2": 0.5, "q3": 0.0}
    assert mean_over_runs([values, {"q1": 0.0, "q2": 0.5, "q3": 1.0}]) == {"q1": 0.5, "q2": 0.5, "q3": 0.5}


def test_cli_prints_the_difference_its_interval_and_both_p_values(tmp_path, capsys):
    qrels, good, bad = tmp_path / "qrels.txt", tmp_path / "good.trec", tmp_path / "bad.trec"
    qrels.write_text("".join(f"q{i} 0 d{i} 1\n" for i in range(8)))
    good.write_text("".join(f"q{i} Q0 d{i} 1 2.0 t\nq{i} Q0 x 2 1.0 t\n" for i in range(8)))
    bad.write_text("".join(f"q{i} Q0 x 1 2.0 t\nq{i} Q0 d{i} 2 1.0 t\n" for i in range(6))
                   + "".join(f"q{i} Q0 d{i} 1 2.0 t\n" for i in (6, 7)))  # 6 queries at RR 0.5, 2 at 1
    assert main([str(qrels), str(good), str(bad), "--measure", "RR@10"]) == 0
    out = capsys.readouterr().out
    # Differences 6 x 0.5, 2 x 0: mean 0.375, sd 0.2315, t = 4.583 on 7 df, CI 0.375 -+ 2.3646 x 0.0818.
    assert out.startswith("RR@10: a - b = +0.3750 [95% CI +0.1815, +0.5685], paired t-test p = 0.0025")
    # 6 differences of +0.5 and 2 of 0: 8 of the 256 sign assignments are as extreme.
    assert "randomization p = 0.0312, 8 queries (significant at 0.05)" in out
