"""adaptation.pretrain end to end on a tiny base model: tokens added, output loads in the plugin, bad inputs."""

import json
import subprocess
import sys

import numpy as np
import pytest

from adaptation.pretrain import DataArguments, ModelArguments, ObjectiveArguments, main, pretrain
from adaptation.training import CheckpointError, TrainingArguments
from pyserini_llara.encoding import LlaraEncoder
from pyserini_llara.precision import resolve_mixed_precision
from pyserini_llara.template import SPECIAL_TOKENS, missing_special_tokens
from tiny import CORPUS


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "corpus.txt"
    path.write_text("\n\n".join(" ".join(CORPUS[(i + j) % 5] for j in range(4)) for i in range(6)) + "\n")
    return path


def arguments(model, corpus, output_dir, **training):
    return (ModelArguments(str(model)),
            DataArguments(train_data=[str(corpus)], chunk_tokens=24, min_chunk_tokens=8, cutoff_len=96),
            ObjectiveArguments(),
            TrainingArguments(output_dir=str(output_dir), **{"max_steps": 2, "save_steps": 2, "logging_steps": 1,
                                                              "per_device_train_batch_size": 2, **training}))


@pytest.mark.slow
def test_pretrain_adds_tokens_and_exports_an_encoder(tiny_base, corpus, tmp_path):
    out = pretrain(*arguments(tiny_base, corpus, tmp_path / "run"))
    encoder = LlaraEncoder.from_pretrained(str(out), dtype="float32")
    assert not missing_special_tokens(encoder.tokenizer)
    assert encoder.model.get_input_embeddings().weight.shape[0] == len(encoder.tokenizer)
    vectors = encoder.encode_queries(["what is a llama?"])
    assert vectors.shape == (1, 64) and np.isfinite(vectors).all()
    prepared = out / "data" / "train.jsonl"
    assert prepared.is_file() and json.loads(prepared.read_text().splitlines()[0]).keys() == {
        "input", "output_summarize", "output_predict"}
    card = (out / "README.md").read_text()
    assert str(tiny_base) in card and "EBAE x 0.05" in card and "chunks of 24 tokens" in card
    # The defaults (auto): float32 master weights, autocast in this CPU's fast precision, both recorded.
    mixed = resolve_mixed_precision("auto", "cpu")
    assert json.loads((out / "training_args.json").read_text())["mixed_precision"] == mixed
    assert "**precision**: float32 weights" in card
    assert json.loads((out / "config.json").read_text())["dtype"] == "float32"
    # The prepared file is the dataset of a rerun as well (no re-chunking), also one that trains longer.
    stamp = prepared.stat().st_mtime_ns
    pretrain(*arguments(tiny_base, corpus, tmp_path / "run", max_steps=3, save_steps=3, allow_changed_arguments=True))
    assert prepared.stat().st_mtime_ns == stamp


@pytest.mark.slow
def test_tokens_added_for_pretraining_start_as_transformers_random_rows(tiny_base, corpus, tmp_path):
    """The release resizes with transformers' default init; the rows are drawn from --seed (lr 0 keeps them)."""
    import torch
    from transformers import AutoModelForCausalLM

    from pyserini_llara.modeling import load_model

    model_args, data_args, objective_args, training_args = arguments(tiny_base, corpus, tmp_path / "run", max_steps=1,
                                                                     save_steps=1, learning_rate=0.0, seed=5)
    assert model_args.new_token_init == "random"
    trained = AutoModelForCausalLM.from_pretrained(pretrain(model_args, data_args, objective_args, training_args))
    expected, _ = load_model(str(tiny_base), add_tokens=True, causal_lm=True, new_token_init="random", seed=5,
                             dtype="float32")
    mean, _ = load_model(str(tiny_base), add_tokens=True, causal_lm=True, dtype="float32")
    for name in ("get_input_embeddings", "get_output_embeddings"):
        rows = getattr(trained, name)().weight[-16:]
        torch.testing.assert_close(rows, getattr(expected, name)().weight[-16:], rtol=0, atol=0)
        assert not torch.allclose(rows, getattr(mean, name)().weight[-16:])


