"""Running a row: its steps in order, each reused only while its completion record proves it (its files
unchanged, and the same command, model fingerprint and content of what it reads); then its scores, as the
``ir_measures`` CLI prints them, judged and recorded."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Iterable, Sequence

from .. import completion
from ..index import crashpoints
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


def _inputs(step: Step, known: dict[str, str]) -> dict:
    """What the step's outputs follow from: its command (the precision resolved in it), the model's
    fingerprint, and the content of what it reads (an earlier step's output by its record)."""
    inputs = {"command": str(step)}
    if step.model:
        from ..fingerprint import model_fingerprint

        inputs["model_fingerprint"] = model_fingerprint(step.model)
    for path in step.reads:
        inputs[f"content of {path}"] = known.get(path) or completion.content_fingerprint(path)
    return inputs


def _execute(step: Step, log) -> str:
    """Run one command; returns its standard output when it goes to no file. A failed step leaves no output file,
    and one that leaves no output (or an empty file) has failed."""
    log(f"$ {step}")
    outputs = [Path(p) for p in (step.stdout, step.creates) if p]
    for path in outputs:
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(step.stdout, "w", encoding="utf-8") if step.stdout else nullcontext(subprocess.PIPE) as out:
            with subprocess.Popen(_executable(step.argv), stdout=out, text=True) as process:
                try:
                    crashpoints.reached(f"reproduce:running:{step.name}")
                    printed = process.communicate()[0] or ""
                except BaseException:
                    process.kill()
                    raise
        sys.stdout.write(printed)
    except BaseException:
        _remove_files(outputs)
        raise
    if process.returncode != 0:
        _remove_files(outputs)
        raise StepError(f"exit status {process.returncode}: {step}")
    if step.creates and not _holds_something(Path(step.creates)):
        _remove_files(outputs)
        raise StepError(f"{step.name} ended with exit status 0 but left nothing in {step.creates}: {step}")
    return printed


def _holds_something(path: Path) -> bool:
    return path.stat().st_size > 0 if path.is_file() else path.is_dir() and any(path.iterdir())


def _remove_files(paths: Iterable[Path]) -> None:
    for path in paths:
        if path.is_file():
            path.unlink()


def run_steps(steps: Sequence[Step], log=print) -> str:
    """Run the steps, reusing those whose completion record proves them for their inputs now; the last one's
    output. A step's record is written after it ends well, so a kill at any moment leaves a step to redo."""
    printed, known = "", {}
    for step in steps:
        inputs = _inputs(step, known)
        if step.creates:
            record = completion.record_path(step.creates)
            done = completion.reuse(record, inputs, log)
            if done is not None:
                log(f"[done] {step}")
                known[step.creates] = done.digest
                continue
        printed = _execute(step, log)
        if step.creates:
            crashpoints.reached(f"reproduce:ran:{step.name}")
            if step.model:  # a hub model the step downloaded is fingerprinted by its files from now on
                inputs = _inputs(step, known)
            known[step.creates] = completion.complete([step.creates], inputs, record).digest
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
