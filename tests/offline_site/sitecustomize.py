"""Tests only: answer, offline, the listings Pyserini 2.x reads from GitHub while it is imported.

Pyserini 2.x fetches its prebuilt-index catalogue (castorini/prebuilt-indexes) and its topics and
qrels catalogue (castorini/eval) with ``urllib.request.urlopen``; without a network its import
fails. conftest puts this directory on PYTHONPATH, so every interpreter the tests start
(Pyserini's CLIs included) gets the answers of ``assets/pyserini-metadata.json``. Any other URL
goes to the real ``urlopen``.
"""

import io
import json
import urllib.request
from pathlib import Path

_HOSTS = ("https://raw.githubusercontent.com/castorini/prebuilt-indexes/",
          "https://raw.githubusercontent.com/castorini/eval/")
_FIXTURE = Path(__file__).resolve().parent.parent / "assets" / "pyserini-metadata.json"
_real_urlopen = urllib.request.urlopen


def _answer(url: str):
    """The fixture's listing for the file a catalogue URL names, or None for any other URL."""
    if not url.startswith(_HOSTS):
        return None
    listings = json.loads(_FIXTURE.read_text(encoding="utf-8"))
    path = url.split("/", 6)[-1]
    name = path.rsplit("/", 1)[-1]
    if path in listings:
        return listings[path]
    return [] if path.startswith("lucene/") else {} if name.endswith(".json") else None


def urlopen(url, *args, **kwargs):
    answer = _answer(url if isinstance(url, str) else url.full_url)
    if answer is None:
        return _real_urlopen(url, *args, **kwargs)
    return io.BytesIO(json.dumps(answer).encode("utf-8"))


urllib.request.urlopen = urlopen
