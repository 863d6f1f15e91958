"""Pyserini ``QueryEncoder`` / ``DocumentEncoder`` for LLaRA checkpoints.

Pyserini constructs these with its own keywords (``encoder_dir=``/``model_name=``,
``device=``, ``fp16=``, ...) and calls ``encode``; everything LLaRA-specific is delegated
to :class:`~pyserini_llara.encoding.LlaraEncoder`.
"""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np
from pyserini.encode import DocumentEncoder, QueryEncoder

from .encoding import LlaraEncoder
from .precision import pyserini_half
from .registration import model_name
from .template import DEFAULT_MAX_TEXT_TOKENS, join_title

logger = logging.getLogger(__name__)


def _load(name: str, device: str, fp16: bool, tokenizer_name: str | None, **kwargs) -> LlaraEncoder:
    if tokenizer_name:
        logger.warning("ignoring tokenizer %s: a LLaRA model is encoded with its own tokenizer", tokenizer_name)
    dtype = pyserini_half(device) if fp16 else kwargs.pop("dtype", "float32")
    return LlaraEncoder.from_pretrained(model_name(name), device=device or "cpu", dtype=dtype, **kwargs)


class LlaraQueryEncoder(QueryEncoder):
    """Queries get the EBAR ("predict the following passage") prompt."""

    def __init__(self, encoder_dir: str = "llara", tokenizer_name: str | None = None, device: str = "cpu",
                 fp16: bool = False, lora: str | None = None, add_tokens: bool = False,
                 max_length: int = DEFAULT_MAX_TEXT_TOKENS, **_pyserini_kwargs):
        super().__init__()
        self.encoder = _load(encoder_dir, device, fp16, tokenizer_name, lora=lora, add_tokens=add_tokens,
                             max_text_tokens=max_length)
        self.has_model = True

    def encode(self, query: str, **kwargs) -> np.ndarray:
        return self.encoder.encode_queries([query])[0]

    def encode_batch(self, queries: Sequence[str]) -> np.ndarray:
        return self.encoder.encode_queries(list(queries))


class LlaraDocumentEncoder(DocumentEncoder):
    """Passages get the EBAE ("summarize the above passage") prompt."""

    def __init__(self, model_name: str = "llara", tokenizer_name: str | None = None, device: str = "cpu",
                 fp16: bool = False, lora: str | None = None, add_tokens: bool = False,
                 batch_size: int = 32, **_pyserini_kwargs):
        self.encoder = _load(model_name, device, fp16, tokenizer_name, lora=lora, add_tokens=add_tokens,
                             batch_size=batch_size)
        self._device = device

    def encode(self, texts: Sequence[str], titles: Sequence[str] | None = None, fp16: bool = False,
               max_length: int | None = None, **kwargs) -> np.ndarray:
        """``pyserini.encode`` passes ``fp16`` and ``max_length`` (text tokens; the template is extra) per batch."""
        if fp16 and self.encoder.model.dtype.is_floating_point and self.encoder.model.dtype.itemsize == 4:
            self.encoder.set_dtype(pyserini_half(self._device))
        if titles is not None:
            texts = [join_title(title, text) for title, text in zip(titles, texts)]
        return self.encoder.encode_passages(list(texts), max_text_tokens=max_length)
