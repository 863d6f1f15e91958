"""Checkpoints that resume exactly and never run code: what a run saves, which one it may resume from, and
which ones a non-finite loss sets aside.

A checkpoint holds model, optimizer and RNG states (``accelerator.save_state``: safetensors, and
torch files that are only ever loaded with ``weights_only=True``) plus, in ``trainer_state.json``,
the data position, the scheduler's step count (the schedule is a function of the arguments and
that count, so no pickled scheduler is needed) and the arguments that define the run.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import warnings
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import torch

from pyserini_llara.atomic import staged

from .arguments import OPERATIONAL, TrainingArguments

logger = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
STATE_FILE = "trainer_state.json"
SET_ASIDE = ".nonfinite"  # suffix of checkpoints whose weights gave a non-finite loss


class CheckpointError(ValueError):
    """A checkpoint this run may not resume from; the message says which and what to do."""


def step_dirs(output_dir: str | Path) -> list[Path]:
    """The ``step-N`` directories (not their staging copies nor those set aside), oldest first."""
    found = [p for p in (Path(output_dir) / CHECKPOINTS).glob("step-*") if p.name[5:].isdigit()]
    return sorted(found, key=lambda p: int(p.name[5:]))


def complete_checkpoints(output_dir: str | Path) -> list[Path]:
    """Complete checkpoints (each holding its trainer state), oldest first."""
    return [p for p in step_dirs(output_dir) if (p / STATE_FILE).is_file()]


def last_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest complete checkpoint, or None."""
    return next(iter(reversed(complete_checkpoints(output_dir))), None)


def _resolved(value):
    """Paths as the files they name, so that ``DIR/`` and ``DIR`` are the same argument."""
    if isinstance(value, str) and value and os.path.exists(value):
        return os.path.realpath(value)
    if isinstance(value, list):
        return [_resolved(item) for item in value]
    return value


def run_definition(args: TrainingArguments, processes: int, stage: dict | None = None) -> dict:
    """What a resume must find unchanged: every argument that changes what the run computes.

    ``stage`` holds the stage's own arguments (model, data, objective); its
    ``model_name_or_path`` is compared by ``model_fingerprint``, whatever its spelling.
    """
    from pyserini_llara.fingerprint import model_fingerprint

    defining = {key: value for key, value in asdict(args).items() if key not in OPERATIONAL}
    stage = {key: _resolved(value) for key, value in (stage or {}).items()}
    if "model_name_or_path" in stage:
        stage["model_fingerprint"] = model_fingerprint(stage.pop("model_name_or_path"))
    return json.loads(json.dumps({**defining, **stage, "processes": processes}, default=str))


def unsafe_files(checkpoint: Path, process_index: int) -> list[str]:
    """Files of a checkpoint that would be unpickled with code execution allowed, or that cannot be read safely.

    accelerate loads registered objects (``custom_checkpoint_*.pkl``) with ``weights_only=False``; this
    loop registers none, so such a file was not written by it. The RNG state is read the way
    accelerate reads it (``weights_only=True``), which otherwise skips an unreadable one silently.
    """
    from accelerate.utils import load

    unsafe = sorted(p.name for p in checkpoint.glob("custom_checkpoint_*.pkl"))
    rng = checkpoint / f"random_states_{process_index}.pkl"
    if rng.is_file():
        try:
            load(rng)
        except Exception:  # any failure means it is not the plain RNG state this loop saved
            unsafe.append(rng.name)
    return unsafe


def changes(saved: dict, now: dict) -> list[str]:
    return [f"{key}: {saved.get(key)!r} in the checkpoint, {now.get(key)!r} now"
            for key in sorted(set(saved) | set(now)) if saved.get(key) != now.get(key)]


def all_finite(model, accelerator) -> bool:
    bad = torch.tensor(float(any(not bool(torch.isfinite(p.detach()).all()) for p in model.parameters())),
                       device=accelerator.device)
    return accelerator.reduce(bad, reduction="sum").item() == 0


def set_aside_bad_checkpoints(output_dir: Path, failed_step: int) -> None:
    """Rename the checkpoints a rerun must not resume from.

    The loss of step N+1 is computed from the weights of step N, so the checkpoint of the
    step before a non-finite loss, and any later one, holds weights that give it; so does
    one whose weights were not all finite when saved.
    """
    for checkpoint in complete_checkpoints(output_dir):
        state = json.loads((checkpoint / STATE_FILE).read_text())
        if int(checkpoint.name[5:]) >= failed_step - 1 or not state.get("finite_weights", False):
            target = checkpoint.with_name(checkpoint.name + SET_ASIDE)
            shutil.rmtree(target, ignore_errors=True)
            checkpoint.rename(target)


