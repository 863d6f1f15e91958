"""The fine-tuning objective: InfoNCE over LLaRA embeddings with in-batch and cross-device negatives.

Pure tensor functions; the training loop lives in ``adaptation.training``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def gather_across_devices(local: torch.Tensor) -> torch.Tensor:
    """[n, H] per rank -> [world * n, H], rank order, differentiable for every slot.

    Outside a process group (or with one process) this is the identity. Backward sums the
    gradients that every rank computes for a slot and hands each rank its own slot's sum: each
    rank computes the loss over the whole gathered batch, so after the data-parallel average
    (``sum / world``) the gradient equals the one-process gradient on the concatenated batch.
    Every rank must hold the same ``n`` (accelerate's default even batches ensure it).
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return local
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(local.contiguous()), dim=0)


def info_nce(queries: torch.Tensor, passages: torch.Tensor, temperature: float, group_size: int) -> torch.Tensor:
    """Mean InfoNCE loss of ``queries`` [B, H] against ``passages`` [B * G, H].

    Passages come in groups of ``group_size`` per query, the positive first; every other
    passage of the batch is a negative for every query (in-batch negatives). Embeddings are
    expected L2-normalised, so ``q . p`` is the cosine and ``temperature`` sets its scale.
    """
    if passages.shape[0] != queries.shape[0] * group_size:
        raise ValueError(
            f"{queries.shape[0]} queries need {queries.shape[0] * group_size} passages "
            f"(group size {group_size}), got {passages.shape[0]}"
        )
    scores = queries.float() @ passages.float().T / temperature
    targets = torch.arange(queries.shape[0], device=scores.device) * group_size
    return F.cross_entropy(scores, targets)


def contrastive_loss(queries: torch.Tensor, passages: torch.Tensor, *, temperature: float, group_size: int,
                     cross_device: bool = True) -> dict[str, torch.Tensor]:
    """InfoNCE on this rank's batch, or on the batch of all ranks when ``cross_device``.

    Returns ``loss`` and ``accuracy`` (share of queries whose positive scores highest).
    """
    if cross_device:
        queries, passages = gather_across_devices(queries), gather_across_devices(passages)
    loss = info_nce(queries, passages, temperature, group_size)
    with torch.no_grad():
        best = (queries.float() @ passages.float().T).argmax(dim=1)
        accuracy = (best == torch.arange(queries.shape[0], device=best.device) * group_size).float().mean()
    return {"loss": loss, "accuracy": accuracy}
