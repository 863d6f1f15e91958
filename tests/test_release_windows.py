"""Release windows: pretraining batches equal the release's data preparation restated plainly, on LLaMA-2 ids."""

import json
import re
from pathlib import Path

import pytest
import sentencepiece
import torch

from adaptation.data.collators import PaperWindows, PretrainCollator, ReleaseWindows
from adaptation.pretrain import DataArguments, training_examples
from adaptation.stopwords import STOPWORDS, remove_stopwords
from pyserini_llara.modeling import load_tokenizer

ASSET = Path(__file__).parent / "assets" / "llama2-tokenizer"
SUMMARIZE_SUFFIX = [9162, 19138, 675, 278, 2038, 13382, 2629, 9475, 3838, 29901, 29871,
                    32008, 32011, 32004, 32013, 32007, 32005, 32002, 32014]  # release pretrain/modeling.py
PREDICT_SUFFIX = [9162, 8500, 278, 1494, 13382, 2629, 9475, 3838, 29901, 29871, 32000,
                  32009, 32012, 32001, 32010, 32003, 32006, 32015]

CHUNKS = [
    "Anarchism is a political philosophy and movement that is sceptical of authority and rejects all involuntary, "
    "coercive forms of hierarchy. It calls for the abolition of the state, which it holds to be unnecessary, "
    "undesirable, and harmful; as a historically left-wing movement, it's placed on the farthest left.\t\n"
    "Humans lived in societies without formal hierarchies long before the establishment of formal states.\t\n",
    " The llama (Lama glama) is a domesticated South American camelid, widely used as a meat and pack animal "
    "by Andean cultures since the pre-Columbian era. Llamas are social animals and live with others as a herd.",
    "Workers' struggles, e-mail, snake_case, U.S.A., café, naïve — and 1990s: it isn't what you'd think!",
    "Short one.",
    "The the THE of and, a an; to? (in) [on] {at} it's",
]
_SP = sentencepiece.SentencePieceProcessor(model_file=str(ASSET / "tokenizer.model"))
# 100 words that are one token each, none a stop word: where a target is cut shows in its id set.
DISTINCT = [piece[1:] for piece in map(_SP.id_to_piece, range(3000, 4000))
            if piece.startswith("\u2581") and piece[1:].isalpha() and len(piece) > 4
            and piece[1:].lower() not in STOPWORDS][:100]
EXAMPLES = [{"input": CHUNKS[i], "output_summarize": CHUNKS[i], "output_predict": CHUNKS[(i + 1) % len(CHUNKS)]}
            for i in range(len(CHUNKS))]
EXAMPLES.append({"input": CHUNKS[1], "output_summarize": " ".join(DISTINCT),
                 "output_predict": " ".join(DISTINCT[::-1])})


@pytest.fixture(scope="module")
def sp():
    return _SP


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(str(ASSET), add_tokens=True)


def release_filter(text: str) -> str:
    """pretrain/data.py with remove_stop_words: NLTK's English list extended with ! , . ?"""
    stop_words = sorted(STOPWORDS) + ["!", ",", ".", "?"]
    text = re.sub(r"[\W_]+", " ", text)
    return " ".join([word for word in text.split() if word.lower() not in stop_words])


def release_batch(sp, examples, cutoff_len):
    """The release's TrainDatasetForEmbedding + EmbedCollator + the model's target ids, with sentencepiece ids."""
    prefix_ids = [sp.bos_id()] + sp.encode('"')
    features, summarize, predict = [], [], []
    for example in examples:
        budget = cutoff_len - len(prefix_ids) - len(SUMMARIZE_SUFFIX) - len(PREDICT_SUFFIX)
        input_ids = sp.encode(example["input"])[:budget]
        ids = prefix_ids + input_ids + SUMMARIZE_SUFFIX + PREDICT_SUFFIX
        labels = [-100] * len(prefix_ids) + input_ids + [-100] * (len(SUMMARIZE_SUFFIX) + len(PREDICT_SUFFIX))
        features.append((ids, labels))
        summarize.append(release_filter(example["output_summarize"]))
        predict.append(release_filter(example["output_predict"]))
    width = -(-max(len(ids) for ids, _ in features) // 8) * 8  # left padding to a multiple of 8, pad = unk = 0
    input_ids = torch.tensor([[0] * (width - len(ids)) + ids for ids, _ in features])
    attention_mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids, _ in features])
    labels = torch.tensor([[-100] * (width - len(lab)) + lab for _, lab in features])

    def targets(texts):  # tokenizer(texts, truncation=True, max_length=cutoff_len): BOS + text; then ids > 2, unique
        rows = [([sp.bos_id()] + sp.encode(text))[:cutoff_len] for text in texts]
        return [torch.unique(torch.tensor(row)[torch.tensor(row) > 2]).tolist() for row in rows]

    return input_ids, attention_mask, labels, targets(summarize), targets(predict)


@pytest.mark.parametrize("cutoff_len", [64, 128, 512])
def test_release_windows_batch_equals_the_release_preparation(tmp_path, sp, tokenizer, cutoff_len):
    data = tmp_path / "toy_pretrain_data.jsonl"
    data.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in EXAMPLES))
    args = DataArguments(train_data=[str(data)], cutoff_len=cutoff_len)
    dataset = training_examples(args, tokenizer, str(tmp_path / "run"), str(ASSET))
    batch = PretrainCollator(tokenizer, args.window_config())([dataset[i] for i in range(len(dataset))])

    input_ids, attention_mask, labels, summarize, predict = release_batch(sp, EXAMPLES, cutoff_len)
    assert torch.equal(batch["input_ids"], input_ids)
    assert torch.equal(batch["attention_mask"], attention_mask)
    assert torch.equal(batch["labels"], labels)
    for name, expected in (("ebae", summarize), ("ebar", predict)):
        ours = [sorted(ids[mask].tolist()) for ids, mask in zip(batch[f"{name}_ids"], batch[f"{name}_mask"])]
        assert ours == expected
    if cutoff_len == 64:  # truncation did happen, to the rows and to the targets (BOS + 63 tokens)
        assert batch["input_ids"].shape[1] == 64 and len(summarize[-1]) == len(predict[-1]) == 63


def test_stop_words_are_filtered_as_the_release_does():
    for text in CHUNKS + ["", "!!! ,,, ... ???", "I'm here; we'll see. Don't."]:
        assert remove_stopwords(text) == release_filter(text)
    assert remove_stopwords(CHUNKS[2]) == "Workers struggles e mail snake case U café naïve 1990s think"


def test_windows_options_belong_to_their_mode(tmp_path, tokenizer):
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps(EXAMPLES[0]) + "\n")
    assert DataArguments(train_data=[str(data)]).window_config() == ReleaseWindows(128)
    assert DataArguments(train_data=[str(data)], windows="paper").window_config() == PaperWindows(256)
    with pytest.raises(ValueError, match="--max_text_tokens applies to the other windows; .* takes --cutoff_len"):
        DataArguments(train_data=[str(data)], max_text_tokens=64)
    with pytest.raises(ValueError, match="--cutoff_len applies to the other windows"):
        DataArguments(train_data=[str(data)], windows="paper", cutoff_len=64)
    with pytest.raises(ValueError, match="cutoff_len 39 leaves no room for text: the template alone is 39 tokens"):
        PretrainCollator(tokenizer, ReleaseWindows(39))
