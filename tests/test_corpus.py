import gzip
import json
import uuid

import pytest

from pyserini_llara.corpus import CorpusError, Document, read_corpus, read_jsonl
from pyserini_llara.template import join_title


def write_lines(path, lines):
    path.write_bytes(b"".join(line if isinstance(line, bytes) else (line + "\n").encode() for line in lines))
    return path


def doc(docid, text="some text", **fields):
    return json.dumps({"id": docid, "contents": text, **fields})


def test_reads_contents_title_text_and_id_fields(tmp_path):
    path = write_lines(tmp_path / "c.jsonl", [
        doc("a", "plain contents"),
        json.dumps({"docid": 7, "title": "Llamas", "text": "are camelids"}),
        json.dumps({"_id": "c", "text": "no title at all"}),
        json.dumps({"id": "d", "title": None, "text": "null title"}),
        "",
        "   ",
        json.dumps({"id": "e", "contents": "contents wins", "title": "T", "text": "ignored"}),
    ])
    assert list(read_corpus(path)) == [
        Document("a", "plain contents"),
        Document("7", join_title("Llamas", "are camelids")),
        Document("c", "no title at all"),
        Document("d", join_title(None, "null title")),
        Document("e", "contents wins"),
    ]
    assert join_title("Llamas", "are camelids") == "Llamas are camelids"


def test_directory_reads_jsonl_and_gz_files_in_name_order(tmp_path):
    write_lines(tmp_path / "b.jsonl", [doc("b1"), doc("b2")])
    with gzip.open(tmp_path / "a.jsonl.gz", "wt") as out:
        out.write(doc("a1") + "\n")
    (tmp_path / "notes.txt").write_text("not a corpus file")
    assert [d.docid for d in read_corpus(tmp_path)] == ["a1", "b1", "b2"]


def test_streams_documents_before_a_later_bad_line(tmp_path):
    path = write_lines(tmp_path / "c.jsonl", [doc("a"), "{broken"])
    docs = read_jsonl(path)
    assert next(docs).docid == "a"
    with pytest.raises(CorpusError):
        next(docs)


@pytest.mark.parametrize("bad_line, problem", [
    ('{"id": "x", "contents": "unterminated', "malformed JSON"),
    ('["a", "list"]', "expected a JSON object"),
    ('{"contents": "no id here"}', "no document id"),
    ('{"id": "x"}', "has no text"),
    ('{"id": "x", "contents": 5}', "has no text"),
    ('{"id": "x", "title": "T"}', "has no text"),
    ('{"id": "x", "title": 3, "text": "t"}', "title of document 'x' must be a string"),
    ('{"id": "two words", "contents": "t"}', "contains whitespace"),
    ('{"id": "", "contents": "t"}', "is empty"),
    ('{"id": [1], "contents": "t"}', "must be a string or an integer"),
    (b'{"id": "x", "contents": "caf\xe9"}\n', "not valid UTF-8"),
    ('{"id": "x\\ud800", "contents": "t"}', "the document id holds '\\ud800' at character 2, a lone surrogate"),
    ('{"id": "x", "contents": "a\\udfff b"}', "the text of document 'x' holds '\\udfff' at character 2"),
    ('{"id": "x", "title": "\\ud83d", "text": "t"}', "the text of document 'x' holds '\\ud83d' at character 1"),
])
def test_bad_line_names_file_line_and_problem(tmp_path, bad_line, problem):
    path = write_lines(tmp_path / "corpus.jsonl", [doc("ok1"), doc("ok2"), bad_line, doc("ok3")])
    with pytest.raises(CorpusError) as error:
        list(read_corpus(path))
    assert f"{path}, line 3" in str(error.value)
    assert problem in str(error.value)


def test_truncated_gzip_names_the_file_and_the_last_good_line(tmp_path):
    data = gzip.compress("".join(doc(f"d{i}", "some words " * 20) + "\n" for i in range(200)).encode())
    path = tmp_path / "corpus.jsonl.gz"
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(CorpusError, match=rf"{path}: the gzip data is truncated or corrupt after line \d+ .*"
                                          "compress the file again"):
        list(read_corpus(path))
    path.write_bytes(b"plain text, not gzip")
    with pytest.raises(CorpusError, match="truncated or corrupt after line 0"):
        list(read_corpus(path))


def test_duplicate_docid_names_both_places(tmp_path):
    write_lines(tmp_path / "a.jsonl", [doc("x"), doc("dup")])
    second = write_lines(tmp_path / "b.jsonl", [doc("y"), doc("dup")])
    with pytest.raises(CorpusError) as error:
        list(read_corpus(tmp_path))
    message = str(error.value)
    assert f"{second}, line 2" in message and "duplicate document id 'dup'" in message
    assert f"first at {tmp_path / 'a.jsonl'}, line 2" in message


def test_integer_and_string_ids_collide(tmp_path):
    path = write_lines(tmp_path / "c.jsonl", [json.dumps({"id": 1, "contents": "t"}), doc("1")])
    with pytest.raises(CorpusError, match="duplicate document id '1'"):
        list(read_corpus(path))


def test_directory_without_corpus_files(tmp_path):
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(CorpusError, match="no \\*.jsonl"):
        list(read_corpus(tmp_path))


def test_unknown_source_is_refused(tmp_path):
    with pytest.raises(CorpusError, match="neither an existing JSONL file or directory nor an ir-datasets id"):
        read_corpus(tmp_path / "missing.jsonl")


def register_tsv(tmp_path, rows, doc_cls=None):
    import ir_datasets
    from ir_datasets.datasets.base import Dataset
    from ir_datasets.formats import TsvDocs
    from ir_datasets.util import LocalDownload

    path = tmp_path / "docs.tsv"
    path.write_text("".join("\t".join(row) + "\n" for row in rows))
    dataset = (ir_datasets.create_dataset(docs_tsv=str(path)) if doc_cls is None
               else Dataset(TsvDocs(LocalDownload(str(path)), doc_cls=doc_cls)))
    name = f"local-test/{uuid.uuid4().hex}"
    ir_datasets.registry.register(name, dataset)
    return name


def test_ir_datasets_corpus(tmp_path):
    name = register_tsv(tmp_path, [("d1", "first passage"), ("d2", "second passage")])
    assert list(read_corpus(name)) == [Document("d1", "first passage"), Document("d2", "second passage")]


def test_ir_datasets_title_and_text_are_joined_like_jsonl(tmp_path):
    from ir_datasets.datasets.beir import BeirTitleDoc

    name = register_tsv(tmp_path, [("d1", "body text", "A title"), ("d2", "untitled", "")], doc_cls=BeirTitleDoc)
    assert list(read_corpus(name)) == [Document("d1", "A title body text"), Document("d2", "- untitled")]


def test_ir_datasets_duplicate_docid(tmp_path):
    name = register_tsv(tmp_path, [("d1", "a"), ("d2", "b"), ("d1", "c")])
    with pytest.raises(CorpusError, match=f"ir-datasets {name}, document 3: duplicate document id 'd1'"):
        list(read_corpus(name))
