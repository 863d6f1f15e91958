"""Which LLaRA model to load and how to run it: the settings every command that encodes shares.

Kept apart from ``encoding`` so that a CLI can build its config (and answer ``--help``)
without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from .names import model_name
from .template import DEFAULT_MAX_TEXT_TOKENS


@dataclass(frozen=True)
class EncoderConfig:
    """The CLI flags of the same names map onto these fields."""

    encoder: str = "llara"
    lora: str | None = None
    add_tokens: bool = False
    device: str = "cpu"
    dtype: str = "auto"  # precision.resolve_dtype: bf16 where the device runs it natively, else float32
    batch_size: int = 32
    max_length: int = DEFAULT_MAX_TEXT_TOKENS

    def __post_init__(self):
        for name in ("batch_size", "max_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")

    @property
    def model(self) -> str:
        """The model ``encoder`` names (``llara`` alone: the released passage model)."""
        return model_name(self.encoder)

    def load(self):
        """The ``LlaraEncoder`` these settings describe."""
        from .encoding import LlaraEncoder

        return LlaraEncoder.from_pretrained(self.model, lora=self.lora, dtype=self.dtype, device=self.device,
                                            add_tokens=self.add_tokens, batch_size=self.batch_size,
                                            max_text_tokens=self.max_length)
