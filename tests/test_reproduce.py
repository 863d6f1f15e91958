"""The reproduction matrix: valid ids everywhere, the right BEIR commands, and a row that runs end to end."""

import dataclasses
import json
import re
import shlex
import sys
from pathlib import Path

import ir_datasets
import ir_measures
import pytest
import yaml

from pyserini_llara import reproduce
from pyserini_llara.encoding import LlaraEncoder
from pyserini_llara.reproduce import MatrixError, Step, StepError, load_matrix, plan, run_steps, select
from pyserini_llara.reproduce.cli import main
from test_cli_e2e import TOPICS, collection  # noqa: F401  (the fixture: a 30-document JSONL collection)

pytestmark = pytest.mark.pyserini  # through Pyserini: runs on every CI leg

ROOT = Path(__file__).resolve().parents[1]
FORUMS = ["android", "english", "gaming", "gis", "mathematica", "physics", "programmers", "stats", "tex", "unix",
          "webmasters", "wordpress"]
# The 14 public BEIR test sets (CQADupStack as its 12 forums) and MS MARCO dev as BEIR lists it.
BEIR_TEST_SETS = {"beir/trec-covid", "beir/nfcorpus/test", "beir/nq", "beir/hotpotqa/test", "beir/fiqa/test",
                  "beir/arguana", "beir/webis-touche2020/v2", "beir/quora/test", "beir/dbpedia-entity/test",
                  "beir/scidocs", "beir/fever/test", "beir/climate-fever", "beir/scifact/test", "beir/msmarco/dev",
                  *(f"beir/cqadupstack/{forum}" for forum in FORUMS)}


@pytest.fixture(scope="module")
def matrix():
    return load_matrix()


def dry_run(capsys, *args) -> list[str]:
    assert main([*args, "--dry-run"]) == 0
    return [line for line in capsys.readouterr().out.splitlines() if line and not line.startswith("#")]


def test_beir_dry_run_names_valid_ir_datasets_ids_for_every_public_test_set(capsys, tmp_path):
    commands = [shlex.split(line) for line in dry_run(capsys, "--group", "beir", "--work-dir", str(tmp_path))]
    exported = {c[4] for c in commands if c[:4] == ["python", "-m", "ir_datasets", "export"]}
    scorers = [c for c in commands if c[:3] == ["python", "-m", "ir_measures"]]
    judged = {c[5] for c in scorers}
    indexed = {c[c.index("--corpus") + 1] for c in commands if "pyserini_llara.index" in c}
    assert exported == judged == BEIR_TEST_SETS
    assert indexed == {i.removesuffix("/test").removesuffix("/dev").removesuffix("/v2") for i in BEIR_TEST_SETS}
    for dataset_id in exported | indexed:
        assert dataset_id in ir_datasets.registry, dataset_id
    for dataset_id in exported:
        dataset = ir_datasets.load(dataset_id)
        assert dataset.has_queries() and dataset.has_qrels(), dataset_id
    assert all(c[-2:] == ["nDCG@10", "R@100"] for c in scorers)
    searches = [c for c in commands if c[2].startswith("pyserini.search")]
    assert len(searches) == 2 * len(BEIR_TEST_SETS) - 1  # BM25 beside every test set but MS MARCO's
    assert all(c[c.index("--hits") + 1] == "1000" and "--remove-query" in c for c in searches)
    assert all(c[c.index("--max-length") + 1] == "512" for c in commands if "pyserini_llara.index" in c)


def test_every_named_collection_topic_set_and_qrels_exists(matrix):
    import pyserini.search._base as base
    from pyserini.prebuilt_index_info import TF_INDEX_INFO

    if not hasattr(base, "topics_mapping"):
        pytest.skip("Pyserini 2.x reads its topic and index catalogues from the network; the 1.6 leg checks the names")
    topics_mapping = base.topics_mapping

    for row in matrix.values():
        if row.kind in ("dense", "bm25"):
            assert row.qrels in ir_datasets.registry and ir_datasets.load(row.qrels).has_qrels(), row.id
            assert row.topics in ir_datasets.registry or row.topics in topics_mapping, row.id
        if row.kind == "dense":
            assert row.corpus.startswith("hf:") or ir_datasets.load(row.corpus).has_docs(), row.id
        if row.kind == "bm25":
            assert row.index in TF_INDEX_INFO, row.id


