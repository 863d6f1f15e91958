"""Which LLaRA model to load and how to run it: the settings, and their flags, every command that encodes shares.

Kept apart from ``encoding`` so that a CLI can build its config (and answer ``--help``)
without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from .names import DEFAULT_MODEL, model_name
from .precision import PRECISIONS
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


def add_encoder_arguments(parser, defaults: EncoderConfig, *, unit: tuple[str, str], dtype_help: str) -> None:
    """The flags of ``EncoderConfig``'s fields, defaulting to ``defaults``; ``unit`` names what one text is,
    singular and plural (document, documents)."""
    parser.add_argument("--encoder", default=defaults.encoder,
                        help="llara:MODEL, a model directory, a .gguf file or a hub id "
                             f"(default llara = {DEFAULT_MODEL})")
    parser.add_argument("--lora", help="LoRA adapter directory to merge into the model")
    parser.add_argument("--add-tokens", action="store_true",
                        help="add <s1>..<s16> to a base LLM that lacks them (zero-shot, unadapted)")
    parser.add_argument("--device", default=defaults.device,
                        help=f"torch device: cpu, cuda, cuda:1, mps (default {defaults.device})")
    parser.add_argument("--dtype", default=defaults.dtype, choices=PRECISIONS, help=dtype_help)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size,
                        help=f"{unit[1]} per forward pass (default {defaults.batch_size})")
    parser.add_argument("--max-length", type=int, default=defaults.max_length,
                        help=f"text tokens kept per {unit[0]}; the prompt is added on top "
                             f"(default {defaults.max_length})")
