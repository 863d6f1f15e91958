"""The patches that open Pyserini's doors to LLaRA: every place where Pyserini (1.6 or 2.x) turns a model name
into a dense encoder, or starts a dense search.

``hook`` calls ``after_import`` right after each module of ``PATCHES`` is imported. The doors:

- ``pyserini.encode``'s class maps, which ``pyserini.search.faiss``, ``pyserini.search.hybrid`` and
  ``pyserini.encode`` scan: ``llara`` goes first, so that built-in keys ("ance", "auto") never win.
- ``FaissSearcher(index, "llara:DIR")`` and ``FaissSearcher.from_prebuilt_index`` (and so
  ``pyserini.server``, which builds its searchers so): ``_init_encoder_from_str`` reads no class
  map; a LLaRA name now gives LLaRA's encoder.
- ``FaissSearcher.__init__``: an index built by ``pyserini_llara.index`` is checked against the
  query encoder before Pyserini reads it (``checks``); dense PRF on an index that cannot return
  its vectors fails with one line. A comma-separated list of shard directories is read as one index
  (``search_index``), also by ``from_prebuilt_index``, which Pyserini's CLI calls for an ``--index``
  that is not a directory; ``set_ivf_nprobe`` joins ``set_hnsw_ef_search``, and both say in one line
  that a LLaRA index is of another type.
- ``QueryEncoder(DIR)`` (``--encoded-queries DIR``): DIR is remembered, as its ``meta.json`` says
  which model encoded the queries, and ``DIR/embedding.pkl`` is first checked against the hash that
  record holds (Pyserini unpickles it).
- ``pyserini.search.faiss.__main__.init_query_encoder`` as ``pyserini.search.hybrid`` calls it,
  with no precision to pass: a LLaRA encoder takes the index's.
- ``pyserini.encode.query``'s own ``init_encoder``.

Every wrapper takes ``*args, **kwargs`` and hands them to Pyserini unchanged; it acts only where a LLaRA
model (``detect``: by what the model is, not by its path), index or encoded-queries directory is
involved. A target that is missing or has another shape (``pyserini_api.require``) leaves its module
as Pyserini made it, with one debug-level log line.
The doors that Pyserini's CLIs open in their argparse are in ``clis``.

Factories, not classes, go into the class maps: importing our encoder module imports
``pyserini.encode``, which may be what is being imported right now.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import weakref
from contextlib import contextmanager

from ..detect import chooses_llara
from ..names import KEY, names_llara
from ..precision import INDEX_PRECISION
from ..records import EncodedQueriesMeta
from ..search_index import read_shards, recorded_meta, set_search_parameter, shard_dirs
from .pyserini_api import OtherShape, bind, encoded_queries_dir, remember_encoded_queries_dir, require

logger = logging.getLogger(__name__)
# The FaissSearchers that search with or in LLaRA: only their errors are rewritten.
llara_searchers: weakref.WeakSet = weakref.WeakSet()


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
    maps = [require(module, name) for name in ("query_encoder_class_map", "document_encoder_class_map")]
    if not all(isinstance(mapping, dict) for mapping in maps):
        raise OtherShape("pyserini.encode's class maps are not dicts")
    _put_first(maps[0], KEY, query_encoder_factory)
    _put_first(maps[1], KEY, document_encoder_factory)


def _patch_encode(module) -> None:
    init = require(require(module, "QueryEncoder"), "__init__")
    signature = inspect.signature(init)
    parameters = list(signature.parameters)
    if len(parameters) < 2:
        raise OtherShape("QueryEncoder.__init__ takes no encoded-queries directory")
    register(module)
    directory_parameter = parameters[1]

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        called = bind(signature, self, *args, **kwargs)
        directory = called.arguments.get(directory_parameter) if called else None
        if directory and os.path.isdir(directory):
            from .checks import check_encoded_queries

            check_encoded_queries(directory)
        init(self, *args, **kwargs)
        if directory:
            remember_encoded_queries_dir(self, directory)

    module.QueryEncoder.__init__ = __init__


def _involves_llara(index_dir, query_encoder) -> bool:
    from .encoders import LlaraQueryEncoder

    if shard_dirs(index_dir) is not None or recorded_meta(index_dir) is not None:
        return True
    if isinstance(query_encoder, str):
        return chooses_llara(query_encoder)
    return (isinstance(query_encoder, LlaraQueryEncoder)
            or EncodedQueriesMeta.find(encoded_queries_dir(query_encoder)) is not None)


def _documents(searcher) -> None:
    """``searcher.doc(docid)`` reads the Lucene index of raw documents the index records (``index.raw``),
    once it is checked to hold this index's documents; without one it returns None, on 1.6 as on 2.x."""
    from ..index.config import IndexBuildError
    from ..index.raw import open_raw_index

    meta = recorded_meta(searcher.index_dir)
    if getattr(searcher, "ssearcher", None) is not None:
        return
    searcher.ssearcher = None
    if meta is None or meta.raw_index is None:
        return
    try:
        searcher.ssearcher = open_raw_index(meta.raw_index, meta.corpus_count, searcher.docids)
    except IndexBuildError as error:
        logger.warning("%s; searcher.doc(docid) returns None", error)


