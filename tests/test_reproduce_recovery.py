"""What the reproduction harness reuses: only steps whose completion record proves them by content.

A killed step, an output changed after it was made, an edited local corpus or topics file, another
precision: each makes exactly the steps it touches run again, and the scores are those of a clean run.
"""

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pyserini_llara import precision
from pyserini_llara.index.crashpoints import CRASH_ENV
from pyserini_llara.reproduce import Step, latest_results, load_matrix, parse_scores, plan, run_steps
from pyserini_llara.reproduce.cli import main
from pyserini_llara.reproduce.plan import _score
from pyserini_llara.reproduce.results import RESULTS_FILE, Outcome, append
from test_cli_e2e import TOPICS, collection  # noqa: F401  (the fixture: a 30-document JSONL collection)
from test_reproduce import assert_top_of, independent_run, independent_scores, ranked

SEARCH = "import sys; open(sys.argv[1], 'w').writelines(f'q{i} Q0 d{i} 1 1.0 t\\n' for i in (1, 2, 3))"


def scored_run(tmp_path):
    """A search writing a perfect run of three queries, and ir_measures scoring it (nDCG@10 1.0)."""
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("".join(f"q{i} 0 d{i} 1\n" for i in (1, 2, 3)))
    run = tmp_path / "runs" / "row.trec"
    return run, [Step(("python", "-c", SEARCH, str(run)), creates=str(run)), _score(str(qrels), run, ["nDCG@10"])]


LEFTOVERS = {"partial": "q1 Q0 d1 1 1.0 t\n", "empty": "", "cut mid-line": "q1 Q0 d1 1 1.0 t\nq2 Q0 d2 1 1."}


@pytest.mark.parametrize("leftover", LEFTOVERS)
def test_a_run_a_killed_search_left_is_searched_again(tmp_path, leftover):
    run, steps = scored_run(tmp_path)
    run.parent.mkdir()
    run.write_text(LEFTOVERS[leftover])
    log = []
    assert parse_scores(run_steps(steps, log.append), ["nDCG@10"]) == {"nDCG@10": 1.0}
    assert log[0] == f"$ {steps[0]}"


def test_a_run_changed_after_its_record_is_searched_again(tmp_path):
    run, steps = scored_run(tmp_path)
    run_steps(steps, [].append)
    run.write_text(LEFTOVERS["partial"])
    log = []
    assert parse_scores(run_steps(steps, log.append), ["nDCG@10"]) == {"nDCG@10": 1.0}
    assert log[0].startswith("[redo] row.trec: row.trec has 17 bytes") and log[1] == f"$ {steps[0]}"


def test_a_search_that_ends_well_but_writes_an_empty_run_fails(tmp_path):
    run, steps = scored_run(tmp_path)
    empty = Step(("python", "-c", "import sys; open(sys.argv[1], 'w')", str(run)), creates=str(run))
    with pytest.raises(Exception, match="left nothing in"):
        run_steps([empty, steps[1]], [].append)
    assert not run.exists()


