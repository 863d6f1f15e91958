"""The demo's stages: each done only by its completion record, so a half-made output is made again."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
import insuranceqa_pipeline as demo  # noqa: E402


def option(args, *names):
    return Path(next(args[args.index(name) + 1] for name in names if name in args))


@pytest.fixture
def commands(monkeypatch):
    """The modules the demo runs, in order; each command faked by writing what the real one leaves."""
    ran = []

    def run(*args):
        module = args[1]
        ran.append(module)
        if module == "pyserini_llara.index":
            index = option(args, "--output")
            index.mkdir(parents=True, exist_ok=True)
            for name in ("index", "docid", "meta.json"):
                (index / name).write_text(name)
        elif module.startswith("pyserini.search"):
            run_file = option(args, "--output")
            run_file.parent.mkdir(parents=True, exist_ok=True)
            run_file.write_text("".join(f"q{i} Q0 d{i} 1 1.0 demo\n" for i in range(3)))
        elif module.startswith("adaptation."):
            model = option(args, "--output_dir")
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
    demo.finetune(model, data / "train.jsonl", finetuned, args)
    assert commands == ["adaptation.finetune"]
    demo.finetune(model, data / "train.jsonl", finetuned, args)
    assert commands == ["adaptation.finetune"]
    longer = demo.parse_args(["--finetune-steps", "3", "--dtype", "float32"])
    demo.finetune(model, data / "train.jsonl", finetuned, longer)
    assert commands == ["adaptation.finetune"] * 2  # another setting
