import json
import logging
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pyserini_llara.encoding import CPU_BATCH_TOKENS, LlaraEncoder, length_sorted_batches, pool_placeholders
from pyserini_llara.fingerprint import model_fingerprint
from pyserini_llara.modeling import ModelLoadError, load_model
from pyserini_llara.template import PREDICT_SUFFIX, SUMMARIZE_SUFFIX, MissingLlaraTokensError

WORDS = "the llama is a domesticated camelid used as a pack animal insurance covers the cost of damage".split()


def mixed_texts(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(1, 60)))) for _ in range(n)]


@pytest.fixture(scope="module")
def encoder(tiny_llara):
    return LlaraEncoder.from_pretrained(str(tiny_llara), dtype="float32")


def unbatched(encoder, texts, kind):
    """Each text alone, no padding and no mask: the reference a batched encoding must match."""
    out = []
    with torch.no_grad():
        for ids in encoder.tokenize(texts, kind):
            hidden = encoder.model(input_ids=torch.tensor([ids])).last_hidden_state
            out.append(F.normalize(hidden[0, -8:].mean(0), dim=-1).numpy())
    return np.stack(out)


@pytest.mark.parametrize("kind", ["passage", "query"])
@pytest.mark.parametrize("batch_size", [1, 3, 16, 64])
def test_embeddings_do_not_depend_on_the_batch(encoder, kind, batch_size):
    texts = mixed_texts()
    expected = unbatched(encoder, texts, kind)
    got = encoder.encode(texts, kind, batch_size=batch_size)
    assert got.dtype == np.float32 and got.shape == (len(texts), encoder.dimension)
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def test_matches_the_authors_inference_recipe(encoder):
    """Independent re-statement of the release's README: tokenizer.pad to a multiple of 8, no position ids,
    hidden_states[-1], mean of the last 8, normalise."""
    tokenizer, model = encoder.tokenizer, encoder.model
    texts = mixed_texts(12, seed=1)
    for suffix, kind in [(SUMMARIZE_SUFFIX, "passage"), (PREDICT_SUFFIX, "query")]:
        prefix_ids = tokenizer('"')["input_ids"]
        suffix_ids = tokenizer(suffix)["input_ids"][1:]
        features = []
        for text in texts:
            text_ids = tokenizer(text, max_length=512, truncation=True, add_special_tokens=False)["input_ids"]
            ids = prefix_ids + text_ids + suffix_ids
            features.append({"input_ids": ids, "attention_mask": [1] * len(ids)})
        batch = tokenizer.pad(features, padding=True, pad_to_multiple_of=8, return_tensors="pt")
        with torch.no_grad():
            out = model(**batch, return_dict=True, output_hidden_states=True)
        reference = F.normalize(out.hidden_states[-1][:, -8:, :].mean(1), dim=-1).numpy()
        np.testing.assert_allclose(encoder.encode(texts, kind), reference, atol=1e-5, rtol=0)


def test_queries_and_passages_use_different_prompts(encoder):
    text = ["what does a llama carry"]
    assert not np.allclose(encoder.encode_queries(text), encoder.encode_passages(text))


def test_pooling_refuses_right_padding():
    hidden = torch.randn(2, 12, 4)
    mask = torch.ones(2, 12, dtype=torch.long)
    mask[1, -2:] = 0
    with pytest.raises(ValueError, match="left-padded"):
        pool_placeholders(hidden, mask)


def test_pooling_is_the_normalised_mean_of_the_last_eight():
    hidden = torch.zeros(1, 10, 2)
    hidden[0, 2:, 0] = 3.0
    hidden[0, :2, 1] = 100.0  # outside the window: ignored
    assert pool_placeholders(hidden, torch.ones(1, 10)).tolist() == [[1.0, 0.0]]


def test_length_sorted_batches_cover_every_index_once_longest_first():
    batches = length_sorted_batches([3, 9, 1, 7, 5], 2)
    assert batches == [[1, 3], [4, 0], [2]]


def test_token_budget_puts_long_texts_in_small_batches_and_short_ones_in_large():
    assert length_sorted_batches([100, 10, 60, 50, 12, 11], 4, max_tokens=120) == [[0], [2, 3], [4, 5, 1]]
    assert length_sorted_batches([500, 20], 4, max_tokens=120) == [[0], [1]]  # too long for the budget: alone


def test_cpu_batches_hold_at_most_the_cpu_token_budget(encoder):
    lengths = [600] * 10 + [40] * 100
    batches = encoder.batches(lengths)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert max(len(b) * max(lengths[i] for i in b) for b in batches) <= CPU_BATCH_TOKENS
    assert max(len(b) for b in batches) == encoder.batch_size  # short texts still fill a batch of texts


def test_embeddings_do_not_depend_on_the_token_budget(encoder):
    texts = mixed_texts(12, seed=2)
    tight = LlaraEncoder(encoder.model, encoder.tokenizer, batch_size=8, batch_tokens=90)
    assert len(tight.batches([len(x) for x in tight.tokenize(texts, "passage")])) > 2
    np.testing.assert_allclose(tight.encode_passages(texts), unbatched(encoder, texts, "passage"), atol=1e-5, rtol=0)


