import json
import os
import shutil
import subprocess
import sys
import uuid

import faiss
import numpy as np
import pytest
import torch

from pyserini_llara.corpus import CorpusError
from pyserini_llara.encoding import LlaraEncoder
from pyserini_llara.index import (
    CHUNK_DIR,
    IndexBuildError,
    IndexConfig,
    IndexMeta,
    build_index,
    merge_shards,
    new_index,
    shard_range,
)
from pyserini_llara.index.cli import main
from tiny import CORPUS, build_tiny_llama

N_DOCS = 37  # not a multiple of the chunk size: the last chunk is short


def texts():
    return [" ".join(CORPUS[j % len(CORPUS)] for j in range(i, i + 1 + i % 4)) for i in range(N_DOCS)]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "corpus.jsonl"
    path.write_text("".join(json.dumps({"id": f"doc{i}", "contents": t}) + "\n" for i, t in enumerate(texts())))
    return path


@pytest.fixture(scope="module")
def config(tiny_llara):
    return IndexConfig(encoder=f"llara:{tiny_llara}", dtype="float32", batch_size=4, chunk_size=8)


@pytest.fixture(scope="module")
def reference(corpus, config, tmp_path_factory):
    """One uninterrupted single-process build: what every other way of building must reproduce."""
    return build_index(corpus, tmp_path_factory.mktemp("ref") / "index", config)


def vectors(directory):
    index = faiss.read_index(str(directory / "index"))
    return index.reconstruct_n(0, index.ntotal)


def assert_same_index(a, b):
    assert (a / "docid").read_bytes() == (b / "docid").read_bytes()
    np.testing.assert_array_equal(vectors(a), vectors(b))


def test_layout_is_what_pyserini_reads(reference, tiny_llara):
    assert sorted(p.name for p in reference.iterdir()) == ["docid", "index", "meta.json"]
    assert (reference / "docid").read_text().splitlines() == [f"doc{i}" for i in range(N_DOCS)]
    index = faiss.read_index(str(reference / "index"))
    assert isinstance(index, faiss.IndexFlatIP) and index.ntotal == N_DOCS and index.d == 64
    meta = json.loads((reference / "meta.json").read_text())
    assert meta["model"] == str(tiny_llara) and meta["dimension"] == 64 and meta["count"] == N_DOCS
    assert meta["index_type"] == "Flat" and meta["complete"] and (meta["shard_id"], meta["shard_num"]) == (0, 1)


@pytest.mark.parametrize("fast", [None, "bfloat16"])
def test_meta_records_the_precision_auto_resolved_to(corpus, config, tmp_path, monkeypatch, fast):
    from pyserini_llara import precision

    monkeypatch.setattr(precision, "fast_low_precision", lambda device: fast)
    output = build_index(corpus, tmp_path / "index", IndexConfig(**{**config.__dict__, "dtype": "auto"}))
    assert IndexMeta.load(output).dtype == (fast or "float32")


def test_vectors_are_the_encoders_passage_embeddings(reference, tiny_llara):
    expected = LlaraEncoder.from_pretrained(str(tiny_llara), dtype="float32").encode_passages(texts())
    np.testing.assert_allclose(vectors(reference), expected, atol=1e-5)
    norms = np.linalg.norm(vectors(reference), axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-5)


@pytest.mark.parametrize("total, chunk, shards", [(37, 8, 3), (37, 8, 5), (100, 7, 4), (5, 8, 2), (64, 8, 8)])
def test_shards_are_contiguous_whole_chunks_covering_the_corpus(total, chunk, shards):
    ranges = [shard_range(total, chunk, i, shards) for i in range(shards)]
    assert ranges[0][0] == 0 and ranges[-1][1] == total
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
    assert all(start % chunk == 0 for start, end in ranges if start < total)


def build_shards(corpus, config, tmp_path, num):
    return [build_index(corpus, tmp_path / f"shard{i}",
                        IndexConfig(**{**config.__dict__, "shard_id": i, "shard_num": num}))
            for i in range(num)]


def test_merged_shards_equal_the_single_build(reference, corpus, config, tmp_path):
    shards = build_shards(corpus, config, tmp_path, 3)
    merged = merge_shards(list(reversed(shards)), tmp_path / "merged")
    assert_same_index(merged, reference)
    assert IndexMeta.load(merged).count == N_DOCS and IndexMeta.load(merged).shard_num == 1


