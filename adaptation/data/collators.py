"""Batches for the training loop: the joint EBAE/EBAR rows of pretraining, and the query and passage
batches of contrastive fine-tuning; every row left-padded, as at encoding time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from pyserini_llara.template import NUM_PLACEHOLDERS, Template, left_pad

from .. import stopwords
from ..objective import IGNORE_INDEX, joint_position_ids


@dataclass(frozen=True)
class ReleaseWindows:
    """The release's ``pretrain/data.py``: ``cutoff_len`` caps the whole row, template included.

    The text keeps ``cutoff_len`` minus the template's tokens (BOS, ``"``, both suffixes: 39 on
    LLaMA-2); a target is tokenized as the release does, with the tokenizer's special tokens
    (LLaMA-2: BOS), and cut at ``cutoff_len``. So an EBAE target, stop words removed first, can
    reach beyond the visible text. Rows are padded to a multiple of 8, as the release's collator.
    """

    cutoff_len: int = 128
    pad_to_multiple_of = 8

    def text_budget(self, overhead: int) -> int:
        budget = self.cutoff_len - overhead
        if budget < 1:
            raise ValueError(f"cutoff_len {self.cutoff_len} leaves no room for text: the template alone is "
                             f"{overhead} tokens; raise --cutoff_len")
        return budget

    def target_ids(self, tokenizer, texts: Sequence[str]) -> list[list[int]]:
        return tokenizer(list(texts), truncation=True, max_length=self.cutoff_len)["input_ids"]

    def describe(self) -> str:
        return f"release windows: rows of {self.cutoff_len} tokens, template included"


@dataclass(frozen=True)
class PaperWindows:
    """The paper's wording: the model reads ``max_text_tokens`` of text (template on top) and a
    target is the first ``max_text_tokens`` tokens of its text, tokenized alone."""

    max_text_tokens: int = 256
    pad_to_multiple_of = None

    def text_budget(self, overhead: int) -> int:
        if self.max_text_tokens < 1:
            raise ValueError(f"max_text_tokens must be >= 1, got {self.max_text_tokens}")
        return self.max_text_tokens

    def target_ids(self, tokenizer, texts: Sequence[str]) -> list[list[int]]:
        return [ids[:self.max_text_tokens] for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]

    def describe(self) -> str:
        return f"paper windows: text cut at {self.max_text_tokens} tokens"


class PretrainCollator:
    """Release-format examples -> a left-padded joint batch for ``adaptation.objective``.

    Row = prefix + text (cut to the windows' text budget) + summarize suffix + predict suffix;
    LM labels on the text tokens only. Bag-of-words targets are the distinct ids of the target
    text (stop words removed first if asked, then tokenized and cut as ``windows`` says), without
    the tokenizer's special ids (the release drops ids <= 2: unk, bos, eos for LLaMA).
    """

    def __init__(self, tokenizer, windows: ReleaseWindows | PaperWindows = ReleaseWindows(),
                 remove_stopwords: bool = True):
        self.tokenizer = tokenizer
        self.template = Template.from_tokenizer(tokenizer)
        self.summarize_suffix = list(self.template.suffix_ids["passage"])
        self.predict_suffix = list(self.template.suffix_ids["query"])
        if (tuple(self.summarize_suffix[-NUM_PLACEHOLDERS:]) != self.template.summarize_ids
                or tuple(self.predict_suffix[-NUM_PLACEHOLDERS:]) != self.template.predict_ids):
            raise ValueError("the LLaRA suffixes must end with their 8 placeholder tokens")
        self.windows = windows
        self.text_tokens = windows.text_budget(len(self.template.prefix_ids) + self.n_summarize + self.n_predict)
        self.remove_stopwords = remove_stopwords
        self.drop_ids = set(tokenizer.all_special_ids) | {tokenizer.pad_token_id}

    @property
    def n_summarize(self) -> int:
        return len(self.summarize_suffix)

    @property
    def n_predict(self) -> int:
        return len(self.predict_suffix)

    def targets(self, texts: Sequence[str]) -> list[list[int]]:
        if self.remove_stopwords:
            texts = [stopwords.remove_stopwords(t) for t in texts]
        return [[i for i in dict.fromkeys(ids) if i not in self.drop_ids]
                for ids in self.windows.target_ids(self.tokenizer, texts)]

    def __call__(self, examples: Sequence[dict]) -> dict:
        texts = self.tokenizer([e["input"] for e in examples], add_special_tokens=False)["input_ids"]
        texts = [ids[:self.text_tokens] for ids in texts]
        rows = [[*self.template.prefix_ids, *ids, *self.summarize_suffix, *self.predict_suffix] for ids in texts]
        input_ids, mask, _ = left_pad(rows, self.tokenizer.pad_token_id, self.windows.pad_to_multiple_of)
        length = input_ids.shape[1]
        labels = torch.full(input_ids.shape, IGNORE_INDEX, dtype=torch.long)
        suffixes = self.n_summarize + self.n_predict
        for row, text in enumerate(texts):
            if text:
                labels[row, length - suffixes - len(text):length - suffixes] = torch.tensor(text)
        batch = {"input_ids": input_ids, "attention_mask": mask, "labels": labels,
                 "position_ids": joint_position_ids(mask, self.n_summarize, self.n_predict),
                 "num_tokens": int(mask.sum())}
        for name, key in (("ebae", "output_summarize"), ("ebar", "output_predict")):
            ids = self.targets([e[key] for e in examples])
            width = max(1, max(map(len, ids)))
            batch[f"{name}_ids"] = torch.zeros((len(ids), width), dtype=torch.long)
            batch[f"{name}_mask"] = torch.zeros((len(ids), width), dtype=torch.bool)
            for row, values in enumerate(ids):
                batch[f"{name}_ids"][row, :len(values)] = torch.tensor(values, dtype=torch.long)
                batch[f"{name}_mask"][row, :len(values)] = True
        return batch


@dataclass
class ContrastiveCollator:
    """Tokenises a list of groups into left-padded query and passage batches.

    ``query_max_len`` / ``passage_max_len`` count the whole templated input, prefix and
    suffix included (the release's fine-tuning convention); only the text is cut.
    Queries and passages are padded separately, each to its own longest row.
    """

    tokenizer: object
    query_max_len: int = 64
    passage_max_len: int = 160
    pad_to_multiple_of: int | None = 8

    def __post_init__(self):
        self.template = Template.from_tokenizer(self.tokenizer)
        self.query_budget = self._budget("query", self.query_max_len)
        self.passage_budget = self._budget("passage", self.passage_max_len)

    def _budget(self, kind, max_len: int) -> int:
        try:
            return self.template.text_budget(kind, max_len)
        except ValueError as error:
            raise ValueError(f"--{kind}_max_len {max_len}: {error}; give at least "
                             f"{self.template.overhead(kind) + 1}") from None

    def _batch(self, texts: list[str], kind, budget: int, prefix: str) -> dict:
        ids = self.template.encode(self.tokenizer, texts, kind, budget)
        input_ids, mask, positions = left_pad(ids, self.tokenizer.pad_token_id, self.pad_to_multiple_of)
        return {f"{prefix}_input_ids": input_ids, f"{prefix}_attention_mask": mask,
                f"{prefix}_position_ids": positions}

    def __call__(self, groups: Sequence[tuple[str, list[str]]]) -> dict:
        queries = [query for query, _ in groups]
        passages = [passage for _, group in groups for passage in group]
        return {**self._batch(queries, "query", self.query_budget, "query"),
                **self._batch(passages, "passage", self.passage_budget, "passage")}
