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

from .precision import resolve_dtype
from .template import add_special_tokens, ensure_pad_token, missing_special_tokens

logger = logging.getLogger(__name__)


class ModelLoadError(OSError):
    pass


def torch_dtype(name: str, device="cpu"):
    """The torch dtype for a precision name; ``auto`` is resolved for ``device`` (see ``precision``)."""
    import torch

    return getattr(torch, resolve_dtype(name, device))


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
            raise ModelLoadError(f"{adapter_config} names no base_model_name_or_path; pass the base model and "
                                 "lora= explicitly")
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


def _corrupt_weights(name: str, error: Exception) -> ModelLoadError:
    """Names the file: the safetensors error does not."""
    from safetensors import SafetensorError, safe_open

    culprit = name
    for path in sorted(Path(name).glob("*.safetensors")) if Path(name).is_dir() else []:
        try:
            safe_open(str(path), "pt").keys()
        except SafetensorError:
            culprit = str(path)
            break
    return ModelLoadError(f"cannot read the weights in {culprit} ({' '.join(str(error).split())}): the file is "
                          "truncated or corrupt; download or copy the model again")


def _checkpoint_backend(tokenizer, path: str, kwargs: dict):
    """The checkpoint's own tokenization for a sentencepiece-family tokenizer (LLaMA-2's, ...).

    transformers 5 rebuilds such a tokenizer (``LlamaTokenizer``) from its vocabulary with a
    Metaspace pre-tokenizer instead of the checkpoint's normaliser: a text that begins with a
    space loses the ``▁`` piece sentencepiece gives it (LLaMA-2: " Hello" -> 15043 instead of
    29871 15043), and built from ``tokenizer.model`` alone its merges differ as well.
    ``TokenizersBackend`` reads ``tokenizer.json`` as written, or converts ``tokenizer.model``
    by sentencepiece's own rules; its pipeline replaces the rebuilt one, while the class (and so
    the ``tokenizer_config.json`` that ``save_pretrained`` writes) stays what the checkpoint names.
    """
    try:
        from tokenizers import pre_tokenizers
        from transformers.tokenization_utils_tokenizers import TokenizersBackend
    except ImportError:  # transformers 4 reads tokenizer.json as written
        return tokenizer
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if (kwargs.get("gguf_file") or type(tokenizer) is TokenizersBackend or backend is None
            or not isinstance(backend.pre_tokenizer, pre_tokenizers.Metaspace)):
        return tokenizer
    try:
        exact = TokenizersBackend.from_pretrained(path)
    except (OSError, ValueError, ImportError) as error:
        raise ModelLoadError(f"could not read the sentencepiece tokenizer of {path} as written ({error}); "
                             "it needs `pip install sentencepiece`") from error
    tokenizer._tokenizer = exact.backend_tokenizer
    return tokenizer


def load_tokenizer(source: ModelSource | str, add_tokens: bool = False):
    """The model's tokenizer, left-padding, with a pad token; ids equal the checkpoint's own tokenizer's.

    ``add_tokens`` adds <s1>..<s16> where missing (in the release's order: on LLaMA-2, the
    released checkpoints' ids).
    """
    from transformers import AutoTokenizer

    source = resolve_source(source) if isinstance(source, str) else source
    kwargs = {"gguf_file": source.gguf_file} if source.gguf_file and source.tokenizer_path == source.base else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(source.tokenizer_path, **kwargs)
    except (OSError, ValueError) as error:
        raise _hub_hint(source.tokenizer_path, error) from error
    tokenizer = _checkpoint_backend(tokenizer, source.tokenizer_path, kwargs)
    if add_tokens and missing_special_tokens(tokenizer):
        added = add_special_tokens(tokenizer)
        logger.warning(
            "added %d LLaRA tokens to the tokenizer of %s: the model is not LLaRA-adapted, "
            "so its embeddings are zero-shot", added, source.base,
        )
    ensure_pad_token(tokenizer)
    tokenizer.padding_side = "left"
    return tokenizer


NEW_TOKEN_INIT = ("mean", "random")


def resize_for_tokenizer(model, tokenizer, init: str = "mean", seed: int = 0) -> int:
    """Grow the embeddings (and LM head) to the tokenizer; returns how many rows were added.

    ``mean``: every new row is the mean of the old ones, so an unadapted model encodes the
    same way every run (zero-shot encoding). ``random``: transformers' default init, normal
    with the config's ``initializer_range``, as the release's ``resize_token_embeddings``
    (drawn from ``seed``, so a run is repeatable).
    """
    import torch

    if init not in NEW_TOKEN_INIT:
        raise ValueError(f"new-token init must be one of {', '.join(NEW_TOKEN_INIT)}, got {init!r}")
    old = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) <= old:
        return 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    if init == "mean":
        with torch.no_grad():
            for matrix in {id(m): m for m in (model.get_input_embeddings(), model.get_output_embeddings())
                           if m is not None}.values():
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
    dtype: str = "auto",
    device: str = "cpu",
    add_tokens: bool = False,
    causal_lm: bool = False,
    attn_implementation: str | None = None,
    new_token_init: str = "mean",
    seed: int = 0,
):
    """Return ``(model, tokenizer)``.

    ``causal_lm=False`` gives the transformer body (enough to encode); ``True`` keeps the
    LM head for pretraining. ``dtype="auto"`` is the device's fast precision
    (``precision.resolve_dtype``). ``attn_implementation=None`` is transformers' choice: sdpa
    where the model has it, else eager (Gemma-2, whose logit soft-capping sdpa lacks). A LoRA
    adapter is merged into the weights. With
    ``add_tokens=True`` a model without <s1>..<s16> gets them, their rows initialised by
    ``new_token_init`` (see ``resize_for_tokenizer``): ``mean`` for zero-shot encoding.
    """
    from safetensors import SafetensorError
    from transformers import AutoModel, AutoModelForCausalLM

    source = resolve_source(name_or_path, lora)
    tokenizer = load_tokenizer(source, add_tokens=add_tokens)
    kwargs = {"dtype": torch_dtype(dtype, device), "attn_implementation": attn_implementation}
    if source.gguf_file:
        kwargs["gguf_file"] = source.gguf_file
    # An adapter was trained on the causal LM; merge it there, then keep the body.
    auto = AutoModelForCausalLM if (causal_lm or source.adapter) else AutoModel
    try:
        with _quiet_transformers():
            model, info = auto.from_pretrained(source.base, output_loading_info=True, **kwargs)
    except (OSError, ValueError) as error:
        raise _hub_hint(source.base, error) from error
    except SafetensorError as error:
        raise _corrupt_weights(source.base, error) from error
    # The body of a causal-LM checkpoint leaves lm_head unused: expected. Missing weights are not.
    if info.get("missing_keys"):
        logger.warning("%s lacks weights for %s: they are randomly initialised", source.base,
                       ", ".join(sorted(info["missing_keys"])))
    if source.gguf_file:
        _forget_gguf_origin(model)
    resize_for_tokenizer(model, tokenizer, new_token_init, seed)
    if source.adapter:
        from peft import PeftModel

        try:
            model = PeftModel.from_pretrained(model, source.adapter).merge_and_unload()
        except SafetensorError as error:
            raise _corrupt_weights(source.adapter, error) from error
        if not causal_lm:
            model = model.get_decoder()
    return model.to(device).eval(), tokenizer
