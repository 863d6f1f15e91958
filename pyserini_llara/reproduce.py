"""The reproduction matrix: every row a command line, its expected scores and a pass/fail, as Pyserini's 2CR.

``matrix.yaml`` (beside this module) holds the rows; this module turns a row into the exact
commands it runs (the ones ``--dry-run`` prints), runs them, reads the scores that the
``ir_measures`` CLI prints, compares them with the expected values and appends the outcome to a
JSONL file. Indexes are cached under the work directory by model, corpus and encoding settings
(``pyserini_llara.index --resume`` continues an interrupted build), and the queries are encoded
once per model, topics and query settings into Pyserini's encoded-queries format, which every
search over those topics reads (another index type, a re-run) without loading the model again.
Run files and exported topics are reused too, so a rerun after a failure picks up where it stopped.

    python -m pyserini_llara.reproduce --list
    python -m pyserini_llara.reproduce --row beir/scifact/llara-beir --dry-run
    python -m pyserini_llara.reproduce --group demo
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata, resources
from pathlib import Path
from typing import Iterable, Sequence

from .queries import META_FILE as QUERIES_META

MATRIX = "matrix.yaml"
KINDS = ("dense", "bm25", "demo", "mteb", "mean")
DEFAULT_WORK_DIR = "reproduction"
RESULTS_FILE = "results.jsonl"
HF_PREFIX = "hf:"


class MatrixError(ValueError):
    """A matrix file that cannot be used as it is; the message names the file and the row."""


class StepError(RuntimeError):
    """A command of a row failed."""


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


@dataclass(frozen=True)
class Step:
    """One command line. ``stdout``: the file its standard output goes to; ``creates``: what it leaves when done;
    ``inputs``: what earlier steps create that it reads (remade, they make it run again)."""

    argv: tuple[str, ...]
    stdout: str | None = None
    creates: str | None = None
    model: str | None = None  # a cache: the model whose weights what ``creates`` holds must come from
    inputs: tuple[str, ...] = ()

    def __str__(self) -> str:
        return shlex.join(self.argv) + (f" > {shlex.quote(self.stdout)}" if self.stdout else "")


# --- the matrix -------------------------------------------------------------------------------------------------

_TUPLES = {"metrics", "bm25_args", "script_args", "parts", "groups"}
_FIELDS = {f.name for f in dataclasses.fields(Row)}


def default_matrix() -> Path:
    return Path(str(resources.files("pyserini_llara") / MATRIX))


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


# --- from a row to commands -------------------------------------------------------------------------------------

def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")


def _is_ir_dataset(name: str) -> bool:
    import ir_datasets

    return name in ir_datasets.registry


def _digest(*settings) -> str:
    return hashlib.sha256(json.dumps(settings).encode()).hexdigest()[:10]


def index_dir(row: Row, corpus: str, work: Path) -> Path:
    """Where the index of ``row`` lives: one directory per model, corpus and encoding settings."""
    digest = _digest(row.model, row.corpus, row.max_length, row.precision, row.index_type)
    return work / "indexes" / f"{slug(row.model)}--{slug(row.corpus or corpus)}--{digest}"


def queries_dir(row: Row, work: Path) -> Path:
    """Where the encoded queries of ``row`` live: one directory per model, topics and query settings,
    shared by every row that searches those topics with that model."""
    digest = _digest(row.model, row.topics, row.max_length, row.precision)
    return work / "encoded-queries" / f"{slug(row.model)}--{slug(row.topics)}--{digest}"


def _run_file(row: Row, work: Path, *inputs) -> Path:
    """A run file named by everything the search reads, so another model or setting never reuses it."""
    return work / "runs" / f"{slug(row.id)}--{_digest(row.model, row.hits, row.remove_query, *inputs)}.trec"


def _python(*args: str) -> tuple[str, ...]:
    return ("python", *args)


def _topics(row: Row, work: Path, steps: list[Step]) -> str:
    """A Pyserini topic name or file as it is; an ir-datasets id exported to a TSV file Pyserini reads."""
    if not _is_ir_dataset(row.topics):
        return row.topics
    path = str(work / "topics" / f"{slug(row.topics)}.tsv")
    steps.append(Step(_python("-m", "ir_datasets", "export", row.topics, "queries", "--format", "tsv",
                              "--fields", "query_id", "text"), stdout=path, creates=path))
    return path


def _corpus(row: Row, work: Path, steps: list[Step]) -> tuple[str, tuple[str, ...]]:
    """An ir-datasets id or a path as it is; ``hf:OWNER/DATASET/FILE`` downloaded into a directory first.
    Also the file that download creates (none for the others)."""
    if not row.corpus.startswith(HF_PREFIX):
        return row.corpus, ()
    repo, _, file = row.corpus[len(HF_PREFIX):].rpartition("/")
    target = work / "corpora" / slug(repo)
    steps.append(Step(("hf", "download", repo, file, "--repo-type", "dataset", "--local-dir", str(target)),
                      creates=str(target / file)))
    return str(target), (str(target / file),)


def _score(qrels: str, run: str | Path, metrics: Sequence[str]) -> Step:
    return Step(_python("-m", "ir_measures", "--places", "6", qrels, str(run), *metrics))


def plan(row: Row, work: str | os.PathLike) -> list[Step]:
    """The commands that run ``row``, in order; the last one prints its scores (empty for a mean row)."""
    work = Path(work)
    steps: list[Step] = []
    if row.kind == "dense":
        corpus, downloaded = _corpus(row, work, steps)
        topics = _topics(row, work, steps)
        index, queries = index_dir(row, corpus, work), queries_dir(row, work)
        build = Step(_python("-m", "pyserini_llara.index", "--corpus", corpus, "--output", str(index),
                             "--encoder", f"llara:{row.model}", "--device", row.device, "--dtype", row.precision,
                             "--batch-size", str(row.batch_size), "--max-length", str(row.max_length),
                             "--index-type", row.index_type, "--resume"),
                     creates=str(index / "index"), model=row.model, inputs=downloaded)
        # Each query alone, without padding, as pyserini.search.faiss --encoder encodes one query: a vector does
        # not depend on which other queries the topics hold. --overwrite: this step runs only when the directory
        # is incomplete or its topics were exported again.
        encode = Step(_python("-m", "pyserini_llara.queries", "--topics", topics, "--output", str(queries),
                              "--encoder", f"llara:{row.model}", "--device", row.device, "--dtype", row.precision,
                              "--batch-size", "1", "--max-length", str(row.max_length), "--overwrite"),
                      creates=str(queries / QUERIES_META), model=row.model, inputs=(topics,))
        run = _run_file(row, work, index.name, topics, queries.name)
        search = ["-m", "pyserini.search.faiss", "--index", str(index), "--topics", topics,
                  "--encoded-queries", str(queries), "--output", str(run), "--hits", str(row.hits),
                  "--batch-size", str(row.batch_size), "--threads", str(row.threads)]
        search += ["--remove-query"] if row.remove_query else []
        steps += [build, encode,
                  Step(_python(*search), creates=str(run), inputs=(build.creates, encode.creates, topics))]
        steps.append(_score(row.qrels, run, row.metrics))
    elif row.kind == "bm25":
        topics = _topics(row, work, steps)
        run = _run_file(row, work, row.index, topics, row.bm25_args)
        search = ["-m", "pyserini.search.lucene", "--index", row.index, "--topics", topics, "--output", str(run),
                  "--output-format", "trec", "--hits", str(row.hits), "--bm25", *row.bm25_args,
                  "--threads", str(row.threads), "--batch-size", str(row.batch_size)]
        search += ["--remove-query"] if row.remove_query else []
        steps.append(Step(_python(*search), creates=str(run), inputs=(topics,)))
        steps.append(_score(row.qrels, run, row.metrics))
    elif row.kind == "demo":
        out = work / "insuranceqa"
        script = os.path.relpath(_repository_file(row.script))
        steps.append(Step(_python(script, "--output", str(out), *row.script_args), creates=str(out / "results.json")))
        steps.append(_score(str(out / row.qrels), out / "runs" / f"{row.run}.trec", row.metrics))
    elif row.kind == "mteb":
        steps.append(Step(_python("-m", "pyserini_llara.mteb", "--model", row.model, "--device", row.device,
                                  "--dtype", row.precision, "--batch-size", str(row.batch_size),
                                  "--max-length", str(row.max_length),
                                  "--output-folder", str(work / "mteb" / slug(row.model)))))
    return steps


def _repository_file(relative: str) -> Path:
    """A file of the source checkout (the demo lives in examples/, outside the wheel)."""
    path = Path(__file__).resolve().parents[1] / relative
    if not path.exists():
        raise MatrixError(f"{relative} is not here: the demo rows run from a source checkout of pyserini-llara")
    return path


# --- running ----------------------------------------------------------------------------------------------------

def _executable(argv: Sequence[str]) -> list[str]:
    """``python`` is this interpreter; other programs are looked up beside it first (the venv's scripts)."""
    if argv[0] == "python":
        return [sys.executable, *argv[1:]]
    found = shutil.which(argv[0], path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    return [found or argv[0], *argv[1:]]


def _check_cached(step: Step) -> None:
    """A cached index or encoded queries must hold vectors of the model's current weights (a retrained local
    model changes them); both record them in ``meta.json`` beside what the step creates.

    A hub model absent from the local cache cannot be compared and is taken as it was.
    """
    from .modeling import local_model_dir, model_fingerprint

    directory = Path(step.creates).parent
    recorded = json.loads((directory / "meta.json").read_text()).get("model_fingerprint")
    if not recorded or local_model_dir(step.model) is None:
        return
    current = model_fingerprint(step.model)
    if recorded != current:
        raise StepError(f"{directory} was made from other weights of {step.model} (fingerprint {recorded}, now "
                        f"{current}); remove that directory to make it again")


def _execute(step: Step, log) -> str:
    """Run one command; returns its standard output when it goes to no file. A failed step leaves no output file."""
    log(f"$ {step}")
    outputs = [Path(p) for p in (step.stdout, step.creates) if p]
    for path in outputs:
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if step.stdout:
            with open(step.stdout, "w", encoding="utf-8") as out:
                result = subprocess.run(_executable(step.argv), stdout=out)
            printed = ""
        else:
            result = subprocess.run(_executable(step.argv), stdout=subprocess.PIPE, text=True)
            printed = result.stdout
            sys.stdout.write(printed)
    except BaseException:
        _remove_files(outputs)
        raise
    if result.returncode != 0:
        _remove_files(outputs)
        raise StepError(f"exit status {result.returncode}: {step}")
    return printed


def _remove_files(paths: Iterable[Path]) -> None:
    for path in paths:
        if path.is_file():
            path.unlink()


def run_steps(steps: Sequence[Step], log=print) -> str:
    """Run the steps, skipping those whose output exists while none of their inputs was made again; the last
    one's output."""
    printed, made = "", set()
    for step in steps:
        if step.creates and Path(step.creates).exists() and made.isdisjoint(step.inputs):
            if step.model:
                _check_cached(step)
            log(f"[done] {step}")
            continue
        printed = _execute(step, log)
        if step.creates:
            made.add(step.creates)
    return printed


def parse_scores(printed: str, metrics: Sequence[str]) -> dict[str, float]:
    """``measure<TAB>value`` lines (the ir_measures CLI's summary) -> values of ``metrics``."""
    values = {}
    for line in printed.splitlines():
        name, _, value = line.strip().partition("\t")
        if name in metrics and value:
            values[name] = float(value)
    missing = [m for m in metrics if m not in values]
    if missing:
        raise StepError(f"the scorer printed no value for {', '.join(missing)}")
    return values


@dataclass(frozen=True)
class Outcome:
    row: Row
    measured: dict[str, float]
    status: str  # pass, fail (a value out of tolerance), measured (nothing to compare with), error
    error: str = ""

    def verdict(self, metric: str) -> str:
        if metric not in self.measured:
            return "-"
        if metric not in self.row.expected:
            return "no expected value"
        return "pass" if abs(self.measured[metric] - self.row.expected[metric]) <= self.row.tolerance + 1e-9 else "FAIL"


def judge(row: Row, measured: dict[str, float]) -> Outcome:
    outcome = Outcome(row, measured, "measured")
    verdicts = [outcome.verdict(m) for m in row.expected]
    if verdicts:
        status = "pass" if all(v == "pass" for v in verdicts) else "fail"
        outcome = dataclasses.replace(outcome, status=status)
    return outcome


def hardware(device: str) -> str:
    """The machine in one line: the GPU, or the CPU model, its cores and load; and what precision auto picks."""
    from . import precision

    if device.startswith("cuda"):
        return precision.describe(device)
    auto = precision.fast_low_precision("cpu") or "float32"
    return f"{precision.cpu_name()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} (torch {precision.cpu_capability()}, auto = {auto})"


def _versions() -> dict[str, str]:
    found = {}
    for package in ("pyserini-llara", "pyserini", "torch", "transformers", "faiss-cpu", "ir-measures", "mteb"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return found


def run_rows(rows: Sequence[Row], work: str | os.PathLike, results: str | os.PathLike, log=print) -> list[Outcome]:
    """Run every row (parts before the mean rows that need them), append each outcome to ``results``."""
    work, results = Path(work), Path(results)
    done: dict[str, Outcome] = {}
    for row in rows:
        log(f"# {row.id}")
        if row.kind == "mean":
            parts = [done.get(p) for p in row.parts]
            if all(p is not None and p.status != "error" for p in parts):
                measured = {m: sum(p.measured[m] for p in parts) / len(parts) for m in row.metrics}
                outcome = judge(row, measured)
            else:
                outcome = Outcome(row, {}, "error", "a part did not run")
        else:
            try:
                steps = plan(row, work)
                outcome = judge(row, parse_scores(run_steps(steps, log), row.metrics))
            except (StepError, MatrixError, OSError) as error:
                log(f"error: {row.id}: {error}")
                outcome = Outcome(row, {}, "error", str(error))
        done[row.id] = outcome
        _append(results, outcome, work)
    return list(done.values())


def _append(results: Path, outcome: Outcome, work: Path) -> None:
    row = outcome.row
    record = {"row": row.id, "model": row.model or None, "status": outcome.status, "measured": outcome.measured, "expected": row.expected,
              "tolerance": row.tolerance, "source": row.source, "error": outcome.error or None,
              "date": time.strftime("%Y-%m-%d %H:%M:%S"),
              "hardware": hardware(row.device) if row.kind != "mean" and outcome.status != "error" else None,
              "commands": [str(s) for s in plan(row, work)] if outcome.status != "error" else None,
              "versions": _versions()}
    results.parent.mkdir(parents=True, exist_ok=True)
    with open(results, "a", encoding="utf-8") as out:
        out.write(json.dumps(record) + "\n")


def latest_results(results: str | os.PathLike) -> dict[str, Measurement]:
    """The last successful measurement of each row in a results JSONL file (none when the file is absent)."""
    path = Path(results)
    found: dict[str, Measurement] = {}
    if not path.exists():
        return found
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise MatrixError(f"{path}, line {number}: malformed JSON ({error.msg})") from None
        if record.get("measured"):
            found[record["row"]] = Measurement(record["measured"], record.get("hardware") or "", record["date"])
    return found


# --- tables -----------------------------------------------------------------------------------------------------

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


# --- command line -----------------------------------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pyserini_llara.reproduce",
        description="Run rows of the reproduction matrix: build or reuse the index, search with Pyserini's CLI, "
                    "score with ir_measures, and compare with the expected values (pass/fail).",
        epilog="A row is unverified until a run measures it; every run appends its outcome to --results. "
               "Exit status: 0 when every row passed or had nothing to compare with, 1 otherwise.")
    parser.add_argument("--list", action="store_true",
                        help="show the matrix (or the rows of --row / --group): expected and measured values, status")
    parser.add_argument("--row", action="append", default=[], metavar="ID", help="run this row (repeatable)")
    parser.add_argument("--group", action="append", default=[], metavar="NAME",
                        help="run every row of this group, e.g. beir, msmarco-passage, demo, gpu (repeatable)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands the rows run, run nothing")
    parser.add_argument("--markdown", action="store_true", help="with --list: a Markdown table, as in README.md")
    parser.add_argument("--model", help="run the LLaRA rows with this model instead (e.g. a recipe's output "
                                        "directory); they are then measured, not judged")
    parser.add_argument("--matrix", help="a matrix YAML file of your own (default: the one in the package)")
    parser.add_argument("--work-dir", default=DEFAULT_WORK_DIR,
                        help=f"indexes, topics, runs and results (default ./{DEFAULT_WORK_DIR})")
    parser.add_argument("--results", help=f"JSONL file the outcomes are appended to (default WORK_DIR/{RESULTS_FILE})")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not (args.list or args.row or args.group):
        parser.error("give --list, --row ID or --group NAME")
    work = Path(args.work_dir)
    results = Path(args.results) if args.results else work / RESULTS_FILE
    try:
        rows = load_matrix(args.matrix)
        if args.list:
            shown = select(rows, args.row, args.group) if args.row or args.group else rows.values()
            print(list_table(shown, latest_results(results), markdown=args.markdown))
            return 0
        chosen = select(rows, args.row, args.group)
        if args.model:
            chosen = [with_model(row, args.model) for row in chosen]
        if args.dry_run:
            for row in chosen:
                print(f"# {row.id}" + (f": the mean of {', '.join(row.parts)}" if row.kind == "mean" else ""))
                for step in plan(row, work):
                    print(step)
            return 0
        outcomes = run_rows(chosen, work, results, log=lambda line: print(line, flush=True))
    except MatrixError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to continue (finished steps are kept)", file=sys.stderr)
        return 130
    print("\n" + outcome_table(outcomes))
    print(f"\noutcomes appended to {results}")
    return 0 if all(o.status in ("pass", "measured") for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
