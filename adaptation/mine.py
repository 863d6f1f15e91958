"""Hard-negative mining: retrieve for the training queries, sample negatives from the top k minus the positives.

Writes the fine-tuning JSONL (``{"query", "pos", "neg"}``, passages as ``{"docid", "text"}``).
The ranking comes from BM25 (Pyserini's Lucene: the release's README says BAAI/LLARA-beir's
negatives come from BM25), from a LLaRA model (dense: BAAI/LLARA-passage's "come from dense
retriever"; the release names neither retriever, depth nor count), or from any TREC run file
you already have. Negatives are drawn per query from its hits
``skip_top..depth`` with the judged positives removed, seeded by ``seed`` and the query id.

Examples:
  python -m adaptation.mine --dataset beir/scifact/train --output scifact-train.jsonl
  python -m adaptation.mine --queries q.tsv --qrels qrels.txt --corpus corpus.jsonl \\
      --retriever dense --model_name_or_path runs/llara --device cuda --output train.jsonl
  python -m adaptation.mine --dataset msmarco-passage/train/judged --corpus msmarco-titled.jsonl \\
      --run run.train.txt --depth 200 --output msmarco-train.jsonl
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Collection, Iterable, Literal, Mapping, Sequence

from tqdm import tqdm

from pyserini_llara.atomic import write_jsonl
from pyserini_llara.cli import HelpFormatter, add_debug_flag, one_line_errors, setup_logging
from pyserini_llara.corpus import text_lines

logger = logging.getLogger(__name__)


class MiningError(ValueError):
    """Inputs that cannot be mined as they are; the message names the file, line and fix."""


@dataclass
class MineArguments:
    output: str = field(metadata={"help": "JSONL file to write: one {query, pos, neg} line per judged query"})
    dataset: str | None = field(default=None, metadata={
        "help": "ir-datasets id giving the queries and qrels (and the documents, unless --corpus), "
                "e.g. beir/scifact/train or msmarco-passage/train/judged"})
    queries: str | None = field(default=None, metadata={
        "help": "queries file instead of --dataset: TSV (qid<TAB>text) or JSONL (id/_id/qid + text/query)"})
    qrels: str | None = field(default=None, metadata={"help": "TREC qrels file instead of --dataset"})
    corpus: str | None = field(default=None, metadata={
        "help": "documents: Pyserini JSONL file or directory (id + contents, or title + text), or an ir-datasets id"})
    retriever: Literal["bm25", "dense"] = field(default="bm25", metadata={
        "help": "bm25: Pyserini Lucene; dense: a LLaRA model (--model_name_or_path). Ignored with --run"})
    run: str | None = field(default=None, metadata={
        "help": "sample from this TREC run instead of searching (e.g. a pyserini.search.faiss output)"})
    index: str | None = field(default=None, metadata={
        "help": "reuse this index instead of building one: a Lucene index directory or prebuilt name (bm25), "
                "or a faiss directory written by pyserini_llara.index (dense)"})
    index_dir: str | None = field(default=None, metadata={
        "help": "where to build the index (default: OUTPUT.index); kept, and reused by a rerun with the same settings"})
    model_name_or_path: str | None = field(default=None, metadata={"help": "LLaRA model for --retriever dense"})
    depth: int = field(default=200, metadata={"help": "sample negatives from the top DEPTH hits"})
    skip_top: int = field(default=0, metadata={
        "help": "ignore the first SKIP_TOP hits (unjudged near-duplicates of the positive are often among them)"})
    num_negatives: int = field(default=15, metadata={
        "help": "negatives per query (train_group_size - 1 in the release)"})
    min_relevance: int = field(default=1, metadata={"help": "qrels grade at or above which a document is a positive"})
    seed: int = field(default=42, metadata={"help": "sampling seed; the same seed gives the same file"})
    threads: int = field(default=4, metadata={"help": "Lucene indexing and search threads"})
    batch_size: int = field(default=32, metadata={"help": "dense encoding batch size"})
    max_text_tokens: int = field(default=512, metadata={"help": "dense: text tokens kept per passage and query"})
    dtype: str = field(default="auto", metadata={
        "help": "dense: model dtype: auto (bf16 where the device runs it natively, else float32), float32, "
                "bfloat16 or float16"})
    device: str = field(default="cpu", metadata={"help": "dense: torch device, e.g. cuda:0"})

    def __post_init__(self):
        if self.dataset is None and (self.queries is None or self.qrels is None):
            raise MiningError("give --dataset (an ir-datasets id), or both --queries and --qrels")
        if self.dataset is None and self.corpus is None:
            raise MiningError("give --corpus: the documents the qrels and the negatives refer to")
        if self.run is None and self.retriever == "dense" and self.model_name_or_path is None:
            raise MiningError("--retriever dense needs --model_name_or_path (the LLaRA model that searches)")
        if self.depth <= self.skip_top:
            raise MiningError(f"--depth {self.depth} must exceed --skip_top {self.skip_top}")


def sample_negatives(ranking: Sequence[str], positives: Collection[str], num_negatives: int,
                     rng: random.Random, *, depth: int = 200, skip_top: int = 0) -> list[str]:
    """Up to ``num_negatives`` distinct docids from ``ranking[skip_top:depth]``, never a positive."""
    candidates = list(dict.fromkeys(d for d in ranking[skip_top:depth] if d not in positives))
    return rng.sample(candidates, min(num_negatives, len(candidates)))


def mine_negatives(rankings: Mapping[str, Sequence[str]], positives: Mapping[str, Collection[str]],
                   num_negatives: int, *, seed: int = 42, depth: int = 200, skip_top: int = 0) -> dict[str, list[str]]:
    """Per query, negatives sampled from its ranking. Each query's draw depends on ``seed`` and its id only."""
    return {qid: sample_negatives(rankings.get(qid, ()), positives[qid], num_negatives,
                                  random.Random(f"{seed}:{qid}"), depth=depth, skip_top=skip_top)
            for qid in positives}


