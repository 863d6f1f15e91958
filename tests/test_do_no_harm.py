"""A guest does no harm: Pyserini's own models give byte-identical outputs with the plugin's doors open and
closed (``PYSERINI_LLARA_PLUGIN=off``), through every dense door: ``pyserini.encode`` to a faiss index,
``pyserini.encode.query``, ``pyserini.search.faiss`` with ``--encoder`` (with and without
``--encoder-class``), with another model's ``--encoded-queries``, with dense PRF, ``pyserini.search.hybrid``
and the ``FaissSearcher`` Python API. Each run starts as a user's would: Pyserini imported anew (the plugin's
keys come first in its encoder maps), and Lucene (the hybrid's sparse side) with no JAVA_HOME, since Pyserini
needs Java 21+ and Debian ships 17."""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from pyserini_llara.plugin.hook import OFF_SWITCH
from tiny import CORPUS, build_tiny_bert

pytestmark = pytest.mark.pyserini  # through Pyserini: runs on every CI leg

RUNS = Path(__file__).parent / "pyserini_own_runs.py"


def _env(doors: str) -> dict:
    return {**{k: v for k, v in os.environ.items() if k not in ("JAVA_HOME", "JDK_HOME", "JRE_HOME")},
            OFF_SWITCH: doors}


@pytest.mark.slow
def test_pyserini_own_models_run_byte_identically_with_the_doors_open_and_closed(tmp_path):
    """With the doors open the plugin is there (its keys, its wrappers), closed it is not; the outputs agree."""
    model = build_tiny_bert(tmp_path / "tiny-bert")
    for folder in ("corpus", "lucene-corpus"):
        (tmp_path / folder).mkdir()
    docs = [(f"d{i}", text) for i, text in enumerate(CORPUS)]
    (tmp_path / "corpus" / "docs.jsonl").write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in docs))
    (tmp_path / "lucene-corpus" / "docs.jsonl").write_text(
        "".join(json.dumps({"id": i, "contents": t}) + "\n" for i, t in docs))
    (tmp_path / "topics.tsv").write_text("q1\tWhat is a llama?\nq2\thow does insurance work\nq3\tdense search\n")

    procs = {doors: subprocess.Popen([sys.executable, str(RUNS), str(model), str(tmp_path), str(tmp_path / doors)],
                                     env=_env(doors), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for doors in ("on", "off")}
    for doors, proc in procs.items():
        output = proc.communicate(timeout=600)[0]
        assert proc.returncode == 0, f"doors {doors}:\n{output[-3000:]}"

    outputs = sorted(p.relative_to(tmp_path / "on") for p in (tmp_path / "on").rglob("*") if p.is_file())
    assert {p.name for p in outputs} >= {"index", "docid", "embedding.pkl", "run.encoder", "run.auto",
                                          "run.encoded", "run.prf", "run.hybrid", "run.python"}
    for path in outputs:
        on, off = (tmp_path / "on" / path).read_bytes(), (tmp_path / "off" / path).read_bytes()
        assert on and on == off, path
    hits = [line.split() for line in (tmp_path / "on" / "run.encoder").read_text().splitlines()]
    assert len(hits) == 15 and len({(h[0], h[4]) for h in hits}) == 15  # no tied scores: the order is the model's
    seen = {doors: json.loads((tmp_path / f"{doors}.doors.json").read_text()) for doors in ("on", "off")}
    assert seen["on"] == {"first keys": ["llara", "llara"], "wrapped": [True, True]}
    assert "llara" not in seen["off"]["first keys"] and seen["off"]["wrapped"] == [False, False]


def test_a_target_of_another_shape_is_left_as_pyserini_made_it(caplog):
    """A Pyserini release whose function lacks a parameter a patch reads, or lacks the function: no patch, one
    debug line each, and no error."""
    from pyserini_llara.plugin import patches

    def init_encoder(name, where):
        return "Pyserini's own"

    module, empty = SimpleNamespace(init_encoder=init_encoder), SimpleNamespace()
    with caplog.at_level(logging.DEBUG, logger=patches.__name__):
        patches.after_import("pyserini.encode.query", module)
        patches.after_import("pyserini.search.faiss.__main__", empty)
    assert module.init_encoder is init_encoder and vars(empty) == {}
    ours = [r for r in caplog.records if r.name == patches.__name__]  # not the JVM's start, where it is the first
    assert [(r.levelname, "leaves" in r.getMessage()) for r in ours] == [("DEBUG", True)] * 2


def test_a_call_that_does_not_fit_is_refused_by_pyserini_in_its_own_words():
    from pyserini.search.faiss import FaissSearcher

    with pytest.raises(TypeError, match="required positional arguments: 'index_dir' and 'query_encoder'"):
        FaissSearcher()
