"""Checks that stop a Pyserini dense search before it writes a run that can only be wrong.

Pyserini compares nothing: a query encoder of another model searches an index happily and
returns noise, one of another dimension fails on a bare AssertionError once the run file is
open. An index built by ``pyserini_llara.index`` records in ``meta.json`` the model that made
its vectors (``model_fingerprint``: the model whatever its spelling), their dimension and
precision; queries encoded by ``pyserini_llara.queries`` record theirs, with the hash of their
pickle. ``QueryEncoder(DIR)`` (patched by ``patches``) calls ``check_encoded_queries`` before
Pyserini unpickles ``DIR/embedding.pkl``; ``FaissSearcher`` calls ``check_encoder`` before it reads
an index and ``check_dimension`` after; a CLI search with ``--encoded-queries`` calls
``check_topics_encoded`` before Pyserini opens its run file. Where a record is missing, the checks
that need it are skipped with a warning.
"""

from __future__ import annotations

import logging

import numpy as np

from ..modeling import ModelLoadError
from ..queries import EMBEDDING_FILE, PROMPT, QueriesError, proved_record, read_topics
from ..records import EncodedQueriesMeta, IndexMeta
from ..search_index import SearchIndexError, recorded_meta
from ..template import MissingLlaraTokensError
from .encoders import LlaraQueryEncoder
from .pyserini_api import encoded_embeddings, encoded_queries_dir, has_encoded_queries

logger = logging.getLogger(__name__)


class SearchSetupError(ValueError):
    """A search that cannot give right results as asked; the message says what to change."""


# What a Pyserini CLI run under ``clis.run_cli`` reports in one line, with exit status 1.
CLI_ERRORS = (SearchSetupError, SearchIndexError, ModelLoadError, MissingLlaraTokensError)


def _refuse_other_model(index_dir, meta: IndexMeta, what: str, model: str, fingerprint: str | None, hint: str):
    if meta.model_fingerprint and fingerprint and meta.model_fingerprint != fingerprint:
        raise SearchSetupError(
            f"index {index_dir} was built by {meta.model_label} (fingerprint {meta.model_fingerprint}), but {what} "
            f"{model} (fingerprint {fingerprint}): {hint}")


def encoded_queries(encoder) -> dict | None:
    """The text -> vector map of a Pyserini ``QueryEncoder`` that only looks queries up in ``--encoded-queries``;
    None for an encoder with a model."""
    if has_encoded_queries(encoder) and not getattr(encoder, "has_model", False):
        return encoded_embeddings(encoder)
    return None


def check_encoded_queries(directory) -> None:
    """Before Pyserini unpickles ``DIR/embedding.pkl``: where our record is, the file must be the one it hashed."""
    try:
        proved_record(directory)
    except QueriesError as error:
        raise SearchSetupError(str(error)) from None


def _warn_unrecorded(what: str, other: str) -> None:
    logger.warning("%s has no pyserini-llara record (meta.json): %s is not checked against it", what, other)


def _refuse_other_queries(index_dir, meta: IndexMeta, queries: EncodedQueriesMeta, where) -> None:
    """The queries' model, prompt and precision against the index's."""
    _refuse_other_model(index_dir, meta, f"the queries in {where} were encoded by", queries.model,
                        queries.model_fingerprint, "encode the topics with the index's model "
                        f"(python -m pyserini_llara.queries --encoder llara:{meta.model} ...)")
    if queries.prompt != PROMPT:
        raise SearchSetupError(f"the queries in {where} were encoded with the prompt {queries.prompt!r}, not "
                               f"{PROMPT!r}, which the index's passages answer: encode them again")
    if queries.dtype != meta.dtype:
        logger.warning("the queries in %s were encoded in %s, index %s holds %s vectors: scores may differ from a "
                       "search in one precision in their last digits", where, queries.dtype, index_dir, meta.dtype)