# ---------------------------------------------------------------- inputs


def read_queries(path: str | os.PathLike) -> dict[str, str]:
    """TSV ``qid<TAB>text`` or JSONL with an id (``id``/``_id``/``qid``) and ``text``/``query``."""
    path = Path(path)
    if not path.is_file():
        raise MiningError(f"queries file {path} does not exist")
    queries = {}
    for number, line in text_lines(path, MiningError):
        if not line.strip():
            continue
        where = f"{path}, line {number}"
        qid = text = None
        if path.suffix == ".jsonl":
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise MiningError(f"{where}: malformed JSON ({error.msg})") from None
            if isinstance(record, dict):
                qid = next((record[k] for k in ("id", "_id", "qid") if k in record), None)
                text = record.get("text", record.get("query"))
        else:
            qid, _, text = line.rstrip("\r\n").partition("\t")
        if qid is None or not isinstance(text, str) or not text.strip():
            raise MiningError(f"{where}: expected a query id and a non-empty text "
                              "(TSV: qid<TAB>text; JSONL: id + text)")
        queries[str(qid)] = text
    return queries


def read_qrels(path: str | os.PathLike) -> list[tuple[str, str, int, str]]:
    """TREC qrels -> ``(qid, docid, grade, where)`` rows."""
    path = Path(path)
    if not path.is_file():
        raise MiningError(f"qrels file {path} does not exist")
    rows = []
    for number, line in text_lines(path, MiningError):
        parts = line.split()
        if not parts:
            continue
        where = f"{path}, line {number}"
        if len(parts) != 4 or not parts[3].lstrip("-").isdigit():
            raise MiningError(f"{where}: expected TREC qrels `qid iteration docid grade`, got {line.strip()!r}")
        rows.append((parts[0], parts[2], int(parts[3]), where))
    return rows


def load_judged(args: MineArguments) -> tuple[dict[str, str], list[tuple[str, str, int, str]]]:
    if args.dataset is None:
        return read_queries(args.queries), read_qrels(args.qrels)
    import ir_datasets

    dataset = ir_datasets.load(args.dataset)
    if not (dataset.has_queries() and dataset.has_qrels()):
        raise MiningError(f"ir-datasets {args.dataset!r} lacks queries or qrels; name a split, e.g. beir/scifact/train")
    queries = {q.query_id: q.default_text() for q in dataset.queries_iter()}
    rows = [(r.query_id, r.doc_id, r.relevance, f"ir-datasets {args.dataset} qrels, row {n}")
            for n, r in enumerate(dataset.qrels_iter(), start=1)]
    return queries, rows


