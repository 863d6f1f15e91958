"""The demo's stages: each done only by its completion record, so a half-made output is made again."""

import contextlib
import sys
import zlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
import insuranceqa_pipeline as demo  # noqa: E402

pytestmark = pytest.mark.pyserini  # through Pyserini: runs on every CI leg


def option(args, *names):
    return Path(next(args[args.index(name) + 1] for name in names if name in args))


def fake_run(run_file, qrels):
    """Each judged query's relevant answer at rank 1 or 2, by a hash of the run's path: runs differ, like seeds."""
    if not qrels.exists():
        return "".join(f"q{i} Q0 d{i} 1 1.0 demo\n" for i in range(3))
    first = {}
    for line in qrels.read_text().splitlines():
        first.setdefault(line.split()[0], line.split()[2])
    lines = []
    for q, doc in first.items():
        ranked = [doc, "wrong"] if zlib.crc32(f"{run_file}{q}".encode()) % 3 else ["wrong", doc]
        lines += [f"{q} Q0 {d} {rank} {3 - rank} demo\n" for rank, d in enumerate(ranked, 1)]
    return "".join(lines)


@pytest.fixture
def commands(monkeypatch):
    """The modules the demo runs, in order; each command faked by writing what the real one leaves."""
    ran = []

    def run(*args):
        module = args[1]
        ran.append(module)
        if module == "pyserini.index.lucene":
            index = option(args, "--index")
            index.mkdir(parents=True, exist_ok=True)
            (index / "segments_1").write_text("lucene")
        elif module == "pyserini_llara.index":
            index = option(args, "--output")
            index.mkdir(parents=True, exist_ok=True)
            for name in ("index", "docid", "meta.json"):
                (index / name).write_text(name)
        elif module.startswith("pyserini.search"):
            run_file = option(args, "--output")
            run_file.parent.mkdir(parents=True, exist_ok=True)
            run_file.write_text(fake_run(run_file, option(args, "--topics").parent / "qrels.txt"))
        elif module.startswith("adaptation."):
            model = option(args, "--output_dir")
            model.mkdir(parents=True, exist_ok=True)
            (model / "config.json").write_text("{}")
            (model / "model.safetensors").write_text("weights")

    monkeypatch.setattr(demo, "run", run)
    return ran


@pytest.fixture
def layout(tmp_path):
    args = demo.parse_args(["--output", str(tmp_path), "--dtype", "float32"])
    data, model = tmp_path / "data", tmp_path / "models" / "base"
    data.mkdir()
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    return args, data, model


def test_a_partial_run_or_index_is_made_again_and_a_complete_one_reused(commands, layout, tmp_path):
    args, data, model = layout
    index, run_file = tmp_path / "indexes" / "base", tmp_path / "runs" / "base.trec"
    index.mkdir(parents=True)
    (index / "index").write_text("half")  # a build killed before docid and meta.json
    run_file.parent.mkdir()
    run_file.write_text("q0 Q0 d0 1 1.0 demo\nq1 Q0")  # a search killed mid-line
    demo.dense("base", model, data, tmp_path, args)
    assert commands == ["pyserini_llara.index", "pyserini.search.faiss"]
    assert len(run_file.read_text().splitlines()) == 3

    demo.dense("base", model, data, tmp_path, args)
    assert commands == ["pyserini_llara.index", "pyserini.search.faiss"]  # both proved complete

    run_file.write_text("q0 Q0 d0 1 1.0 demo\n")
    demo.dense("base", model, data, tmp_path, args)
    assert commands[2:] == ["pyserini.search.faiss"]


def test_a_half_exported_model_is_trained_again(commands, layout, tmp_path):
    args, data, model = layout
    finetuned = tmp_path / "models" / "finetuned"
    finetuned.mkdir()
    (finetuned / "config.json").write_text("{}")  # the export killed before the weights
    demo.finetune(model, data / "train.jsonl", finetuned, args, 13)
    assert commands == ["adaptation.finetune"]
    demo.finetune(model, data / "train.jsonl", finetuned, args, 13)
    assert commands == ["adaptation.finetune"]
    longer = demo.parse_args(["--finetune-steps", "3", "--dtype", "float32"])
    demo.finetune(model, data / "train.jsonl", finetuned, longer, 13)
    assert commands == ["adaptation.finetune"] * 2  # another setting
    demo.finetune(model, data / "train.jsonl", finetuned, longer, 14)
    assert commands == ["adaptation.finetune"] * 3  # another seed


def test_a_killed_training_resumes_and_one_with_other_settings_starts_over(commands, layout, tmp_path, monkeypatch):
    """The trainer resumes only a run of the same arguments: the stage asks it to start over otherwise."""
    args, data, model = layout
    longer = demo.parse_args(["--finetune-steps", "3", "--dtype", "float32"])
    finetuned, fake, over, killing = tmp_path / "models" / "finetuned", demo.run, [], [True]

    def run(*command):
        over.append("--overwrite_output_dir" in command)
        if killing.pop() if killing else False:
            raise KeyboardInterrupt  # killed mid-training
        fake(*command)

    def finetune(settings, kill=False):
        killing[:] = [kill]
        with pytest.raises(KeyboardInterrupt) if kill else contextlib.nullcontext():
            demo.finetune(model, data / "train.jsonl", finetuned, settings, 13)

    monkeypatch.setattr(demo, "run", run)
    finetune(args, kill=True)
    finetune(args)
    assert over == [False, False]  # resumed
    finetune(longer)
    assert over[2:] == [True]  # a finished run of other settings: started over
    finetune(longer)
    assert over[3:] == []  # proved by its record
    finetune(args, kill=True)
    assert over[3:] == [True]
    finetune(args, kill=True)
    assert over[4:] == [True]  # killed before it finished starting over: afresh again
    finetune(longer)
    assert over[5:] == [True]  # a killed run of other settings: started over
    demo.completion.discard(demo.completion.record_path(finetuned))
    (finetuned / "step-2").mkdir()  # a checkpoint of a run made before stages noted their settings
    finetune(longer)
    assert over[6:] == [True]  # a run of unknown settings: started over