def find_resume(output_dir: Path, definition: dict, allow_changed_arguments: bool,
                process_index: int) -> tuple[Path, dict] | None:
    """The checkpoint a run resumes from and its saved state, or None; a checkpoint it may not resume raises.

    A checkpoint written with other defining arguments is refused unless ``allow_changed_arguments``
    (then the changes are logged).
    """
    checkpoint = last_checkpoint(output_dir)
    if checkpoint is None:
        return None
    saved = json.loads((checkpoint / STATE_FILE).read_text())
    if "definition" not in saved or "scheduler_steps" not in saved:
        raise CheckpointError(f"{checkpoint} was written by an older version of this program and cannot be "
                              "resumed; start over with --overwrite_output_dir")
    unsafe = unsafe_files(checkpoint, process_index)
    if unsafe:
        raise CheckpointError(f"refusing to resume from {checkpoint}: {', '.join(unsafe)} is not a file this "
                              "program writes there, and unpickling it could run code; delete that checkpoint "
                              "to resume from an earlier one, or start over with --overwrite_output_dir")
    changed = changes(saved["definition"], definition)
    if changed and not allow_changed_arguments:
        raise CheckpointError(f"cannot resume {output_dir} from {checkpoint.name}: the run was started with "
                              f"other arguments ({'; '.join(changed)}); rerun with the checkpoint's values, add "
                              "--allow_changed_arguments to continue with the new ones, or start over with "
                              "--overwrite_output_dir")
    if changed and process_index == 0:
        logger.warning("resuming with changed arguments: %s", "; ".join(changed))
    return checkpoint, saved


def load_checkpoint(accelerator, checkpoint: Path, scheduler, scheduler_steps: int) -> None:
    """Model, optimizer and RNG states from ``checkpoint``, and the schedule replayed to its step count.

    The schedule is a function of the arguments and its step count, so replaying the steps restores
    it (with changed arguments allowed, it becomes the new schedule at that step).
    """
    try:
        accelerator.load_state(str(checkpoint))
    except Exception as error:  # a damaged or foreign file: say which checkpoint, on one line
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"cannot load {checkpoint} ({reason}); delete it to resume from an earlier "
                              "checkpoint, or start over with --overwrite_output_dir") from error
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "scheduler stepped before the optimizer"
        for _ in range(scheduler_steps):
            scheduler.step()


def _failure(error: Exception) -> str:
    """What stopped a write, in words; torch reports a write the disk cut short as ``unexpected pos N vs M``."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    text = str(error).strip()
    if "unexpected pos" in text:
        return "the write was cut short"
    return text.splitlines()[0] if text else type(error).__name__


@contextmanager
def _writing(staging: Path):
    """A checkpoint that cannot be written whole (a full disk: torch then says ``unexpected pos N vs M``) as one
    line naming where and the space left there; the part written is removed, the last complete checkpoint kept."""
    try:
        yield
    except Exception as error:  # torch, safetensors and plain files each say it their own way
        shutil.rmtree(staging, ignore_errors=True)
        free = shutil.disk_usage(next(p for p in staging.parents if p.exists())).free
        raise CheckpointError(f"cannot write the checkpoint {staging.with_suffix('')}: {_failure(error)}, with "
                              f"{free / 2**20:.1f} MiB free on its disk; make room and rerun the same command to "
                              "resume from the last complete checkpoint") from None


def save_checkpoint(accelerator, model, output_dir: Path, step: int, state: dict, save_total_limit: int) -> None:
    """``checkpoints/step-STEP``: accelerate's states, and ``state`` with whether the weights are finite in
    ``trainer_state.json``; staged whole and renamed into place, so that a run killed while saving keeps
    the previous complete checkpoint. The oldest beyond ``save_total_limit`` go.
    """
    final = output_dir / CHECKPOINTS / f"step-{step}"
    staging = staged(final)
    main = accelerator.is_main_process
    if main:
        shutil.rmtree(staging, ignore_errors=True)
    accelerator.wait_for_everyone()
    with _writing(staging):
        accelerator.save_state(str(staging))
    finite = all_finite(model, accelerator)
    if main:
        with _writing(staging):
            (staging / STATE_FILE).write_text(json.dumps({**state, "finite_weights": finite}, indent=2))
        shutil.rmtree(final, ignore_errors=True)
        staging.rename(final)
        older = [p for p in step_dirs(output_dir) if p != final]
        if save_total_limit > 0:
            for stale in older[:max(0, len(older) - save_total_limit + 1)]:
                shutil.rmtree(stale)
    accelerator.wait_for_everyone()
