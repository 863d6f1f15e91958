"""Fine-tuning data in the layouts people share (FlagEmbedding, Tevatron, Tevatron docids), each from JSONL or a
local Hugging Face dataset (save_to_disk, parquet, JSON): all read to the same examples."""

import json

import pytest

from adaptation.data.groups import TrainDataError, TrainExample, read_corpus_texts, read_examples

CORPUS = [{"docid": "d1", "title": "Llama", "text": "an animal"}, {"docid": "d2", "title": "", "text": "untitled"},
          {"docid": "d3", "title": "Car", "text": "insurance covers damage"},
          {"docid": "d4", "title": "Wiki", "text": "an encyclopedia"}]
GROUPS = [("what is a llama", ["d1"], ["d2", "d3"]), ("who writes wikipedia", ["d4"], ["d1", "d3"])]
TEXT = {doc["docid"]: f"{doc['title'] or '-'} {doc['text']}" for doc in CORPUS}  # the release's join
EXPECTED = [TrainExample(q, tuple(TEXT[d] for d in pos), tuple(TEXT[d] for d in neg)) for q, pos, neg in GROUPS]
BY_ID = {doc["docid"]: doc for doc in CORPUS}

LAYOUTS = {
    "flagembedding": lambda q, pos, neg: {"query": q, "pos": [TEXT[d] for d in pos], "neg": [TEXT[d] for d in neg]},
    "tevatron": lambda q, pos, neg: {"query_id": q[:4], "query": q, "positive_passages": [BY_ID[d] for d in pos],
                                     "negative_passages": [BY_ID[d] for d in neg]},
    "tevatron-docids": lambda q, pos, neg: {"query_id": q[:4], "query_text": q, "positive_document_ids": pos,
                                            "negative_document_ids": neg},
}


def write(records: list[dict], source: str, path):
    """``records`` as a JSONL file, a save_to_disk directory, a parquet file, a JSON-lines file, or parquet shards."""
    from datasets import Dataset

    if source == "jsonl":
        target = path / "train.jsonl"
        target.write_text("".join(json.dumps(r) + "\n" for r in records))
        return target
    dataset = Dataset.from_list(records)
    if source == "save_to_disk":
        dataset.save_to_disk(str(path / "saved"))
        return path / "saved"
    if source == "parquet":
        dataset.to_parquet(str(path / "train.parquet"))
        return path / "train.parquet"
    if source == "json":
        dataset.to_json(str(path / "train.json"))
        return path / "train.json"
    (path / "shards").mkdir()
    for i in range(len(records)):
        dataset.select([i]).to_parquet(str(path / "shards" / f"train-{i:05d}.parquet"))
    return path / "shards"


@pytest.mark.parametrize("source", ["jsonl", "save_to_disk", "parquet", "json", "parquet-directory"])
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_every_layout_from_every_source_reads_the_same_examples(layout, source, tmp_path):
    (tmp_path / "corpus").mkdir()
    train = write([LAYOUTS[layout](*group) for group in GROUPS], source, tmp_path)
    corpus = read_corpus_texts(str(write(CORPUS, "save_to_disk", tmp_path / "corpus")))  # Tevatron's corpora
    assert read_examples(train, corpus=corpus if layout == "tevatron-docids" else None) == EXPECTED


def test_docids_need_the_corpus(tmp_path):
    train = write([LAYOUTS["tevatron-docids"](*GROUPS[0])], "jsonl", tmp_path)
    with pytest.raises(TrainDataError, match=r"train.jsonl, line 1, positive_document_ids\[0\]: .*pass the corpus"):
        read_examples(train)


def test_a_corpus_in_pyserini_jsonl_joins_titles_the_same_way(tmp_path):
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps({"id": d["docid"], "title": d["title"], "text": d["text"]}) + "\n"
                            for d in CORPUS))
    assert read_corpus_texts(str(path)) == TEXT


def test_an_unknown_layout_names_the_layouts_accepted(tmp_path):
    train = write([{"question": "q", "answers": ["a"]}], "jsonl", tmp_path)
    with pytest.raises(TrainDataError, match=r"train.jsonl, line 1: no known layout \(found answers, question\); "
                                             r"training data must be FlagEmbedding \(query, pos, neg\); or Tevatron "
                                             r"\(query, positive_passages, negative_passages\); or Tevatron docids"):
        read_examples(train)


def test_the_layout_is_detected_per_source_and_a_bad_record_is_named(tmp_path):
    records = [LAYOUTS["tevatron"](*GROUPS[0]), {"query": "q", "positive_passages": []}]
    with pytest.raises(TrainDataError, match=r"parquet, record 2: query 'q' has no positive passage "
                                             r"\(`positive_passages` is missing or empty\)"):
        read_examples(write(records, "parquet", tmp_path))


def test_a_dataset_dict_gives_its_train_split_and_several_other_splits_are_refused(tmp_path):
    from datasets import Dataset, DatasetDict

    records = [LAYOUTS["tevatron"](*group) for group in GROUPS]
    DatasetDict({"train": Dataset.from_list(records), "dev": Dataset.from_list(records[:1])}).save_to_disk(
        str(tmp_path / "dict"))
    assert read_examples(tmp_path / "dict") == EXPECTED
    DatasetDict({"a": Dataset.from_list(records), "b": Dataset.from_list(records)}).save_to_disk(str(tmp_path / "ab"))
    with pytest.raises(TrainDataError, match="holds the splits a, b; pass the directory of one of them"):
        read_examples(tmp_path / "ab")


def test_a_directory_that_is_no_dataset_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(TrainDataError, match="is a directory but no Hugging Face dataset"):
        read_examples(tmp_path)
