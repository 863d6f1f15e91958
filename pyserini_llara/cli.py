"""What every command-line tool of the package shares: help, logging, and how a bad input is reported.

A bad input ends in one line on stderr that names the input (file, line) and what to do, then
exit status 1: a traceback would bury that line under frames of library code. ``--debug``, or
``PYSERINI_LLARA_DEBUG=1`` in the environment, lets the traceback through instead.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from contextlib import contextmanager

DEBUG_ENV = "PYSERINI_LLARA_DEBUG"
# Loggers whose INFO lines a command shows; ``__main__`` is a module run with ``python -m``.
OWN_LOGGERS = ("pyserini_llara", "adaptation", "__main__")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults in the option help, the module docstring's examples kept as written."""


def setup_logging() -> None:
    """This package's progress at INFO; other libraries at their WARNING default."""
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO)


def add_debug_flag(parser) -> None:
    parser.add_argument("--debug", action="store_true",
                        help=f"on an error, show the full traceback instead of one line (or set {DEBUG_ENV}=1)")


def debugging(flag: bool = False) -> bool:
    return flag or os.environ.get(DEBUG_ENV, "").strip() not in ("", "0")


def error_line(error: BaseException) -> str:
    return "error: " + (" ".join(str(error).split()) or type(error).__name__)


def report(error: BaseException, debug: bool = False) -> int:
    """For a ``main`` that returns its exit status: the error as one line on stderr, and 1 (re-raised under debug)."""
    if debugging(debug):
        raise error
    print(error_line(error), file=sys.stderr)
    return 1


@contextmanager
def one_line_errors(debug: bool = False, errors: tuple[type[BaseException], ...] = (ValueError, OSError)):
    """Turn ``errors`` raised inside into ``SystemExit("error: MESSAGE")``: that line on stderr, exit status 1."""
    try:
        yield
    except errors as error:
        if debugging(debug):
            raise
        raise SystemExit(error_line(error)) from None
