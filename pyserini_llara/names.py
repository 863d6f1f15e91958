"""How a LLaRA model is named on a command line: the vocabulary every layer shares.

``--encoder llara`` means the released passage model, ``llara:X`` the model X. Pyserini's own
rule (its class-map key is a substring of the lower-cased name) offers any name containing
``llara`` to LLaRA; ``detect`` then keeps only the models that are LLaRA.
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
