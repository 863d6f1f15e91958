"""Pyserini's CLIs (``python -m pyserini.search.faiss`` and the others of ``hook.CLIS``) run with the LLaRA doors open.

``hook`` hands the code of such a CLI to ``run_cli``, which runs it as ``__main__`` while its
argparse parsers are built with three changes: ``--encoder-class llara`` is accepted, ``--nprobe N``
joins ``--ef-search`` (set on every ``FaissSearcher`` the search builds), and ``pyserini.encode``'s
``--max-length`` default is marked as Pyserini's (``PyseriniDefault``), so that a LLaRA passage keeps
the release's 512 tokens unless the user asked for another length.
``python -m pyserini.encode.query`` with a LLaRA encoder runs ``pyserini_llara.queries`` instead
(same flags; batched; the output records the model); an empty topics file is called empty, not "Not Found";
a search with LLaRA ``--encoded-queries`` finds a query missing from them before its run file is opened.
A name containing ``llara`` of a model that is not LLaRA gets Pyserini's own encoder
(``patches.pyserini_choice``), and a run that involves no LLaRA model, index or encoded queries runs
exactly as Pyserini wrote it.
"""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import contextmanager, nullcontext

from ..detect import chooses_llara
from ..names import KEY
from ..records import EncodedQueriesMeta
from ..search_index import recorded_meta

SEARCH_CLIS = ("pyserini.search.faiss.__main__", "pyserini.search.hybrid.__main__")


@contextmanager
def _cli_arguments(mark_max_length: bool):
    """While a Pyserini CLI builds its parsers: ``llara`` joins ``--encoder-class``'s choices, ``--nprobe``
    joins ``--ef-search``, and ``--max-length``'s default is marked as Pyserini's where ``mark_max_length``."""
    from .encoders import PyseriniDefault

    own = argparse.ArgumentParser.__dict__.get("add_argument")
    add_argument = argparse.ArgumentParser.add_argument

    def patched(self, *names, **kwargs):
        if "--encoder-class" in names and kwargs.get("choices") is not None:
            kwargs["choices"] = [*kwargs["choices"], KEY]
        if mark_max_length and "--max-length" in names and isinstance(kwargs.get("default"), int):
            kwargs["default"] = PyseriniDefault(kwargs["default"])
        action = add_argument(self, *names, **kwargs)
        if "--ef-search" in names:
            add_argument(self, "--nprobe", type=int, metavar="N", default=None,
                         help="Set nprobe (the number of lists searched) for an IVF index")
        return action

    argparse.ArgumentParser.add_argument = patched
    try:
        yield
    finally:
        if own is None:
            del argparse.ArgumentParser.add_argument
        else:
            argparse.ArgumentParser.add_argument = own


@contextmanager
def _empty_topics_named():
    """``DefaultQueryIterator.from_topics`` calls a topics file that holds no topics "not found"; say it is empty."""
    from pyserini.query_iterator import DefaultQueryIterator

    from .checks import SearchSetupError

    own = DefaultQueryIterator.__dict__["from_topics"]

    def from_topics(cls, topics_path, *args, **kwargs):
        try:
            return own.__func__(cls, topics_path, *args, **kwargs)
        except FileNotFoundError:
            if not os.path.isfile(topics_path):
                raise
            raise SearchSetupError(f"topics file {topics_path} holds no topics: give one query per line "
                                   "(.tsv/.txt: qid<TAB>text; .jsonl: {\"qid\": ..., \"title\": text})") from None

    DefaultQueryIterator.from_topics = classmethod(from_topics)
    try:
        yield
    finally:
        DefaultQueryIterator.from_topics = own


@contextmanager
def _nprobe_set(nprobe: int | None):
    """``--nprobe``: set on every ``FaissSearcher`` the CLI builds, as Pyserini sets ``--ef-search`` on its searcher."""
    if nprobe is None:
        yield
        return
    from pyserini.search.faiss import FaissSearcher

    own = FaissSearcher.__dict__["__init__"]

    def __init__(self, *args, **kwargs):
        own(self, *args, **kwargs)
        self.set_ivf_nprobe(nprobe)

    FaissSearcher.__init__ = __init__
    try:
        yield
    finally:
        FaissSearcher.__init__ = own


def _options(argv: list[str]) -> argparse.Namespace:
    """The options of Pyserini's CLIs that decide the encoder, the index and the queries, read before the CLI runs
    (each as a list: ``pyserini.search.hybrid`` names a dense and a sparse ``--index``)."""
    parser = argparse.ArgumentParser(add_help=False)
    for flag in ("--encoder", "--encoder-class", "--index", "--encoded-queries", "--topics"):
        parser.add_argument(flag, action="append", default=[])
    parser.add_argument("--topics-format", default="default")
    parser.add_argument("--nprobe", type=int, action="append", default=[])
    return parser.parse_known_args(argv)[0]


def involves_llara(options: argparse.Namespace) -> bool:
    """A LLaRA model (``detect``, or ``--encoder-class llara``), a LLaRA index or LLaRA encoded queries."""
    return (any(chooses_llara(name) for name in options.encoder) or KEY in options.encoder_class
            or any(recorded_meta(path) is not None for path in options.index)
            or any(EncodedQueriesMeta.find(path) is not None for path in options.encoded_queries))


def _last(values: list[str]) -> str | None:
    return values[-1] if values else None


def run_cli(name: str, code, namespace: dict) -> None:
    """Run a Pyserini CLI's code as ``__main__``, with the LLaRA doors open; a search that cannot
    give right results ends with one line naming the problem and exit status 1, before any
    run file is written."""
    from .checks import CLI_ERRORS, check_topics_encoded
    from .patches import pyserini_choice

    argv = sys.argv[1:]
    options = _options(argv)
    encoder, queries, topics = _last(options.encoder), _last(options.encoded_queries), _last(options.topics)
    with pyserini_choice(encoder, _last(options.encoder_class)):
        if not involves_llara(options):
            exec(code, namespace)
            return
        if name == "pyserini.encode.query":
            from ..queries import main

            raise SystemExit(main(argv, prog="python -m pyserini.encode.query", pyserini_flags=True))
        topics_door = _empty_topics_named() if name in SEARCH_CLIS else nullcontext()
        with (_cli_arguments(mark_max_length=name == "pyserini.encode.__main__"), topics_door,
              _nprobe_set(_last(options.nprobe) if name in SEARCH_CLIS else None)):
            try:
                if name in SEARCH_CLIS and queries and topics and not encoder:
                    check_topics_encoded(topics, options.topics_format, queries)
                exec(code, namespace)
            except CLI_ERRORS as error:
                print(f"error: {error}", file=sys.stderr)
                raise SystemExit(1) from None
