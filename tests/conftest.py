import os
import runpy
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
# Pyserini 2.x reads catalogues from the network at import: every interpreter of the tests gets them offline.
OFFLINE_SITE = str(Path(__file__).parent / "offline_site")
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [OFFLINE_SITE, os.environ.get("PYTHONPATH")]))
runpy.run_path(os.path.join(OFFLINE_SITE, "sitecustomize.py"))

from tiny import build_tiny_llama  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: end-to-end tests that start Pyserini's CLIs (JVM, several seconds each)")


def pytest_collection_modifyitems(items):
    """Files with the most slow tests first: xdist (``--no-loadscope-reorder``) hands them out first, so no worker
    starts a long file when the other is nearly done."""
    slow = {}
    for item in items:
        slow[item.path] = slow.get(item.path, 0) + (item.get_closest_marker("slow") is not None)
    items.sort(key=lambda item: -slow[item.path])


@pytest.fixture(scope="session")
def tiny_llara(tmp_path_factory) -> Path:
    """Directory of a tiny random LLaMA whose tokenizer has the LLaRA tokens, out of name order."""
    return build_tiny_llama(tmp_path_factory.mktemp("models") / "tiny-llara")


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory) -> Path:
    """The same kind of model without the LLaRA tokens: an unadapted base LLM."""
    return build_tiny_llama(tmp_path_factory.mktemp("models") / "tiny-base", with_llara_tokens=False)
