"""The reproduction matrix as data: ``matrix.yaml`` (beside this module) read into ``Row``s, checked and selected."""

from __future__ import annotations

import dataclasses
import difflib
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Sequence

MATRIX = "matrix.yaml"
KINDS = ("dense", "bm25", "demo", "mteb", "mean")


class MatrixError(ValueError):
    """A matrix file that cannot be used as it is; the message names the file and the row."""


@dataclass(frozen=True)
class Measurement:
    """What a run of a row gave, where and when."""

    values: dict[str, float]
    hardware: str
    date: str


@dataclass(frozen=True)
class Row:
    """One model on one collection; the fields are those documented at the top of matrix.yaml."""

    id: str
    kind: str
    metrics: tuple[str, ...]
    model: str = ""
    corpus: str | None = None
    index: str | None = None
    topics: str | None = None
    qrels: str | None = None
    index_type: str = "Flat"
    precision: str = "float32"
    max_length: int = 512
    device: str = "cpu"
    batch_size: int = 64
    threads: int = 1
    hits: int = 1000
    remove_query: bool = False
    bm25_args: tuple[str, ...] = ()
    script: str | None = None
    script_args: tuple[str, ...] = ()
    run: str | None = None
    parts: tuple[str, ...] = ()
    expected: dict[str, float] = field(default_factory=dict)
    tolerance: float = 0.0
    source: str = ""
    measured: Measurement | None = None
    groups: tuple[str, ...] = ()
    condition: str | None = None


_TUPLES = {"metrics", "bm25_args", "script_args", "parts", "groups"}
_FIELDS = {f.name for f in dataclasses.fields(Row)}


def default_matrix() -> Path:
    return Path(str(resources.files(__package__) / MATRIX))


def _measure_name(name: str, where: str) -> str:
    import ir_measures

    try:
        return str(ir_measures.parse_measure(name))
    except (ValueError, NameError, TypeError, SyntaxError):
        raise MatrixError(f"{where}: {name!r} is not an ir-measures measure (e.g. nDCG@10, RR@10, R@1000)") from None


def _row(raw: dict, conditions: dict, where: str) -> Row:
    data = dict(raw)
    name = data.get("condition")
    if name is not None:
        if name not in conditions:
            raise MatrixError(f"{where}: unknown condition {name!r}; defined: {', '.join(conditions)}")
        data = {**conditions[name], **data}
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise MatrixError(f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(_FIELDS))}")
    if data.get("kind") not in KINDS:
        raise MatrixError(f"{where}: kind must be one of {', '.join(KINDS)}, got {data.get('kind')!r}")
    required = {"dense": ("model", "corpus", "topics", "qrels"), "bm25": ("index", "topics", "qrels"),
                "demo": ("script", "run", "qrels"), "mteb": ("model",), "mean": ("parts",)}[data["kind"]]
    missing = [key for key in required if not data.get(key)]
    if missing:
        raise MatrixError(f"{where}: a {data['kind']} row needs {', '.join(missing)}")
    for key in _TUPLES & set(data):
        data[key] = tuple(str(item) for item in data[key])
    data["metrics"] = tuple(_measure_name(m, where) for m in data.get("metrics") or ())
    if not data["metrics"]:
        raise MatrixError(f"{where}: no metrics")
    expected = {_measure_name(k, where): float(v) for k, v in (data.get("expected") or {}).items()}
    stray = sorted(set(expected) - set(data["metrics"]))
    if stray:
        raise MatrixError(f"{where}: expected value(s) for {', '.join(stray)}, which are not among its metrics")
    data["expected"] = expected
    if expected and not data.get("source"):
        raise MatrixError(f"{where}: expected values need a source")
    if data.get("measured") is not None:
        measured = data["measured"]
        if not isinstance(measured, dict) or {"values", "hardware", "date"} - set(measured):
            raise MatrixError(f"{where}: measured needs values, hardware and date")
        data["measured"] = Measurement({_measure_name(k, where): float(v) for k, v in measured["values"].items()},
                                       str(measured["hardware"]), str(measured["date"]))
    return Row(**data)


def load_matrix(path: str | os.PathLike | None = None) -> dict[str, Row]:
    """Rows by id, in file order; a mean row without its own expected values gets its parts' mean."""
    import yaml

    path = Path(path) if path is not None else default_matrix()
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise MatrixError(f"cannot read the matrix {path}: {error}") from None
    if not isinstance(document, dict) or not isinstance(document.get("rows"), list):
        raise MatrixError(f"{path}: expected a mapping with a `rows` list")
    conditions = document.get("conditions") or {}
    rows: dict[str, Row] = {}
    for number, raw in enumerate(document["rows"], start=1):
        if not isinstance(raw, dict) or not raw.get("id"):
            raise MatrixError(f"{path}, row {number}: a row is a mapping with an `id`")
        where = f"{path}, row {raw['id']}"
        if raw["id"] in rows:
            raise MatrixError(f"{where}: duplicate id")
        rows[raw["id"]] = _row(raw, conditions, where)
    for row in rows.values():
        unknown = [part for part in row.parts if part not in rows]
        if unknown:
            raise MatrixError(f"{path}, row {row.id}: unknown part(s) {', '.join(unknown)}")
    return {row_id: _with_derived_expectation(row, rows) for row_id, row in rows.items()}


def _with_derived_expectation(row: Row, rows: dict[str, Row]) -> Row:
    if row.kind != "mean" or row.expected:
        return row
    parts = [_with_derived_expectation(rows[p], rows) for p in row.parts]
    expected = {m: sum(p.expected[m] for p in parts) / len(parts) for m in row.metrics
                if all(m in p.expected for p in parts)}
    tolerance = max((p.tolerance for p in parts), default=0.0)
    source = row.source if expected else "no expected values for its parts"
    return dataclasses.replace(row, expected=expected, tolerance=tolerance, source=source)


def with_model(row: Row, model: str) -> Row:
    """The row's commands for another model (a recipe's output); its expected values belong to its own model."""
    if row.kind not in ("dense", "mteb", "mean"):
        return row
    return dataclasses.replace(row, model=model if row.kind != "mean" else row.model, expected={}, measured=None,
                               source=f"none: {model} instead of the row's {row.model or 'models'}")


def select(rows: dict[str, Row], ids: Sequence[str] = (), groups: Sequence[str] = ()) -> list[Row]:
    """The rows asked for, the parts of a mean row first; unknown ids or groups raise with the nearest names."""
    for row_id in ids:
        if row_id not in rows:
            near = difflib.get_close_matches(row_id, rows, n=3)
            raise MatrixError(f"no row {row_id!r}" + (f"; did you mean {', '.join(near)}?" if near else
                                                       "; `--list` shows the rows"))
    known = sorted({g for row in rows.values() for g in row.groups})
    for group in groups:
        if group not in known:
            raise MatrixError(f"no group {group!r}; groups: {', '.join(known)}")
    chosen = [row for row in rows.values() if row.id in ids or set(row.groups) & set(groups)]
    ordered: dict[str, Row] = {}

    def add(row: Row) -> None:
        for part in row.parts:
            add(rows[part])
        ordered.setdefault(row.id, row)

    for row in chosen:
        add(row)
    return list(ordered.values())
