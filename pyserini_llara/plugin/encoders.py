"""Pyserini ``QueryEncoder`` / ``DocumentEncoder`` for LLaRA checkpoints.

Pyserini constructs these with its own keywords (``encoder_dir=``/``model_name=``,
``device=``, ``fp16=``, ...) and calls ``encode``; everything LLaRA-specific is delegated
to :class:`~pyserini_llara.encoding.LlaraEncoder`, loaded through
:class:`~pyserini_llara.encoder_config.EncoderConfig` as every other command loads it.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from typing import Sequence

import numpy as np
from pyserini.encode import DocumentEncoder, QueryEncoder

from ..encoder_config import EncoderConfig
from ..encoding import LlaraEncoder
from ..fingerprint import model_fingerprint
from ..precision import INDEX_PRECISION, pyserini_half
from ..template import DEFAULT_MAX_TEXT_TOKENS, join_title

logger = logging.getLogger(__name__)


class PyseriniDefault(int):
    """A number that a Pyserini CLI filled in from its own default (``clis`` marks it): the user did not choose it."""


def _precision(device: str, fp16: bool, dtype: str) -> str:
    return pyserini_half(device) if fp16 else dtype


def _warn_tokenizer(tokenizer_name: str | None) -> None:
    if tokenizer_name:
        logger.warning("ignoring tokenizer %s: a LLaRA model is encoded with its own tokenizer", tokenizer_name)


class LlaraQueryEncoder(QueryEncoder):
    """Queries get the EBAR ("predict the following passage") prompt.

    The model loads on first use, so that ``FaissSearcher`` can first give it the precision of
    the index it searches where the caller chose none (``dtype="index"``: float32 for a float32
    index, else the device's fast half precision), instead of loading it twice.
    """

    def __init__(self, encoder_dir: str = "llara", tokenizer_name: str | None = None, device: str = "cpu",
                 fp16: bool = False, lora: str | None = None, add_tokens: bool = False,
                 max_length: int = DEFAULT_MAX_TEXT_TOKENS, dtype: str = "float32", **_pyserini_kwargs):
        super().__init__()
        _warn_tokenizer(tokenizer_name)
        self.config = EncoderConfig(encoder=encoder_dir, lora=lora, add_tokens=add_tokens, device=device or "cpu",
                                    max_length=max_length)
        self.model_name = self.config.model
        self.device = self.config.device
        self.dtype = _precision(self.device, fp16, dtype)
        self.has_model = True
        self._encoder: LlaraEncoder | None = None

    @property
    def encoder(self) -> LlaraEncoder:
        return self.load()

    def load(self) -> LlaraEncoder:
        if self._encoder is None:
            dtype = "float32" if self.dtype == INDEX_PRECISION else self.dtype
            self._encoder = dataclasses.replace(self.config, dtype=dtype).load()
        return self._encoder

    @property
    def dimension(self) -> int:
        return self.encoder.dimension

    @functools.cached_property
    def fingerprint(self) -> str:
        """``fingerprint.model_fingerprint`` of the model (a hub model's once loading has cached it)."""
        return model_fingerprint(self.model_name, self.config.lora)

    def follow_index(self, index_dtype: str) -> None:
        """Take the precision of the index searched, where the caller chose none."""
        if self.dtype == INDEX_PRECISION and self._encoder is None:
            self.dtype = "float32" if index_dtype == "float32" else pyserini_half(self.device)

    def encode(self, query: str, **kwargs) -> np.ndarray:
        return self.encoder.encode_queries([query])[0]

    def encode_batch(self, queries: Sequence[str]) -> np.ndarray:
        return self.encoder.encode_queries(list(queries))


class LlaraDocumentEncoder(DocumentEncoder):
    """Passages get the EBAE ("summarize the above passage") prompt."""

    def __init__(self, model_name: str = "llara", tokenizer_name: str | None = None, device: str = "cpu",
                 fp16: bool = False, lora: str | None = None, add_tokens: bool = False,
                 batch_size: int = 32, **_pyserini_kwargs):
        _warn_tokenizer(tokenizer_name)
        device = device or "cpu"
        self.encoder = EncoderConfig(encoder=model_name, lora=lora, add_tokens=add_tokens, device=device,
                                     dtype=_precision(device, fp16, "float32"), batch_size=batch_size).load()
        self._device = device

    def encode(self, texts: Sequence[str], titles: Sequence[str] | None = None, fp16: bool = False,
               max_length: int | None = None, **kwargs) -> np.ndarray:
        """``pyserini.encode`` passes ``fp16`` and ``max_length`` (text tokens; the template is extra) per batch.

        A ``max_length`` that is only Pyserini's default (256) gives way to the release's 512, as in
        ``pyserini-llara-index``; ``titles`` are joined to their texts as the release does.
        """
        if fp16 and self.encoder.model.dtype.is_floating_point and self.encoder.model.dtype.itemsize == 4:
            self.encoder.set_dtype(pyserini_half(self._device))
        if titles is not None:
            texts = [join_title(title, text) for title, text in zip(titles, texts)]
        if isinstance(max_length, PyseriniDefault):
            max_length = None
        return self.encoder.encode_passages(list(texts), max_text_tokens=max_length)
