"""Encoded queries appear whole or not at all, prove their pickle before Pyserini unpickles it, are checked
against the index, and never replace what pyserini_llara.queries did not write."""

import json
import logging
import os
import pickle
import shutil

import pytest

from pyserini_llara import queries
from pyserini_llara.encoding import LlaraEncoder
from pyserini_llara.queries import QueryEncodingConfig, encode_queries, main
from pyserini_llara.records import EncodedQueriesMeta
from test_doors import TOPICS, error_line, other_models, search, world  # noqa: F401 (fixtures)

pytestmark = pytest.mark.pyserini  # through Pyserini: runs on every CI leg


class Crash(BaseException):
    """Stands for a kill: no ``except Exception`` can catch it."""


def crash_when_the_record_is_saved(monkeypatch):
    def save(self, directory):
        raise Crash(directory)
    monkeypatch.setattr(EncodedQueriesMeta, "save", save)


@pytest.fixture(scope="module")
def ours(world, tmp_path_factory):
    return encode_queries(str(world.root / "topics.tsv"), tmp_path_factory.mktemp("q") / "ours",
                          QueryEncodingConfig(encoder=str(world.model)))


def copy_of(directory, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(directory, copy)
    return copy


def test_an_index_directory_is_not_replaced_by_encoded_queries(world, tmp_path, capsys):
    index = copy_of(world.index, tmp_path)
    meta = (index / "meta.json").read_bytes()
    assert main(["--topics", str(world.root / "topics.tsv"), "--output", str(index),
                 "--encoder", f"llara:{world.model}", "--overwrite"]) == 1
    assert "is an index directory" in error_line(capsys)
    assert (index / "meta.json").read_bytes() == meta and not (index / "embedding.pkl").exists()


@pytest.fixture
def encoded(monkeypatch):
    calls = []
    real = LlaraEncoder.encode_queries

    def encode(self, texts, **kwargs):
        calls.append(len(texts))
        return real(self, texts, **kwargs)

    monkeypatch.setattr(LlaraEncoder, "encode_queries", encode)
    return calls


@pytest.mark.parametrize("place", ["a-file", "under-a-file"])
def test_the_output_is_checked_before_any_query_is_encoded(place, world, tmp_path, capsys, encoded):
    (tmp_path / "file").write_text("the user's own")
    output = tmp_path / "file" if place == "a-file" else tmp_path / "file" / "queries"
    assert main(["--topics", str(world.root / "topics.tsv"), "--output", str(output),
                 "--encoder", f"llara:{world.model}"]) == 1
    assert str(tmp_path / "file") in error_line(capsys)
    assert encoded == [] and (tmp_path / "file").read_text() == "the user's own"


def test_a_users_files_are_not_replaced_even_with_overwrite(world, tmp_path, capsys):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("the user's own")
    assert main(["--topics", str(world.root / "topics.tsv"), "--output", str(tmp_path / "mine"),
                 "--encoder", f"llara:{world.model}", "--overwrite"]) == 1
    assert "did not write (notes.txt)" in error_line(capsys)


def test_a_kill_while_replacing_leaves_the_old_queries_whole(world, other_models, ours, tmp_path, monkeypatch):
    directory = copy_of(ours, tmp_path)
    before = {name: (directory / name).read_bytes() for name in ("embedding.pkl", "meta.json")}
    with monkeypatch.context() as patch:
        crash_when_the_record_is_saved(patch)
        with pytest.raises(Crash):
            encode_queries(str(world.root / "topics.tsv"), directory,
                           QueryEncodingConfig(encoder=str(other_models.same_size)), overwrite=True)
    assert {name: (directory / name).read_bytes() for name in before} == before
    encode_queries(str(world.root / "topics.tsv"), directory, QueryEncodingConfig(encoder=str(other_models.same_size)),
                   overwrite=True)
    assert EncodedQueriesMeta.load(directory).model == str(other_models.same_size)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy"]  # no staging left behind


def test_a_first_write_killed_half_way_is_not_refused_on_the_rerun(world, ours, tmp_path, monkeypatch):
    directory = tmp_path / "queries"
    with monkeypatch.context() as patch:
        crash_when_the_record_is_saved(patch)
        with pytest.raises(Crash):
            encode_queries(str(world.root / "topics.tsv"), directory, QueryEncodingConfig(encoder=str(world.model)))
    assert not (directory / "embedding.pkl").exists()
    encode_queries(str(world.root / "topics.tsv"), directory, QueryEncodingConfig(encoder=str(world.model)))
    assert (directory / "embedding.pkl").read_bytes() == (ours / "embedding.pkl").read_bytes()


class RunsACommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_pickle_that_is_not_the_one_recorded_is_never_unpickled(world, ours, tmp_path, capsys):
    directory = copy_of(ours, tmp_path)
    marker = tmp_path / "ran"
    (directory / "embedding.pkl").write_bytes(pickle.dumps(RunsACommand(marker)))
    assert search(world, "--index", world.index, "--encoded-queries", directory, output=tmp_path / "run") == 1
    assert "embedding.pkl has" in error_line(capsys)
    assert not marker.exists() and not (tmp_path / "run").exists()


def test_a_corrupt_record_is_one_line_and_a_missing_one_is_said(world, ours, tmp_path, capsys, caplog):
    directory = copy_of(ours, tmp_path)
    (directory / "meta.json").write_text("{")
    assert search(world, "--index", world.index, "--encoded-queries", directory, output=tmp_path / "run") == 1
    assert "meta.json" in error_line(capsys) and not (tmp_path / "run").exists()
    (directory / "meta.json").unlink()
    with caplog.at_level(logging.WARNING):
        assert search(world, "--index", world.index, "--encoded-queries", directory, output=tmp_path / "run") == 0
    assert f"encoded queries {directory} has no pyserini-llara record" in caplog.text


def test_a_query_missing_from_the_encoded_queries_is_found_before_the_run_file(world, ours, tmp_path, capsys):
    topics = tmp_path / "topics.tsv"
    topics.write_text((world.root / "topics.tsv").read_text() + "q9\ta query nobody encoded\n")
    assert search(world, "--index", world.index, "--encoded-queries", ours, "--topics", topics,
                  output=tmp_path / "run") == 1
    line = error_line(capsys)
    assert f"1 of the {len(TOPICS) + 1} queries" in line and "q9 'a query nobody encoded'" in line
    assert not (tmp_path / "run").exists()


def test_the_queries_prompt_and_precision_are_checked_against_the_index(world, ours, tmp_path, capsys, caplog):
    directory = copy_of(ours, tmp_path)
    meta = json.loads((directory / "meta.json").read_text())
    (directory / "meta.json").write_text(json.dumps({**meta, "prompt": '"{query}"'}))
    assert search(world, "--index", world.index, "--encoded-queries", directory, output=tmp_path / "run") == 1
    assert "encoded with the prompt" in error_line(capsys)
    (directory / "meta.json").write_text(json.dumps({**meta, "dtype": "bfloat16"}))
    with caplog.at_level(logging.WARNING):
        assert search(world, "--index", world.index, "--encoded-queries", directory, output=tmp_path / "run") == 0
    assert "encoded in bfloat16" in caplog.text and "holds float32 vectors" in caplog.text


def test_the_record_holds_the_pickles_hash(ours):
    meta = EncodedQueriesMeta.load(ours)
    assert meta.files == queries.prove(ours, ["embedding.pkl"], whole=True)
