"""Records of a training file, as people share them: JSONL, or a local Hugging Face dataset.

A ``save_to_disk`` directory, a ``.parquet`` or ``.json`` file, or a directory of such files is read
through ``datasets``; any other file as JSONL, line by line (gzipped or not), so that an error
names its line. Each record comes with where it is (``FILE, line N`` or ``SOURCE, record N``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator

from pyserini_llara.corpus import text_lines

DATASETS_FILES = {".parquet": "parquet", ".json": "json"}
SAVED_DATASET = ("dataset_info.json", "state.json", "dataset_dict.json")


class TrainDataError(ValueError):
    """Training data that cannot be used as it is; the message names the file, line or record, and the fix."""


def is_dataset(path: str | os.PathLike) -> bool:
    """Whether ``path`` is read through ``datasets`` rather than as JSONL."""
    path = Path(path)
    if path.is_dir():
        return any((path / name).is_file() for name in SAVED_DATASET) or bool(_data_files(path))
    return path.suffix in DATASETS_FILES


def _data_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file() and p.suffix in DATASETS_FILES)


def _split(dataset, path: Path):
    """A ``DatasetDict``'s ``train`` split, or its only one."""
    from datasets import DatasetDict

    if not isinstance(dataset, DatasetDict):
        return dataset
    if "train" in dataset:
        return dataset["train"]
    if len(dataset) == 1:
        return next(iter(dataset.values()))
    raise TrainDataError(f"{path} holds the splits {', '.join(dataset)}; pass the directory of one of them")


def load_dataset_records(path: Path):
    """The ``datasets.Dataset`` at ``path`` (saved, or parquet / JSON files)."""
    import datasets

    saved = path.is_dir() and any((path / name).is_file() for name in SAVED_DATASET)
    files = [] if saved else _data_files(path) if path.is_dir() else [path]
    kinds = {DATASETS_FILES[f.suffix] for f in files}
    if not saved and len(kinds) != 1:
        raise TrainDataError(f"{path} mixes {' and '.join(sorted(kinds))} files; keep one kind per dataset")
    try:
        dataset = (datasets.load_from_disk(str(path)) if saved else
                   datasets.load_dataset(kinds.pop(), data_files=[str(f) for f in files], split="train"))
    except (OSError, ValueError, TypeError, datasets.exceptions.DatasetGenerationError) as error:
        raise TrainDataError(f"cannot read {path} as a Hugging Face dataset: {' '.join(str(error).split())}") from None
    return _split(dataset, path)


def _jsonl_records(path: Path) -> Iterator[tuple[str, object]]:
    for number, line in text_lines(path, TrainDataError):
        if not line.strip():
            continue
        where = f"{path}, line {number}"
        try:
            yield where, json.loads(line)
        except json.JSONDecodeError as error:
            raise TrainDataError(f"{where}: malformed JSON ({error.msg} at column {error.colno})") from None


def read_records(path: str | os.PathLike) -> Iterator[tuple[str, object]]:
    """``(where, record)`` for every record of a JSONL file or a local Hugging Face dataset, in order."""
    path = Path(path)
    if not path.exists():
        raise TrainDataError(f"{path} does not exist")
    if not is_dataset(path):
        if path.is_dir():
            raise TrainDataError(f"{path} is a directory but no Hugging Face dataset (no {' or '.join(SAVED_DATASET)}, "
                              f"no {' or '.join(DATASETS_FILES)} files); pass a JSONL file or a dataset")
        yield from _jsonl_records(path)
        return
    for number, record in enumerate(load_dataset_records(path), start=1):
        yield f"{path}, record {number}", record
