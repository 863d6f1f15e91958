"""Build a dense LLaRA index that ``python -m pyserini.search.faiss --index DIR`` reads as it is.

An index directory holds ``index`` (``faiss.write_index``), ``docid`` (one id per line, in
vector order) and ``meta.json`` (``records.IndexMeta``: model and its fingerprint, dtype,
dimension, index type, count, shard, corpus fingerprint), which resuming and merging check so
that vectors from different models, precisions or corpus versions never mix.

Encoding is the slow part, so it is saved as it goes: a build in progress lives in
``chunks/`` (its settings in ``chunks/meta.json``, each finished chunk of documents with a
fingerprint of their ids and texts, under an atomic rename), and a rerun with
``resume=True`` reuses every chunk whose documents are still the same. The faiss index is
built from the chunks at the end (index types needing training train on the encoded
vectors), staged as ``*.tmp`` files and swapped in only when complete, ``meta.json`` last:
an interrupted build or merge leaves the old index, or a state that a resume finishes
without encoding anything again.

Shards split the corpus into contiguous runs of whole chunks, so the merged shards hold the
same vectors, in the same order, as a single-process build. Shards keep exact (Flat)
vectors; the index type of the final index is chosen when merging. Under ``torchrun`` or
``accelerate launch`` every process builds the shard of its rank and rank 0 merges them.

Modules: ``config`` (the settings), ``output`` (an index directory), ``chunks`` (the build in
progress), ``faiss_index`` (index types, writing), ``build``, ``merge``, ``distributed``, ``raw`` (the text of
hits), ``cli``.
"""

from ..records import IndexMeta
from .build import build_index, shard_range
from .cli import main
from .config import IndexBuildError, IndexConfig
from .distributed import build_index_distributed, launched_ranks
from .faiss_index import new_index
from .merge import merge_shards
from .output import CHUNK_DIR, DOCID_FILE, INDEX_FILE

__all__ = ["CHUNK_DIR", "DOCID_FILE", "INDEX_FILE", "IndexBuildError", "IndexConfig", "IndexMeta", "build_index",
           "build_index_distributed", "launched_ranks", "main", "merge_shards", "new_index", "shard_range"]
