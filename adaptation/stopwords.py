"""English stop-word removal for the bag-of-words targets, as the release does it, with no download.

The release (``pretrain/data.py``) replaces every run of non-word characters (``[\\W_]+``:
punctuation, symbols, apostrophes, underscores, whitespace) with a space, then drops the words
that are in NLTK's English stop-word list, case-insensitively: such words carry no information
about a passage, and predicting them would dominate the bag-of-words loss. ``STOPWORDS`` is that
179-word list. The release also appends ``! , . ?`` to it, and its list holds forms such as
``isn't``; neither can match once non-word characters are gone (``isn't`` becomes ``isn`` and
``t``, both in the list).
"""

from __future__ import annotations

import re

STOPWORDS: frozenset[str] = frozenset("""
i me my myself we our ours ourselves you you're you've you'll you'd your yours yourself yourselves he him his
himself she she's her hers herself it it's its itself they them their theirs themselves what which who whom this
that that'll these those am is are was were be been being have has had having do does did doing a an the and but
if or because as until while of at by for with about against between into through during before after above below
to from up down in out on off over under again further then once here there when where why how all any both each
few more most other some such no nor not only own same so than too very s t can will just don don't should
should've now d ll m o re ve y ain aren aren't couldn couldn't didn didn't doesn doesn't hadn hadn't hasn hasn't
haven haven't isn isn't ma mightn mightn't mustn mustn't needn needn't shan shan't shouldn shouldn't wasn wasn't
weren weren't won won't wouldn wouldn't
""".split())

_NON_WORD = re.compile(r"[\W_]+")


def remove_stopwords(text: str) -> str:
    """Non-word characters become spaces, stop words go (case-insensitive); the other words keep their order."""
    return " ".join(w for w in _NON_WORD.sub(" ", text).split() if w.lower() not in STOPWORDS)
