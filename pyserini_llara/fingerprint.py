"""What a model's vectors depend on, named independently of how the model was spelt.

Indexes, encoded queries and training checkpoints record a model by this fingerprint, so that
``DIR``, ``DIR/``, a symlink or a moved copy are one model, and another fine-tune of it is not.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .modeling import ModelLoadError, resolve_source
from .proof import hash_into

WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin", "adapter_model.bin", "*.gguf")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json",
                   "added_tokens.json", "vocab.json", "merges.txt")


def local_model_dir(name_or_path: str) -> Path | None:
    """A hub id's snapshot in the local cache (no download), or the path itself when it exists."""
    if os.path.exists(name_or_path):
        return Path(name_or_path)
    try:
        from transformers.utils import cached_file

        config = cached_file(name_or_path, "config.json", local_files_only=True,
                             _raise_exceptions_for_missing_entries=False)
    except (OSError, ValueError):
        return None
    return Path(config).parent if config else None


def model_fingerprint(name_or_path: str, lora: str | None = None) -> str:
    """What a model's vectors depend on, named independently of how the model was spelt.

    A hash of the weight and tokenizer files (sampled for large files: ~4 MB read per file),
    so the same model reached as ``DIR``, ``DIR/``, a symlink or a moved copy gives the same
    fingerprint, and another fine-tune of it does not. A hub id absent from the local cache
    falls back to ``hub:ID``.
    """
    source = resolve_source(name_or_path, lora)
    digest = hashlib.sha256()
    parts = [(source.base, source.gguf_file)] + ([(source.adapter, None)] if source.adapter else [])
    for name, single in parts:
        directory = local_model_dir(name)
        if directory is None:
            digest.update(f"hub:{name}\n".encode())
            continue
        if directory.is_file():
            directory, single = directory.parent, directory.name
        files = [directory / single] if single else sorted(
            {p for pattern in WEIGHT_PATTERNS for p in directory.glob(pattern) if p.is_file()})
        if not single:  # a GGUF file carries its tokenizer
            files += [directory / n for n in TOKENIZER_FILES if (directory / n).is_file()]
        if not files:
            raise ModelLoadError(f"{directory} holds no model weights ({', '.join(WEIGHT_PATTERNS)})")
        for path in files:
            hash_into(digest, path)
    return digest.hexdigest()[:16]

