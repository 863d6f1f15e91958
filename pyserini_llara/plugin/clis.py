"""Pyserini's CLIs (``python -m pyserini.search.faiss`` and the others of ``hook.CLIS``) run with the LLaRA doors open.

``hook`` hands the code of such a CLI to ``run_cli``, which runs it as ``__main__`` while its
argparse parsers are built with two changes: ``--encoder-class llara`` is accepted, and
``pyserini.encode``'s ``--max-length`` default is marked as Pyserini's (``PyseriniDefault``), so that
a LLaRA passage keeps the release's 512 tokens unless the user asked for another length.
A name containing ``llara`` of a model that is not LLaRA gets Pyserini's own encoder
(``patches.pyserini_choice``), and a search with ``--encoded-queries`` finds a query missing from
them before its run file is opened.
``python -m pyserini.encode.query`` with a LLaRA encoder runs ``pyserini_llara.queries`` instead
(same flags; batched; the output records the model).
"""

from __future__ import annotations

import argparse
import sys
from contextlib import contextmanager

from ..detect import chooses_llara
from ..names import KEY

SEARCH_CLIS = ("pyserini.search.faiss.__main__", "pyserini.search.hybrid.__main__")


@contextmanager
def _cli_arguments(mark_max_length: bool):
    """While a Pyserini CLI builds its parsers: ``llara`` joins ``--encoder-class``'s choices, and
    ``--max-length``'s default is marked as Pyserini's where ``mark_max_length``."""
    from .encoders import PyseriniDefault

    own = argparse.ArgumentParser.__dict__.get("add_argument")
    add_argument = argparse.ArgumentParser.add_argument

    def patched(self, *names, **kwargs):
        if "--encoder-class" in names and kwargs.get("choices") is not None:
            kwargs["choices"] = [*kwargs["choices"], KEY]
        if mark_max_length and "--max-length" in names and isinstance(kwargs.get("default"), int):
            kwargs["default"] = PyseriniDefault(kwargs["default"])
        return add_argument(self, *names, **kwargs)

    argparse.ArgumentParser.add_argument = patched
    try:
        yield
    finally:
        if own is None:
            del argparse.ArgumentParser.add_argument
        else:
            argparse.ArgumentParser.add_argument = own


def _options(argv: list[str]) -> argparse.Namespace:
    """The options of Pyserini's CLIs that decide the encoder and the queries, read before the CLI runs."""
    parser = argparse.ArgumentParser(add_help=False)
    for flag in ("--encoder", "--encoder-class", "--encoded-queries", "--topics"):
        parser.add_argument(flag)
    parser.add_argument("--topics-format", default="default")
    return parser.parse_known_args(argv)[0]


def run_cli(name: str, code, namespace: dict) -> None:
    """Run a Pyserini CLI's code as ``__main__``, with the LLaRA doors open; a search that cannot
    give right results ends with one line naming the problem and exit status 1, before any
    run file is written."""
    from .checks import CLI_ERRORS, check_topics_encoded
    from .patches import pyserini_choice

    argv = sys.argv[1:]
    options = _options(argv)
    if name == "pyserini.encode.query" and chooses_llara(options.encoder):
        from ..queries import main

        raise SystemExit(main(argv, prog="python -m pyserini.encode.query", pyserini_flags=True))
    with _cli_arguments(mark_max_length=name == "pyserini.encode.__main__"):
        try:
            if name in SEARCH_CLIS and options.encoded_queries and options.topics and not options.encoder:
                check_topics_encoded(options.topics, options.topics_format, options.encoded_queries)
            with pyserini_choice(options.encoder, options.encoder_class):
                exec(code, namespace)
        except CLI_ERRORS as error:
            print(f"error: {error}", file=sys.stderr)
            raise SystemExit(1) from None
