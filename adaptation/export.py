"""Writing a trained model where ``--encoder llara:DIR`` finds it: weights, tokenizer, card, arguments.

LoRA adapters are merged into the weights by default (the released LLaRA checkpoints are
merged full models, and a merged model encodes without peft); ``adapter_only`` writes the
adapter and the tokenizer instead, which ``pyserini_llara.modeling.load_model`` resolves
through ``adapter_config.json``.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
from pathlib import Path

logger = logging.getLogger(__name__)

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin")
MODEL_GLOBS = ("model*.safetensors", "model.safetensors.index.json", "pytorch_model*.bin", "config.json",
               "generation_config.json")


def is_peft_model(model) -> bool:
    try:
        from peft import PeftModel
    except ImportError:
        return False
    return isinstance(model, PeftModel)


def _remove(output_dir: Path, patterns) -> None:
    """Stale files of the other export kind would change how load_model reads the directory."""
    for pattern in patterns:
        for path in output_dir.glob(pattern):
            path.unlink()


def export_model(model, tokenizer, output_dir: str | Path, *, adapter_only: bool = False, accelerator=None,
                 card: dict | None = None, arguments: dict | None = None) -> Path:
    """Save ``model`` (merged if it carries LoRA, unless ``adapter_only``) + tokenizer + README.md + arguments.

    Under ``accelerate`` pass the accelerator: the state dict is gathered from all processes
    (DeepSpeed ZeRO-3 / FSDP) and only the main process writes.
    """
    output_dir = Path(output_dir)
    main = accelerator is None or accelerator.is_main_process
    unwrapped = accelerator.unwrap_model(model) if accelerator is not None else model
    peft = is_peft_model(unwrapped)
    if adapter_only and not peft:
        raise ValueError("adapter_only export needs a LoRA-trained model (use_lora=True)")
    if main:
        output_dir.mkdir(parents=True, exist_ok=True)
        _remove(output_dir, MODEL_GLOBS if adapter_only else ADAPTER_FILES)
    if peft and adapter_only:
        unwrapped.save_pretrained(output_dir, is_main_process=main)
    else:
        state_dict = None
        if peft:
            unwrapped = unwrapped.merge_and_unload()
        elif accelerator is not None:
            state_dict = accelerator.get_state_dict(model)
        unwrapped.config.use_cache = True
        save = accelerator.save if accelerator is not None else None
        unwrapped.save_pretrained(output_dir, state_dict=state_dict, is_main_process=main,
                                  **({"save_function": save} if save else {}))
    if main:
        tokenizer.save_pretrained(output_dir)
        if arguments is not None:
            (output_dir / "training_args.json").write_text(json.dumps(arguments, indent=2, default=str) + "\n")
        (output_dir / "README.md").write_text(model_card(card or {}, adapter_only=adapter_only and peft))
    if accelerator is not None:
        accelerator.wait_for_everyone()
    return output_dir


def _value(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_value(v)}" for k, v in value.items())
    return str(value)


def model_card(card: dict, adapter_only: bool = False) -> str:
    """A short README.md: what the model is, what it was trained from and on, how far, and how to use it."""
    card = dict(card)
    title = card.pop("title", "LLaRA model")
    summary = card.pop("summary", "")
    lines = [f"# {title}", ""]
    if summary:
        lines += [summary, ""]
    lines += [f"- **{key.replace('_', ' ')}**: {_value(value)}" for key, value in card.items()]
    lines += [f"- **written**: {_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
              "- **format**: " + ("LoRA adapter (base model named in adapter_config.json)" if adapter_only
                                  else "full model") + " + tokenizer with the LLaRA tokens <s1>..<s16>", "",
              "## Use", "", "```bash",
              "python -m pyserini.encode input --corpus CORPUS.jsonl output --embeddings INDEX --to-faiss \\",
              "  encoder --encoder llara:THIS_DIR",
              "python -m pyserini.search.faiss --index INDEX --topics TOPICS.tsv --encoder llara:THIS_DIR "
              "--output RUN.txt",
              "```", "", "```python", "from pyserini_llara.encoding import LlaraEncoder",
              "encoder = LlaraEncoder.from_pretrained(\"THIS_DIR\")", "```", "",
              "Training curves: `metrics.jsonl` (one JSON line per logging step) and `loss.png`; "
              "arguments: `training_args.json`.", ""]
    return "\n".join(lines)
