"""From a row of the matrix to the exact command lines it runs (what ``--dry-run`` prints).

Every output is named by the settings it is made from: indexes by model, corpus and encoding
settings (the precision as ``auto`` resolves on the row's device), encoded queries by model, topics
and query settings, run files by what the search reads; so another model or setting never reuses
one. What a name cannot hold (the content of a local corpus, topics file or model) the steps'
completion records hold (``run``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..corpus import ir_dataset_id
from .matrix import MatrixError, Row

HF_PREFIX = "hf:"


@dataclass(frozen=True)
class Step:
    """One command line. ``stdout``: the file its standard output goes to; ``creates``: the file or directory
    it leaves when done; ``model``: the model whose weights that holds vectors of; ``reads``: files and
    directories whose content it depends on (local inputs and what earlier steps create)."""

    argv: tuple[str, ...]
    stdout: str | None = None
    creates: str | None = None
    model: str | None = None
    reads: tuple[str, ...] = ()

    def __str__(self) -> str:
        return shlex.join(self.argv) + (f" > {shlex.quote(self.stdout)}" if self.stdout else "")

    @property
    def name(self) -> str:
        """The module or program it runs (crash points and messages name a step by it)."""
        if self.argv[:2] == ("python", "-m"):
            return self.argv[2]
        return Path(self.argv[1] if self.argv[0] == "python" else self.argv[0]).name


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")


def _digest(*settings) -> str:
    return hashlib.sha256(json.dumps(settings).encode()).hexdigest()[:10]


def resolved_precision(row: Row) -> str:
    """The precision the row's ``precision`` means on its device; ``auto`` stays ``auto`` only where that
    device is absent (a dry run on another machine), since only that device can say what it means."""
    from ..precision import normalize, resolve_dtype

    requested = normalize(row.precision)
    if requested == "auto" and row.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            return requested
    return resolve_dtype(requested, row.device)


def index_dir(row: Row, corpus: str, work: Path, precision: str) -> Path:
    """Where the index of ``row`` lives: one directory per model, corpus and encoding settings."""
    digest = _digest(row.model, row.corpus, row.max_length, precision, row.index_type)
    return work / "indexes" / f"{slug(row.model)}--{slug(row.corpus or corpus)}--{digest}"


def queries_dir(row: Row, work: Path, precision: str) -> Path:
    """Where the encoded queries of ``row`` live: one directory per model, topics and query settings,
    shared by every row that searches those topics with that model."""
    digest = _digest(row.model, row.topics, row.max_length, precision)
    return work / "encoded-queries" / f"{slug(row.model)}--{slug(row.topics)}--{digest}"


def _run_file(row: Row, work: Path, *inputs) -> Path:
    """A run file named by everything the search reads, so another model or setting never reuses it."""
    return work / "runs" / f"{slug(row.id)}--{_digest(row.model, row.hits, row.remove_query, *inputs)}.trec"


def _python(*args: str) -> tuple[str, ...]:
    return ("python", *args)


def _topics(row: Row, work: Path, steps: list[Step]) -> str:
    """A Pyserini topic name or file as it is; an ir-datasets id exported to a TSV file Pyserini reads."""
    dataset_id = ir_dataset_id(row.topics)
    if dataset_id is None:
        return row.topics
    path = str(work / "topics" / f"{slug(row.topics)}.tsv")
    steps.append(Step(_python("-m", "ir_datasets", "export", dataset_id, "queries", "--format", "tsv",
                              "--fields", "query_id", "text"), stdout=path, creates=path))
    return path


def _corpus(row: Row, work: Path, steps: list[Step]) -> tuple[str, str]:
    """An ir-datasets id or a path as it is; ``hf:OWNER/DATASET/FILE`` downloaded into a directory first.
    Also what the index depends on: the file downloaded, else the corpus itself."""
    if not row.corpus.startswith(HF_PREFIX):
        return row.corpus, row.corpus
    repo, _, file = row.corpus[len(HF_PREFIX):].rpartition("/")
    target = work / "corpora" / slug(repo)
    steps.append(Step(("hf", "download", repo, file, "--repo-type", "dataset", "--local-dir", str(target)),
                      creates=str(target / file)))
    return str(target), str(target / file)


def _score(qrels: str, run: str | Path, metrics: Sequence[str]) -> Step:
    return Step(_python("-m", "ir_measures", "--places", "6", qrels, str(run), *metrics), reads=(str(run), qrels))


def plan(row: Row, work: str | os.PathLike) -> list[Step]:
    """The commands that run ``row``, in order; the last one prints its scores (empty for a mean row)."""
    work = Path(work)
    steps: list[Step] = []
    if row.kind == "dense":
        corpus, corpus_content = _corpus(row, work, steps)
        topics = _topics(row, work, steps)
        precision = resolved_precision(row)
        index, queries = index_dir(row, corpus, work, precision), queries_dir(row, work, precision)
        build = Step(_python("-m", "pyserini_llara.index", "--corpus", corpus, "--output", str(index),
                             "--encoder", f"llara:{row.model}", "--device", row.device, "--dtype", precision,
                             "--batch-size", str(row.batch_size), "--max-length", str(row.max_length),
                             "--index-type", row.index_type, "--resume"),
                     creates=str(index), model=row.model, reads=(corpus_content,))
        # Each query alone, without padding, as pyserini.search.faiss --encoder encodes one query: a vector does
        # not depend on which other queries the topics hold. --overwrite: this step runs only when the directory
        # is incomplete or what it was made from changed.
        encode = Step(_python("-m", "pyserini_llara.queries", "--topics", topics, "--output", str(queries),
                              "--encoder", f"llara:{row.model}", "--device", row.device, "--dtype", precision,
                              "--batch-size", "1", "--max-length", str(row.max_length), "--overwrite"),
                      creates=str(queries), model=row.model, reads=(topics,))
        run = _run_file(row, work, index.name, topics, queries.name)
        search = ["-m", "pyserini.search.faiss", "--index", str(index), "--topics", topics,
                  "--encoded-queries", str(queries), "--output", str(run), "--hits", str(row.hits),
                  "--batch-size", str(row.batch_size), "--threads", str(row.threads)]
        search += ["--remove-query"] if row.remove_query else []
        steps += [build, encode, Step(_python(*search), creates=str(run), reads=(str(index), str(queries), topics))]
        steps.append(_score(row.qrels, run, row.metrics))
    elif row.kind == "bm25":
        topics = _topics(row, work, steps)
        run = _run_file(row, work, row.index, topics, row.bm25_args)
        search = ["-m", "pyserini.search.lucene", "--index", row.index, "--topics", topics, "--output", str(run),
                  "--output-format", "trec", "--hits", str(row.hits), "--bm25", *row.bm25_args,
                  "--threads", str(row.threads), "--batch-size", str(row.batch_size)]
        search += ["--remove-query"] if row.remove_query else []
        steps.append(Step(_python(*search), creates=str(run), reads=(topics,)))
        steps.append(_score(row.qrels, run, row.metrics))
    elif row.kind == "demo":
        out = work / "insuranceqa"
        script = os.path.relpath(_repository_file(row.script))
        steps.append(Step(_python(script, "--output", str(out), *row.script_args), creates=str(out / "runs")))
        steps.append(_score(str(out / row.qrels), out / "runs" / f"{row.run}.trec", row.metrics))
    elif row.kind == "mteb":
        steps.append(Step(_python("-m", "pyserini_llara.mteb", "--model", row.model, "--device", row.device,
                                  "--dtype", row.precision, "--batch-size", str(row.batch_size),
                                  "--max-length", str(row.max_length),
                                  "--output-folder", str(work / "mteb" / slug(row.model)))))
    return steps


def _repository_file(relative: str) -> Path:
    """A file of the source checkout (the demo lives in examples/, outside the wheel)."""
    path = Path(__file__).resolve().parents[2] / relative
    if not path.exists():
        raise MatrixError(f"{relative} is not here: the demo rows run from a source checkout of pyserini-llara")
    return path
