"""Import hook run from ``pyserini_llara_hook.pth`` at interpreter start.

It imports nothing heavy: it only watches for a few imports and hands them to the plugin's modules.
- ``jnius`` (pyserini starting the JVM): point JAVA_HOME at a Java 21+ runtime and drop JVM
  options that runtime cannot honour, right before the JVM starts.
- The Pyserini modules that turn a model name into an encoder or search an index: patched
  right after they are imported (``patches.PATCHES`` says how), so that a LLaRA name
  gives LLaRA's encoder through every door.
- Pyserini's CLIs started with ``python -m``: runpy asks their loader for the code and runs it
  as ``__main__``; that code then runs under ``clis.run_cli``.

``PYSERINI_LLARA_PLUGIN=off`` (or ``0``, ``false``, ``no``) closes the doors: Pyserini's modules and CLIs
run as Pyserini wrote them. Only the Java runtime is still provided (it changes no result, and
without it Pyserini cannot start where no Java 21+ is installed).
"""

import os
import sys

OFF_SWITCH = "PYSERINI_LLARA_PLUGIN"

_BEFORE = frozenset({"jnius"})
AFTER = frozenset({"pyserini.encode", "pyserini.search.faiss._searcher", "pyserini.search.faiss.__main__",
                   "pyserini.encode.query"})
CLIS = frozenset({"pyserini.search.faiss.__main__", "pyserini.search.hybrid.__main__",
                  "pyserini.encode.__main__", "pyserini.encode.query"})
_scripts: dict = {}


def _before_jnius():
    from .java import configure_java

    configure_java()


def _after(name, module):
    from .patches import after_import

    after_import(name, module)


def run(name, namespace):
    """Called by the code runpy gets for a Pyserini CLI: run the real code under ``clis.run_cli``."""
    from .clis import run_cli

    run_cli(name, _scripts.pop(name), namespace)


class _Loader:
    """Wraps the real loader (duck-typed: importlib.abc would cost ~20 ms at every start)."""

    def __init__(self, loader, name):
        self._loader = loader
        self._name = name

    def __getattr__(self, attr):
        return getattr(self._loader, attr)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        if self._name in _BEFORE:
            _before_jnius()
        self._loader.exec_module(module)
        if self._name in AFTER:
            _after(self._name, module)

    def get_code(self, name):
        """Only runpy asks a wrapped loader for code (an import goes through ``exec_module``)."""
        code = self._loader.get_code(name)
        if name not in CLIS or code is None:
            return code
        _scripts[name] = code
        return compile(f"__import__({__name__!r}, fromlist=['run']).run({name!r}, globals())",
                       code.co_filename, "exec")


class _Finder:
    def __init__(self, watched: frozenset):
        self._watched = watched

    def find_spec(self, fullname, path, target=None):
        if fullname not in self._watched:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _Loader(spec.loader, fullname)
                return spec
        return None


def doors_open() -> bool:
    return os.environ.get(OFF_SWITCH, "").strip().lower() not in ("off", "0", "false", "no")


def install():
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder(_BEFORE | AFTER | CLIS if doors_open() else _BEFORE))