class Crafted:
    """A pickle that runs code when it is loaded: here it only leaves a file behind."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return open, (self.marker, "w")


def test_a_swapped_pickle_is_never_handed_to_the_step_that_loads_it(tmp_path):
    """Encoded queries made once, then their pickle replaced: the harness makes them again before a search
    (here a command that unpickles, as Pyserini does) reads them."""
    queries, run, marker = tmp_path / "queries", tmp_path / "run.trec", tmp_path / "code-ran"
    encode = Step(("python", "-c", "import os, pickle, sys; os.makedirs(sys.argv[1], exist_ok=True); "
                   "pickle.dump({'q1': [1.0]}, open(sys.argv[1] + '/embedding.pkl', 'wb'))", str(queries)),
                  creates=str(queries))
    search = Step(("python", "-c", "import pickle, sys; pickle.load(open(sys.argv[1] + '/embedding.pkl', 'rb')); "
                   "open(sys.argv[2], 'w').write('q1 Q0 d1 1 1.0 t\\n')", str(queries), str(run)),
                  creates=str(run), reads=(str(queries),))
    run_steps([encode, search], [].append)
    (queries / "embedding.pkl").write_bytes(pickle.dumps(Crafted(str(marker))))
    run.unlink()  # e.g. another row searching the same encoded queries
    log = []
    run_steps([encode, search], log.append)
    assert not marker.exists()
    assert log[0].startswith("[redo] queries: queries/embedding.pkl") and log[1] == f"$ {encode}"


@pytest.fixture
def dense_row(tmp_path):
    path = tmp_path / "matrix.yaml"
    path.write_text(yaml.safe_dump({"rows": [{
        "id": "tiny/auto", "kind": "dense", "model": "some/model", "corpus": "corpus.jsonl", "topics": "topics.tsv",
        "qrels": "qrels.txt", "precision": "auto", "device": "cpu", "metrics": ["nDCG@10"]}]}))
    return load_matrix(path)["tiny/auto"]


def test_auto_is_keyed_and_run_as_the_precision_it_resolves_to(dense_row, tmp_path, monkeypatch):
    """A work directory moved to a CPU where auto means another precision gets indexes and queries of its own,
    encoded in that precision by every step alike."""
    planned = {}
    for fast in ("bfloat16", None):
        monkeypatch.setattr(precision, "fast_low_precision", lambda device, fast=fast: fast)
        planned[fast or "float32"] = plan(dense_row, tmp_path)
    for dtype, steps in planned.items():
        for step in steps[:2]:  # the index and the encoded queries
            assert step.argv[step.argv.index("--dtype") + 1] == dtype
    assert {s.creates for s in planned["bfloat16"][:3]}.isdisjoint({s.creates for s in planned["float32"][:3]})


def test_a_results_line_cut_short_is_skipped_and_repaired_by_the_next_append(tmp_path, capsys, caplog):
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text(yaml.safe_dump({"rows": [{"id": "two", "kind": "bm25", "index": "i", "topics": "t",
                                                "qrels": "q", "metrics": ["nDCG@10"]}]}))
    results = tmp_path / "work" / RESULTS_FILE
    results.parent.mkdir()
    whole = {"row": "two", "measured": {"nDCG@10": 0.5}, "hardware": "here", "date": "2026-12-01 10:00:00"}
    results.write_text(json.dumps(whole) + "\n" + json.dumps({**whole, "measured": {"nDCG@10": 0.7}})[:40])
    assert latest_results(results)["two"].values == {"nDCG@10": 0.5}
    assert "line 2: skipped" in caplog.text
    assert main(["--list", "--matrix", str(matrix), "--work-dir", str(results.parent)]) == 0
    assert "0.5" in capsys.readouterr().out

    append(results, Outcome(load_matrix(matrix)["two"], {"nDCG@10": 0.6}, "measured"), results.parent)
    assert [json.loads(line)["measured"] for line in results.read_text().splitlines()] == [
        {"nDCG@10": 0.5}, {"nDCG@10": 0.6}]
    assert "dropping its last line" in caplog.text
    assert latest_results(results)["two"].values == {"nDCG@10": 0.6}


# A real row with a tiny model: killed at every step, and rerun after its corpus or topics changed.

def tiny_matrix(root, collection):
    """A dense row over copies of the collection's corpus and topics (tests edit them)."""
    for name in ("corpus.jsonl", "topics.tsv", "qrels.txt"):
        shutil.copy(collection / name, root / name)
    return root


def write_matrix(root, model):
    path = root / "matrix.yaml"
    path.write_text(yaml.safe_dump({"rows": [{
        "id": "tiny/row", "kind": "dense", "model": str(model), "corpus": str(root / "corpus.jsonl"),
        "topics": str(root / "topics.tsv"), "qrels": str(root / "qrels.txt"), "hits": 10, "precision": "float32",
        "device": "cpu", "batch_size": 8, "metrics": ["nDCG@10", "RR@10"]}]}))
    return path


