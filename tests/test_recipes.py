"""The GPU recipes do what their comments say: their fine-tuning commands parse, and clip as the release did."""

import os
import re
import shlex
from pathlib import Path

import pytest

from adaptation.finetune import parser

ROOT = Path(__file__).resolve().parents[1]


def launched_arguments(script: Path, module: str, env: dict) -> tuple[list[str], list[str]]:
    """(launcher arguments, module arguments) of the one command in ``script`` that runs ``-m module``."""
    text = re.sub(r"\\\n", " ", script.read_text())
    line = next(line for line in text.splitlines() if f"-m {module}" in line and not line.lstrip().startswith("#"))
    words = shlex.split(line.split("#")[0])
    words = [re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m.group(1), m.group(1)), w) for w in words]
    at = words.index(module)
    return words[:at - 1], words[at + 1:]


@pytest.mark.parametrize("gpus", [1, 8])
def test_msmarco_finetune_clips_as_the_release_on_any_number_of_gpus(gpus):
    """Our cross-device gradient is NUM_GPUS times the release's: clipping at NUM_GPUS is its clipping at 1.0."""
    launcher, arguments = launched_arguments(ROOT / "examples/msmarco_passage/04_finetune.sh", "adaptation.finetune",
                                             {**os.environ, "NUM_GPUS": str(gpus)})
    assert launcher[launcher.index("--num_processes") + 1] == str(gpus)
    args, training = parser().parse_args_into_dataclasses(args=arguments)
    assert args.negatives_cross_device
    assert training.max_grad_norm == gpus
