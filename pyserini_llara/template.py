"""The LLaRA prompt: the one place that knows the templates and the special tokens.

Encoders, the index builder, pretraining and fine-tuning all build their inputs here, so
a checkpoint sees at training time exactly what it sees at search time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

Kind = Literal["passage", "query"]

NUM_PLACEHOLDERS = 8
SUMMARIZE_TOKENS: tuple[str, ...] = tuple(f"<s{i}>" for i in range(1, 9))
PREDICT_TOKENS: tuple[str, ...] = tuple(f"<s{i}>" for i in range(9, 17))
SPECIAL_TOKENS: tuple[str, ...] = SUMMARIZE_TOKENS + PREDICT_TOKENS
# The order the released tokenizers hold them in (LLaMA-2's ids 32000..32015, so <s1> is 32008).
# Adding them in this order gives a LLaMA-2 base the released checkpoints' ids.
RELEASE_TOKEN_ORDER: tuple[str, ...] = ("<s9>", "<s12>", "<s7>", "<s14>", "<s3>", "<s6>", "<s15>", "<s5>",
                                        "<s1>", "<s10>", "<s13>", "<s2>", "<s11>", "<s4>", "<s8>", "<s16>")

PREFIX = '"'
SUMMARIZE_SUFFIX = '", summarize the above passage within eight words: ' + "".join(SUMMARIZE_TOKENS)
PREDICT_SUFFIX = '", predict the following passage within eight words: ' + "".join(PREDICT_TOKENS)

# Passages (EBAE) are encoded with the summarize prompt, queries (EBAR) with the predict one.
PROMPT_SUFFIXES: dict[str, str] = {"passage": SUMMARIZE_SUFFIX, "query": PREDICT_SUFFIX}

# Release default: the text alone is truncated to this many tokens.
DEFAULT_MAX_TEXT_TOKENS = 512


def join_title(title: str | None, text: str) -> str:
    """The release's passage text: ``title + " " + text``, with ``-`` standing in for a missing title."""
    return f"{title or '-'} {text}"


class MissingLlaraTokensError(ValueError):
    """The tokenizer has no <s1>..<s16>: the model was never LLaRA-adapted."""


def missing_special_tokens(tokenizer) -> list[str]:
    vocab = tokenizer.get_vocab()
    return [t for t in SPECIAL_TOKENS if t not in vocab]


def add_special_tokens(tokenizer) -> int:
    """Add the missing ones of <s1>..<s16> as special tokens, in the release's order; returns how many were new."""
    missing = set(missing_special_tokens(tokenizer))
    if not missing:
        return 0
    return tokenizer.add_special_tokens(
        {"additional_special_tokens": [t for t in RELEASE_TOKEN_ORDER if t in missing]},
        replace_extra_special_tokens=False,
    )


def ensure_pad_token(tokenizer) -> None:
    """The release pads with the unk token when there is no pad token; fall back to EOS."""
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.unk_token if tokenizer.unk_token is not None else tokenizer.eos_token


@dataclass(frozen=True)
class Template:
    """Token ids of the fixed pieces of the LLaRA prompt for one tokenizer.

    Built once per tokenizer; ``wrap`` then only concatenates lists, which keeps
    input building off the encoding hot path.
    """

    prefix_ids: tuple[int, ...]
    suffix_ids: dict[str, tuple[int, ...]]
    summarize_ids: tuple[int, ...]
    predict_ids: tuple[int, ...]

    @classmethod
    def from_tokenizer(cls, tokenizer) -> "Template":
        missing = missing_special_tokens(tokenizer)
        if missing:
            raise MissingLlaraTokensError(
                f"tokenizer {getattr(tokenizer, 'name_or_path', '')!r} lacks the LLaRA tokens "
                f"{', '.join(missing)}: it is not a LLaRA checkpoint. Pass a LLaRA model "
                "(e.g. BAAI/LLARA-passage or a directory written by adaptation.pretrain), or "
                "ask for add_special_tokens=True to encode zero-shot with an unadapted model."
            )

        def ids(text: str) -> tuple[int, ...]:
            return tuple(tokenizer(text, add_special_tokens=False)["input_ids"])

        # BOS only where the tokenizer itself puts one in front (LLaMA-2 does, SmolLM2 not).
        bos = tokenizer.bos_token_id
        with_specials = tokenizer(PREFIX, add_special_tokens=True)["input_ids"]
        lead = (bos,) if bos is not None and with_specials[:1] == [bos] else ()
        suffix_ids = {kind: ids(suffix) for kind, suffix in PROMPT_SUFFIXES.items()}
        return cls(
            prefix_ids=lead + ids(PREFIX),
            suffix_ids=suffix_ids,
            summarize_ids=tuple(tokenizer.convert_tokens_to_ids(list(SUMMARIZE_TOKENS))),
            predict_ids=tuple(tokenizer.convert_tokens_to_ids(list(PREDICT_TOKENS))),
        )

    def overhead(self, kind: Kind) -> int:
        """Tokens the template adds around the text."""
        return len(self.prefix_ids) + len(self.suffix_ids[kind])

    def wrap(self, text_ids: Sequence[int], kind: Kind, max_text_tokens: int | None = None) -> list[int]:
        """prefix + text (truncated alone) + suffix: the suffix always survives truncation."""
        if max_text_tokens is not None:
            text_ids = text_ids[:max_text_tokens]
        return [*self.prefix_ids, *text_ids, *self.suffix_ids[kind]]

    def encode(self, tokenizer, texts: Sequence[str], kind: Kind,
               max_text_tokens: int | None = None) -> list[list[int]]:
        text_ids = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        return [self.wrap(ids, kind, max_text_tokens) for ids in text_ids]

    def text_budget(self, kind: Kind, max_total_tokens: int) -> int:
        """Text tokens left when prefix + text + suffix must fit ``max_total_tokens`` (fine-tuning)."""
        budget = max_total_tokens - self.overhead(kind)
        if budget < 1:
            raise ValueError(
                f"max length {max_total_tokens} leaves no room for text: the {kind} template "
                f"alone is {self.overhead(kind)} tokens"
            )
        return budget


def left_pad(sequences: Sequence[Sequence[int]], pad_id: int, pad_to_multiple_of: int | None = None):
    """Left-pad id lists into (input_ids, attention_mask, position_ids) LongTensors of shape [B, L].

    Left padding keeps the 8 placeholders in the last 8 columns of every row; position ids
    count real tokens only, so a text's encoding does not depend on its batch.
    """
    import torch

    length = max(len(s) for s in sequences)
    if pad_to_multiple_of:
        length = -(-length // pad_to_multiple_of) * pad_to_multiple_of
    input_ids = torch.full((len(sequences), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), length), dtype=torch.long)
    for row, seq in enumerate(sequences):
        if seq:
            input_ids[row, length - len(seq):] = torch.as_tensor(seq, dtype=torch.long)
            mask[row, length - len(seq):] = 1
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
    return input_ids, mask, positions
