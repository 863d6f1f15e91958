import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from tiny import build_tiny_llama  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: end-to-end tests that start Pyserini's CLIs (JVM, several seconds each)")


@pytest.fixture(scope="session")
def tiny_llara(tmp_path_factory) -> Path:
    """Directory of a tiny random LLaMA whose tokenizer has the LLaRA tokens, out of name order."""
    return build_tiny_llama(tmp_path_factory.mktemp("models") / "tiny-llara")


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory) -> Path:
    """The same kind of model without the LLaRA tokens: an unadapted base LLM."""
    return build_tiny_llama(tmp_path_factory.mktemp("models") / "tiny-base", with_llara_tokens=False)
