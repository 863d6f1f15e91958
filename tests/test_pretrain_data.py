"""Pretraining data: sources, chunking, drop reasons, determinism, streaming, batches, bad inputs."""

import importlib.util
import itertools
import json
from pathlib import Path

import pytest

from adaptation.data.chunking import (
    ChunkConfig,
    DataStats,
    chunk_paragraphs,
    document_examples,
    iter_examples,
    shuffled,
)
from adaptation.data.collators import PaperWindows, PretrainCollator
from adaptation.data.examples import DataError, JsonlExamples
from adaptation.data.sources import read_source
from adaptation.prepare import PrepareArguments, prepare
from adaptation.prepare import main as prepare_main
from adaptation.stopwords import STOPWORDS, remove_stopwords
from pyserini_llara.corpus import Document
from pyserini_llara.offline import gensim_wikipedia_sample
from tiny import CORPUS, train_tokenizer

WORDS = " ".join(CORPUS[:5]).split()


@pytest.fixture(scope="module")
def tokenizer():
    tok = train_tokenizer()
    tok.pad_token = tok.unk_token
    return tok


def n_tokens(tokenizer, text):
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def long_text(words: int, offset: int = 0) -> str:
    return " ".join(WORDS[(offset + i) % len(WORDS)] for i in range(words))


def text_where(tokenizer, budget: int, accept) -> str:
    """The shortest long_text whose chunks (at ``budget``) satisfy ``accept(list of counts)``."""
    for words in range(1, 200):
        counts = [c for _, c in chunk_paragraphs([long_text(words)], tokenizer, budget)]
        if accept(counts):
            return long_text(words)
    raise AssertionError("no such text")


