"""The patches that open Pyserini's doors to LLaRA: every place where Pyserini turns a model name into a
dense encoder, or starts a dense search (pyserini 1.6).

``hook`` calls ``after_import`` right after each module of ``PATCHES`` is imported. The doors:

- ``pyserini.encode``'s class maps, which ``pyserini.search.faiss``, ``pyserini.search.hybrid`` and
  ``pyserini.encode`` scan: ``llara`` goes first, so that built-in keys ("ance", "auto") never win.
- ``FaissSearcher(index, "llara:DIR")`` and ``FaissSearcher.from_prebuilt_index``: its
  ``_init_encoder_from_str`` reads no class map; a LLaRA name now gives LLaRA's encoder.
- ``FaissSearcher.__init__``: an index built by ``pyserini_llara.index`` is checked against the
  query encoder before Pyserini reads it (``checks``); dense PRF on an index that cannot return
  its vectors fails with one line.
- ``QueryEncoder(DIR)`` (``--encoded-queries DIR``) remembers DIR, whose ``meta.json`` says which
  model encoded the queries, and first checks ``DIR/embedding.pkl`` against the hash it records.
- ``pyserini.search.faiss.__main__.init_query_encoder`` as ``pyserini.search.hybrid`` calls it,
  with no precision to pass: a LLaRA encoder takes the index's.
- ``pyserini.encode.query``'s own ``init_encoder``.
- ``DefaultQueryIterator.from_topics``: an empty topics file is called empty, not "Not Found".

The doors that Pyserini's CLIs open in their argparse are in ``clis``.

Factories, not classes, go into the class maps: importing our encoder module imports
``pyserini.encode``, which may be what is being imported right now.
"""

from __future__ import annotations

import functools
import os
from contextlib import contextmanager

from ..detect import chooses_llara
from ..names import KEY, names_llara
from ..precision import INDEX_PRECISION


def query_encoder_factory(**kwargs):
    from .encoders import LlaraQueryEncoder

    return LlaraQueryEncoder(**kwargs)


def document_encoder_factory(**kwargs):
    from .encoders import LlaraDocumentEncoder

    return LlaraDocumentEncoder(**kwargs)


def _put_first(mapping: dict, key, value) -> None:
    rest = {k: v for k, v in mapping.items() if k != key}
    mapping.clear()
    mapping[key] = value
    mapping.update(rest)


@contextmanager
def pyserini_choice(encoder: str | None, encoder_class: str | None = None):
    """While Pyserini picks an encoder by substring: a name containing ``llara`` of a model that is not LLaRA
    (``detect``) gets Pyserini's own choice, as if the ``llara`` keys were not in its class maps."""
    if encoder_class or not names_llara(encoder) or chooses_llara(encoder):
        yield
        return
    import pyserini.encode as module

    maps = (module.query_encoder_class_map, module.document_encoder_class_map)
    saved = [mapping.pop(KEY, None) for mapping in maps]
    try:
        yield
    finally:
        for mapping, value in zip(maps, saved):
            if value is not None:
                _put_first(mapping, KEY, value)


def register(module=None) -> None:
    """Insert the ``llara`` keys at the front of ``pyserini.encode``'s two class maps."""
    if module is None:
        import pyserini.encode as module
    _put_first(module.query_encoder_class_map, KEY, query_encoder_factory)
    _put_first(module.document_encoder_class_map, KEY, document_encoder_factory)


def _patch_encode(module) -> None:
    register(module)
    init = module.QueryEncoder.__init__

    @functools.wraps(init)
    def __init__(self, encoded_query_dir=None, *args, **kwargs):
        if encoded_query_dir and os.path.isdir(encoded_query_dir):
            from .checks import check_encoded_queries

            check_encoded_queries(encoded_query_dir)
        init(self, encoded_query_dir, *args, **kwargs)
        self.encoded_query_dir = encoded_query_dir

    module.QueryEncoder.__init__ = __init__


def _patch_faiss_searcher(module) -> None:
    from .checks import check_dimension, check_encoder, prf_vectors_error

    searcher = module.FaissSearcher
    from_str = searcher.__dict__["_init_encoder_from_str"].__func__

    @functools.wraps(from_str)
    def _init_encoder_from_str(encoder):
        if chooses_llara(encoder):
            return query_encoder_factory(encoder_dir=encoder, dtype=INDEX_PRECISION)
        return from_str(encoder)

    init = searcher.__init__

    @functools.wraps(init)
    def __init__(self, index_dir, query_encoder, *args, **kwargs):
        if isinstance(query_encoder, str):
            query_encoder = self._init_encoder_from_str(query_encoder)
        check_encoder(index_dir, query_encoder)
        init(self, index_dir, query_encoder, *args, **kwargs)
        self.index_dir = str(index_dir)
        check_dimension(self)

    def with_vectors_error(search):
        @functools.wraps(search)
        def wrapper(self, *args, **kwargs):
            try:
                return search(self, *args, **kwargs)
            except RuntimeError as error:
                clear = prf_vectors_error(self, error)
                if clear is None:
                    raise
                raise clear from None

        return wrapper

    searcher._init_encoder_from_str = staticmethod(_init_encoder_from_str)
    searcher.__init__ = __init__
    searcher.search = with_vectors_error(searcher.search)
    searcher.batch_search = with_vectors_error(searcher.batch_search)


def _patch_search_main(module) -> None:
    """``pyserini.search.hybrid`` calls ``init_query_encoder`` without ``fp16``: it cannot state a precision."""
    import inspect

    from .encoders import LlaraQueryEncoder

    init_query_encoder = module.init_query_encoder
    signature = inspect.signature(init_query_encoder)

    @functools.wraps(init_query_encoder)
    def wrapper(*args, **kwargs):
        arguments = signature.bind(*args, **kwargs).arguments
        with pyserini_choice(arguments.get("encoder"), arguments.get("encoder_class")):
            encoder = init_query_encoder(*args, **kwargs)
        if isinstance(encoder, LlaraQueryEncoder) and "fp16" not in arguments:
            encoder.dtype = INDEX_PRECISION
        return encoder

    module.init_query_encoder = wrapper


def _patch_encode_query(module) -> None:
    init_encoder = module.init_encoder

    @functools.wraps(init_encoder)
    def wrapper(encoder, device, pooling, l2_norm, prefix):
        if chooses_llara(encoder):
            return query_encoder_factory(encoder_dir=encoder, device=device)
        return init_encoder(encoder, device, pooling, l2_norm, prefix)

    module.init_encoder = wrapper


def _patch_query_iterator(module) -> None:
    from .checks import SearchSetupError

    iterator = module.DefaultQueryIterator
    from_topics = iterator.__dict__["from_topics"].__func__

    @functools.wraps(from_topics)
    def wrapper(cls, topics_path):
        try:
            return from_topics(cls, topics_path)
        except FileNotFoundError:
            if not os.path.isfile(topics_path):
                raise
            raise SearchSetupError(f"topics file {topics_path} holds no topics: give one query per line "
                                   "(.tsv/.txt: qid<TAB>text; .jsonl: {\"qid\": ..., \"title\": text})") from None

    iterator.from_topics = classmethod(wrapper)


PATCHES = {
    "pyserini.encode": _patch_encode,
    "pyserini.query_iterator": _patch_query_iterator,
    "pyserini.search.faiss._searcher": _patch_faiss_searcher,
    "pyserini.search.faiss.__main__": _patch_search_main,
    "pyserini.encode.query": _patch_encode_query,
}


def after_import(name: str, module) -> None:
    PATCHES[name](module)
