"""The EBAE/EBAR objective in one forward pass: attention mask, position ids and losses.

A row is ``prefix + text + summarize suffix + predict suffix``, LEFT-padded as at encoding
time, so in every row the summarize suffix occupies the same columns ``[L-R-S, L-R)`` and the
predict suffix the last ``R`` columns (``S``/``R``: the suffix lengths, fixed per tokenizer).
Two changes to causal attention make that single pass equal to two separate ones:

- the predict suffix does not attend the summarize suffix;
- the predict suffix's position ids restart right after the text (the summarize suffix's ids).

Both go to the stock transformers model as a 4-D float mask and ``position_ids``; no fork of
the model's forward. A 4-D mask replaces the model's own, sliding window included, so for a model
whose layers attend a window (Mistral, Qwen-2 with ``use_sliding_window``, Gemma-2/3) the joint mask
applies that window too, by position ids: one mask per layer type where the model picks its mask by
``config.layer_types``. The losses follow the authors' release: max-pool the LM-head logits of
the 8 placeholders, log-softmax over the vocabulary, minus the mean log-probability of the
distinct target ids; plus the next-token LM loss on the text.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pyserini_llara.template import NUM_PLACEHOLDERS

IGNORE_INDEX = -100


@dataclass(frozen=True)
class LossWeights:
    """total = lm * LM + ebae * EBAE + ebar * EBAR.

    The release computes LM + (EBAE + EBAR) / 2 / 10, hence 1, 0.05, 0.05. The bag-of-words
    terms alone collapse the embeddings (FlagEmbedding issue #538): keep ``lm`` > 0 unless
    that is what you study.
    """

    lm: float = 1.0
    ebae: float = 0.05
    ebar: float = 0.05

    def __post_init__(self):
        if min(self.lm, self.ebae, self.ebar) < 0 or self.lm + self.ebae + self.ebar == 0:
            raise ValueError(f"loss weights must be >= 0 and not all 0, got {self}")


def joint_position_ids(attention_mask: torch.Tensor, n_summarize: int, n_predict: int) -> torch.Tensor:
    """[B, L] left-padded 0/1 mask -> [B, L] position ids; the predict suffix reuses the summarize suffix's ids.

    Real tokens count from 0 at the first one (as ``template.left_pad``); padding gets 0.
    """
    positions = (attention_mask.long().cumsum(dim=1) - 1).clamp(min=0)
    positions[:, -n_predict:] -= n_summarize
    return positions


def joint_attention_mask(attention_mask: torch.Tensor, n_summarize: int, n_predict: int,
                         dtype: torch.dtype = torch.float32, window: int | None = None) -> torch.Tensor:
    """[B, L] left-padded 0/1 mask -> [B, 1, L, L] additive float mask (0 allowed, dtype min blocked).

    Causal over real tokens, with the predict rows blind to the summarize columns; with ``window``,
    a row attends only the tokens less than ``window`` positions back (transformers' sliding window,
    counted in the position ids each separate pass would have). Every position may attend itself,
    so padding rows are never fully blocked (no NaN in softmax).
    """
    length = attention_mask.shape[1]
    device = attention_mask.device
    allowed = torch.ones(length, length, dtype=torch.bool, device=device).tril()
    allowed = allowed.unsqueeze(0) & attention_mask.bool().unsqueeze(1)
    allowed[:, length - n_predict:, length - n_predict - n_summarize:length - n_predict] = False
    if window is not None:
        positions = joint_position_ids(attention_mask, n_summarize, n_predict)
        allowed &= positions.unsqueeze(2) - positions.unsqueeze(1) < window
    allowed |= torch.eye(length, dtype=torch.bool, device=device)
    mask = torch.zeros(allowed.shape, dtype=dtype, device=device).masked_fill_(~allowed, torch.finfo(dtype).min)
    return mask.unsqueeze(1)


@dataclass(frozen=True)
class SlidingWindow:
    """A model's sliding-window attention: its size, and whether the model picks a mask per layer type."""

    size: int
    per_layer_type: bool


LAYER_TYPES = ("full_attention", "sliding_attention")


def sliding_window(config) -> SlidingWindow | None:
    """The window the joint mask must apply for a transformers ``config``; None when no layer slides.

    Raises ``ValueError`` for layer types the joint mask cannot express (chunked attention, ...).
    """
    size = getattr(config, "sliding_window", None)
    layer_types = getattr(config, "layer_types", None)
    if layer_types is not None:
        unknown = sorted(set(layer_types) - set(LAYER_TYPES))
        if unknown:
            raise ValueError(f"{config.model_type} has {', '.join(unknown)} layers; the joint EBAE/EBAR mask "
                             f"replaces the model's own and can only express {' and '.join(LAYER_TYPES)}")
        if "sliding_attention" not in layer_types:
            return None
    if size is None or getattr(config, "use_sliding_window", True) is False:
        return None
    return SlidingWindow(int(size), per_layer_type=layer_types is not None)


def lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """[B, L, V] logits, [B, L] labels (IGNORE_INDEX where no loss) -> scalar next-token loss.

    Position t predicts label t + 1; the mean is over all labelled tokens of the batch.
    """
    shifted = labels[:, 1:]
    if not bool((shifted != IGNORE_INDEX).any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), shifted.flatten(), ignore_index=IGNORE_INDEX)