def judged_positives(queries: Mapping[str, str], qrels: Iterable[tuple[str, str, int, str]],
                     docids: Collection[str], min_relevance: int = 1) -> dict[str, set[str]]:
    """qid -> relevant docids; every judged docid must be in the corpus and every judged qid among the queries."""
    positives: dict[str, set[str]] = defaultdict(set)
    for qid, docid, grade, where in qrels:
        if docid not in docids:
            raise MiningError(f"{where}: docid {docid!r} is not in the corpus; pass the corpus these qrels "
                              "belong to (--corpus)")
        if qid not in queries:
            raise MiningError(f"{where}: query {qid!r} is not among the queries")
        if grade >= min_relevance:
            positives[qid].add(docid)
    if not positives:
        raise MiningError(f"no qrels row reaches grade {min_relevance}: nothing to train on")
    return dict(positives)


# ---------------------------------------------------------------- retrieval


def read_run(path: str | os.PathLike, depth: int) -> dict[str, list[str]]:
    """TREC run -> qid -> docids by rank (score order), cut at ``depth``."""
    hits: dict[str, list[tuple[float, str]]] = defaultdict(list)
    if not Path(path).is_file():
        raise MiningError(f"run file {path} does not exist")
    for number, line in text_lines(path, MiningError):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 5:
            raise MiningError(f"{path}, line {number}: expected a TREC run line `qid Q0 docid rank score tag`")
        try:
            score = float(parts[4])
        except ValueError:
            score = math.nan
        if not math.isfinite(score):
            raise MiningError(f"{path}, line {number}: the score {parts[4]!r} (5th column) is not a finite number; "
                              "expected a TREC run line `qid Q0 docid rank score tag`")
        hits[parts[0]].append((-score, parts[2]))
    return {qid: [d for _, d in sorted(rows)[:depth]] for qid, rows in hits.items()}


def bm25_rankings(texts: Mapping[str, str], queries: Mapping[str, str], args: MineArguments) -> dict[str, list[str]]:
    from pyserini.search.lucene import LuceneSearcher

    index = args.index
    if index is None:
        index = build_lucene_index(texts, Path(args.index_dir or f"{args.output}.index"), args.threads)
    searcher = LuceneSearcher(str(index)) if os.path.exists(index) else LuceneSearcher.from_prebuilt_index(index)
    qids = list(queries)
    results = searcher.batch_search([queries[q] for q in qids], qids, k=args.depth, threads=args.threads)
    return {qid: [hit.docid for hit in hits] for qid, hits in results.items()}


def build_lucene_index(texts: Mapping[str, str], index_dir: Path, threads: int) -> Path:
    """Pyserini's own indexer on a JSONL copy of the corpus."""
    collection = index_dir.with_name(index_dir.name + ".collection")
    write_jsonl(collection / "docs.jsonl", ({"id": docid, "contents": text} for docid, text in texts.items()))
    command = [sys.executable, "-m", "pyserini.index.lucene", "--collection", "JsonCollection",
               "--input", str(collection), "--index", str(index_dir), "--generator",
               "DefaultLuceneDocumentGenerator", "--threads", str(threads)]
    logger.info("building the BM25 index: %s", " ".join(command))
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"Lucene indexing failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return index_dir


def dense_rankings(corpus: str, queries: Mapping[str, str], args: MineArguments) -> dict[str, list[str]]:
    """Exact inner-product search over the plugin's index of ``corpus`` (built, or resumed, unless ``--index``,
    whose record must name the model that searches it)."""
    import faiss

    from pyserini_llara.encoding import LlaraEncoder
    from pyserini_llara.index import IndexConfig, build_index

    index_dir = args.index
    if index_dir is None:
        config = IndexConfig(encoder=args.model_name_or_path, device=args.device, dtype=args.dtype,
                             batch_size=args.batch_size, max_length=args.max_text_tokens)
        index_dir = build_index(corpus, args.index_dir or f"{args.output}.index", config, resume=True)
    else:
        check_index_model(index_dir, args.model_name_or_path)
    index = faiss.read_index(str(Path(index_dir) / "index"))
    docids = Path(index_dir, "docid").read_text(encoding="utf-8").splitlines()
    encoder = LlaraEncoder.from_pretrained(args.model_name_or_path, dtype=args.dtype, device=args.device,
                                           batch_size=args.batch_size, max_text_tokens=args.max_text_tokens)
    qids = list(queries)
    with tqdm(total=len(qids), desc="encoding queries", unit="query") as bar:
        vectors = encoder.encode_queries([queries[q] for q in qids], progress=bar.update)
    _, rows = index.search(vectors, args.depth)
    return {qid: [docids[i] for i in row if i >= 0] for qid, row in zip(qids, rows)}


