"""Texts to LLaRA embeddings: template, left-padded batches, placeholder pooling."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .modeling import load_model, torch_dtype
from .template import DEFAULT_MAX_TEXT_TOKENS, NUM_PLACEHOLDERS, Kind, Template, left_pad


def pool_placeholders(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """[B, L, H] final-layer states, [B, L] mask -> [B, H] L2-normalised mean of the last 8 states.

    Requires left padding, so that the placeholders are the last 8 columns of every row.
    """
    if not bool(attention_mask[:, -NUM_PLACEHOLDERS:].all()):
        raise ValueError("LLaRA pooling needs left-padded batches: the last 8 positions must be real tokens")
    pooled = hidden[:, -NUM_PLACEHOLDERS:, :].float().mean(dim=1)
    return F.normalize(pooled, p=2, dim=-1)


# Positions (rows x longest row) per forward pass on a CPU. Smaller batches keep a layer's activations
# in cache and cut padding (the longest texts go alone or in pairs); benchmarks/encode_speed.py measured
# 512 to 2048 alike, and 2x the speed of 32 texts per pass on InsuranceQA answers.
CPU_BATCH_TOKENS = 2048


def length_sorted_batches(lengths: Sequence[int], batch_size: int, max_tokens: int | None = None) -> list[list[int]]:
    """Index batches, longest first: little padding, and an out-of-memory shows up at once.

    At most ``batch_size`` texts per batch and, with ``max_tokens``, at most that many positions
    (texts x the longest), so that long texts go in small batches and short ones in large.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    for i in order:
        if (not batches or len(batches[-1]) == batch_size
                or (max_tokens and (len(batches[-1]) + 1) * lengths[batches[-1][0]] > max_tokens)):
            batches.append([])
        batches[-1].append(i)
    return batches


class LlaraEncoder:
    """Encodes passages and queries with a LLaRA model.

    Texts are sorted by length into batches and the original order is restored, which
    changes nothing in the result: each row's embedding is independent of its batch. A batch
    holds at most ``batch_size`` texts and ``batch_tokens`` positions (0: no limit; default:
    ``CPU_BATCH_TOKENS`` on a CPU, no limit on other devices, where large batches pay).
    """

    def __init__(self, model, tokenizer, *, batch_size: int = 32, batch_tokens: int | None = None,
                 max_text_tokens: int = DEFAULT_MAX_TEXT_TOKENS, autocast_dtype: torch.dtype | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.template = Template.from_tokenizer(tokenizer)
        self.batch_size = batch_size
        self.batch_tokens = batch_tokens
        self.max_text_tokens = max_text_tokens
        self.autocast_dtype = autocast_dtype

    @classmethod
    def from_pretrained(cls, name_or_path: str, *, lora: str | None = None, dtype: str = "auto",
                        device: str = "cpu", add_tokens: bool = False, **kwargs) -> "LlaraEncoder":
        model, tokenizer = load_model(name_or_path, lora=lora, dtype=dtype, device=device, add_tokens=add_tokens)
        return cls(model, tokenizer, **kwargs)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dimension(self) -> int:
        return self.model.config.hidden_size

    def set_dtype(self, dtype: str) -> None:
        self.model.to(torch_dtype(dtype, self.device))

    def tokenize(self, texts: Sequence[str], kind: Kind, max_text_tokens: int | None = None) -> list[list[int]]:
        limit = self.max_text_tokens if max_text_tokens is None else max_text_tokens
        return self.template.encode(self.tokenizer, texts, kind, limit)

    @torch.inference_mode()
    def embed_ids(self, id_lists: Sequence[Sequence[int]]) -> torch.Tensor:
        """One padded batch of already templated ids -> [B, H] float32 embeddings on CPU."""
        input_ids, mask, positions = left_pad(id_lists, self.tokenizer.pad_token_id)
        device = self.device
        autocast = (torch.autocast(device_type=device.type, dtype=self.autocast_dtype)
                    if self.autocast_dtype is not None else nullcontext())
        with autocast:
            out = self.model(input_ids=input_ids.to(device), attention_mask=mask.to(device),
                             position_ids=positions.to(device))
        return pool_placeholders(out.last_hidden_state, mask.to(device)).cpu()

    def batches(self, lengths: Sequence[int], batch_size: int | None = None) -> list[list[int]]:
        """How ``encode`` groups texts of these token lengths (indices, longest first)."""
        budget = self.batch_tokens if self.batch_tokens is not None else (
            CPU_BATCH_TOKENS if self.device.type == "cpu" else 0)
        return length_sorted_batches(lengths, batch_size or self.batch_size, budget)

    def encode(self, texts: Sequence[str], kind: Kind, *, batch_size: int | None = None,
               max_text_tokens: int | None = None, progress=None) -> np.ndarray:
        """[N] texts -> [N, H] float32 array in input order. ``progress`` is called with each batch size."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        ids = self.tokenize(texts, kind, max_text_tokens)
        out = np.empty((len(ids), self.dimension), dtype=np.float32)
        for batch in self.batches([len(x) for x in ids], batch_size):
            out[batch] = self.embed_ids([ids[i] for i in batch]).numpy()
            if progress is not None:
                progress(len(batch))
        return out

    def encode_passages(self, texts: Sequence[str], **kwargs) -> np.ndarray:
        return self.encode(texts, "passage", **kwargs)

    def encode_queries(self, texts: Sequence[str], **kwargs) -> np.ndarray:
        return self.encode(texts, "query", **kwargs)
