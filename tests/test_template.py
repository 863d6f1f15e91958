import pytest

from pyserini_llara.template import (
    PREDICT_SUFFIX,
    PREDICT_TOKENS,
    SUMMARIZE_SUFFIX,
    SUMMARIZE_TOKENS,
    MissingLlaraTokensError,
    Template,
    add_special_tokens,
    join_title,
    left_pad,
)
from tiny import train_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer()


def release_ids(tokenizer, text, suffix, max_length):
    """The authors' inference recipe, written out independently: prefix with specials, suffix minus its first id."""
    prefix_ids = tokenizer('"')["input_ids"]
    suffix_ids = tokenizer(suffix)["input_ids"][1:]
    text_ids = tokenizer(text, max_length=max_length, truncation=True, add_special_tokens=False)["input_ids"]
    return prefix_ids + text_ids + suffix_ids


def test_placeholder_ids_come_from_the_tokenizer_not_from_name_order(tokenizer):
    template = Template.from_tokenizer(tokenizer)
    assert list(template.summarize_ids) == tokenizer.convert_tokens_to_ids(list(SUMMARIZE_TOKENS))
    assert list(template.predict_ids) == tokenizer.convert_tokens_to_ids(list(PREDICT_TOKENS))
    # The fixture adds <s9>.. before <s1>..: ids are not in name order.
    assert min(template.predict_ids) < min(template.summarize_ids)


@pytest.mark.parametrize("kind,suffix", [("passage", SUMMARIZE_SUFFIX), ("query", PREDICT_SUFFIX)])
@pytest.mark.parametrize("max_len", [3, 512])
def test_inputs_match_the_release_recipe_for_a_bos_tokenizer(tokenizer, kind, suffix, max_len):
    template = Template.from_tokenizer(tokenizer)
    text = "What is a llama? The llama is a domesticated South American camelid."
    ours = template.encode(tokenizer, [text], kind, max_len)[0]
    assert ours == release_ids(tokenizer, text, suffix, max_len)
    assert ours[0] == tokenizer.bos_token_id


def test_truncation_cuts_the_text_and_keeps_the_suffix_whole(tokenizer):
    template = Template.from_tokenizer(tokenizer)
    ids = template.encode(tokenizer, ["word " * 300], "passage", 10)[0]
    assert len(ids) == template.overhead("passage") + 10
    assert ids[-8:] == list(template.summarize_ids)
    assert ids[-len(template.suffix_ids["passage"]):] == list(template.suffix_ids["passage"])


def test_no_bos_is_invented_for_a_tokenizer_that_adds_none():
    tokenizer = train_tokenizer(add_bos=False)
    template = Template.from_tokenizer(tokenizer)
    assert tokenizer.bos_token_id not in template.prefix_ids
    assert template.prefix_ids == tuple(tokenizer('"', add_special_tokens=False)["input_ids"])
    # The suffix keeps its first real token (the release's [1:] would cut it here).
    assert template.suffix_ids["query"] == tuple(tokenizer(PREDICT_SUFFIX, add_special_tokens=False)["input_ids"])


def test_a_tokenizer_without_the_tokens_gets_a_clear_error_and_can_be_given_them():
    tokenizer = train_tokenizer(with_llara_tokens=False)
    with pytest.raises(MissingLlaraTokensError, match="<s1>.*not a LLaRA checkpoint"):
        Template.from_tokenizer(tokenizer)
    assert add_special_tokens(tokenizer) == 16
    assert add_special_tokens(tokenizer) == 0
    template = Template.from_tokenizer(tokenizer)
    assert list(template.summarize_ids) == tokenizer.convert_tokens_to_ids(list(SUMMARIZE_TOKENS))


def test_text_budget_counts_the_template(tokenizer):
    template = Template.from_tokenizer(tokenizer)
    assert template.text_budget("query", 64) == 64 - template.overhead("query")
    with pytest.raises(ValueError, match="no room for text"):
        template.text_budget("passage", template.overhead("passage"))


def test_left_pad_puts_real_tokens_last_and_counts_positions_from_zero():
    ids, mask, positions = left_pad([[5, 6, 7], [8]], pad_id=0, pad_to_multiple_of=4)
    assert ids.tolist() == [[0, 5, 6, 7], [0, 0, 0, 8]]
    assert mask.tolist() == [[0, 1, 1, 1], [0, 0, 0, 1]]
    assert positions.tolist() == [[0, 0, 1, 2], [0, 0, 0, 0]]


def test_join_title_follows_the_release():
    assert join_title("Llama", "An animal.") == "Llama An animal."
    assert join_title(None, "An animal.") == "- An animal."
    assert join_title("", "An animal.") == "- An animal."
