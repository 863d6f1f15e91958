"""Whether a model is a LLaRA model, by what it is rather than by its path.

Pyserini picks an encoder by a substring of the model's name, so any path containing ``llara``
(``runs/pyserini-llara-exp/contriever``) would be taken as LLaRA. A model is LLaRA when its
tokenizer files hold the tokens <s1>..<s16>, or its model card names LLaRA. This reads a few
small files and loads nothing, since it runs on every choice of a Pyserini encoder.
``llara`` and ``llara:X`` ask for LLaRA explicitly; such a model without the tokens fails to
load with one line (``template.MissingLlaraTokensError``).
"""

from __future__ import annotations

import json
import re

from .fingerprint import local_model_dir
from .modeling import ModelLoadError, resolve_source
from .names import KEY, names_llara
from .template import SPECIAL_TOKENS

# Where a tokenizer saved by transformers lists added tokens.
TOKENIZER_RECORDS = ("tokenizer_config.json", "tokenizer.json", "added_tokens.json", "special_tokens_map.json")
CARD = "README.md"
_NAMES_LLARA = re.compile(r"\bllara\b", re.IGNORECASE)


def explicit(encoder: str) -> bool:
    """``llara`` or ``llara:X``: the user asked for LLaRA, whatever the model."""
    return encoder.lower() == KEY or encoder.lower().startswith(KEY + ":")


def is_llara_model(name_or_path: str) -> bool | None:
    """True where the tokenizer has <s1>..<s16> or the card names LLaRA, False where neither, None where
    there is nothing local to read (a hub id absent from the cache, a GGUF file's own tokenizer)."""
    try:
        source = resolve_source(name_or_path)
    except (ModelLoadError, OSError, ValueError):
        return None
    names = [source.tokenizer_path, source.adapter, source.base]
    directories = [local_model_dir(name) for name in dict.fromkeys(names) if name]
    directories = [d for d in directories if d is not None and d.is_dir()]
    if not directories or source.gguf_file:
        return None
    missing = {json.dumps(token).encode() for token in SPECIAL_TOKENS}  # each token as it appears in JSON
    for directory in directories:
        card = directory / CARD
        if card.is_file() and _NAMES_LLARA.search(card.read_text(encoding="utf-8", errors="replace")):
            return True
        for name in TOKENIZER_RECORDS:  # the small files first: most tokenizers list the tokens there
            if missing and (directory / name).is_file():
                data = (directory / name).read_bytes()
                missing = {token for token in missing if token not in data}
    return not missing


def chooses_llara(encoder: str | None) -> bool:
    """Whether an encoder name means a LLaRA encoder: asked for explicitly, or a name Pyserini would match
    (``llara`` in it) of a model that is LLaRA, or whose files cannot be read here (a hub id)."""
    if not encoder or not names_llara(encoder):
        return False
    if explicit(encoder):
        return True
    found = is_llara_model(encoder)
    return True if found is None else found
