"""An index's record proves its files by content, and nothing a record does not list is deleted or replaced."""

import json
import re
import shutil

import pytest

from pyserini_llara.index import IndexBuildError, build_index, build_index_distributed, merge_shards
from pyserini_llara.index.cli import main
from test_index import N_DOCS, config, corpus, reference, shard_set, tamper  # noqa: F401 (fixtures)
from test_index_recovery import encoded, identical, one_launched_process  # noqa: F401 (fixtures)


def test_a_launched_build_removes_only_the_shard_files_it_wrote(one_launched_process, corpus, config, reference,
                                                                tmp_path):
    work = tmp_path / "index.shards"
    work.mkdir()
    (work / "notes.txt").write_text("the user's own")
    build_index_distributed(corpus, tmp_path / "index", config)
    identical(tmp_path / "index", reference)
    assert sorted(p.name for p in work.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("entry", ["chunks", "index"])
def test_overwrite_never_replaces_what_no_record_lists(entry, reference, corpus, config, tmp_path):
    """A user's chunks/ (their corpus, say) or a file named index beside an index of ours stays as it is."""
    output = tmp_path / "out"
    if entry == "chunks":
        shutil.copytree(reference, output)
        (output / "chunks").mkdir()
        (output / "chunks" / "corpus.jsonl").write_text('{"id": "1", "contents": "mine"}\n')
        kept = output / "chunks" / "corpus.jsonl"
    else:
        output.mkdir()
        (output / "index").write_text("the user's own")
        kept = output / "index"
    before = kept.read_bytes()
    with pytest.raises(IndexBuildError, match=f"no pyserini-llara record lists \\({entry}\\)"):
        build_index(corpus, output, config, overwrite=True)
    assert kept.read_bytes() == before


def test_an_encoded_queries_directory_is_not_an_index(reference, corpus, config, tmp_path):
    output = tmp_path / "queries"
    output.mkdir()
    (output / "meta.json").write_text(json.dumps({
        "model": "m", "lora": None, "add_tokens": False, "model_fingerprint": "f", "dimension": 64,
        "dtype": "float32", "max_length": 512, "prompt": "p", "topics": "t", "topics_format": "default", "count": 1}))
    with pytest.raises(IndexBuildError, match="holds encoded queries"):
        build_index(corpus, output, config, overwrite=True)


def damage_index(directory, how):
    path = directory / "index"
    if how == "missing":
        path.unlink()
    elif how == "truncated":
        path.write_bytes(path.read_bytes()[:-8])
    else:  # same size, other bytes
        data = bytearray(path.read_bytes())
        data[-4:] = b"\0\0\0\0" if data[-4:] != b"\0\0\0\0" else b"\1\1\1\1"
        path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["missing", "truncated", "rewritten"])
def test_a_complete_record_is_trusted_only_with_its_files(how, reference, corpus, config, tmp_path, encoded):
    output = tmp_path / "index"
    shutil.copytree(reference, output)
    damage_index(output, how)
    build_index(corpus, output, config, resume=True)  # not "already complete": built again
    identical(output, reference)
    assert sum(encoded) == N_DOCS


def test_merge_refuses_a_shard_whose_files_differ_from_its_record(shard_set, tmp_path):
    copy = tmp_path / "shard1"
    shutil.copytree(shard_set[1], copy)
    damage_index(copy, "rewritten")
    with pytest.raises(IndexBuildError, match=f"shard {copy} does not match its meta.json .index differs"):
        merge_shards([shard_set[0], copy], tmp_path / "merged")


def move_first_docid(source, target):
    moved, *rest = (source / "docid").read_text().splitlines(keepends=True)
    (source / "docid").write_text("".join(rest))
    (target / "docid").write_text((target / "docid").read_text() + moved)


@pytest.mark.parametrize("proved", [True, False], ids=["recorded", "older-record"])
def test_merge_refuses_a_docid_moved_between_shards(proved, shard_set, tmp_path):
    """The record's proofs catch it; a record of an older version (no proofs) is caught by the counts."""
    first, second = tmp_path / "a", tmp_path / "b"
    for source, copy in zip(shard_set, (first, second)):
        shutil.copytree(source, copy)
        if not proved:
            meta = json.loads((copy / "meta.json").read_text())
            (copy / "meta.json").write_text(json.dumps({**meta, "files": None}))
    move_first_docid(second, first)
    problem = "does not match its meta.json .docid has" if proved else r"inconsistent: (\d+) docids, (?!\1)\d+ vectors"
    with pytest.raises(IndexBuildError, match=problem):
        merge_shards([first, second], tmp_path / "merged")
    assert not (tmp_path / "merged").exists()


@pytest.mark.parametrize("changes, problem", [
    ({"dimension": 128}, r"vectors of dimension 64, and its meta.json says \d+ of dimension 128"),
    ({"index_type": "IVF2000000000,Flat"}, r"cannot allocate index type 'IVF2000000000,Flat'"),
])
def test_crafted_shard_metadata_is_one_line(changes, problem, shard_set, tmp_path, capsys):
    shards = [tamper(shard, tmp_path, **changes) for shard in shard_set]
    assert main(["merge", "--shards", *map(str, shards), "--output", str(tmp_path / "merged")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.search(problem, err[0]), err