def _patch_faiss_searcher(module) -> None:
    from .checks import check_dimension, check_encoder, prf_vectors_error

    searcher = require(module, "FaissSearcher")
    init = require(searcher, "__init__", ("index_dir", "query_encoder"))
    from_str = require(searcher, "_init_encoder_from_str")
    search, batch_search = require(searcher, "search"), require(searcher, "batch_search")
    load_index, set_ef_search = require(searcher, "load_index"), require(searcher, "set_hnsw_ef_search")
    from_prebuilt = require(searcher, "from_prebuilt_index", ("prebuilt_index_name", "query_encoder")).__func__
    signature, prebuilt_signature = inspect.signature(init), inspect.signature(from_prebuilt)

    @functools.wraps(from_str)
    def _init_encoder_from_str(encoder, *args, **kwargs):
        if chooses_llara(encoder):
            return query_encoder_factory(encoder_dir=encoder, dtype=INDEX_PRECISION)
        return from_str(encoder, *args, **kwargs)

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        bound = bind(signature, self, *args, **kwargs)
        if bound is None or not _involves_llara(bound.arguments["index_dir"], bound.arguments["query_encoder"]):
            return init(self, *args, **kwargs)
        index_dir, query_encoder = bound.arguments["index_dir"], bound.arguments["query_encoder"]
        if isinstance(query_encoder, str):
            bound.arguments["query_encoder"] = query_encoder = self._init_encoder_from_str(query_encoder)
        check_encoder(index_dir, query_encoder)
        init(*bound.args, **bound.kwargs)
        self.index_dir = str(index_dir)
        llara_searchers.add(self)
        check_dimension(self)
        _documents(self)

    @functools.wraps(from_prebuilt)
    def from_prebuilt_index(cls, *args, **kwargs):
        """Pyserini's CLI takes an ``--index`` that is not a directory for a prebuilt name: a shard list is neither."""
        bound = bind(prebuilt_signature, cls, *args, **kwargs)
        if bound is None or shard_dirs(bound.arguments["prebuilt_index_name"]) is None:
            return from_prebuilt(cls, *args, **kwargs)
        called = dict(bound.arguments)
        name = called.pop("prebuilt_index_name")
        called.pop(next(iter(called)))  # cls
        return cls(name, **called)

    @functools.wraps(load_index)
    def _load_index(self, index_dir, *args, **kwargs):
        dirs = shard_dirs(index_dir)
        return load_index(self, index_dir, *args, **kwargs) if dirs is None else read_shards(dirs)

    def set_ivf_nprobe(self, nprobe: int):
        """IVF's number of lists searched, at search time (beside Pyserini's ``set_hnsw_ef_search``)."""
        set_search_parameter(self.index, "nprobe", nprobe)

    @functools.wraps(set_ef_search)
    def set_hnsw_ef_search(self, ef_search, *args, **kwargs):
        if self not in llara_searchers:
            return set_ef_search(self, ef_search, *args, **kwargs)
        set_search_parameter(self.index, "efSearch", ef_search)

    def with_vectors_error(method):
        @functools.wraps(method)
        def wrapper(self, *args, **kwargs):
            try:
                return method(self, *args, **kwargs)
            except RuntimeError as error:
                clear = prf_vectors_error(self, error) if self in llara_searchers else None
                if clear is None:
                    raise
                raise clear from None

        return wrapper

    searcher._init_encoder_from_str = staticmethod(_init_encoder_from_str)
    searcher.__init__ = __init__
    searcher.from_prebuilt_index = classmethod(from_prebuilt_index)
    searcher.load_index = _load_index
    searcher.set_ivf_nprobe = set_ivf_nprobe
    searcher.set_hnsw_ef_search = set_hnsw_ef_search
    searcher.search = with_vectors_error(search)
    searcher.batch_search = with_vectors_error(batch_search)


def _patch_search_main(module) -> None:
    """``pyserini.search.hybrid`` calls ``init_query_encoder`` without ``fp16``: it cannot state a precision."""
    from .encoders import LlaraQueryEncoder

    init_query_encoder = require(module, "init_query_encoder", ("fp16",))
    signature = inspect.signature(init_query_encoder)

    @functools.wraps(init_query_encoder)
    def wrapper(*args, **kwargs):
        bound = bind(signature, *args, **kwargs)
        called = bound.arguments if bound else {}
        with pyserini_choice(called.get("encoder"), called.get("encoder_class")):
            encoder = init_query_encoder(*args, **kwargs)
        if isinstance(encoder, LlaraQueryEncoder) and "fp16" not in called:
            encoder.dtype = INDEX_PRECISION
        return encoder

    module.init_query_encoder = wrapper


def _patch_encode_query(module) -> None:
    """``init_encoder(encoder, device, ...)``; 2.x adds ``bpr``, which asks for BPR's encoder whatever the name."""
    init_encoder = require(module, "init_encoder", ("encoder", "device"))
    signature = inspect.signature(init_encoder)

    @functools.wraps(init_encoder)
    def wrapper(*args, **kwargs):
        bound = bind(signature, *args, **kwargs)
        called = bound.arguments if bound else {}
        if called and chooses_llara(called["encoder"]) and not called.get("bpr"):
            return query_encoder_factory(encoder_dir=called["encoder"], device=called["device"])
        return init_encoder(*args, **kwargs)

    module.init_encoder = wrapper


PATCHES = {
    "pyserini.encode": _patch_encode,
    "pyserini.search.faiss._searcher": _patch_faiss_searcher,
    "pyserini.search.faiss.__main__": _patch_search_main,
    "pyserini.encode.query": _patch_encode_query,
}


def after_import(name: str, module) -> None:
    """Patch ``module`` (each patch checks every target before it changes any)."""
    try:
        PATCHES[name](module)
    except OtherShape as why:
        logger.debug("pyserini-llara leaves %s as Pyserini made it: %s", name, why)