@pytest.mark.slow
def test_two_cpu_processes_under_torchrun_train_data_parallel(tiny_base, corpus, tmp_path):
    """Each process takes its share of every global batch (not all the data alone), and the run is logged once."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "adaptation.pretrain", "--model_name_or_path", str(tiny_base), "--train_data", str(corpus),
               "--chunk_tokens", "24", "--min_chunk_tokens", "8", "--cutoff_len", "96", "--max_steps", "2",
               "--save_steps", "2", "--logging_steps", "1", "--per_device_train_batch_size", "1",
               "--output_dir", str(tmp_path / "ddp")]
    run = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "1 x 1 accumulation x 2 processes" in (tmp_path / "ddp" / "README.md").read_text()
    single = pretrain(*arguments(tiny_base, corpus, tmp_path / "single", per_device_train_batch_size=2,
                                 logging_steps=1))

    def tokens(directory):
        return [json.loads(line)["tokens"] for line in (directory / "metrics.jsonl").read_text().splitlines()]

    # One process with batch 2 sees the same examples per step as two processes with batch 1 each.
    assert tokens(tmp_path / "ddp") == tokens(single) and len(tokens(single)) == 2


def test_cli_help_lists_every_group(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--model_name_or_path", "--train_data", "--chunk_tokens", "--remove_stopwords", "--ebar_weight",
                   "--windows", "--cutoff_len", "--max_text_tokens", "--new_token_init", "log_warmup_linear_decay",
                   "--learning_rate", "--use_lora", "--save_adapter_only", "--mixed_precision", "accelerate launch"):
        assert option in text


def test_cli_reports_bad_inputs(tiny_llara, tmp_path, corpus):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    body = tmp_path / "body"
    AutoModelForCausalLM.from_pretrained(tiny_llara).model.save_pretrained(body)
    AutoTokenizer.from_pretrained(tiny_llara).save_pretrained(body)
    base = ["--output_dir", str(tmp_path / "out"), "--max_steps", "1"]
    with pytest.raises(SystemExit, match="LlamaModel, a model without an LM head"):
        main(["--model_name_or_path", str(body), "--train_data", str(corpus), *base])
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    with pytest.raises(SystemExit, match=r"error: no examples from .*empty\.txt"):
        main(["--model_name_or_path", str(tiny_llara), "--train_data", str(empty), *base])
    with pytest.raises(SystemExit, match="no such file or directory: .*nothing.txt"):
        main(["--model_name_or_path", str(tiny_llara), "--train_data", str(tmp_path / "nothing.txt"), *base])
    with pytest.raises(SystemExit, match="could not load model"):
        main(["--model_name_or_path", str(tmp_path / "no-model"), "--train_data", str(corpus), *base])
    with pytest.raises(SystemExit):
        main(["--model_name_or_path", str(tiny_llara), "--output_dir", str(tmp_path)])  # no --train_data


def test_release_format_jsonl_is_used_as_is(tiny_llara, tmp_path):
    data = tmp_path / "toy.jsonl"
    data.write_text("".join(json.dumps({"input": t, "output_summarize": t, "output_predict": CORPUS[0]}) + "\n"
                            for t in CORPUS[1:5]))
    model_args, data_args, objective_args, training_args = arguments(tiny_llara, data, tmp_path / "run", max_steps=1,
                                                                     save_steps=1)
    data_args.max_examples = 3
    out = pretrain(model_args, data_args, objective_args, training_args)
    assert not (out / "data").exists()
    assert "3 examples" in (out / "README.md").read_text()
    assert set(SPECIAL_TOKENS) <= set(LlaraEncoder.from_pretrained(str(out), dtype="float32").tokenizer.get_vocab())


def test_resume_compares_the_model_by_fingerprint_and_the_data_and_objective(tiny_llara, tiny_base, tmp_path):
    data = tmp_path / "toy.jsonl"
    data.write_text("".join(json.dumps({"input": t, "output_summarize": t, "output_predict": CORPUS[0]}) + "\n"
                            for t in CORPUS[1:5]))

    def again(model, **objective):
        model_args, data_args, _, training_args = arguments(model, data, tmp_path / "run", max_steps=1, save_steps=1)
        return pretrain(model_args, data_args, ObjectiveArguments(**objective), training_args)

    again(tiny_llara)
    again(f"{tiny_llara}/")  # the same model spelt otherwise: a rerun of the finished run resumes it
    with pytest.raises(CheckpointError, match=r"ebae_weight: 0.05 in the checkpoint, 0.1 now"):
        again(tiny_llara, ebae_weight=0.1)
    with pytest.raises(CheckpointError, match=r"model_fingerprint: '\w+' in the checkpoint, '\w+' now"):
        again(tiny_base)
