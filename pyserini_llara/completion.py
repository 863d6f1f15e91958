"""A step is done only when a record written last proves it by content.

"The output exists" is not "the step finished": a killed step leaves a partial file, and an
edited input leaves an output that no longer follows from it. So a step that completes writes
``OUTPUT.done.json`` after its outputs: the ``proof`` (size and SHA-256) of every file it vouches for and
the inputs it was made from, resolved (content fingerprints of the files it read, the precision
``auto`` became, the model's fingerprint). Before reuse, the record is read, every file hashed
again and the inputs compared; anything else is made again, and only the files a record lists
are ever removed. The reproduction harness, the demo and prepared training data share it.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from .atomic import write_text
from .proof import disproved, file_proof

SUFFIX = ".done.json"


def record_path(output: str | os.PathLike) -> Path:
    """Where the completion record of ``output`` (a file or a directory) lives: beside it, never inside."""
    output = Path(output)
    return output.with_name(output.name + SUFFIX)


def file_sha256(path: str | os.PathLike) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else []


def content_fingerprint(path: str | os.PathLike) -> str | None:
    """SHA-256 of a file, or of a directory's files and their relative names; None when nothing is there
    (a name that is no path, e.g. an ir-datasets id, is an input by its name alone)."""
    path = Path(path)
    files = _files(path)
    if not files:
        return None
    if files == [path]:
        return file_sha256(path)
    digest = hashlib.sha256()
    for file in files:
        digest.update(f"{file.relative_to(path).as_posix()}\t{file_sha256(file)}\n".encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class Completion:
    """What a record vouches for: ``files`` by path relative to the record's directory."""

    inputs: dict
    files: dict[str, dict]

    @property
    def digest(self) -> str:
        """The content of every file it vouches for, as one value a later step can take as an input."""
        return hashlib.sha256(json.dumps(self.files, sort_keys=True).encode()).hexdigest()


def _describe(file: Path, base: Path) -> tuple[str, dict]:
    return os.path.relpath(file, base), file_proof(file)


def complete(outputs: Sequence[str | os.PathLike], inputs: dict, record: str | os.PathLike) -> Completion:
    """Hash the files of ``outputs`` (files or directories) and write ``record`` last, atomically."""
    record = Path(record)
    files = dict(_describe(f, record.parent) for output in outputs for f in _files(Path(output)))
    done = Completion(json.loads(json.dumps(inputs)), files)
    write_text(record, json.dumps({"inputs": done.inputs, "files": done.files}, indent=2) + "\n")
    return done


def read(record: str | os.PathLike) -> Completion | None:
    """The record, or None where there is none or it is not one (then it proves nothing)."""
    try:
        data = json.loads(Path(record).read_text(encoding="utf-8"))
        return Completion(dict(data["inputs"]), dict(data["files"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _changed_inputs(then: dict, now: dict) -> Iterable[str]:
    for key in sorted(set(then) | set(now)):
        if then.get(key) != now.get(key):
            yield f"{key} was {then.get(key)!r}, now {now.get(key)!r}"


def check(record: str | os.PathLike, inputs: dict) -> tuple[Completion | None, list[str]]:
    """The record and what keeps it from proving the step complete for ``inputs`` (nothing: complete)."""
    record = Path(record)
    done = read(record)
    if done is None:
        return None, [f"no completion record {record.name}" if not record.exists()
                      else f"{record} is not a completion record"]
    problems = list(_changed_inputs(done.inputs, json.loads(json.dumps(inputs))))
    if not done.files:
        problems.append("the record vouches for no file")
    problems += disproved(record.parent, done.files)
    return done, problems


def discard(record: str | os.PathLike) -> None:
    """Remove the files ``record`` lists (we wrote them), then the record: the step is to be made again."""
    record = Path(record)
    done = read(record)
    for name in (done.files if done else ()):
        (record.parent / name).unlink(missing_ok=True)
    record.unlink(missing_ok=True)


def reuse(record: str | os.PathLike, inputs: dict, log=print) -> Completion | None:
    """The record when it proves the step complete for ``inputs``; otherwise None, after logging why and
    discarding what a stale record vouched for."""
    done, problems = check(record, inputs)
    if not problems:
        return done
    if done is not None:
        log(f"[redo] {Path(record).name[:-len(SUFFIX)]}: {'; '.join(problems)}")
        discard(record)
    return None