def test_bm25_expectations_are_pyserini_two_click_reproductions(matrix):
    import pyserini

    twocr = Path(pyserini.__file__).parent / "2cr"
    beir = yaml.safe_load((twocr / "beir.yaml").read_text())
    flat = next(c for c in beir["conditions"] if c["name"] == "bm25-flat")
    expected = {f"beir-v1.0.0-{d['dataset']}.flat": d["scores"][0] for d in flat["datasets"]}
    rows = [row for row in matrix.values() if row.condition == "bm25-flat"]
    assert len(rows) == 13 + 12
    for row in rows:
        assert row.expected == {"nDCG@10": expected[row.index]["nDCG@10"], "R@100": expected[row.index]["R@100"]}
    passage = yaml.safe_load((twocr / "msmarco-v1-passage.yaml").read_text())
    scores = {t["topic_key"]: t["scores"][0] for c in passage["conditions"] if c["name"] == "bm25-default"
              for t in c["topics"]}
    assert matrix["msmarco-passage/dev/bm25"].expected == {"RR@10": scores["msmarco-v1-passage.dev"]["MRR@10"],
                                                          "R@1000": scores["msmarco-v1-passage.dev"]["R@1K"]}
    assert matrix["msmarco-passage/trec-dl-2020/bm25"].expected == {"nDCG@10": scores["dl20-passage"]["nDCG@10"]}


def test_cqadupstack_is_the_mean_of_its_12_forums(matrix):
    for condition in ("llara-beir", "bm25-flat"):
        row = matrix[f"beir/cqadupstack/{condition}"]
        assert row.parts == tuple(f"beir/cqadupstack/{forum}/{condition}" for forum in FORUMS)
    bm25 = matrix["beir/cqadupstack/bm25-flat"]
    forums = [matrix[p].expected["nDCG@10"] for p in bm25.parts]
    assert bm25.expected["nDCG@10"] == pytest.approx(sum(forums) / 12)
    assert matrix["beir/cqadupstack/llara-beir"].expected == {}  # nothing published: measured, not judged
    assert len(matrix["beir/average/llara-beir"].parts) == 14
    ordered = [row.id for row in select(matrix, ["beir/average/llara-beir"])]
    assert ordered[-1] == "beir/average/llara-beir" and len(ordered) == 14 + 12 + 1
    assert ordered.index("beir/cqadupstack/android/llara-beir") < ordered.index("beir/cqadupstack/llara-beir")


def test_gpu_rows_are_unverified_with_their_sources(matrix, capsys, tmp_path):
    assert main(["--list", "--work-dir", str(tmp_path)]) == 0
    listing = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert set(listing) == set(matrix)
    for row in matrix.values():
        if "gpu" in row.groups:
            assert row.measured is None and listing[row.id].rstrip().endswith("unverified"), row.id
            assert row.source, row.id
    assert matrix["msmarco-passage/trec-dl-2019/llara-passage"].expected == {}
    assert "none published" in listing["msmarco-passage/trec-dl-2019/llara-passage"]


def test_the_demo_rows_as_measured_here_pass(matrix):
    demo = [row for row in matrix.values() if row.kind == "demo"]
    assert len(demo) == 6
    for row in demo:
        assert row.measured is not None, row.id
        assert reproduce.judge(row, row.measured.values).status == "pass", row.id


def test_demo_rows_run_the_pipeline_once_with_flags_it_accepts(matrix, capsys, tmp_path):
    sys.path.insert(0, str(ROOT / "examples"))
    import insuranceqa_pipeline

    lines = dry_run(capsys, "--group", "demo", "--work-dir", str(tmp_path))
    pipelines = [shlex.split(line) for line in lines if "insuranceqa_pipeline.py" in line]
    assert len({tuple(p) for p in pipelines}) == 1 and len(pipelines) == 6
    args = insuranceqa_pipeline.parse_args(pipelines[0][2:])
    defaults = insuranceqa_pipeline.parse_args([])  # the README's table is the demo with its defaults
    assert {k: v for k, v in vars(args).items() if k != "output"} == {k: v for k, v in vars(defaults).items()
                                                                      if k != "output"}
    assert args.output == tmp_path / "insuranceqa"
    runs = [shlex.split(line)[6] for line in lines if "ir_measures" in line]
    assert [Path(r).stem for r in runs] == ["bm25", "base", "adapted", "finetuned", "ablation", "finetuned-bm25"]


