"""The joint EBAE/EBAR pass: mask and position ids equal separate passes; losses on hand-checkable cases."""

import math

import pytest
import torch

from adaptation.data.collators import PaperWindows, PretrainCollator
from adaptation.objective import (
    LossWeights,
    PretrainObjective,
    bag_of_words_loss,
    joint_attention_mask,
    joint_position_ids,
    lm_loss,
    pretrain_losses,
)
from pyserini_llara.modeling import load_model
from pyserini_llara.template import left_pad

TEXTS = ["The llama is a domesticated South American camelid, used as a pack animal.",
         "Dense retrieval encodes queries.",
         "Insurance covers the cost of damage to a car after an accident, minus the deductible. What is a llama?"]


@pytest.fixture(scope="module", params=["sdpa", "eager"])
def model_and_collator(request, tiny_llara):
    model, tokenizer = load_model(str(tiny_llara), causal_lm=True, attn_implementation=request.param, dtype="float32")
    return model, PretrainCollator(tokenizer, PaperWindows(64))


def test_position_ids_restart_after_the_text():
    mask = torch.tensor([[0, 0, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1, 1, 1]])
    # Row 0: 2 pads, text of 2, summarize suffix of 3, predict suffix of 2.
    assert joint_position_ids(mask, 3, 2).tolist() == [[0, 0, 0, 1, 2, 3, 4, 2, 3], [0, 1, 2, 3, 4, 5, 6, 4, 5]]


def test_attention_mask_hides_the_summarize_suffix_from_the_predict_suffix():
    mask = torch.tensor([[0, 1, 1, 1, 1, 1]])  # pad, text, summarize x2, predict x2
    allowed = joint_attention_mask(mask, 2, 2)[0, 0] == 0
    expected = torch.tensor([[1, 0, 0, 0, 0, 0],   # padding row: only itself
                             [0, 1, 0, 0, 0, 0],
                             [0, 1, 1, 0, 0, 0],
                             [0, 1, 1, 1, 0, 0],
                             [0, 1, 0, 0, 1, 0],   # predict: text and itself, not the summarize suffix
                             [0, 1, 0, 0, 1, 1]], dtype=torch.bool)
    assert torch.equal(allowed, expected)
    assert joint_attention_mask(mask, 2, 2, torch.bfloat16).min() == torch.finfo(torch.bfloat16).min


def separate_pass_states(model, collator, text: str, kind: str) -> torch.Tensor:
    """Final hidden states of the suffix in an ordinary causal pass over prefix + text + that suffix alone."""
    template = collator.template
    ids = collator.tokenizer(text, add_special_tokens=False)["input_ids"][:collator.text_tokens]
    suffix = template.suffix_ids[kind]
    input_ids, mask, positions = left_pad([[*template.prefix_ids, *ids, *suffix]], collator.tokenizer.pad_token_id)
    out = model(input_ids=input_ids, attention_mask=mask, position_ids=positions, output_hidden_states=True)
    return out.hidden_states[-1][0, -len(suffix):]


