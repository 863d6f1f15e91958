"""MTEB evaluates a LLaRA model with the query prompt on queries and the passage prompt on titled passages."""

import ir_measures
import pytest

from pyserini_llara.encoding import LlaraEncoder
from pyserini_llara.template import join_title

# mteb is imported by the tests, not here: its import would add seconds to every test worker's collection.


@pytest.fixture(scope="module")
def encoder(tiny_llara):
    return LlaraEncoder.from_pretrained(str(tiny_llara), dtype="float32")


def test_mteb_scores_what_llara_encoding_and_ir_measures_give(encoder, tiny_llara, monkeypatch):
    """MTEB's nDCG@10 on its shipped retrieval task equals an independent run: our encoder, dot product, ir-measures."""
    from mteb.mocks.mock_tasks.retrieval import MockRetrievalTask, base_retrieval_datasplit

    from pyserini_llara.mteb import LlaraMtebEncoder, evaluate

    calls = []
    encode = LlaraEncoder.encode

    def spy(self, texts, kind, **kwargs):
        calls.append((kind, list(texts)))
        return encode(self, texts, kind, **kwargs)

    monkeypatch.setattr(LlaraEncoder, "encode", spy)
    scores = evaluate(LlaraMtebEncoder(str(tiny_llara), encoder=encoder), [MockRetrievalTask()])
    monkeypatch.undo()

    split = base_retrieval_datasplit()
    queries = {q["id"]: q["text"] for q in split["queries"]}
    passages = {d["id"]: join_title(d["title"], d["text"]) for d in split["corpus"]}
    assert ("query", list(queries.values())) in calls
    assert ("passage", list(passages.values())) in calls
    assert {kind for kind, _ in calls} == {"query", "passage"}

    q = encoder.encode_queries(list(queries.values()))
    p = encoder.encode_passages(list(passages.values()))
    run = {qid: {pid: float(score) for pid, score in zip(passages, row)} for qid, row in zip(queries, q @ p.T)}
    expected = ir_measures.calc_aggregate([ir_measures.nDCG @ 10], split["relevant_docs"], run)[ir_measures.nDCG @ 10]
    assert scores["MockRetrievalTask"] == pytest.approx(expected, abs=1e-5)


def test_a_task_without_query_and_passage_sides_is_refused(encoder, tiny_llara):
    from mteb.mocks.mock_tasks.retrieval import MockRetrievalTask

    from pyserini_llara.mteb import LlaraMtebEncoder

    task = MockRetrievalTask()
    with pytest.raises(ValueError, match="different prompts"):
        LlaraMtebEncoder(str(tiny_llara), encoder=encoder).encode([{"text": ["a"]}], task_metadata=task.metadata,
                                                                  hf_split="test", hf_subset="default")


def test_the_default_tasks_are_the_15_retrieval_tasks_of_mteb_english_v1():
    from pyserini_llara.mteb import retrieval_tasks

    names = {task.metadata.name for task in retrieval_tasks()}
    assert names == {"ArguAna", "ClimateFEVER", "CQADupstackRetrieval", "DBPedia", "FEVER", "FiQA2018", "HotpotQA",
                     "MSMARCO", "NFCorpus", "NQ", "QuoraRetrieval", "SCIDOCS", "SciFact", "Touche2020", "TRECCOVID"}
    assert all(task.metadata.main_score == "ndcg_at_10" for task in retrieval_tasks())


def test_the_model_meta_is_filled_from_the_model(encoder, tiny_llara):
    from pyserini_llara.fingerprint import model_fingerprint
    from pyserini_llara.mteb import LlaraMtebEncoder

    meta = LlaraMtebEncoder(str(tiny_llara), encoder=encoder).mteb_model_meta
    assert (meta.name, meta.revision) == (str(tiny_llara), model_fingerprint(str(tiny_llara)))
    assert meta.n_parameters == sum(p.numel() for p in encoder.model.parameters()) > 0
    assert meta.embed_dim == encoder.model.config.hidden_size
    assert meta.max_tokens == encoder.model.config.max_position_embeddings
    assert meta.similarity_fn_name == "dot"
    assert meta.training_datasets is None and meta.adapted_from is None and meta.reference is None


def test_training_datasets_and_base_model_where_known(encoder, tiny_llara, tmp_path):
    import shutil

    import mteb

    from adaptation.export import model_card
    from pyserini_llara.mteb import LlaraMtebEncoder

    released = LlaraMtebEncoder("BAAI/LLARA-passage", encoder=encoder).mteb_model_meta
    assert released.training_datasets == {"MSMARCO"}
    assert all(mteb.get_task(name).metadata.name == name for name in released.training_datasets)
    assert released.reference == "https://huggingface.co/BAAI/LLARA-passage"
    assert released.is_zero_shot_on([mteb.get_task("MSMARCO")]) is False
    trained = shutil.copytree(tiny_llara, tmp_path / "trained")
    (trained / "README.md").write_text(model_card({"base_model": "BAAI/LLARA-passage", "train_data": "x.jsonl"}))
    meta = LlaraMtebEncoder(str(trained), encoder=encoder).mteb_model_meta
    assert meta.adapted_from == "BAAI/LLARA-passage" and meta.training_datasets is None
