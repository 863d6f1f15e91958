"""Pyserini 2.x's servers (``pyserini.server.rest``, ``pyserini.server.mcp``) serve a LLaRA index named in their
YAML config with ``encoder: llara:DIR``; the hits' text comes from the Lucene index named as ``base_index``.
Pyserini 1.6 has no server: these tests run on the 2.x leg."""

import importlib.util
import json
import socket
import subprocess
import sys
import time
import urllib.request
from urllib.parse import quote

import numpy as np
import pytest

# Looked up, not imported: the import starts Pyserini's dense search (seconds) in every test worker that collects
# this file, and the server runs in a process of its own.
if importlib.util.find_spec("pyserini.server.config") is None:
    pytest.skip("Pyserini 1.6's server opens prebuilt indexes only", allow_module_level=True)

from pyserini_llara.encoding import LlaraEncoder  # noqa: E402
from pyserini_llara.index import IndexConfig, build_index  # noqa: E402
from tiny import CORPUS  # noqa: E402

pytestmark = pytest.mark.pyserini  # through Pyserini: runs on every CI leg

QUERY = "What is a llama?"
HITS = 3


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_llara):
    root = tmp_path_factory.mktemp("server")
    docs = [(f"d{i}", text) for i, text in enumerate(CORPUS)]
    (root / "corpus.jsonl").write_text("".join(json.dumps({"id": d, "text": t}) + "\n" for d, t in docs))
    (root / "lucene-corpus").mkdir()
    (root / "lucene-corpus" / "docs.jsonl").write_text("".join(json.dumps({"id": d, "contents": t}) + "\n"
                                                               for d, t in docs))
    build_index(root / "corpus.jsonl", root / "index", IndexConfig(encoder=f"llara:{tiny_llara}", dtype="float32"))
    subprocess.run([sys.executable, "-m", "pyserini.index.lucene", "--collection", "JsonCollection", "--input",
                    str(root / "lucene-corpus"), "--index", str(root / "lucene"), "--threads", "1", "--storeRaw"],
                   check=True, capture_output=True, timeout=300)
    (root / "server.yaml").write_text(f"indexes:\n  tiny-text:\n    path: {root / 'lucene'}\n"
                                      f"  tiny:\n    path: {root / 'index'}\n    index_type: faiss\n"
                                      f"    encoder: llara:{tiny_llara}\n    base_index: tiny-text\n")
    reference = LlaraEncoder.from_pretrained(str(tiny_llara), dtype="float32")
    vectors = reference.encode_passages([t for _, t in docs])
    scores = vectors @ reference.encode_queries([QUERY])[0]
    expected = [(docs[i][0], float(scores[i]), docs[i][1]) for i in np.argsort(-scores)[:HITS]]
    return root / "server.yaml", expected


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, server: subprocess.Popen, timeout: float = 240):
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                return json.load(response)
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"no answer from {url}: {server.communicate()[0][-3000:]}") from None
            time.sleep(0.5)


def test_the_rest_server_searches_a_llara_index_with_a_llara_encoder(served):
    config, expected = served
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "pyserini.server.rest", "--config", str(config),
                               "--no-prebuilt-indexes", "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        answer = _get(f"http://127.0.0.1:{port}/v1/tiny/search?query={quote(QUERY)}&hits={HITS}", server)
    finally:
        server.terminate()
        server.communicate(timeout=60)
    hits = answer["candidates"]
    assert [(h["docid"], h["doc"]) for h in hits] == [(docid, text) for docid, _, text in expected]
    np.testing.assert_allclose([h["score"] for h in hits], [score for _, score, _ in expected], atol=1e-5)
