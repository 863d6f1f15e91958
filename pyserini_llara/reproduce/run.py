"""Running a row: its steps in order, each skipped while its output stands and nothing it reads was remade;
then its scores, as the ``ir_measures`` CLI prints them, judged and recorded."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterable, Sequence

from ..records import META_FILE
from .matrix import MatrixError, Row
from .plan import Step, plan
from .results import Outcome, append, judge


class StepError(RuntimeError):
    """A command of a row failed."""


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
    from ..fingerprint import local_model_dir, model_fingerprint

    directory = Path(step.creates).parent
    recorded = json.loads((directory / META_FILE).read_text()).get("model_fingerprint")
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
        append(results, outcome, work)
    return list(done.values())
