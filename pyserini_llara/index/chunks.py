"""The chunks of a build in progress: encoded vectors saved as the build goes, each with a fingerprint of
the documents it was encoded from, so that a resume reuses a chunk only for the same documents.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

import numpy as np

from ..atomic import atomic_file
from ..corpus import Document
from .output import CHUNK_DIR, CHUNK_NAME


def chunk_fingerprint(docs: Sequence[Document]) -> str:
    """A hash of the ids and texts of a chunk's documents: a saved chunk is reused only for the same ones."""
    digest = hashlib.blake2b(digest_size=16)
    for doc in docs:
        for value in (doc.docid, doc.text):
            data = value.encode("utf-8")
            digest.update(len(data).to_bytes(8, "little"))
            digest.update(data)
    return digest.hexdigest()


def corpus_fingerprint(chunk_fingerprints: Sequence[str]) -> str:
    return hashlib.blake2b("".join(chunk_fingerprints).encode(), digest_size=16).hexdigest()


def chunk_path(directory: Path, number: int) -> Path:
    return directory / CHUNK_DIR / CHUNK_NAME.format(number)


def save_chunk(path: Path, docids: list[str], fingerprint: str, vectors: np.ndarray) -> None:
    with atomic_file(path, "wb") as out:
        np.savez(out, docids=np.array(docids, dtype=str), fingerprint=np.array(fingerprint),
                 vectors=vectors.astype(np.float32, copy=False))


def load_chunk(path: Path) -> tuple[list[str], np.ndarray]:
    with np.load(path) as data:
        return data["docids"].tolist(), data["vectors"]


def saved_fingerprint(path: Path) -> str | None:
    with np.load(path) as data:
        return str(data["fingerprint"]) if "fingerprint" in data.files else None
