"""Bad inputs to every command-line tool: one line naming the file (and line) and the fix, exit status 1, no
traceback."""

import gzip
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from adaptation import finetune, mine, pretrain
from pyserini_llara.cli import DEBUG_ENV
from pyserini_llara.corpus import CorpusError
from pyserini_llara.index import cli as index
from tiny import CORPUS


def one_line_exit(cli, argv) -> str:
    """The message of the SystemExit a CLI ends with; Python prints it to stderr and exits with status 1."""
    with pytest.raises(SystemExit) as exit_:
        cli(argv)
    message = exit_.value.code
    assert isinstance(message, str) and message.startswith("error: ") and "\n" not in message, message
    return message


def index_error(argv, capsys) -> str:
    assert index.main(argv) == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]
    assert len(lines) == 1 and "Traceback" not in lines[0]
    return lines[0]


@pytest.fixture
def truncated_gz(tmp_path):
    data = gzip.compress("".join(json.dumps({"id": f"d{i}", "contents": CORPUS[i % 7] * 3}) + "\n"
                                 for i in range(300)).encode())
    path = tmp_path / "corpus.jsonl.gz"
    path.write_bytes(data[:len(data) * 2 // 3])
    return path


def test_index_truncated_gzip_corpus(truncated_gz, tiny_llara, tmp_path, capsys):
    argv = ["--corpus", str(truncated_gz), "--output", str(tmp_path / "index"), "--encoder", f"llara:{tiny_llara}"]
    message = index_error(argv, capsys)
    assert f"error: {truncated_gz}: the gzip data is truncated or corrupt after line" in message
    assert message.endswith("download or compress the file again")
    with pytest.raises(CorpusError):  # --debug: the traceback, not the line
        index.main([*argv, "--debug"])


def test_index_truncated_safetensors(tiny_llara, tmp_path, capsys):
    model = shutil.copytree(tiny_llara, tmp_path / "model")
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(json.dumps({"id": "a", "contents": "text"}) + "\n")
    message = index_error(["--corpus", str(corpus), "--output", str(tmp_path / "index"), "--encoder", str(model)],
                          capsys)
    assert f"cannot read the weights in {weights} (" in message
    assert message.endswith("the file is truncated or corrupt; download or copy the model again")


@pytest.mark.parametrize("content, problem", [
    (b'{"text": "fine"}\n{"text": "caf\xe9"}\n', r"cannot read {path} after line \d: .*the file must be UTF-8 text"),
    (b"42\n", r"{path}:1: expected a JSON object, got int"),
], ids=["not-utf8", "not-an-object"])
def test_pretrain_bad_jsonl(content, problem, tiny_llara, tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_bytes(content)
    message = one_line_exit(pretrain.main, ["--model_name_or_path", str(tiny_llara), "--train_data", str(data),
                                            "--output_dir", str(tmp_path / "run"), "--max_steps", "1"])
    assert re.search(problem.format(path=re.escape(str(data))), message), message


def test_finetune_file_not_utf8(tiny_llara, tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_bytes(json.dumps({"query": "q", "pos": ["p"], "neg": ["n"]}).encode() + b'\n{"query": "\xff"}\n')
    message = one_line_exit(finetune.main, ["--model_name_or_path", str(tiny_llara), "--train_data", str(data),
                                            "--output_dir", str(tmp_path / "run")])
    assert message == f"error: {data}, line 2: not valid UTF-8 (byte 11); re-encode the file as UTF-8"


def test_finetune_query_max_len_shorter_than_the_template(tiny_llara, tmp_path, monkeypatch):
    data = tmp_path / "train.jsonl"
    data.write_text(json.dumps({"query": "q", "pos": ["p"], "neg": ["n"]}) + "\n")
    argv = ["--model_name_or_path", str(tiny_llara), "--train_data", str(data), "--output_dir", str(tmp_path / "run"),
            "--query_max_len", "5"]
    message = one_line_exit(finetune.main, argv)
    assert "error: --query_max_len 5: max length 5 leaves no room for text: the query template alone is" in message
    assert "give at least" in message
    monkeypatch.setenv(DEBUG_ENV, "1")
    with pytest.raises(ValueError, match="--query_max_len 5"):
        finetune.main(argv)


def test_mine_run_with_a_score_that_is_not_a_number(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"id": f"d{i}", "contents": text}) + "\n" for i, text in enumerate(CORPUS)))
    (tmp_path / "queries.tsv").write_text("q1\twhat is a llama\n")
    (tmp_path / "qrels.txt").write_text("q1 0 d0 1\n")
    run = tmp_path / "run.trec"
    run.write_text("q1 Q0 d1 1 12.5 bm25\nq1 Q0 d2 2 high bm25\n")
    argv = ["--queries", str(tmp_path / "queries.tsv"), "--qrels", str(tmp_path / "qrels.txt"), "--corpus",
            str(corpus), "--run", str(run), "--output", str(tmp_path / "train.jsonl")]
    message = one_line_exit(mine.main, argv)
    assert message == (f"error: {run}, line 2: the score 'high' (5th column) is not a finite number; expected a TREC "
                       "run line `qid Q0 docid rank score tag`")
    # The real exit status and stderr of the command.
    done = subprocess.run([sys.executable, "-m", "adaptation.mine", *argv], capture_output=True, text=True,
                          env={k: v for k, v in os.environ.items() if k != DEBUG_ENV})
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1] == message


@pytest.mark.parametrize("limit, reason", [(200_000, "File too large"), (600_000, "the write was cut short")],
                         ids=["safetensors", "torch"])
def test_a_checkpoint_that_cannot_be_written_whole_is_one_line_naming_it_and_the_space_left(tiny_llara, tmp_path,
                                                                                            limit, reason):
    """A write failing part way, as on a full disk (a file-size limit makes it fail, for real): in the weights
    (safetensors) or in the optimizer state (torch's writer: ``unexpected pos N vs M``)."""
    import resource
    import signal

    data = tmp_path / "train.jsonl"
    examples = [{"input": text, "output_summarize": text, "output_predict": CORPUS[i + 1]}
                for i, text in enumerate(CORPUS[:4])]
    data.write_text("".join(json.dumps(example) + "\n" for example in examples))
    output = tmp_path / "run"

    def small_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = subprocess.run([sys.executable, "-m", "adaptation.pretrain", "--model_name_or_path", str(tiny_llara),
                             "--train_data", str(data), "--output_dir", str(output), "--max_steps", "1",
                             "--save_steps", "1", "--per_device_train_batch_size", "2"],
                            preexec_fn=small_files, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line[line.index("error: "):] for line in result.stderr.splitlines() if "error: " in line]
    assert len(errors) == 1, result.stderr[-3000:]  # on the line of tqdm's bar, which it then redraws
    message = errors[0]
    assert message.startswith(f"error: cannot write the checkpoint {output / 'checkpoints' / 'step-1'}: "), message
    assert reason in message and re.search(r", with \d+\.\d MiB free on its disk; make room and rerun", message)
    assert not (output / "checkpoints" / "step-1.tmp").exists()
