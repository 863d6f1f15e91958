"""Documents to EBAE/EBAR examples: each text cut into consecutive chunks by a token budget, at word
boundaries, and each chunk paired with the one that follows it; streamed, and shuffled through a
bounded, seeded buffer.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Sequence

from pyserini_llara.corpus import Document

from .sources import expand_sources, read_source


@dataclass
class DataStats:
    """What happened to the texts: the drop reasons a user needs to see to trust the data."""

    texts: int = 0
    examples: int = 0
    ready_made: int = 0
    dropped: Counter = field(default_factory=Counter)
    short_tails: int = 0

    def report(self) -> str:
        dropped = ", ".join(f"{n} {why}" for why, n in sorted(self.dropped.items())) or "none"
        return (f"{self.texts} texts read, {self.examples} examples ({self.ready_made} ready-made); "
                f"texts dropped: {dropped}; short final chunks dropped: {self.short_tails}")

    def as_dict(self) -> dict:
        return {"texts": self.texts, "examples": self.examples, "ready_made": self.ready_made,
                "dropped": dict(self.dropped), "short_tails": self.short_tails}


def _word_start(text: str, offsets: Sequence[tuple[int, int]], i: int) -> bool:
    start = offsets[i][0]
    return start == 0 or text[start - 1].isspace() or text[start].isspace()


def chunk_paragraphs(paragraphs: Iterable[str], tokenizer, chunk_tokens: int) -> Iterator[tuple[str, int]]:
    """Consecutive chunks of about ``chunk_tokens`` tokens: ``(text, tokens)`` pairs, the last one possibly short.

    Cuts fall on word boundaries (a word longer than the budget is cut inside), so a chunk
    never ends mid-word; paragraphs inside a chunk are joined by newlines. Each paragraph is
    tokenised once with offsets, so cutting costs no re-tokenisation.
    """
    if chunk_tokens < 1:
        raise ValueError(f"chunk_tokens must be positive, got {chunk_tokens}")
    parts: list[str] = []
    count = 0
    for paragraph in paragraphs:
        paragraph = " ".join(paragraph.split())
        if not paragraph:
            continue
        offsets = tokenizer(paragraph, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        start = 0
        while len(offsets) - start + count >= chunk_tokens and len(offsets) > start:
            cut = start + chunk_tokens - count
            if cut < len(offsets):
                lowest = start if parts else start + 1
                boundary = next((i for i in range(cut, lowest - 1, -1) if _word_start(paragraph, offsets, i)), cut)
                cut = boundary
            if cut > start:
                parts.append(paragraph[offsets[start][0]:offsets[cut - 1][1]].strip())
            yield "\n".join(parts), count + cut - start
            parts, count, start = [], 0, cut
        if start < len(offsets):
            parts.append(paragraph[offsets[start][0]:].strip())
            count += len(offsets) - start
    if parts:
        yield "\n".join(parts), count


def document_examples(doc: Document, tokenizer, chunk_tokens: int, min_chunk_tokens: int,
                      stats: DataStats) -> Iterator[dict]:
    """EBAE/EBAR examples of one document (its lines are paragraphs): each chunk paired with the next; a short
    last chunk is dropped."""
    stats.texts += 1
    previous = None
    chunks = 0
    for text, tokens in chunk_paragraphs(doc.text.split("\n"), tokenizer, chunk_tokens):
        if tokens < min_chunk_tokens:
            # Only the last chunk can be short; it would make a poor EBAR target.
            stats.short_tails += chunks > 0
            break
        chunks += 1
        if previous is not None:
            stats.examples += 1
            yield {"input": previous, "output_summarize": previous, "output_predict": text}
        previous = text
    if chunks < 2:
        stats.dropped["too short" if doc.text.strip() else "empty"] += 1


@dataclass(frozen=True)
class ChunkConfig:
    chunk_tokens: int = 256
    min_chunk_tokens: int = 32
    text_field: str | None = None


def iter_examples(sources: Sequence[str], tokenizer, config: ChunkConfig,
                  stats: DataStats | None = None) -> Iterator[dict]:
    """Release-format examples from all sources, in source order, streamed."""
    stats = stats if stats is not None else DataStats()
    for source in expand_sources(sources):
        for item in read_source(source, config.text_field):
            if isinstance(item, dict):
                stats.ready_made += 1
                stats.examples += 1
                yield item
            else:
                yield from document_examples(item, tokenizer, config.chunk_tokens, config.min_chunk_tokens, stats)


def shuffled(items: Iterable[dict], buffer_size: int, seed: int) -> Iterator[dict]:
    """Seeded buffer shuffle: memory bounded by ``buffer_size``; 0 or 1 keeps the order."""
    if buffer_size <= 1:
        yield from items
        return
    rng = random.Random(seed)
    buffer: list[dict] = []
    for item in items:
        if len(buffer) < buffer_size:
            buffer.append(item)
            continue
        i = rng.randrange(buffer_size)
        yield buffer[i]
        buffer[i] = item
    rng.shuffle(buffer)
    yield from buffer