def harness(matrix, work, crash_at=None):
    """The harness as a process group of its own. At a point of the harness (``reproduce:...``) it exits there and
    the test then kills the whole group (the step's command too) with SIGKILL; at a point of the index builder,
    that step's command dies there and the harness records the row's error."""
    env = {**os.environ, CRASH_ENV: crash_at} if crash_at else dict(os.environ)
    process = subprocess.Popen([sys.executable, "-m", "pyserini_llara.reproduce", "--matrix", str(matrix),
                                "--work-dir", str(work), "--row", "tiny/row"], env=env, start_new_session=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = process.communicate(timeout=600)
    if crash_at and crash_at.startswith("reproduce:"):
        assert process.returncode == 137, err[-3000:]
        time.sleep(1)  # a step's command killed while it works, not as it starts
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:  # the step's command had ended too
            pass
    elif crash_at:
        assert process.returncode == 1 and "error: tiny/row: exit status 137" in out, err[-3000:]
    else:
        assert process.returncode == 0, err[-3000:]
    return out


def ran(out, module):
    return [line.split()[0] for line in out.splitlines() if f"-m {module} " in line and line[0] in "$["]


STEPS = ["pyserini_llara.index", "pyserini_llara.queries", "pyserini.search.faiss", "ir_measures"]
# In the order the row reaches them: the index's command dies after writing its encoded chunk (a half-made index,
# which --resume finishes); a command ended but the harness died before its record (the same code after every
# step); the harness and its search killed while the search runs.
KILL_POINTS = ["build:chunk", "reproduce:ran:pyserini_llara.index", "reproduce:running:pyserini.search.faiss"]


@pytest.fixture(scope="module")
def killed_row(collection, tiny_llara, tmp_path_factory):
    """A row killed at every point of KILL_POINTS in turn, then run to the end: its folder, matrix and the last
    run's output. The edited-files test goes on in its folder."""
    root = tiny_matrix(tmp_path_factory.mktemp("killed-row"), collection)
    matrix = write_matrix(root, tiny_llara)
    for point in KILL_POINTS:
        harness(matrix, root / "work", crash_at=point)
    return root, matrix, harness(matrix, root / "work")


@pytest.mark.slow
def test_a_row_killed_at_each_kill_point_reruns_to_the_run_and_scores_an_exact_search_gives(killed_row, tiny_llara):
    root, matrix, out = killed_row
    assert [ran(out, step)[0] for step in STEPS] == ["[done]", "[done]", "$", "$"]
    exact = independent_run(root, tiny_llara)
    values = latest_results(root / "work" / RESULTS_FILE)["tiny/row"].values
    assert values == pytest.approx(independent_scores(root, tiny_llara, ["nDCG@10", "RR@10"], exact), abs=1e-4)
    search = next(step.argv for step in plan(load_matrix(matrix)["tiny/row"], root / "work")
                  if step.name == "pyserini.search.faiss")
    assert_top_of(Path(search[search.index("--output") + 1]), exact)


def edit_line(path, number, change):
    lines = path.read_text().splitlines()
    lines[number] = change(lines[number])
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.slow
def test_an_edited_corpus_or_topics_file_makes_exactly_the_steps_that_read_it_run_again(killed_row, tiny_llara):
    root, matrix, _ = killed_row
    work = root / "work"

    edit_line(root / "corpus.jsonl", 0, lambda line: json.dumps({**json.loads(line), "contents": TOPICS["q1"]}))
    out = harness(matrix, work)
    assert [ran(out, step)[-1] for step in STEPS] == ["$", "[done]", "$", "$"]
    assert latest_results(work / RESULTS_FILE)["tiny/row"].values == pytest.approx(
        independent_scores(root, tiny_llara, ["nDCG@10", "RR@10"]), abs=1e-4)

    edit_line(root / "topics.tsv", 1, lambda line: "q2\tWhat is a llama?")
    out = harness(matrix, work)
    assert [ran(out, step)[-1] for step in STEPS] == ["[done]", "$", "$", "$"]
    run = ranked(next((work / "runs").glob("*.trec")))
    assert run["q2"] == run["q1"]  # the new text of q2 is q1's