def check_encoder(index_dir, encoder) -> None:
    """Before the index is read: refuse a query encoder that cannot make this index's vectors.

    A LLaRA query encoder first takes the index's precision where its caller chose none, then
    loads its model (a model that cannot load fails here too) and is fingerprinted.
    """
    meta = recorded_meta(index_dir)
    if isinstance(encoder, LlaraQueryEncoder):
        if meta is not None:
            encoder.follow_index(meta.dtype)
        encoder.load()
        if meta is not None:
            _refuse_other_model(index_dir, meta, "the query encoder is", encoder.model_name, encoder.fingerprint,
                                f"search it with --encoder llara:{meta.model}")
        else:
            _warn_unrecorded(f"index {index_dir}", f"the query encoder's model {encoder.model_name}")
    elif encoded_queries(encoder) is not None:
        where = encoded_queries_dir(encoder)
        queries = EncodedQueriesMeta.find(where)
        if meta is not None and queries is not None:
            _refuse_other_queries(index_dir, meta, queries, where)
        elif meta is not None:
            _warn_unrecorded(f"encoded queries {where}", f"the model of index {index_dir}")
        elif queries is not None:
            _warn_unrecorded(f"index {index_dir}", f"the model of the queries in {where}")
    elif meta is not None and type(encoder).__module__.split(".")[0] == "pyserini":
        raise SearchSetupError(
            f"index {index_dir} holds LLaRA vectors of {meta.model_label}, but the query encoder is Pyserini's "
            f"{type(encoder).__name__}, which does not encode as LLaRA: pass --encoder llara:{meta.model} "
            "(or --encoder-class llara)")


def _encoder_dimension(encoder) -> tuple[int, str] | None:
    """The dimension of the encoder's vectors and what to call it, where it is known."""
    if isinstance(encoder, LlaraQueryEncoder):
        return encoder.dimension, f"the query encoder {encoder.model_name}"
    first = next(iter((encoded_queries(encoder) or {}).values()), None)
    if first is not None and np.ndim(first) == 1:  # BPR's encoded queries hold dense + binary pairs
        return len(first), f"the encoded queries in {encoded_queries_dir(encoder)}"
    return None


def check_dimension(searcher) -> None:
    """After the index is read: the query vectors must have the index's dimension."""
    found = _encoder_dimension(searcher.query_encoder)
    if found is None or found[0] == searcher.dimension:
        return
    meta = recorded_meta(searcher.index_dir)
    built = f" built by {meta.model_label}" if meta is not None else ""
    raise SearchSetupError(
        f"index {searcher.index_dir}{built} holds {searcher.dimension}-dimensional vectors, but {found[1]} "
        f"gives {found[0]}-dimensional ones: search it with the model that built it")


def check_topics_encoded(topics: str, topics_format: str, directory) -> None:
    """Before a run file is opened: every query of ``topics`` must be in the encoded queries, which Pyserini
    looks up by text (a KeyError half way through the run otherwise). Checked where our record proves the pickle."""
    import pandas as pd

    try:
        if proved_record(directory) is None:
            return
        pairs = read_topics(topics, topics_format)
    except QueriesError as error:
        raise SearchSetupError(str(error)) from None
    texts = set(pd.read_pickle(f"{directory}/{EMBEDDING_FILE}")["text"])
    missing = [(qid, text) for qid, text in pairs if text not in texts]
    if missing:
        qid, text = missing[0]
        raise SearchSetupError(f"{len(missing)} of the {len(pairs)} queries of {topics} are not in the encoded "
                               f"queries {directory} (first: {qid} {text!r}); encode these topics "
                               f"(python -m pyserini_llara.queries --topics {topics} ...)")


def prf_vectors_error(searcher, error: RuntimeError) -> SearchSetupError | None:
    """faiss's error when dense PRF asks an index for vectors it cannot return, as one clear line."""
    if "reconstruct not implemented" not in str(error):
        return None
    import faiss

    kind = type(faiss.downcast_index(searcher.index)).__name__
    if isinstance(searcher.index, faiss.IndexShards):
        return SearchSetupError(
            f"the shards {searcher.index_dir} are searched in turn and cannot return their stored vectors, which "
            "dense PRF (--prf-method avg/rocchio) needs: search them without --prf-depth, or merge them "
            "(pyserini-llara-index merge) and search the merged index")
    return SearchSetupError(
        f"index {getattr(searcher, 'index_dir', '')} ({kind}) cannot return its stored vectors, which dense PRF "
        "(--prf-method avg/rocchio) needs: search it without --prf-depth, or rebuild it as Flat, HNSW, IVF, "
        "PQ or SQ (pyserini-llara-index --index-type)")