@torch.no_grad()
def test_joint_pass_equals_separate_passes_batched(model_and_collator):
    model, collator = model_and_collator
    batch = collator([{"input": t, "output_summarize": t, "output_predict": t} for t in TEXTS])
    assert len(set(batch["attention_mask"].sum(1).tolist())) == 3, "rows of different lengths: padding is tested"
    objective = PretrainObjective(collator.n_summarize, collator.n_predict)
    hidden = model.model  # the body: compare hidden states, not logits
    mask = joint_attention_mask(batch["attention_mask"], collator.n_summarize, collator.n_predict)
    joint = hidden(input_ids=batch["input_ids"], position_ids=batch["position_ids"],
                   attention_mask=mask).last_hidden_state
    assert objective.forward(model, batch).logits.shape[:2] == batch["input_ids"].shape
    s, r = collator.n_summarize, collator.n_predict
    for row, text in enumerate(TEXTS):
        summarize = separate_pass_states(model, collator, text, "passage")
        predict = separate_pass_states(model, collator, text, "query")
        torch.testing.assert_close(joint[row, -r - s:-r], summarize, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(joint[row, -r:], predict, atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_plain_causal_mask_would_break_the_predict_suffix(model_and_collator):
    """Control: without the EBAR rule the predict states differ, so the test above can fail."""
    model, collator = model_and_collator
    batch = collator([{"input": TEXTS[0], "output_summarize": "", "output_predict": ""}])
    plain = model.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    predict = separate_pass_states(model, collator, TEXTS[0], "query")
    assert (plain[0, -collator.n_predict:] - predict).abs().max() > 1e-3


def test_bag_of_words_loss_by_hand():
    vocab = torch.log(torch.tensor([1.0, 2.0, 3.0, 4.0]))  # softmax: 0.1 0.2 0.3 0.4
    logits = torch.full((2, 8, 4), -10.0)
    logits[:, 3] = vocab  # the max over the 8 placeholders picks this row
    ids = torch.tensor([[1, 3, 0], [2, 0, 0]])
    mask = torch.tensor([[True, True, False], [False, False, False]])
    losses = bag_of_words_loss(logits, ids, mask)
    assert losses[0].item() == pytest.approx(-(math.log(0.2) + math.log(0.4)) / 2, rel=1e-5)
    assert losses[1].item() == 0.0
    # Max pooling is per vocabulary entry: a different placeholder may win each word.
    logits[:, 5, 1] = math.log(8.0)  # pooled: 1 8 3 4 -> 1/16 8/16 3/16 4/16
    assert bag_of_words_loss(logits, ids, mask)[0].item() == pytest.approx(-(math.log(0.5) + math.log(0.25)) / 2)


def test_lm_loss_by_hand():
    logits = torch.zeros(1, 4, 3)
    logits[0, 1] = torch.log(torch.tensor([0.5, 0.25, 0.25]))
    logits[0, 2] = torch.log(torch.tensor([0.1, 0.1, 0.8]))
    labels = torch.tensor([[-100, -100, 0, 2]])  # position 1 predicts 0, position 2 predicts 2
    assert lm_loss(logits, labels).item() == pytest.approx(-(math.log(0.5) + math.log(0.8)) / 2, rel=1e-5)
    assert lm_loss(logits, torch.full((1, 4), -100)).item() == 0.0


def test_total_is_the_weighted_sum_release_weights_by_default():
    torch.manual_seed(0)
    logits = torch.randn(2, 12, 5, requires_grad=True)
    batch = {"labels": torch.tensor([[-100] * 3 + [1, 2, 3] + [-100] * 6] * 2),
             "ebae_ids": torch.tensor([[1, 2], [3, 0]]), "ebae_mask": torch.tensor([[True, True], [True, False]]),
             "ebar_ids": torch.tensor([[4, 0], [0, 0]]), "ebar_mask": torch.tensor([[True, False], [False, False]])}
    parts = pretrain_losses(logits, batch, n_predict=3, weights=LossWeights())
    bag_of_words = (parts["ebae"].item() + parts["ebar"].item()) / 2 / 10
    assert parts["loss"].item() == pytest.approx(parts["lm"].item() + bag_of_words)
    # EBAR averages over the rows that have targets only (row 1 has none).
    pooled = logits[0, -8:].max(dim=0).values.log_softmax(-1)
    assert parts["ebar"].item() == pytest.approx(-pooled[4].item(), rel=1e-5)
    pooled = logits[:, -3 - 8:-3].max(dim=1).values.log_softmax(-1)
    expected = (-(pooled[0, 1] + pooled[0, 2]) / 2 - pooled[1, 3]).item() / 2
    assert parts["ebae"].item() == pytest.approx(expected, rel=1e-5)
    only_ebar = pretrain_losses(logits, batch, 3, LossWeights(lm=0, ebae=0, ebar=2.0))
    assert only_ebar["loss"].item() == pytest.approx(2 * parts["ebar"].item())
    only_ebar["loss"].backward()
    assert logits.grad[:, :-8].abs().sum() == 0  # only the predict placeholders get gradient
    with pytest.raises(ValueError):
        LossWeights(lm=0, ebae=0, ebar=0)


def test_joint_pass_under_bf16_autocast(model_and_collator):
    model, collator = model_and_collator
    batch = collator([{"input": t, "output_summarize": t, "output_predict": TEXTS[0]} for t in TEXTS])
    objective = PretrainObjective(collator.n_summarize, collator.n_predict)
    with torch.no_grad():
        full = objective(model, batch)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half = objective(model, batch)
    for key in ("loss", "lm", "ebae", "ebar"):
        assert torch.isfinite(half[key]) and half[key].item() == pytest.approx(full[key].item(), rel=2e-2)