def test_the_beir_example_script_names_every_beir_dataset_row(matrix):
    script = (ROOT / "examples" / "beir" / "evaluate.sh").read_text()
    names = re.search(r"# DATASET: (.*?)\(the row", script, re.S).group(1).replace("#", " ").split()
    rows = {row_id for row_id in matrix if re.fullmatch(r"beir/[^/]+/llara-beir", row_id)}
    assert {f"beir/{name}/llara-beir" for name in names} == rows - {"beir/average/llara-beir"}


def test_readme_shows_the_matrix_and_a_row_as_the_cli_prints_them(capsys, tmp_path, matrix, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # as a machine without the row's GPU prints it
    readme = (ROOT / "docs" / "reproductions.md").read_text()
    assert main(["--list", "--markdown", "--work-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() in readme
    assert reproduce.sources(matrix.values()) in readme
    assert "\n".join(dry_run(capsys, "--row", "beir/scifact/llara-beir")) in readme


@pytest.mark.parametrize("change, message", [
    ({"colour": "red"}, "unknown field"),
    ({"expected": {"nDCG@20": 0.5}}, "not among its metrics"),
    ({"source": ""}, "need a source"),
    ({"metrics": ["nDCG@ten"]}, "not an ir-measures measure"),
    ({"kind": "sparse"}, "kind must be one of"),
    ({"qrels": None}, "needs qrels"),
])
def test_a_bad_row_is_refused_naming_the_row(tmp_path, change, message):
    row = {"id": "my/row", "kind": "bm25", "index": "x", "topics": "t", "qrels": "q", "metrics": ["nDCG@10"],
           "expected": {"nDCG@10": 0.5}, "source": "a paper", **change}
    path = tmp_path / "matrix.yaml"
    path.write_text(yaml.safe_dump({"rows": [row]}))
    with pytest.raises(MatrixError, match=message) as error:
        load_matrix(path)
    assert "my/row" in str(error.value)


def test_an_unknown_row_names_the_nearest(matrix):
    with pytest.raises(MatrixError, match="did you mean beir/scifact/llara-beir"):
        select(matrix, ["beir/scifact/llara"])


def test_steps_resume_and_a_failed_step_leaves_no_output(tmp_path):
    first, second, third = tmp_path / "first.txt", tmp_path / "second.txt", tmp_path / "third.txt"

    def write(path, text, reads=()):
        return Step(("python", "-c", f"print({text!r})"), stdout=str(path), creates=str(path), reads=reads)

    steps = [write(first, "one"), write(second, "two"), write(third, "three", reads=(str(first),)),
             Step(("python", "-c", "print('nDCG@10\\t0.5')"))]
    log = []
    assert reproduce.parse_scores(run_steps(steps, log.append), ["nDCG@10"]) == {"nDCG@10": 0.5}
    assert first.read_text() == "one\n" and all(line.startswith("$ ") for line in log)

    log.clear()
    first.unlink()
    run_steps(steps, log.append)
    # what is missing is made again; what reads it finds the same content, and is reused
    assert [line[:2] for line in log] == ["[r", "$ ", "[d", "[d", "$ "]

    log.clear()
    steps[0] = write(first, "uno")
    run_steps(steps, log.append)
    # another command, so another content: that step and the one reading it run again, the second does not
    assert [line[:2] for line in log] == ["[r", "$ ", "[d", "[r", "$ ", "$ "]
    assert "content of " + str(first) in log[3]

    log.clear()
    failing = Step(("python", "-c", "print('half'); raise SystemExit(3)"), stdout=str(second), creates=str(second))
    second.unlink()
    with pytest.raises(StepError, match="exit status 3"):
        run_steps([steps[0], failing], log.append)
    assert not second.exists()


def test_another_model_gets_its_own_index_and_run_and_is_measured_not_judged(matrix, tmp_path):
    row = matrix["beir/scifact/llara-beir"]
    mine = reproduce.with_model(row, "runs/llara-scifact")
    ours, theirs = plan(row, tmp_path), plan(mine, tmp_path)
    assert "llara:runs/llara-scifact" in str(theirs[1]) and "llara:runs/llara-scifact" in str(theirs[2])
    assert {s.creates for s in ours[1:4]}.isdisjoint({s.creates for s in theirs[1:4]})  # index, queries, run
    assert ours[0] == theirs[0]  # the exported topics are shared
    assert reproduce.judge(mine, {"nDCG@10": 0.1, "R@100": 0.2}).status == "measured"


def test_another_index_type_gets_its_own_index_and_run_and_shares_the_queries(matrix, tmp_path):
    row = matrix["beir/scifact/llara-beir"]
    flat, hnsw = plan(row, tmp_path), plan(dataclasses.replace(row, index_type="HNSW32"), tmp_path)
    assert flat[2] == hnsw[2]  # the encoded queries: one step, made once, read by both searches
    assert flat[1].creates != hnsw[1].creates and flat[3].creates != hnsw[3].creates  # index, run
    assert hnsw[1].argv[hnsw[1].argv.index("--index-type") + 1] == "HNSW32"


@pytest.mark.parametrize("cache", ["pyserini_llara.index", "pyserini_llara.queries"])
def test_a_cached_index_or_encoded_queries_of_other_weights_are_made_again(matrix, tiny_llara, tmp_path, cache,
                                                                          monkeypatch):
    from pyserini_llara import completion
    from pyserini_llara.fingerprint import model_fingerprint

    row = reproduce.with_model(matrix["beir/scifact/llara-beir"], str(tiny_llara))
    step = next(s for s in plan(row, tmp_path) if s.argv[:3] == ("python", "-m", cache))
    directory = Path(step.creates)
    directory.mkdir(parents=True)
    (directory / "meta.json").write_text("{}")
    inputs = {"command": str(step), "model_fingerprint": model_fingerprint(str(tiny_llara)),
              **{f"content of {path}": None for path in step.reads}}
    record = completion.complete([directory], inputs, completion.record_path(directory))
    log = []
    run_steps([step], log.append)
    assert log == [f"[done] {step}"]
    completion.complete([directory], {**inputs, "model_fingerprint": "0123456789abcdef"},
                        completion.record_path(directory))
    monkeypatch.setattr(reproduce.run, "_execute", lambda step, log: log(f"$ {step}"))
    log.clear()
    run_steps([step], log.append)
    assert log[0].startswith("[redo]") and "model_fingerprint was '0123456789abcdef'" in log[0]
    assert log[1] == f"$ {step}" and not (directory / "meta.json").exists()  # the file its record listed
    assert record.files


def test_judging_respects_the_tolerance(matrix):
    row = matrix["beir/scifact/llara-beir"]  # expected nDCG@10 0.754, tolerance 0.01
    assert reproduce.judge(row, {"nDCG@10": 0.760, "R@100": 0.9}).status == "pass"
    assert reproduce.judge(row, {"nDCG@10": 0.770, "R@100": 0.9}).status == "fail"
    assert reproduce.judge(matrix["beir/nq/llara-beir"], {"nDCG@10": 0.1, "R@100": 0.9}).status == "measured"


def independent_run(collection, model) -> dict[str, dict[str, float]]:
    """The row's run without Pyserini or faiss: our encoder, a dot product, every document ranked."""
    encoder = LlaraEncoder.from_pretrained(str(model), dtype="float32")
    docs = [json.loads(line) for line in (collection / "corpus.jsonl").read_text().splitlines()]
    scores = encoder.encode_queries(list(TOPICS.values())) @ encoder.encode_passages([d["contents"] for d in docs]).T
    return {qid: {d["id"]: float(s) for d, s in zip(docs, row)} for qid, row in zip(TOPICS, scores)}


def independent_scores(collection, model, metrics, run=None):
    run = run or independent_run(collection, model)
    qrels = ir_measures.read_trec_qrels(str(collection / "qrels.txt"))
    values = ir_measures.calc_aggregate([ir_measures.parse_measure(m) for m in metrics], qrels, run)
    return {str(m): float(v) for m, v in values.items()}


def ranked(run: Path) -> dict[str, list[tuple[str, float]]]:
    """A TREC run file as each query's (docid, score) in rank order."""
    hits = {}
    for line in run.read_text().splitlines():
        qid, _, docid, rank, score, _ = line.split()
        hits.setdefault(qid, []).append((int(rank), docid, float(score)))
    return {qid: [(docid, score) for _, docid, score in sorted(found)] for qid, found in hits.items()}


def assert_top_of(run: Path, exact: dict[str, dict[str, float]], hits=10):
    """The run file ranks each query's best ``hits`` documents of the exact run, in its order, with its scores."""
    found = ranked(run)
    assert found.keys() == exact.keys()
    for qid, got in found.items():
        best = sorted(exact[qid].items(), key=lambda hit: -hit[1])[:hits]
        assert [docid for docid, _ in got] == [docid for docid, _ in best], qid
        assert [score for _, score in got] == pytest.approx([score for _, score in best], abs=1e-5), qid


@pytest.mark.slow
def test_a_row_runs_end_to_end_as_dry_run_prints_and_a_wrong_expectation_fails(collection, tiny_llara, tmp_path,
                                                                                 capsys):
    """Also: the search reads the queries encoded once and ranks as an exact search does; a rerun only scores
    again. (That encoded queries give the on-the-fly run is test_doors'.)"""
    metrics = ["nDCG@10", "RR@10"]
    exact = independent_run(collection, tiny_llara)
    expected = independent_scores(collection, tiny_llara, metrics, exact)
    row = {"id": "tiny/row", "kind": "dense", "model": str(tiny_llara), "corpus": str(collection / "corpus.jsonl"),
           "topics": str(collection / "topics.tsv"), "qrels": str(collection / "qrels.txt"), "hits": 10,
           "precision": "float32", "device": "cpu", "batch_size": 8, "metrics": metrics, "tolerance": 1e-4,
           "expected": expected, "source": "computed by the test"}
    path = tmp_path / "matrix.yaml"
    path.write_text(yaml.safe_dump({"rows": [row]}))
    args = ["--matrix", str(path), "--work-dir", str(tmp_path / "work"), "--row", "tiny/row"]

    planned = dry_run(capsys, *args)
    assert main(args) == 0
    out = capsys.readouterr().out
    ran = [re.sub(r"^(\$|\[done\]) ", "", line) for line in out.splitlines() if line.startswith(("$ ", "[done] "))]
    assert ran == planned and all(line.startswith("$ ") for line in out.splitlines() if "python -m" in line)
    assert next(line for line in out.splitlines() if line.startswith("tiny/")).endswith("pass")
    steps = plan(load_matrix(path)["tiny/row"], tmp_path / "work")
    search = steps[-2].argv
    assert search[search.index("--encoded-queries") + 1] == steps[-3].creates
    assert "--encoder" not in search
    assert_top_of(Path(search[search.index("--output") + 1]), exact)

    path.write_text(yaml.safe_dump({"rows": [{**row, "expected": {m: v + 0.05 for m, v in expected.items()}}]}))
    assert main(args) == 1  # the same run, scored again, and judged against a wrong expectation
    out = capsys.readouterr().out
    assert [line.split()[0] for line in out.splitlines() if "python -m" in line] == ["[done]"] * 3 + ["$"]
    assert next(line for line in out.splitlines() if line.startswith("tiny/")).endswith("FAIL")

    records = [json.loads(line) for line in (tmp_path / "work" / "results.jsonl").read_text().splitlines()]
    assert [r["status"] for r in records] == ["pass", "fail"]
    assert records[0]["measured"] == records[1]["measured"] == pytest.approx(expected, abs=1e-4)
    assert records[0]["commands"] == planned
