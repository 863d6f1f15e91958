"""What differs between the Pyserini releases the plugin supports (1.6 and 2.x), read in one place.

- ``QueryEncoder``: 1.6 has ``has_encoded_query`` / ``embedding`` and ``__init__(encoded_query_dir)``;
  2.x renamed them ``has_encoded_queries`` / ``embeddings`` and ``encoded_queries_dir``. Neither
  keeps the directory, which holds the record of who encoded the queries: ``patches`` remembers it
  here, beside the encoder rather than on it.
- A patch target that is missing or has another shape (``require``) makes the patch step aside; a call
  that does not fit the target's signature (``bind``) goes to Pyserini untouched.
"""

from __future__ import annotations

import inspect
import weakref

_encoded_queries_dirs: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class OtherShape(Exception):
    """A Pyserini function or attribute a patch wraps is missing or has other parameters: leave it as it is."""


def require(owner, attribute: str, parameters: tuple[str, ...] = ()):
    """``owner.attribute`` where it exists and takes ``parameters`` (by name); else ``OtherShape``."""
    target = getattr(owner, attribute, None)
    if target is None:
        raise OtherShape(f"{getattr(owner, '__name__', owner)}.{attribute} is missing")
    if parameters:
        names = inspect.signature(target).parameters
        missing = [name for name in parameters if name not in names]
        if missing:
            raise OtherShape(f"{getattr(owner, '__name__', owner)}.{attribute} takes no {', '.join(missing)}")
    return target


def bind(signature: inspect.Signature, *args, **kwargs) -> inspect.BoundArguments | None:
    """A call bound to Pyserini's parameter names; None for a call that does not fit, which the wrapper
    then hands on as it is, for Pyserini to refuse in its own words."""
    try:
        return signature.bind(*args, **kwargs)
    except TypeError:
        return None


def has_encoded_queries(encoder) -> bool:
    return bool(getattr(encoder, "has_encoded_queries", None) or getattr(encoder, "has_encoded_query", None))


def encoded_embeddings(encoder) -> dict:
    """The query text -> vector map of a ``QueryEncoder`` built from encoded queries."""
    found = getattr(encoder, "embeddings", None)
    return found if isinstance(found, dict) else getattr(encoder, "embedding", None) or {}


def remember_encoded_queries_dir(encoder, directory) -> None:
    _encoded_queries_dirs[encoder] = str(directory)


def encoded_queries_dir(encoder) -> str | None:
    """The directory a ``QueryEncoder`` read its encoded queries from, where it was built from one."""
    try:
        return _encoded_queries_dirs.get(encoder)
    except TypeError:  # an unhashable encoder was never remembered
        return None
