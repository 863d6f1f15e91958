"""The matrix and the outcomes as tables: plain text for a terminal, Markdown for the docs."""

from __future__ import annotations

from typing import Iterable, Sequence

from .matrix import Measurement, Row
from .results import Outcome, judge


def _value(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def outcome_table(outcomes: Sequence[Outcome]) -> str:
    lines = [f"{'row':44} {'metric':14} {'expected':>9} {'measured':>9} {'diff':>8}  result"]
    for outcome in outcomes:
        row = outcome.row
        if outcome.status == "error":
            lines.append(f"{row.id:44} {'':14} {'':>9} {'':>9} {'':>8}  error: {outcome.error}")
            continue
        for i, metric in enumerate(row.metrics):
            expected, measured = row.expected.get(metric), outcome.measured.get(metric)
            diff = f"{measured - expected:+.4f}" if expected is not None and measured is not None else ""
            lines.append(f"{row.id if i == 0 else '':44} {metric:14} {_value(expected):>9} {_value(measured):>9} "
                         f"{diff:>8}  {outcome.verdict(metric)}")
    return "\n".join(lines)


def _status(row: Row, measurement: Measurement | None) -> str:
    if measurement is None:
        return "unverified"
    outcome = judge(row, {m: v for m, v in measurement.values.items() if m in row.metrics})
    return {"pass": "pass", "fail": "FAIL", "measured": "measured"}[outcome.status]


def _metrics(row: Row, values: dict[str, float] | None) -> str:
    return ", ".join(f"{m} {_value(values.get(m)) or '-'}" for m in row.metrics) if values else ""


def list_table(rows: Iterable[Row], measurements: dict[str, Measurement], markdown: bool = False) -> str:
    """One line per row: model, expected and measured values, status, and where and when it was measured."""
    header = ["row", "model", "expected", "measured", "status", "measured on"]
    table = []
    for row in rows:
        measurement = measurements.get(row.id, row.measured)
        table.append([row.id, row.model or "mean of its parts", _metrics(row, row.expected) or "none published",
                      _metrics(row, measurement.values if measurement else None), _status(row, measurement),
                      f"{measurement.hardware}, {measurement.date}" if measurement else ""])
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in line) + " |" for line in table]
        return "\n".join(lines)
    widths = [max(len(line[c]) for line in [header, *table]) for c in range(len(header) - 1)]
    return "\n".join(("  ".join(cell.ljust(w) for cell, w in zip(line, widths)) + "  " + line[-1]).rstrip()
                     for line in [header, *table])


def sources(rows: Iterable[Row]) -> str:
    """Where the expected values come from, one line per source with the rows it serves."""
    by_source: dict[str, list[str]] = {}
    for row in rows:
        if row.expected:
            by_source.setdefault(row.source, []).append(row.id)
    return "\n".join(f"- {source}: {', '.join(f'`{i}`' for i in ids)}" for source, ids in by_source.items())
