"""What a run of a row gave: its outcome against the expected values, and the results file that keeps it.

Every run appends a JSON line (values, status, hardware and load, date, commands, package versions)
to the results file, from which ``--list`` shows each row's latest measurement.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from ..atomic import sync
from .matrix import Measurement, Row
from .plan import plan

logger = logging.getLogger(__name__)

RESULTS_FILE = "results.jsonl"


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
    from .. import precision

    if device.startswith("cuda"):
        return precision.describe(device)
    auto = precision.fast_low_precision("cpu") or "float32"
    return (f"{precision.cpu_name()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} "
            f"(torch {precision.cpu_capability()}, auto = {auto})")


def _versions() -> dict[str, str]:
    found = {}
    for package in ("pyserini-llara", "pyserini", "torch", "transformers", "faiss-cpu", "ir-measures", "mteb"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return found


def append(results: Path, outcome: Outcome, work: Path) -> None:
    row = outcome.row
    record = {"row": row.id, "model": row.model or None, "status": outcome.status, "measured": outcome.measured,
              "expected": row.expected, "tolerance": row.tolerance, "source": row.source,
              "error": outcome.error or None,
              "date": time.strftime("%Y-%m-%d %H:%M:%S"),
              "hardware": hardware(row.device) if row.kind != "mean" and outcome.status != "error" else None,
              "commands": [str(s) for s in plan(row, work)] if outcome.status != "error" else None,
              "versions": _versions()}
    results.parent.mkdir(parents=True, exist_ok=True)
    _end_last_line(results)
    with open(results, "a", encoding="utf-8") as out:
        out.write(json.dumps(record) + "\n")
        sync(out)


def _end_last_line(path: Path) -> None:
    """A last line without its newline was cut short by a crash: appending to it would swallow the new record.
    It is dropped (a warning says so), or ended where it holds a whole record."""
    data = path.read_bytes() if path.is_file() else b""
    if not data or data.endswith(b"\n"):
        return
    keep = data.rfind(b"\n") + 1
    try:
        json.loads(data[keep:])
    except ValueError:
        logger.warning("%s: dropping its last line, a record cut short (%d bytes)", path, len(data) - keep)
        os.truncate(path, keep)
        return
    with open(path, "ab") as out:
        out.write(b"\n")


def latest_results(results: str | os.PathLike) -> dict[str, Measurement]:
    """The last successful measurement of each row in a results JSONL file (none when the file is absent); a line
    that is not a whole record (a crash cut it short) is skipped with a warning."""
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
            logger.warning("%s, line %d: skipped, not a whole record (%s)", path, number, error.msg)
            continue
        if record.get("measured"):
            found[record["row"]] = Measurement(record["measured"], record.get("hardware") or "", record["date"])
    return found
