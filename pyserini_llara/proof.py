"""Files proved by content: the sizes and digests a completion record holds, checked before anything reuses them.

A record written last (``meta.json``) lists the files it vouches for; a file that is gone, cut
short or replaced no longer matches, so "the record says complete" is never taken alone. Small
files are hashed whole; large ones (a faiss index of hundreds of GB) by 64 evenly spaced 64 KiB
samples and their size, which any rewrite or truncation changes. What is handed to an
unpickler (``*.pkl``, or ``whole=True``) is always hashed whole.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Iterable, Mapping

WHOLE_FILE_LIMIT = 64 << 20
PICKLE_SUFFIX = ".pkl"
SAMPLES, SAMPLE_BYTES = 64, 64 << 10


def _hash_content(digest, handle, size: int, whole: bool) -> None:
    if whole or size <= WHOLE_FILE_LIMIT:
        while block := handle.read(1 << 24):
            digest.update(block)
        return
    for i in range(SAMPLES):
        handle.seek((size - SAMPLE_BYTES) * i // (SAMPLES - 1))
        digest.update(handle.read(SAMPLE_BYTES))


def hash_into(digest, path: Path) -> None:
    """Add ``path``'s name, size and content (sampled above 64 MiB) to ``digest``: one file of a model."""
    size = path.stat().st_size
    digest.update(f"{path.name}:{size}\n".encode())
    with open(path, "rb") as handle:
        _hash_content(digest, handle, size, whole=False)


def file_proof(path: str | os.PathLike, whole: bool = False) -> dict:
    """``{"size", "sha256"}`` of one file's content (not its name: a staged file proves its final place)."""
    path = Path(path)
    size = path.stat().st_size
    digest = hashlib.sha256(f"{size}\n".encode())
    with open(path, "rb") as handle:
        _hash_content(digest, handle, size, whole or path.suffix == PICKLE_SUFFIX)
    return {"size": size, "sha256": digest.hexdigest()}


def prove(directory: str | os.PathLike, names: Iterable[str], whole: bool = False) -> dict[str, dict]:
    """The proofs of the files ``names`` in ``directory``, keyed by name."""
    return {name: file_proof(Path(directory) / name, whole) for name in names}


def disproved(directory: str | os.PathLike, proofs: Mapping[str, Mapping], whole: bool = False) -> list[str]:
    """What no longer matches its proof, one phrase per file (``index is missing``); empty when all match."""
    out = []
    for name, expected in proofs.items():
        path = Path(directory) / name
        if not path.is_file():
            out.append(f"{name} is missing")
        elif path.stat().st_size != expected.get("size"):
            out.append(f"{name} has {path.stat().st_size} bytes, not the {expected.get('size')} recorded")
        elif file_proof(path, whole)["sha256"] != expected.get("sha256"):
            out.append(f"{name} differs from the file recorded (sha256)")
    return out
