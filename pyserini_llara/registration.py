"""Makes Pyserini's own CLIs pick the LLaRA encoders for any ``--encoder`` naming LLaRA.

Pyserini takes the first key of its class maps that is a substring of the lower-cased
``--encoder``; ours goes first so that built-in keys ("ance", "auto", ...) never win.
Factories, not classes, are registered: importing our encoder module imports
``pyserini.encode``, which may be what is being imported right now.
"""

KEY = "llara"
DEFAULT_MODEL = "BAAI/LLARA-passage"


def model_name(encoder: str) -> str:
    """``llara`` -> the released passage model; ``llara:X`` -> X; any other name as given."""
    if encoder.lower() == KEY:
        return DEFAULT_MODEL
    if encoder.lower().startswith(KEY + ":"):
        return encoder[len(KEY) + 1:]
    return encoder


def query_encoder_factory(**kwargs):
    from .encoders import LlaraQueryEncoder

    return LlaraQueryEncoder(**kwargs)


def document_encoder_factory(**kwargs):
    from .encoders import LlaraDocumentEncoder

    return LlaraDocumentEncoder(**kwargs)


def _put_first(mapping: dict, key, value) -> None:
    rest = {k: v for k, v in mapping.items() if k != key}
    mapping.clear()
    mapping[key] = value
    mapping.update(rest)


def register(module=None) -> None:
    """Insert the ``llara`` keys at the front of ``pyserini.encode``'s two class maps."""
    if module is None:
        import pyserini.encode as module
    _put_first(module.query_encoder_class_map, KEY, query_encoder_factory)
    _put_first(module.document_encoder_class_map, KEY, document_encoder_factory)