@pytest.mark.parametrize("budget", [12, 16, 40])
def test_chunks_are_consecutive_within_budget_and_cut_between_words(tokenizer, budget):
    paragraphs = [long_text(60), long_text(25, offset=7), long_text(3)]
    chunks = list(chunk_paragraphs(paragraphs, tokenizer, budget))
    assert all(count <= budget for _, count in chunks)
    assert all(count >= budget // 2 for _, count in chunks[:-1])  # backing off to a word boundary costs little
    # Nothing lost, nothing repeated, order kept; chunks end at word boundaries.
    assert " ".join(text.replace("\n", " ") for text, _ in chunks).split() == " ".join(paragraphs).split()
    # Re-tokenised alone, a chunk stays near its budget (its first word loses the leading space).
    assert all(n_tokens(tokenizer, text) <= budget + 3 for text, _ in chunks)


def test_examples_pair_each_chunk_with_the_next(tokenizer):
    stats = DataStats()
    examples = list(document_examples(Document("doc", long_text(80)), tokenizer, 16, 4, stats))
    chunks = [t for t, _ in chunk_paragraphs([long_text(80)], tokenizer, 16)]
    assert [e["input"] for e in examples] == chunks[:len(examples)]
    assert all(e["output_summarize"] == e["input"] for e in examples)
    assert [e["output_predict"] for e in examples] == chunks[1:len(examples) + 1]
    assert stats.examples == len(examples) >= 3


def test_drop_reasons_are_counted(tokenizer):
    stats = DataStats()
    one_chunk = text_where(tokenizer, 16, lambda counts: len(counts) == 1 and counts[0] >= 8)
    docs = [Document("empty", "   \n"), Document("short", "a llama"), Document("one chunk", one_chunk),
            Document("fine", long_text(60))]
    examples = [e for d in docs for e in document_examples(d, tokenizer, 16, 8, stats)]
    assert stats.texts == 4
    assert stats.dropped == {"empty": 1, "too short": 2}
    assert examples and stats.examples == len(examples)
    assert "1 empty" in stats.report() and "2 too short" in stats.report()


def test_short_final_chunk_is_dropped_not_used_as_target(tokenizer):
    text = text_where(tokenizer, 16, lambda counts: len(counts) >= 3 and counts[-1] < 8)
    chunks = list(chunk_paragraphs([text], tokenizer, 16))
    stats = DataStats()
    examples = list(document_examples(Document("d", text), tokenizer, 16, 8, stats))
    assert examples[-1]["output_predict"] == chunks[-2][0]
    assert stats.short_tails == 1


def test_plain_text_jsonl_and_ready_made_sources(tmp_path, tokenizer):
    txt = tmp_path / "a.txt"
    txt.write_text(f"{long_text(30)}\n{long_text(30, 3)}\n\n\n{long_text(50, 9)}\n")
    docs = list(read_source(str(txt)))
    assert [d.docid for d in docs] == [f"{txt}:1", f"{txt}:5"]
    assert len(docs[1].text.split("\n")) == 1

    jsonl = tmp_path / "b.jsonl"
    jsonl.write_text(json.dumps({"id": "1", "contents": long_text(40)}) + "\n\n" + json.dumps({"text": "x"}) + "\n")
    assert [d.text.split("\n") for d in read_source(str(jsonl))] == [[long_text(40)], ["x"]]

    ready = tmp_path / "c.jsonl.gz"
    import gzip
    with gzip.open(ready, "wt") as handle:
        handle.write(json.dumps({"input": "a", "output_summarize": "a", "output_predict": "b", "extra": 1}) + "\n")
    assert list(read_source(str(ready))) == [{"input": "a", "output_summarize": "a", "output_predict": "b"}]

    stats = DataStats()
    examples = list(iter_examples([str(tmp_path)], tokenizer, ChunkConfig(16, 4), stats))
    assert stats.ready_made == 1 and stats.examples == len(examples) > 1
    assert stats.dropped == {"too short": 1}  # {"text": "x"}


@pytest.mark.skipif(importlib.util.find_spec("gensim") is None, reason="gensim (demo extra) not installed")
def test_wikipedia_dump(tmp_path, tokenizer):
    dump = gensim_wikipedia_sample()
    docs = read_source(str(dump))
    first = next(docs)
    paragraphs = first.text.split("\n")
    assert "AccessibleComputing" not in first.docid  # the dump's first page is a redirect, skipped
    assert paragraphs and all("==" not in p and "'''" not in p and "[[" not in p for p in paragraphs)
    stats = DataStats()
    examples = list(itertools.islice(iter_examples([str(dump)], tokenizer, ChunkConfig(64, 16), stats), 50))
    assert len(examples) == 50 and all(e["input"] and e["output_predict"] for e in examples)
    not_wiki = tmp_path / "other.xml"
    not_wiki.write_text("<root><a>text</a></root>")
    with pytest.raises(DataError, match="other.xml is not a Wikipedia XML dump"):
        list(read_source(str(not_wiki)))


def test_shuffle_is_seeded_bounded_and_complete():
    items = [{"i": i} for i in range(100)]
    a = list(shuffled(iter(items), 10, seed=1))
    assert a == list(shuffled(iter(items), 10, seed=1))
    assert a != list(shuffled(iter(items), 10, seed=2)) and a != items
    assert sorted(x["i"] for x in a) == list(range(100))
    assert all(x["i"] < 10 + k for k, x in enumerate(a))  # an item can only come out after it was read
    assert list(shuffled(iter(items), 0, seed=1)) == items


def test_prepare_streams_and_is_deterministic(tmp_path, tokenizer):
    consumed = []

    def endless():
        for i in itertools.count():
            consumed.append(i)
            yield Document(f"doc{i}", long_text(50, i))

    examples = itertools.islice(shuffled((e for d in endless() for e in document_examples(d, tokenizer, 16, 4,
                                                                                           DataStats())), 8, 0), 5)
    assert len(list(examples)) == 5 and len(consumed) < 10  # an endless corpus is read only as far as needed

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(long_text(60, i) for i in range(20)))
    outputs = []
    for name in ("x.jsonl", "y.jsonl"):
        args = PrepareArguments(input=[str(corpus)], output=str(tmp_path / name), tokenizer="unused",
                                chunk_tokens=16, min_chunk_tokens=4, shuffle_buffer=16, seed=3, max_examples=30)
        prepare(args, tokenizer, progress=False)
        outputs.append((tmp_path / name).read_text())
    assert outputs[0] == outputs[1] and len(outputs[0].splitlines()) == 30
    stats = json.loads((tmp_path / "x.jsonl.stats.json").read_text())
    assert stats["written"] == 30 and stats["arguments"]["seed"] == 3
    assert JsonlExamples(tmp_path / "x.jsonl")[29] == json.loads(outputs[0].splitlines()[29])


def test_prepare_cli_writes_release_format(tmp_path, tiny_base):
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n\n".join(long_text(60, i) for i in range(3)))
    out = tmp_path / "out.jsonl"
    prepare_main(["--tokenizer", str(tiny_base), "--input", str(corpus), "--output", str(out),
                  "--chunk_tokens", "16", "--min_chunk_tokens", "4"])
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows and all(set(r) == {"input", "output_summarize", "output_predict"} for r in rows)


def test_help_is_usable(capsys):
    with pytest.raises(SystemExit) as exit_info:
        prepare_main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--input", "--output", "--tokenizer", "--chunk_tokens", "--shuffle_buffer", "Examples:"):
        assert option in text