def test_seeds_train_every_training_row_once_per_seed_and_the_report_tests_the_differences(commands, tmp_path,
                                                                                          monkeypatch, capsys):
    def init(model_dir):
        model_dir.mkdir(parents=True, exist_ok=True)
        (model_dir / "config.json").write_text("{}")
        return model_dir

    def data(data_dir, questions, pool, seed):  # 8 judged questions, in the files prepare_data writes
        (data_dir / "corpus").mkdir(parents=True)
        (data_dir / "corpus" / "docs.jsonl").write_text("".join(f'{{"id": "a{i}", "contents": "answer {i}"}}\n'
                                                                for i in range(8)))
        (data_dir / "topics.tsv").write_text("".join(f"{i}\tquestion {i}\n" for i in range(8)))
        (data_dir / "qrels.txt").write_text("".join(f"{i} 0 a{i} 1\n" for i in range(8)))
        return {"questions": 8, "pool": 8, "relevant_pairs": 8}

    monkeypatch.setattr(demo, "init_smollm2", init)
    fake = demo.run
    starts = {}  # fine-tuning output directory -> the model it started from

    def run(*args):
        if args[1] == "adaptation.finetune":
            starts[option(args, "--output_dir")] = option(args, "--model_name_or_path")
        fake(*args)

    monkeypatch.setattr(demo, "run", run)
    monkeypatch.setattr(demo, "prepare_data", data)
    monkeypatch.setattr(demo, "prepare_training_groups", lambda path, questions, seed: path.write_text("{}\n") and 1)
    argv = ["--output", str(tmp_path), "--dtype", "float32", "--seeds", "2", "--seed", "5"]
    demo.main(argv)
    per_seed = ["adaptation.pretrain", "pyserini_llara.index", "pyserini.search.faiss",
                "adaptation.finetune", "pyserini_llara.index", "pyserini.search.faiss",
                "adaptation.finetune", "pyserini_llara.index", "pyserini.search.faiss", "pyserini.search.hybrid"]
    assert commands == ["pyserini.index.lucene", "pyserini.search.lucene", "pyserini_llara.index",
                        "pyserini.search.faiss", *per_seed, *per_seed]
    for seed in (5, 6):  # the ablation fine-tunes the unadapted model, with the same seed and data
        models = tmp_path / "models" / f"seed-{seed}"
        assert starts[models / "ablation"] == tmp_path / "models" / "smollm2-135m-llara-init"
        assert starts[models / "finetuned"] == models / "adapted"
        assert (models / "ablation" / "model.safetensors").exists()
        assert (tmp_path / "runs" / f"seed-{seed}" / "finetuned-bm25.trec").exists()

    table = (tmp_path / "results.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert [row.split(" | ")[0][2:] for row in rows] == list(demo.ROWS.values())
    assert " ± " in rows[3] and " ± " not in rows[0]  # fine-tuned over 2 seeds; BM25 made once
    tests = [line for line in table.splitlines() if line.startswith("- ")]
    names = demo.ROWS
    assert [line.split(":")[0] for line in tests] == [
        f"- {names['finetuned']} vs {names['bm25']}", f"- {names['finetuned']} vs {names['ablation']}",
        f"- {names['finetuned-bm25']} vs {names['bm25']}"]
    assert all("paired t-test p = " in line and "randomization p = " in line for line in tests)
    significant = ["(significant at 0.05)" in line for line in tests]
    ndcg = {row.split(" | ")[0][2:]: row.split(" | ")[1] for row in rows}
    assert ndcg[names["finetuned"]].endswith("†" * significant[0] + "‡" * significant[1])
    assert ndcg[names["finetuned-bm25"]].endswith("†" * significant[2])
    assert (tmp_path / "results.png").stat().st_size > 0

    capsys.readouterr()
    demo.main(argv)  # every stage proved by its record: nothing runs again
    assert len(commands) == 4 + 2 * len(per_seed)


def test_a_cli_run_in_process_stops_the_job_as_its_process_would(capsys):
    """Pyserini's and the index builder's CLIs run in the job's process; their exit status still counts."""
    assert "pyserini_llara.index" in demo.IN_PROCESS and "adaptation.finetune" not in demo.IN_PROCESS
    demo.run("-m", "pyserini_llara.index", "--help")
    assert "--corpus" in capsys.readouterr().out
    with pytest.raises(demo.subprocess.CalledProcessError) as failed:
        demo.run("-m", "pyserini_llara.index", "--no-such-flag")
    assert failed.value.returncode == 2 and failed.value.cmd[:3] == ["python", "-m", "pyserini_llara.index"]
    assert sys.argv[0] != "pyserini_llara.index"  # the job's own arguments are back
