"""Any decoder family: on tiny random models, the joint EBAE/EBAR pass equals two plain passes and batched
encoding equals one text at a time, also where a sliding window is shorter than a row."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from adaptation.data.collators import PaperWindows, PretrainCollator
from adaptation.objective import PretrainObjective, SlidingWindow, sliding_window
from pyserini_llara.encoding import LlaraEncoder
from pyserini_llara.modeling import load_model
from pyserini_llara.template import left_pad
from tiny import build_tiny_family

WINDOW = 12
QWEN_WINDOW = {"use_sliding_window": True, "sliding_window": WINDOW, "max_window_layers": 1}  # layer 2 slides
SLIDING_SOME = {"sliding_window": WINDOW, "layer_types": ["sliding_attention", "full_attention"]}
FAMILIES = {
    # family: its config as its checkpoints ship it (windows, where any, longer than every row here)
    **{family: {} for family in ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "phi3",
                                 "olmo2", "granite", "olmo", "olmo3", "smollm3", "ministral", "helium", "starcoder2",
                                 "cohere", "cohere2", "exaone4", "glm", "stablelm")},
    # a window shorter than the rows: on every layer, or on some (the model picks a mask per layer type)
    "mistral-window": {"model_type": "mistral", "sliding_window": WINDOW},
    "phi3-window": {"model_type": "phi3", "sliding_window": WINDOW},
    "starcoder2-window": {"model_type": "starcoder2", "sliding_window": WINDOW},
    "qwen2-window": {"model_type": "qwen2", **QWEN_WINDOW},
    "qwen3-window": {"model_type": "qwen3", **QWEN_WINDOW},
    "gemma2-window": {"model_type": "gemma2", **SLIDING_SOME},
    "gemma3_text-window": {"model_type": "gemma3_text", **SLIDING_SOME},
    "olmo3-window": {"model_type": "olmo3", **SLIDING_SOME},
    "cohere2-window": {"model_type": "cohere2", **SLIDING_SOME},
    "exaone4-window": {"model_type": "exaone4", **SLIDING_SOME},
}
WINDOWED = [name for name in FAMILIES if name.endswith("-window")]
TEXTS = ["The llama is a domesticated South American camelid, used as a pack animal.",
         "Dense retrieval encodes queries.",
         "Insurance covers the cost of damage to a car after an accident, minus the deductible. What is a llama?"]
WORDS = "the llama is a domesticated camelid used as a pack animal insurance covers the cost of damage".split()


@pytest.fixture(scope="module", params=list(FAMILIES))
def family(request, tmp_path_factory):
    config = dict(FAMILIES[request.param])
    model_type = config.pop("model_type", request.param)
    return request.param, build_tiny_family(tmp_path_factory.mktemp("families") / request.param, model_type, **config)


def plain_pass_logits(model, collator, text: str, kind: str) -> torch.Tensor:
    """Logits over the text and a suffix in an ordinary causal pass (the model's own mask) of prefix + text + suffix."""
    template = collator.template
    ids = collator.tokenizer(text, add_special_tokens=False)["input_ids"][:collator.text_tokens]
    suffix = template.suffix_ids[kind]
    input_ids, mask, positions = left_pad([[*template.prefix_ids, *ids, *suffix]], collator.tokenizer.pad_token_id)
    return model(input_ids=input_ids, attention_mask=mask, position_ids=positions).logits[0, -len(suffix) - len(ids):]


def joint_and_plain(model, collator, window):
    """Per row: (joint logits, plain logits) over text + summarize suffix, then over the predict suffix."""
    batch = collator([{"input": t, "output_summarize": t, "output_predict": t} for t in TEXTS])
    assert len(set(batch["attention_mask"].sum(1).tolist())) == 3, "rows of different lengths: padding is tested"
    joint = PretrainObjective(collator.n_summarize, collator.n_predict, window=window).forward(model, batch).logits
    r = collator.n_predict
    for row, text in enumerate(TEXTS):
        summarize = plain_pass_logits(model, collator, text, "passage")
        predict = plain_pass_logits(model, collator, text, "query")
        yield joint[row, -r - len(summarize):-r], summarize
        yield joint[row, -r:], predict[-r:]


@torch.no_grad()
def test_joint_objective_equals_two_plain_passes(family):
    name, path = family
    model, tokenizer = load_model(str(path), causal_lm=True, dtype="float32")
    collator = PretrainCollator(tokenizer, PaperWindows(64))
    window = sliding_window(model.config)
    if name in WINDOWED:
        assert window is not None and window.size == WINDOW
        assert collator.text_tokens + collator.n_summarize > WINDOW, "rows longer than the window"
    for joint, plain in joint_and_plain(model, collator, window):
        torch.testing.assert_close(joint, plain, atol=1e-4, rtol=1e-4)


@torch.no_grad()
@pytest.mark.parametrize("name", WINDOWED)
def test_without_the_window_the_joint_pass_would_be_wrong(name, tmp_path):
    """Control: the model's window matters on these rows, so the equality above can fail."""
    config = dict(FAMILIES[name])
    path = build_tiny_family(tmp_path / name, config.pop("model_type"), **config)
    model, tokenizer = load_model(str(path), causal_lm=True, dtype="float32")
    gaps = [(joint - plain).abs().max().item()
            for joint, plain in joint_and_plain(model, PretrainCollator(tokenizer, PaperWindows(64)), None)]
    assert max(gaps) > 1e-3


def test_gemma2_loads_with_the_attention_it_supports(family):
    name, path = family
    model, _ = load_model(str(path), dtype="float32")
    expected = "eager" if name.startswith("gemma2") else "sdpa"
    assert model.config._attn_implementation == expected


@torch.no_grad()
def test_batched_encoding_equals_one_text_at_a_time(family):
    _, path = family
    encoder = LlaraEncoder.from_pretrained(str(path), dtype="float32")
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(WORDS, size=int(rng.integers(1, 40)))) for _ in range(8)]
    for kind in ("passage", "query"):
        alone = []
        for ids in encoder.tokenize(texts, kind):
            hidden = encoder.model(input_ids=torch.tensor([ids])).last_hidden_state
            alone.append(F.normalize(hidden[0, -8:].mean(0), dim=-1).numpy())
        np.testing.assert_allclose(encoder.encode(texts, kind, batch_size=5), np.stack(alone), atol=1e-5, rtol=0)


class _Config:
    model_type = "tiny"

    def __init__(self, **values):
        self.__dict__.update(values)


def test_sliding_window_read_from_the_config():
    assert sliding_window(_Config()) is None
    assert sliding_window(_Config(sliding_window=None)) is None
    assert sliding_window(_Config(sliding_window=8)) == SlidingWindow(8, per_layer_type=False)
    assert sliding_window(_Config(sliding_window=8, use_sliding_window=False)) is None
    assert sliding_window(_Config(sliding_window=8, layer_types=["full_attention"] * 2)) is None
    assert sliding_window(_Config(sliding_window=8, layer_types=["sliding_attention", "full_attention"])) == \
        SlidingWindow(8, per_layer_type=True)
    with pytest.raises(ValueError, match="chunked_attention layers; the joint EBAE/EBAR mask"):
        sliding_window(_Config(sliding_window=8, layer_types=["chunked_attention", "full_attention"]))
