"""How a LLaRA model is named on a command line: the vocabulary every layer shares.

``--encoder llara`` means the released passage model, ``llara:X`` the model X, and Pyserini's
own rule (its class-map key is a substring of the lower-cased name) makes any name containing
``llara`` a LLaRA model.
"""

from __future__ import annotations

KEY = "llara"
DEFAULT_MODEL = "BAAI/LLARA-passage"


def model_name(encoder: str) -> str:
    """``llara`` -> the released passage model; ``llara:X`` -> X; any other name as given."""
    if encoder.lower() == KEY:
        return DEFAULT_MODEL
    if encoder.lower().startswith(KEY + ":"):
        return encoder[len(KEY) + 1:]
    return encoder


def names_llara(encoder: str | None) -> bool:
    """Pyserini's own rule for its class maps: the key is a substring of the lower-cased name."""
    return bool(encoder) and KEY in encoder.lower()
