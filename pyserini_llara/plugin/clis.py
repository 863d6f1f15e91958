"""Pyserini's CLIs (``python -m pyserini.search.faiss`` and the others of ``hook.CLIS``) run with the LLaRA doors open.

``hook`` hands the code of such a CLI to ``run_cli``, which runs it as ``__main__`` while its
argparse parsers are built with two changes: ``--encoder-class llara`` is accepted, and
``pyserini.encode``'s ``--max-length`` default is marked as Pyserini's (``PyseriniDefault``), so that
a LLaRA passage keeps the release's 512 tokens unless the user asked for another length.
``python -m pyserini.encode.query`` with a LLaRA encoder runs ``pyserini_llara.queries`` instead
(same flags; batched; the output records the model).
"""

from __future__ import annotations

import argparse
import sys
from contextlib import contextmanager

from ..names import KEY, names_llara


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


def _encoder_option(argv: list[str]) -> str | None:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--encoder")
    return parser.parse_known_args(argv)[0].encoder


def run_cli(name: str, code, namespace: dict) -> None:
    """Run a Pyserini CLI's code as ``__main__``, with the LLaRA doors open; a search that cannot
    give right results ends with one line naming the problem and exit status 1, before any
    run file is written."""
    from .checks import CLI_ERRORS

    argv = sys.argv[1:]
    if name == "pyserini.encode.query" and names_llara(_encoder_option(argv)):
        from ..queries import main

        raise SystemExit(main(argv, prog="python -m pyserini.encode.query", pyserini_flags=True))
    with _cli_arguments(mark_max_length=name == "pyserini.encode.__main__"):
        try:
            exec(code, namespace)
        except CLI_ERRORS as error:
            print(f"error: {error}", file=sys.stderr)
            raise SystemExit(1) from None
