"""What --resume, --overwrite and merge promise: nothing stale is reused, nothing finished is lost.

A crash is simulated in-process by raising, at a named stage, an exception that nothing
catches (the code under test has no cleanup on errors, so what is on disk is what a kill
would leave); one build, and the torchrun test in test_index.py, are killed for real.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest

from pyserini_llara.corpus import CorpusError
from pyserini_llara.encoding import LlaraEncoder
from pyserini_llara.index import (
    CHUNK_DIR,
    IndexBuildError,
    IndexConfig,
    IndexMeta,
    build_index,
    build_index_distributed,
    crashpoints,
    merge_shards,
)
from pyserini_llara.index.cli import main
from pyserini_llara.index.crashpoints import CRASH_ENV
from pyserini_llara.modeling import ModelLoadError
from test_index import N_DOCS, assert_same_index, config, corpus, interrupted_build, reference, shard_set  # noqa: F401 (fixtures)

BUILD_STAGES = ["build:started", "build:chunk", "build:encoded", "build:staged", "build:swapping", "build:swapped",
                "build:written"]
MERGE_STAGES = ["merge:staged", "merge:swapping", "merge:swapped", "merge:written"]
# Before these, an --overwrite has not touched the old index yet.
BEFORE_SWAP = {"build:started", "build:chunk", "build:encoded", "build:staged", "merge:staged"}


class Crash(BaseException):
    """Stands for a kill: no ``except Exception`` can catch it."""


def crash_at(monkeypatch, stage):
    def reached(name):
        if name == stage:
            raise Crash(name)
    monkeypatch.setattr(crashpoints, "reached", reached)


@pytest.fixture
def encoded(monkeypatch):
    """Number of documents each passage-encoding call got: their sum shows nothing was encoded twice."""
    calls = []
    real = LlaraEncoder.encode_passages

    def encode_passages(self, texts, **kwargs):
        calls.append(len(texts))
        return real(self, texts, **kwargs)

    monkeypatch.setattr(LlaraEncoder, "encode_passages", encode_passages)
    return calls


@pytest.fixture(scope="module")
def old_index(corpus, config, tmp_path_factory):
    """An index of the same corpus with other vectors (shorter texts): what --overwrite replaces."""
    return build_index(corpus, tmp_path_factory.mktemp("old") / "index", IndexConfig(**{**config.__dict__,
                                                                                          "max_length": 6}))


def same_files(a, b):
    for name in ("docid", "index", "meta.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def identical(output, expected):
    """Bit for bit the expected index, and nothing else left in the directory."""
    same_files(output, expected)
    assert sorted(p.name for p in output.iterdir()) == ["docid", "index", "meta.json"]


def edit(path, line, **changes):
    lines = path.read_text().splitlines()
    lines[line] = json.dumps({**json.loads(lines[line]), **changes})
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("overwrite", [False, True], ids=["new", "overwrite"])
@pytest.mark.parametrize("stage", BUILD_STAGES)
def test_a_build_killed_at_any_stage_is_finished_by_resume(stage, overwrite, reference, old_index, corpus, config,
                                                          tmp_path, monkeypatch, encoded):
    output = tmp_path / "index"
    if overwrite:
        shutil.copytree(old_index, output)
    with monkeypatch.context() as patch:
        crash_at(patch, stage)
        with pytest.raises(Crash):
            build_index(corpus, output, config, overwrite=overwrite)
    if overwrite and stage in BEFORE_SWAP:
        same_files(output, old_index)  # the old index still serves searches
    build_index(corpus, output, config, resume=True)
    identical(output, reference)
    assert sum(encoded) == N_DOCS  # nothing lost, nothing encoded twice


def test_a_real_kill_while_swapping_in_the_new_index_is_finished_by_resume(reference, old_index, corpus, tiny_llara,
                                                                          tmp_path, encoded):
    output = tmp_path / "index"
    shutil.copytree(old_index, output)
    command = ["--corpus", str(corpus), "--output", str(output), "--encoder", f"llara:{tiny_llara}",
               "--dtype", "float32", "--batch-size", "4", "--chunk-size", "8"]
    killed = subprocess.run([sys.executable, "-m", "pyserini_llara.index", *command, "--overwrite"],
                            env={**os.environ, CRASH_ENV: "build:swapping"}, capture_output=True, text=True)
    assert killed.returncode == 137, killed.stderr[-2000:]
    assert not IndexMeta.load(output).complete and (output / CHUNK_DIR / "meta.json").exists()
    assert main([*command, "--resume"]) == 0
    identical(output, reference)
    assert encoded == []  # the killed process had encoded every chunk


@pytest.mark.parametrize("overwrite", [False, True], ids=["new", "overwrite"])
@pytest.mark.parametrize("stage", MERGE_STAGES)
def test_a_merge_killed_at_any_stage_leaves_the_old_index_or_is_finished_by_resume(stage, overwrite, shard_set,
                                                                                  reference, old_index, tmp_path,
                                                                                  monkeypatch):
    output = tmp_path / "merged"
    if overwrite:
        shutil.copytree(old_index, output)
    with monkeypatch.context() as patch:
        crash_at(patch, stage)
        with pytest.raises(Crash):
            merge_shards(shard_set, output, overwrite=overwrite)
    command = ["merge", "--shards", *map(str, shard_set), "--output", str(output)]
    if overwrite and stage in BEFORE_SWAP:
        same_files(output, old_index)  # untouched: the same command runs again
        with pytest.raises(IndexBuildError, match="another complete index .*max_length 6 vs 512"):
            merge_shards(shard_set, output, resume=True)
        assert main([*command, "--overwrite"]) == 0
    else:
        assert main([*command, "--resume"]) == 0
    identical(output, reference)


@pytest.fixture
def one_launched_process(monkeypatch):
    """The environment torchrun gives its only process, with an in-memory store for the rendezvous."""
    import torch.distributed as dist

    for name, value in (("RANK", "0"), ("WORLD_SIZE", "1"), ("LOCAL_RANK", "0")):
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(dist, "rendezvous", lambda *args, **kwargs: iter([(dist.HashStore(), 0, 1)]))


@pytest.mark.parametrize("stage", ["merge:shards-done", *MERGE_STAGES])
def test_a_launched_build_killed_while_rank0_merges_is_finished_by_resume(stage, one_launched_process, reference,
                                                                         old_index, corpus, config, tmp_path,
                                                                         monkeypatch, encoded):
    output = tmp_path / "index"
    shutil.copytree(old_index, output)
    with monkeypatch.context() as patch:
        crash_at(patch, stage)
        with pytest.raises(Crash):
            build_index_distributed(corpus, output, config, overwrite=True)
    assert IndexMeta.load(tmp_path / "index.shards" / "00000").complete  # the finished shard is kept
    if stage in BEFORE_SWAP | {"merge:shards-done"}:
        same_files(output, old_index)
    build_index_distributed(corpus, output, config, resume=True)
    identical(output, reference)
    assert sum(encoded) == N_DOCS
    assert not (tmp_path / "index.shards").exists()


def test_resume_refuses_a_saved_chunk_whose_text_changed(corpus, config, tmp_path, monkeypatch, encoded):
    edited = tmp_path / "corpus.jsonl"
    shutil.copy(corpus, edited)
    output = interrupted_build(edited, config, tmp_path / "index", monkeypatch)  # documents 1-16 saved
    encoded.clear()
    original = edited.read_text()
    edit(edited, 3, contents="the same id, another text")
    with pytest.raises(IndexBuildError, match=r"saved chunk .*000000\.npz was encoded from other ids or texts "
                                              r"than documents 1-8 of .*corpus changed, use --overwrite"):
        build_index(edited, output, config, resume=True)
    # A document not encoded yet may change: the resumed index is that of the new corpus.
    edited.write_text(original)
    edit(edited, 30, contents="edited before it was encoded")
    build_index(edited, output, config, resume=True)
    assert sum(encoded) == N_DOCS - 16  # documents 17-37 only
    identical(output, build_index(edited, tmp_path / "clean", config))
    # A complete index over a corpus that changed since is stale.
    edit(edited, 36, contents="edited after the index was built")
    with pytest.raises(IndexBuildError, match="is complete, but .* changed since it was built .*corpus_fingerprint"):
        build_index(edited, output, config, resume=True)


def test_resume_refuses_another_dtype(corpus, config, tmp_path, monkeypatch):
    output = interrupted_build(corpus, config, tmp_path / "index", monkeypatch)
    with pytest.raises(IndexBuildError, match="cannot resume .*dtype 'float32' vs 'bfloat16'"):
        build_index(corpus, output, IndexConfig(**{**config.__dict__, "dtype": "bfloat16"}), resume=True)


def test_the_same_model_spelt_differently_resumes_and_merges(reference, corpus, config, tiny_llara, tmp_path,
                                                            monkeypatch):
    slash = IndexConfig(**{**config.__dict__, "encoder": f"llara:{tiny_llara}/"})
    output = interrupted_build(corpus, config, tmp_path / "index", monkeypatch)
    assert_same_index(build_index(corpus, output, slash, resume=True), reference)
    shards = [build_index(corpus, tmp_path / f"shard{i}", IndexConfig(**{**(config if i else slash).__dict__,
                                                                         "shard_id": i, "shard_num": 2}))
              for i in range(2)]
    assert_same_index(merge_shards(shards, tmp_path / "merged"), reference)


def test_overwrite_keeps_the_old_index_when_the_new_build_cannot_start(old_index, corpus, config, tmp_path):
    output = tmp_path / "index"
    shutil.copytree(old_index, output)
    malformed = tmp_path / "bad.jsonl"
    malformed.write_text('{"id": "a", "contents": "fine"}\n{"id": "b", "contents": \n')
    with pytest.raises(CorpusError, match=f"{malformed}, line 2: malformed JSON"):
        build_index(malformed, output, config, overwrite=True)
    same_files(output, old_index)
    with pytest.raises(ModelLoadError, match="no-such-model"):
        build_index(corpus, output, IndexConfig(**{**config.__dict__, "encoder": str(tmp_path / "no-such-model")}),
                    overwrite=True)
    same_files(output, old_index)


def test_unencodable_text_stops_the_build_before_encoding(config, tmp_path, encoded):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"id": "a", "contents": "fine"}\n{"id": "b\\ud800", "contents": "x"}\n')
    with pytest.raises(CorpusError, match=f"{corpus}, line 2: the document id holds .*lone surrogate"):
        build_index(corpus, tmp_path / "index", config)
    corpus.write_text('{"id": "a", "contents": "fine"}\n{"id": "b", "contents": "\\udc80"}\n')
    with pytest.raises(CorpusError, match=f"{corpus}, line 2: the text of document 'b' holds"):
        build_index(corpus, tmp_path / "index", config)
    assert encoded == [] and not (tmp_path / "index" / CHUNK_DIR).exists()