def test_empty_input_gives_an_empty_matrix(encoder):
    assert encoder.encode_passages([]).shape == (0, encoder.dimension)


def test_bf16_weights_stay_close_to_fp32(tiny_llara, encoder):
    texts = mixed_texts(8)
    half = LlaraEncoder.from_pretrained(str(tiny_llara), dtype="bfloat16")
    cosine = (half.encode_passages(texts) * encoder.encode_passages(texts)).sum(1)
    assert cosine.min() > 0.99


def test_unadapted_model_is_refused_unless_tokens_are_asked_for(tiny_base, caplog):
    with pytest.raises(MissingLlaraTokensError, match="not a LLaRA checkpoint"):
        LlaraEncoder.from_pretrained(str(tiny_base), dtype="float32")
    with caplog.at_level(logging.WARNING):
        encoder = LlaraEncoder.from_pretrained(str(tiny_base), add_tokens=True, dtype="float32")
    assert "not LLaRA-adapted" in caplog.text
    first = encoder.encode_passages(["a llama"])
    again = LlaraEncoder.from_pretrained(str(tiny_base), add_tokens=True, dtype="float32").encode_passages(["a llama"])
    np.testing.assert_array_equal(first, again)  # the new token rows are deterministic


def test_new_token_rows_are_the_mean_or_transformers_random_init(tiny_base):
    from transformers import AutoModelForCausalLM

    from pyserini_llara.modeling import load_model

    original = AutoModelForCausalLM.from_pretrained(tiny_base)
    old = original.get_input_embeddings().weight.shape[0]

    def rows(**kwargs):
        model, _ = load_model(str(tiny_base), add_tokens=True, causal_lm=True, dtype="float32", **kwargs)
        for matrix, before in ((model.get_input_embeddings(), original.get_input_embeddings()),
                               (model.get_output_embeddings(), original.get_output_embeddings())):
            torch.testing.assert_close(matrix.weight[:old], before.weight, rtol=0, atol=0)
        return [m.weight[old:].detach() for m in (model.get_input_embeddings(), model.get_output_embeddings())]

    for new, before in zip(rows(), (original.get_input_embeddings(), original.get_output_embeddings())):
        assert new.shape[0] == 16
        torch.testing.assert_close(new, before.weight.mean(0, keepdim=True).expand_as(new), rtol=0, atol=1e-7)
    first, again = rows(new_token_init="random"), rows(new_token_init="random")
    other = rows(new_token_init="random", seed=1)
    for a, b, c in zip(first, again, other):
        assert torch.equal(a, b) and not torch.equal(a, c)  # drawn from the seed
        assert 0.015 < a.std() < 0.025 and abs(a.mean()) < 0.005  # normal(0, initializer_range 0.02)
    with pytest.raises(ValueError, match="new-token init must be one of mean, random"):
        rows(new_token_init="zeros")


def test_lora_adapter_directory_loads_merged(tiny_llara, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_llara)
    torch.manual_seed(1)
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                 init_lora_weights=False))
    peft_model.save_pretrained(tmp_path / "adapter")
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(tiny_llara)

    merged = peft_model.merge_and_unload()
    tokenizer = LlaraEncoder.from_pretrained(str(tiny_llara), dtype="float32").tokenizer
    reference = LlaraEncoder(merged.get_decoder(), tokenizer)
    texts = mixed_texts(5)
    from_dir = LlaraEncoder.from_pretrained(str(tmp_path / "adapter"), dtype="float32")
    explicit = LlaraEncoder.from_pretrained(str(tiny_llara), lora=str(tmp_path / "adapter"), dtype="float32")
    np.testing.assert_allclose(from_dir.encode_passages(texts), reference.encode_passages(texts), atol=1e-5)
    np.testing.assert_allclose(explicit.encode_queries(texts), reference.encode_queries(texts), atol=1e-5)
    plain = LlaraEncoder.from_pretrained(str(tiny_llara), dtype="float32").encode_passages(texts)
    assert not np.allclose(plain, reference.encode_passages(texts), atol=1e-3)


def test_unreachable_hub_model_error_names_it_and_says_how_to_pass_a_path(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # fail fast instead of retrying
    with pytest.raises(ModelLoadError, match=r"BAAI/LLARA-nonexistent.*--encoder llara:DIR"):
        load_model("BAAI/LLARA-nonexistent")


def test_model_fingerprint_ignores_spelling_and_copies_but_not_other_weights(tiny_llara, tmp_path):
    from safetensors.torch import load_file, save_file

    copy = shutil.copytree(tiny_llara, tmp_path / "moved")
    link = tmp_path / "link"
    link.symlink_to(tiny_llara)
    same = {model_fingerprint(str(p)) for p in (tiny_llara, f"{tiny_llara}/", copy, link)}
    assert len(same) == 1
    weights = load_file(copy / "model.safetensors")
    name = next(iter(weights))
    weights[name] = weights[name] + 1e-3
    save_file(weights, copy / "model.safetensors", metadata={"format": "pt"})
    assert model_fingerprint(str(copy)) not in same