@pytest.fixture(scope="module")
def shard_set(corpus, config, tmp_path_factory):
    return build_shards(corpus, config, tmp_path_factory.mktemp("shards"), 2)


def tamper(directory, tmp_path, **changes):
    copy = tmp_path / f"tampered-{uuid.uuid4().hex}"
    shutil.copytree(directory, copy)
    meta = json.loads((copy / "meta.json").read_text())
    (copy / "meta.json").write_text(json.dumps({**meta, **changes}))
    return copy


@pytest.mark.parametrize("changes, problem", [
    ({"model": "some/other-model", "model_fingerprint": "0123456789abcdef"}, "model .*other-model .*other weights"),
    ({"dimension": 128}, "dimension"),
    ({"max_length": 64}, "max_length"),
    ({"dtype": "bfloat16"}, "dtype 'float32' vs 'bfloat16'"),
    ({"corpus_count": 99}, "corpus_count"),
    ({"corpus_fingerprint": "0123456789abcdef"}, "corpus_fingerprint"),
    ({"complete": False}, "not complete"),
])
def test_merge_refuses_mismatched_shards(shard_set, tmp_path, changes, problem):
    with pytest.raises(IndexBuildError, match=problem):
        merge_shards([shard_set[0], tamper(shard_set[1], tmp_path, **changes)], tmp_path / "merged")


def test_merge_refuses_a_missing_or_repeated_shard(shard_set, tmp_path):
    with pytest.raises(IndexBuildError, match=r"shards 0..1 exactly once, got shard ids \[0, 0\]"):
        merge_shards([shard_set[0], shard_set[0]], tmp_path / "merged")
    with pytest.raises(IndexBuildError, match=r"got shard ids \[1\]"):
        merge_shards([shard_set[1]], tmp_path / "merged")


class Interrupted(Exception):
    pass


def test_resume_after_interruption_gives_the_uninterrupted_result(reference, corpus, config, tmp_path, monkeypatch):
    calls, crash_at = [], [3]  # dies while encoding the third chunk
    real_encode = LlaraEncoder.encode

    def encode(self, *args, **kwargs):
        calls.append(1)
        if len(calls) in crash_at:
            raise Interrupted
        return real_encode(self, *args, **kwargs)

    monkeypatch.setattr(LlaraEncoder, "encode", encode)
    output = tmp_path / "index"
    with pytest.raises(Interrupted):
        build_index(corpus, output, config)
    assert sorted(p.name for p in (output / CHUNK_DIR).iterdir()) == ["000000.npz", "000001.npz", "meta.json"]
    assert not (output / "index").exists()
    (output / CHUNK_DIR / "000002.npz.tmp").write_bytes(b"half-written chunk")

    with pytest.raises(IndexBuildError, match="already exists"):
        build_index(corpus, output, config)
    calls.clear()
    crash_at.clear()
    build_index(corpus, output, config, resume=True)
    assert len(calls) == 3  # 5 chunks, 2 were saved: none encoded twice
    assert_same_index(output, reference)
    assert not (output / CHUNK_DIR).exists()
    build_index(corpus, output, config, resume=True)  # complete: nothing to do
    assert len(calls) == 3


