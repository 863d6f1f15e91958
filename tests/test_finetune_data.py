import json

import pytest
import torch

from adaptation.data.collators import ContrastiveCollator
from adaptation.data.groups import ContrastiveDataset, TrainDataError, TrainExample, read_examples
from pyserini_llara.atomic import write_jsonl
from pyserini_llara.encoding import LlaraEncoder
from pyserini_llara.modeling import load_tokenizer
from pyserini_llara.template import NUM_PLACEHOLDERS, Template


def _write(tmp_path, *records):
    path = tmp_path / "train.jsonl"
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def test_item_forms(tmp_path):
    path = _write(tmp_path, {"query": "q", "pos": ["plain text"],
                             "neg": [{"title": "Llama", "text": "an animal"}, {"title": "", "text": "untitled"},
                                     {"docid": "d7"}, {"docid": "d8", "text": "given inline"}]})
    (example,) = read_examples(path, corpus={"d7": "from the corpus"})
    assert example == TrainExample("q", ("plain text",),
                                   ("Llama an animal", "- untitled", "from the corpus", "given inline"))


@pytest.mark.parametrize("record, message", [
    ({"query": "q", "pos": [], "neg": ["n"]}, r"line 2: query 'q' has no positive passage"),
    ({"query": "q", "neg": ["n"]}, r"line 2: query 'q' has no positive passage"),
    ({"query": "q", "pos": ["p"], "neg": []}, r"line 2: query 'q' has no negative passage"),
    ({"query": "q", "pos": ["p"]}, r"line 2: query 'q' has no negative passage"),
    ({"query": "", "pos": ["p"], "neg": ["n"]}, r"line 2: missing or empty `query`"),
    ({"query": "q", "pos": "p", "neg": ["n"]}, r"line 2: `pos` must be a list"),
    ({"query": "q", "pos": ["p"], "neg": [3]}, r"line 2, neg\[0\]: a passage must be"),
    ({"query": "q", "pos": [{"docid": "zz"}], "neg": ["n"]}, r"line 2, pos\[0\]: docid 'zz' is not in the corpus"),
    ("{not json", r"line 2: malformed JSON"),
])
def test_bad_lines_name_file_and_line(tmp_path, record, message):
    path = _write(tmp_path, {"query": "fine", "pos": ["p"], "neg": ["n"]}, record)
    with pytest.raises(TrainDataError, match=rf"train.jsonl, {message}"):
        read_examples(path, corpus={"d1": "x"})


def test_negatives_optional_when_not_required(tmp_path):
    path = _write(tmp_path, {"query": "q", "pos": ["p"]})
    assert read_examples(path, require_negatives=False)[0].negatives == ()
    with pytest.raises(TrainDataError, match="group size 4 needs 3"):
        ContrastiveDataset(read_examples(path, require_negatives=False), group_size=4)
    assert ContrastiveDataset(read_examples(path, require_negatives=False), group_size=1)[0] == ("q", ["p"])


def test_docid_without_corpus_and_missing_file(tmp_path):
    path = _write(tmp_path, {"query": "q", "pos": [{"docid": "d1"}], "neg": ["n"]})
    with pytest.raises(TrainDataError, match="line 1, pos.0.: .*pass the corpus"):
        read_examples(path)
    with pytest.raises(TrainDataError, match="does not exist"):
        read_examples(tmp_path / "nope.jsonl")


def test_groups_are_seeded_and_well_formed(tmp_path):
    examples = [TrainExample(f"q{i}", (f"p{i}a", f"p{i}b"), tuple(f"n{i}.{j}" for j in range(3))) for i in range(5)]
    dataset = ContrastiveDataset(examples, group_size=6, seed=1)
    for index in range(5):
        query, group = dataset[index]
        assert query == f"q{index}" and group[0] in examples[index].positives
        assert len(group) == 6 and set(group[1:]) == set(examples[index].negatives)  # 3 negatives repeated to 5
        assert dataset[index] == (query, group)
    assert [ContrastiveDataset(examples, 3, seed=2)[i] for i in range(5)] != [
        ContrastiveDataset(examples, 3, seed=1)[i] for i in range(5)]


def test_write_then_read_round_trip(tmp_path):
    records = [{"query": "q", "pos": [{"title": "T", "text": "x"}], "neg": ["n1", "n2"]}]
    assert write_jsonl(tmp_path / "t.jsonl", records) == 1
    assert read_examples(tmp_path / "t.jsonl") == [TrainExample("q", ("T x",), ("n1", "n2"))]


def test_collator_matches_encoder_inputs(tiny_llara):
    tokenizer = load_tokenizer(str(tiny_llara))
    template = Template.from_tokenizer(tokenizer)
    collator = ContrastiveCollator(tokenizer, query_max_len=template.overhead("query") + 3,
                                   passage_max_len=template.overhead("passage") + 5)
    long_text = "the llama is a domesticated South American camelid used as a pack animal"
    batch = collator([("what is a llama and where does it live", [long_text, "insurance", "a", "b"]),
                      ("who writes", ["wikipedia", long_text, "c", "d"])])
    assert batch["query_input_ids"].shape[0] == 2 and batch["passage_input_ids"].shape[0] == 8
    for kind in ("query", "passage"):
        ids, mask = batch[f"{kind}_input_ids"], batch[f"{kind}_attention_mask"]
        assert ids.shape[1] % 8 == 0
        assert int(mask.sum(dim=1).max()) <= getattr(collator, f"{kind}_max_len")
        # The placeholders close every row, as in LlaraEncoder's batches.
        placeholders = template.predict_ids if kind == "query" else template.summarize_ids
        assert (ids[:, -NUM_PLACEHOLDERS:] == torch.tensor(placeholders)).all()
    # The same ids the encoder builds for the same text and text budget.
    encoder = LlaraEncoder(None, tokenizer)
    row = batch["passage_input_ids"][0][batch["passage_attention_mask"][0].bool()].tolist()
    assert row == encoder.tokenize([long_text], "passage", max_text_tokens=5)[0]