def test_bad_inputs_name_the_problem(tmp_path, tokenizer):
    with pytest.raises(DataError, match="no such file"):
        list(iter_examples([str(tmp_path / "missing.txt")], tokenizer, ChunkConfig()))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{not json\n')
    with pytest.raises(DataError, match=r"bad\.jsonl:2: not valid JSON"):
        list(iter_examples([str(bad)], tokenizer, ChunkConfig()))
    fields = tmp_path / "fields.jsonl"
    fields.write_text('{"body": "x"}\n')
    with pytest.raises(DataError, match=r"fields\.jsonl:1: no text field .*--text_field"):
        list(iter_examples([str(fields)], tokenizer, ChunkConfig()))
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"ok\n\xff\xfe\x00bad")
    with pytest.raises(DataError, match="binary.txt.*UTF-8"):
        list(iter_examples([str(binary)], tokenizer, ChunkConfig()))
    broken = tmp_path / "broken.txt.bz2"
    broken.write_bytes(b"not bzip2 at all")
    with pytest.raises(DataError, match="broken.txt.bz2"):
        list(iter_examples([str(broken)], tokenizer, ChunkConfig()))
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n  \n")
    with pytest.raises(DataError, match=r"no examples from .*empty\.txt.*0 texts read"):
        prepare(PrepareArguments(input=[str(empty)], output=str(tmp_path / "o.jsonl"), tokenizer="unused"),
                tokenizer, progress=False)
    assert not (tmp_path / "o.jsonl").exists()
    with pytest.raises(DataError, match="ready-made example lacks .*output_predict"):
        JsonlExamples(_write(tmp_path / "r.jsonl", {"input": "a", "output_summarize": "a"}))[0]


def _write(path: Path, record: dict) -> Path:
    path.write_text(json.dumps(record) + "\n")
    return path


def test_stopwords():
    assert len(STOPWORDS) == 179 and {"the", "and", "isn't"} <= STOPWORDS
    assert remove_stopwords("The llama, isn't it a pack animal? Yes.") == "llama pack animal Yes"


def test_collator_builds_left_padded_joint_rows_and_targets(tiny_llara):
    from pyserini_llara.modeling import load_tokenizer
    from pyserini_llara.template import Template

    tok = load_tokenizer(str(tiny_llara))
    template = Template.from_tokenizer(tok)
    collator = PretrainCollator(tok, PaperWindows(6), remove_stopwords=True)
    batch = collator([{"input": "The llama is a pack animal used in the Andes", "output_summarize": "the llama",
                       "output_predict": "Dense retrieval, dense retrieval."},
                      {"input": "llama", "output_summarize": "the a of", "output_predict": "llama"}])
    suffix = [*template.suffix_ids["passage"], *template.suffix_ids["query"]]
    text0 = tok("The llama is a pack animal used in the Andes", add_special_tokens=False)["input_ids"][:6]
    row0 = [*template.prefix_ids, *text0, *suffix]
    assert batch["input_ids"][0].tolist() == row0
    assert batch["input_ids"][1, -len(suffix):].tolist() == suffix
    assert batch["attention_mask"][1].tolist() == [0] * (len(row0) - batch["attention_mask"][1].sum()) + \
        [1] * int(batch["attention_mask"][1].sum())
    assert batch["num_tokens"] == int(batch["attention_mask"].sum())
    # LM labels: the text tokens only.
    labels = batch["labels"][0]
    assert labels[labels != -100].tolist() == text0
    # Targets: distinct ids, stop words and special tokens gone; a row of stop words only has none.
    llama = tok("llama", add_special_tokens=False)["input_ids"]
    assert batch["ebae_ids"][0][batch["ebae_mask"][0]].tolist() == llama
    dense = tok("Dense retrieval dense retrieval", add_special_tokens=False)["input_ids"]
    assert batch["ebar_ids"][0][batch["ebar_mask"][0]].tolist() == list(dict.fromkeys(dense[:6]))
    assert not batch["ebae_mask"][1].any()
    special = set(tok.all_special_ids)
    assert not special & set(batch["ebar_ids"][batch["ebar_mask"]].tolist())


def test_prepared_data_is_made_again_when_the_source_text_changes(tmp_path, tokenizer):
    """The same arguments over an edited source: its content, not its name, keys the prepared examples."""
    from adaptation.pretrain import DataArguments, training_examples

    source = tmp_path / "text.txt"
    source.write_text(f"{long_text(60)}\n")
    args = DataArguments(train_data=[str(source)], chunk_tokens=16, min_chunk_tokens=4)
    first = training_examples(args, tokenizer, str(tmp_path / "run"), "tok")
    inputs = {first[i]["input"] for i in range(len(first))}
    stamp = first.path.stat().st_mtime_ns
    assert training_examples(args, tokenizer, str(tmp_path / "run"), "tok").path.stat().st_mtime_ns == stamp

    source.write_text(f"{long_text(60, 7)}\n")
    again = training_examples(args, tokenizer, str(tmp_path / "run"), "tok")
    assert {again[i]["input"] for i in range(len(again))} != inputs
    assert again[0]["input"] in long_text(60, 7)