def interrupted_build(corpus, config, output, monkeypatch, after=2):
    real_encode = LlaraEncoder.encode
    done = []

    def encode(self, *args, **kwargs):
        if len(done) == after:
            raise Interrupted
        done.append(1)
        return real_encode(self, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(LlaraEncoder, "encode", encode)
        with pytest.raises(Interrupted):
            build_index(corpus, output, config)
    return output


def test_resume_refuses_another_model_or_dimension(corpus, config, tmp_path, monkeypatch, tiny_base):
    output = interrupted_build(corpus, config, tmp_path / "index", monkeypatch)
    other = IndexConfig(**{**config.__dict__, "encoder": f"llara:{tiny_base}", "add_tokens": True})
    with pytest.raises(IndexBuildError, match="cannot resume.*model"):
        build_index(corpus, output, other, resume=True)
    narrow = build_tiny_llama(tmp_path / "narrow", hidden_size=32)
    with pytest.raises(IndexBuildError, match="dimension 64 vs 32"):
        build_index(corpus, output, IndexConfig(**{**config.__dict__, "encoder": str(narrow)}), resume=True)
    with pytest.raises(IndexBuildError, match="max_length"):
        build_index(corpus, output, IndexConfig(**{**config.__dict__, "max_length": 16}), resume=True)


def test_resume_refuses_a_changed_corpus(corpus, config, tmp_path, monkeypatch):
    changed = tmp_path / "corpus.jsonl"
    changed.write_text(corpus.read_text())
    output = interrupted_build(changed, config, tmp_path / "index", monkeypatch)
    lines = changed.read_text().splitlines()
    changed.write_text("\n".join([lines[1], lines[0], *lines[2:]]) + "\n")
    with pytest.raises(IndexBuildError, match="corpus changed"):
        build_index(changed, output, config, resume=True)


def test_resume_needs_an_index_directory(corpus, config, tmp_path):
    output = tmp_path / "index"
    output.mkdir()
    (output / "something.txt").write_text("x")
    with pytest.raises(IndexBuildError, match="no meta.json"):
        build_index(corpus, output, config, resume=True)


def test_existing_output_refused_unless_overwrite(reference, corpus, config, tmp_path):
    output = tmp_path / "index"
    shutil.copytree(reference, output)
    (output / "docid").write_text("stale\n")
    with pytest.raises(IndexBuildError, match="already exists and is not empty"):
        build_index(corpus, output, config)
    build_index(corpus, output, config, overwrite=True)
    assert_same_index(output, reference)
    (output / "mine.txt").write_text("precious")
    with pytest.raises(IndexBuildError, match="no pyserini-llara record lists .mine.txt"):
        build_index(corpus, output, config, overwrite=True)
    assert (output / "mine.txt").exists()


def test_bad_corpus_fails_before_any_encoding(config, tmp_path):
    corpus = tmp_path / "bad.jsonl"
    corpus.write_text('{"id": "a", "contents": "x"}\n' * 2)
    with pytest.raises(CorpusError, match=f"{corpus}, line 2: duplicate"):
        build_index(corpus, tmp_path / "index", config)
    assert not (tmp_path / "index" / CHUNK_DIR).exists()


@pytest.mark.parametrize("index_type, problem", [("Bogus", "could not parse index string Bogus"),
                                                 ("PQ5", "multiple of the number of subquantizers")])
def test_bad_index_type_fails_before_encoding(corpus, config, tmp_path, index_type, problem):
    with pytest.raises(IndexBuildError, match=problem):
        build_index(corpus, tmp_path / "index", IndexConfig(**{**config.__dict__, "index_type": index_type}))
    assert not (tmp_path / "index" / CHUNK_DIR).exists()


def test_too_few_vectors_to_train(corpus, config, tmp_path):
    with pytest.raises(IndexBuildError, match="training 'IVF64,Flat' on 37 vectors failed"):
        build_index(corpus, tmp_path / "index", IndexConfig(**{**config.__dict__, "index_type": "IVF64,Flat"}))


@pytest.mark.parametrize("index_type, exact", [
    ("Flat", True), ("HNSW32", True), ("SQfp16", True), ("SQ8", False),
    ("PQ4x4", False), ("IVF2,Flat", True), ("IVF2,PQ4x4", False),
])
def test_index_types_build_and_search(reference, tmp_path, index_type, exact):
    output = merge_shards([reference], tmp_path / "index", index_type=index_type,
                          nprobe=2 if "IVF" in index_type else None)
    index = faiss.read_index(str(output / "index"))
    assert index.ntotal == N_DOCS and index.metric_type == faiss.METRIC_INNER_PRODUCT
    assert IndexMeta.load(output).index_type == index_type
    queries = vectors(reference)
    scores, ids = index.search(queries, 5)
    assert (ids >= 0).all()
    exact_scores = (queries @ queries.T)[np.arange(N_DOCS)[:, None], ids]
    np.testing.assert_allclose(scores, exact_scores, atol=1e-2 if exact else 0.3)
    if exact:
        np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-2)


