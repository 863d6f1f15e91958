"""LLaRA embeddings of a collated fine-tuning batch: in one pass, in length-sorted chunks, or gradient-cached.

Gradient caching (GradCache, Gao et al. 2021, as Tevatron's ``--grad_cache``): every chunk of
queries and passages is first run without a graph, keeping only its embeddings; the loss over the
whole batch is computed on those; in its backward pass each chunk is run again, with a graph, and
the loss's gradient with respect to that chunk's embeddings is back-propagated through it, one chunk
at a time. The parameter gradients are those of the un-chunked step (the loss depends on the
parameters only through the embeddings), while memory holds one chunk's activations: a batch of B
queries x G passages fits where one chunk does. Dropout draws the same masks in both runs of a chunk
(the random state is saved before the first and restored for the second). Under DDP, every chunk but
the last is back-propagated without gradient synchronisation.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import torch


def _forward(model, input_ids, attention_mask, position_ids):
    from pyserini_llara.encoding import pool_placeholders

    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False)
    return pool_placeholders(out.last_hidden_state, attention_mask)


def _tensors(batch: dict, kind: str):
    return tuple(batch[f"{kind}_{name}"] for name in ("input_ids", "attention_mask", "position_ids"))


def length_chunks(mask: torch.Tensor, chunk_size: int) -> list[tuple[torch.Tensor, int]]:
    """``(rows, first column)`` per chunk: rows sorted by length, ``chunk_size`` at a time, each chunk cut to its
    own longest row (rounded up to 8); one chunk of every row when ``chunk_size`` is 0 or covers them all."""
    if not chunk_size or chunk_size >= len(mask):
        return [(torch.arange(len(mask), device=mask.device), 0)]
    lengths = mask.sum(dim=1)
    return [(rows, (mask.shape[1] - int(lengths[rows].max())) // 8 * 8)
            for rows in lengths.argsort(descending=True).split(chunk_size)]


def _embed_chunk(model, tensors, rows: torch.Tensor, start: int) -> torch.Tensor:
    return _forward(model, *(t[rows, start:] for t in tensors))


def embed(model, batch: dict, kind: str, chunk_size: int = 0) -> torch.Tensor:
    """[B, H] LLaRA embeddings of the ``query`` or ``passage`` part of a collated batch, as the encoder computes them.

    With ``chunk_size``, rows run that many at a time, each chunk cut to its own longest row: less
    padding, the same embeddings, since a left-padded row's embedding does not depend on its batch.
    """
    tensors = _tensors(batch, kind)
    chunks = length_chunks(tensors[1], chunk_size)
    if len(chunks) == 1:
        return _forward(model, *tensors)
    order = torch.cat([rows for rows, _ in chunks])
    return torch.cat([_embed_chunk(model, tensors, rows, start) for rows, start in chunks])[order.argsort()]


class _RandomState:
    """The CPU (and the model's CUDA device's) random state at one moment, to run a chunk again as it ran."""

    def __init__(self, device: torch.device):
        self.device = device if device.type == "cuda" else None
        self.cpu = torch.get_rng_state()
        self.cuda = torch.cuda.get_rng_state(self.device) if self.device is not None else None

    @contextmanager
    def restored(self):
        with torch.random.fork_rng(devices=[self.device] if self.device is not None else []):
            torch.set_rng_state(self.cpu)
            if self.device is not None:
                torch.cuda.set_rng_state(self.cuda, self.device)
            yield


class _Replay(torch.autograd.Function):
    """Identity on the cached embeddings whose backward runs every chunk again and back-propagates through it."""

    @staticmethod
    def forward(ctx, replay, anchor, queries, passages):
        ctx.replay = replay
        return queries.clone(), passages.clone()

    @staticmethod
    def backward(ctx, query_grad, passage_grad):
        ctx.replay({"query": query_grad, "passage": passage_grad})
        return None, None, None, None


@dataclass(frozen=True)
class GradCache:
    """Chunk sizes of a gradient-cached step (Tevatron's ``--gc_q_chunk_size`` / ``--gc_p_chunk_size``)."""

    query_chunk_size: int = 4
    passage_chunk_size: int = 32

    def embeddings(self, model, batch: dict, accelerator=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(queries [B, H], passages [B * G, H]) without a graph, differentiable through a replay of their chunks."""
        plan = []  # (kind, rows, first column, random state) per chunk, in the order they run
        cached = {}
        device = batch["query_input_ids"].device
        with torch.no_grad():
            for kind, size in (("query", self.query_chunk_size), ("passage", self.passage_chunk_size)):
                tensors = _tensors(batch, kind)
                out = None
                for rows, start in length_chunks(tensors[1], size):
                    plan.append((kind, rows, start, _RandomState(device)))
                    vectors = _embed_chunk(model, tensors, rows, start)
                    out = vectors.new_empty((len(tensors[0]), vectors.shape[1])) if out is None else out
                    out[rows] = vectors
                cached[kind] = out

        def replay(grads: dict) -> None:
            for i, (kind, rows, start, state) in enumerate(plan):
                last = i == len(plan) - 1
                sync = nullcontext() if last or accelerator is None else accelerator.no_sync(model)
                with sync, state.restored(), torch.enable_grad():
                    vectors = _embed_chunk(model, _tensors(batch, kind), rows, start)
                    vectors.backward(grads[kind][rows].to(vectors.dtype))

        anchor = torch.empty(0, requires_grad=True)  # makes the outputs part of the loss's graph
        return _Replay.apply(replay, anchor, cached["query"], cached["passage"])
