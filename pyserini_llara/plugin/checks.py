"""Checks that stop a Pyserini dense search before it writes a run that can only be wrong.

Pyserini compares nothing: a query encoder of another model searches an index happily and
returns noise, one of another dimension fails on a bare AssertionError once the run file is
open. An index built by ``pyserini_llara.index`` records in ``meta.json`` the model that made
its vectors (``model_fingerprint``: the model whatever its spelling), their dimension and
precision; queries encoded by ``pyserini_llara.queries`` record theirs. ``FaissSearcher``
(patched by ``patches``) calls ``check_encoder`` before it reads an index and
``check_dimension`` after.
"""

from __future__ import annotations

import numpy as np

from ..modeling import ModelLoadError
from ..records import EncodedQueriesMeta, IndexMeta
from ..template import MissingLlaraTokensError
from .encoders import LlaraQueryEncoder
from .pyserini_api import encoded_embeddings, encoded_queries_dir, has_encoded_queries


class SearchSetupError(ValueError):
    """A search that cannot give right results as asked; the message says what to change."""


# What a Pyserini CLI run under ``clis.run_cli`` reports in one line, with exit status 1.
CLI_ERRORS = (SearchSetupError, ModelLoadError, MissingLlaraTokensError)


def _refuse_other_model(index_dir, meta: IndexMeta, what: str, model: str, fingerprint: str | None, hint: str):
    if meta.model_fingerprint and fingerprint and meta.model_fingerprint != fingerprint:
        raise SearchSetupError(
            f"index {index_dir} was built by {meta.model_label} (fingerprint {meta.model_fingerprint}), but {what} "
            f"{model} (fingerprint {fingerprint}): {hint}")


def _encoded_only(encoder) -> bool:
    """A Pyserini ``QueryEncoder`` that only looks queries up in ``--encoded-queries``."""
    return has_encoded_queries(encoder) and not getattr(encoder, "has_model", False)


def check_encoder(index_dir, encoder) -> None:
    """Before the index is read: refuse a query encoder that cannot make this index's vectors.

    A LLaRA query encoder first takes the index's precision where its caller chose none, then
    loads its model (a model that cannot load fails here too) and is fingerprinted.
    """
    meta = IndexMeta.find(index_dir)
    if isinstance(encoder, LlaraQueryEncoder):
        if meta is not None:
            encoder.follow_index(meta.dtype)
        encoder.load()
        if meta is not None:
            _refuse_other_model(index_dir, meta, "the query encoder is", encoder.model_name, encoder.fingerprint,
                                f"search it with --encoder llara:{meta.model}")
    elif _encoded_only(encoder):
        queries = EncodedQueriesMeta.find(encoded_queries_dir(encoder))
        if meta is not None and queries is not None:
            _refuse_other_model(index_dir, meta, f"the queries in {encoded_queries_dir(encoder)} were encoded by",
                                queries.model, queries.model_fingerprint,
                                "encode the topics with the index's model (python -m pyserini_llara.queries "
                                f"--encoder llara:{meta.model} ...)")
    elif meta is not None and type(encoder).__module__.split(".")[0] == "pyserini":
        raise SearchSetupError(
            f"index {index_dir} holds LLaRA vectors of {meta.model_label}, but the query encoder is Pyserini's "
            f"{type(encoder).__name__}, which does not encode as LLaRA: pass --encoder llara:{meta.model} "
            "(or --encoder-class llara)")


def _encoder_dimension(encoder) -> tuple[int, str] | None:
    """The dimension of the encoder's vectors and what to call it, where it is known."""
    if isinstance(encoder, LlaraQueryEncoder):
        return encoder.dimension, f"the query encoder {encoder.model_name}"
    first = next(iter(encoded_embeddings(encoder).values()), None) if _encoded_only(encoder) else None
    if first is not None and np.ndim(first) == 1:  # BPR's encoded queries hold dense + binary pairs
        return len(first), f"the encoded queries in {encoded_queries_dir(encoder)}"
    return None


def check_dimension(searcher) -> None:
    """After the index is read: the query vectors must have the index's dimension."""
    found = _encoder_dimension(searcher.query_encoder)
    if found is None or found[0] == searcher.dimension:
        return
    meta = IndexMeta.find(searcher.index_dir)
    built = f" built by {meta.model_label}" if meta is not None else ""
    raise SearchSetupError(
        f"index {searcher.index_dir}{built} holds {searcher.dimension}-dimensional vectors, but {found[1]} "
        f"gives {found[0]}-dimensional ones: search it with the model that built it")


def prf_vectors_error(searcher, error: RuntimeError) -> SearchSetupError | None:
    """faiss's error when dense PRF asks an index for vectors it cannot return, as one clear line."""
    if "reconstruct not implemented" not in str(error):
        return None
    import faiss

    kind = type(faiss.downcast_index(searcher.index)).__name__
    return SearchSetupError(
        f"index {getattr(searcher, 'index_dir', '')} ({kind}) cannot return its stored vectors, which dense PRF "
        "(--prf-method avg/rocchio) needs: search it without --prf-depth, or rebuild it as Flat, HNSW, IVF, "
        "PQ or SQ (pyserini-llara-index --index-type)")