def test_trained_type_built_directly_and_nprobe_stored(reference, corpus, config, tmp_path):
    output = build_index(corpus, tmp_path / "index",
                         IndexConfig(**{**config.__dict__, "index_type": "IVF4,Flat", "nprobe": 4}))
    index = faiss.read_index(str(output / "index"))
    assert faiss.extract_index_ivf(index).nprobe == 4
    scores, _ = index.search(vectors(reference), 3)
    exact, _ = faiss.read_index(str(reference / "index")).search(vectors(reference), 3)
    np.testing.assert_allclose(scores, exact, atol=1e-5)  # nprobe = all lists: exact search


def test_config_validation():
    with pytest.raises(ValueError, match="build them with index type Flat"):
        IndexConfig(index_type="HNSW32", shard_num=2)
    with pytest.raises(ValueError, match="shard_id must be in 0..1"):
        IndexConfig(shard_id=2, shard_num=2)
    with pytest.raises(ValueError, match="chunk_size must be at least 1"):
        IndexConfig(chunk_size=0)
    with pytest.raises(IndexBuildError, match="nprobe applies to IVF"):
        new_index(8, "Flat", nprobe=3)


def test_ir_datasets_corpus(config, tmp_path):
    import ir_datasets

    tsv = tmp_path / "docs.tsv"
    tsv.write_text("".join(f"p{i}\t{t}\n" for i, t in enumerate(texts()[:10])))
    name = f"local-test/{uuid.uuid4().hex}"
    ir_datasets.registry.register(name, ir_datasets.create_dataset(docs_tsv=str(tsv)))
    output = build_index(name, tmp_path / "index", config)
    assert (output / "docid").read_text().splitlines() == [f"p{i}" for i in range(10)]
    assert IndexMeta.load(output).corpus == name


def test_cli_build_merge_and_errors(reference, corpus, tiny_llara, tmp_path, capsys):
    common = ["--corpus", str(corpus), "--encoder", f"llara:{tiny_llara}", "--dtype", "float32", "--batch-size", "4",
              "--chunk-size", "8"]
    for shard in (0, 1):
        shard_args = ["--output", str(tmp_path / f"s{shard}"), "--shard-id", str(shard), "--shard-num", "2"]
        assert main([*common, *shard_args]) == 0
    assert main(["merge", "--shards", str(tmp_path / "s1"), str(tmp_path / "s0"), "--output", str(tmp_path / "m")]) == 0
    assert_same_index(tmp_path / "m", reference)
    assert main([*common, "--output", str(tmp_path / "m")]) == 1
    assert "already exists" in capsys.readouterr().err
    assert main([*common, "--output", str(tmp_path / "x"), "--index-type", "HNSW32", "--shard-num", "2"]) == 1
    assert "build them with index type Flat" in capsys.readouterr().err


@pytest.mark.slow
def test_torchrun_processes_build_one_index_equal_to_the_single_build(reference, corpus, tiny_llara, tmp_path):
    """Two CPU processes under torchrun: a shard each, merged by rank 0 into the asked index type. (A launched
    build killed while rank 0 merges is test_index_recovery's.)"""
    output = tmp_path / "index"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "pyserini_llara.index", "--corpus", str(corpus), "--output", str(output),
               "--encoder", f"llara:{tiny_llara}", "--dtype", "float32", "--batch-size", "4", "--chunk-size", "8",
               "--index-type", "HNSW8"]
    # Each process with the reference's thread count: MKL's AVX2 sgemm rounds differently with another one
    # (torchrun's default is 1), which would move the last bit of some vectors.
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    run = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "encoding shard 0/2" in run.stderr and "encoding shard 1/2" in run.stderr
    assert_same_index(output, reference)
    meta = IndexMeta.load(output)
    assert (meta.index_type, meta.shard_num, meta.complete) == ("HNSW8", 1, True)
    assert isinstance(faiss.read_index(str(output / "index")), faiss.IndexHNSWFlat)
    assert not (tmp_path / "index.shards").exists()


def test_cli_help(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for flag in ("--corpus", "--encoder", "--lora", "--device", "--dtype", "--batch-size", "--max-length",
                 "--index-type", "--shard-id", "--shard-num", "--resume", "--overwrite", "merge --shards",
                 "torchrun", "accelerate launch", "benchmarks/README.md"):
        assert flag in text