def bag_of_words_loss(placeholder_logits: torch.Tensor, target_ids: torch.Tensor,
                      target_mask: torch.Tensor) -> torch.Tensor:
    """[B, 8, V] placeholder logits, [B, T] distinct target ids, [B, T] bool -> [B] losses.

    Max over the 8 placeholders, log-softmax over the vocabulary, minus the mean log-prob
    of the targets. A row without targets gets 0.
    """
    log_probs = F.log_softmax(placeholder_logits.float().max(dim=1).values, dim=-1)
    picked = log_probs.gather(1, target_ids.clamp(min=0)) * target_mask
    return -picked.sum(dim=1) / target_mask.sum(dim=1).clamp(min=1)


def masked_mean(values: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` [B] over rows where ``keep`` [B] is True; 0 (still in the graph) when none."""
    keep = keep.to(values.dtype)
    return (values * keep).sum() / keep.sum().clamp(min=1)


def pretrain_losses(logits: torch.Tensor, batch: dict, n_predict: int, weights: LossWeights) -> dict[str, torch.Tensor]:
    """[B, L, V] logits of a joint batch -> {"loss", "lm", "ebae", "ebar"} scalars.

    The summarize placeholders are the 8 columns right before the predict suffix, the
    predict placeholders the last 8 (left padding).
    """
    summarize = logits[:, -n_predict - NUM_PLACEHOLDERS:-n_predict]
    predict = logits[:, -NUM_PLACEHOLDERS:]
    parts = {
        "lm": lm_loss(logits, batch["labels"]),
        "ebae": masked_mean(bag_of_words_loss(summarize, batch["ebae_ids"], batch["ebae_mask"]),
                            batch["ebae_mask"].any(dim=1)),
        "ebar": masked_mean(bag_of_words_loss(predict, batch["ebar_ids"], batch["ebar_mask"]),
                            batch["ebar_mask"].any(dim=1)),
    }
    total = weights.lm * parts["lm"] + weights.ebae * parts["ebae"] + weights.ebar * parts["ebar"]
    return {"loss": total, **parts}


def mask_dtype(model) -> torch.dtype:
    """The additive mask's dtype: the weights' float dtype (fp32 weights under autocast keep an fp32 mask)."""
    return next(p.dtype for p in model.parameters() if p.is_floating_point())


@dataclass(frozen=True)
class PretrainObjective:
    """``compute_loss`` for ``adaptation.training.train``: one joint forward, three logged terms."""

    n_summarize: int
    n_predict: int
    weights: LossWeights = LossWeights()
    window: SlidingWindow | None = None

    def mask(self, attention_mask: torch.Tensor, dtype: torch.dtype):
        """The joint mask the model takes: one tensor, or one per layer type for a model with a window on some."""
        def joint(window=None):
            return joint_attention_mask(attention_mask, self.n_summarize, self.n_predict, dtype, window)

        if self.window is None:
            return joint()
        if not self.window.per_layer_type:
            return joint(self.window.size)
        return {"full_attention": joint(), "sliding_attention": joint(self.window.size)}

    def forward(self, model, batch: dict):
        """The model output of the joint pass (logits, and hidden states if asked through ``model``)."""
        return model(input_ids=batch["input_ids"], attention_mask=self.mask(batch["attention_mask"], mask_dtype(model)),
                     position_ids=batch["position_ids"], use_cache=False)

    def __call__(self, model, batch: dict, accelerator=None) -> dict[str, torch.Tensor]:
        return pretrain_losses(self.forward(model, batch).logits, batch, self.n_predict, self.weights)