def check_index_model(index_dir: str, model: str) -> None:
    """The vectors of ``--index`` must come from the model that encodes the queries (by fingerprint)."""
    from pyserini_llara.fingerprint import model_fingerprint
    from pyserini_llara.records import IndexMeta

    meta = IndexMeta.find(index_dir)
    if meta is None:
        raise MiningError(f"--index {index_dir} has no pyserini-llara record (meta.json), so its model cannot be "
                          "checked; build it with python -m pyserini_llara.index, or leave --index out")
    fingerprint = model_fingerprint(model)
    if meta.model_fingerprint != fingerprint:
        raise MiningError(f"--index {index_dir} was built by {meta.model_label} (fingerprint "
                          f"{meta.model_fingerprint}), but --model_name_or_path is {model} "
                          f"(fingerprint {fingerprint}): mine with --model_name_or_path {meta.model}, "
                          "or leave --index out to build one")


# ---------------------------------------------------------------- driver


def mine(args: MineArguments) -> Path:
    """Write the training JSONL; returns its path."""
    from pyserini_llara.corpus import read_corpus

    queries, qrels = load_judged(args)
    corpus = args.corpus or args.dataset
    texts = {doc.docid: doc.text for doc in tqdm(read_corpus(corpus), desc="reading corpus", unit="doc")}
    positives = judged_positives(queries, qrels, texts, args.min_relevance)
    judged = {qid: queries[qid] for qid in positives}
    if args.run is not None:
        rankings = read_run(args.run, args.depth)
    elif args.retriever == "bm25":
        rankings = bm25_rankings(texts, judged, args)
    else:
        rankings = dense_rankings(str(corpus), judged, args)
    unknown = next((d for ranking in rankings.values() for d in ranking if d not in texts), None)
    if unknown is not None:
        raise MiningError(f"the ranking returns docid {unknown!r}, which is not in the corpus {corpus}: "
                          "search the same corpus the qrels refer to")
    negatives = mine_negatives(rankings, positives, args.num_negatives, seed=args.seed, depth=args.depth,
                               skip_top=args.skip_top)
    short = sum(len(n) < args.num_negatives for n in negatives.values())
    if short:
        logger.warning("%d of %d queries got fewer than %d negatives (short rankings); training repeats them",
                       short, len(negatives), args.num_negatives)

    def records():
        for qid in positives:
            if not negatives[qid]:
                logger.warning("query %s has no negative in its top %d; left out", qid, args.depth)
                continue
            yield {"query_id": qid, "query": queries[qid],
                   "pos": [{"docid": d, "text": texts[d]} for d in sorted(positives[qid])],
                   "neg": [{"docid": d, "text": texts[d]} for d in negatives[qid]]}

    written = write_jsonl(args.output, records())
    logger.info("wrote %d training queries to %s", written, args.output)
    return Path(args.output)

def main(argv: Sequence[str] | None = None) -> None:
    from transformers import HfArgumentParser

    parser = HfArgumentParser(MineArguments, prog="python -m adaptation.mine", description=__doc__,
                              formatter_class=HelpFormatter)
    add_debug_flag(parser)
    try:
        args, extra = parser.parse_args_into_dataclasses(args=argv)
    except (MiningError, ValueError) as error:
        parser.error(str(error))
    setup_logging()
    from pyserini_llara.index import IndexBuildError

    with one_line_errors(extra.debug, (ValueError, OSError, IndexBuildError)):
        output = mine(args)
    print(output)


if __name__ == "__main__":
    main()
