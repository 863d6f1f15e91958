"""Import hook run from ``pyserini_llara_hook.pth`` at interpreter start.

It imports nothing heavy: it only watches for two imports.
- ``jnius`` (pyserini starting the JVM): point JAVA_HOME at a Java 21+ runtime and drop JVM
  options that runtime cannot honour, right before the JVM starts.
- ``pyserini.encode``: put the ``llara`` encoder keys first in Pyserini's class maps, so
  ``--encoder llara:...`` picks them in ``pyserini.search.faiss`` and ``pyserini.encode``.
"""

import sys


def _before_jnius():
    from .java import configure_java

    configure_java()


def _after_pyserini_encode(module):
    from .registration import register

    register(module)


_BEFORE = {"jnius": _before_jnius}
_AFTER = {"pyserini.encode": _after_pyserini_encode}


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
            _BEFORE[self._name]()
        self._loader.exec_module(module)
        if self._name in _AFTER:
            _AFTER[self._name](module)


class _Finder:
    def find_spec(self, fullname, path, target=None):
        if fullname not in _BEFORE and fullname not in _AFTER:
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


def install():
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
