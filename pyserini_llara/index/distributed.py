"""One index built by the processes of ``torchrun`` or ``accelerate launch``: a shard each, then a merge."""

from __future__ import annotations

import dataclasses
import os
from datetime import timedelta
from pathlib import Path

from . import crashpoints
from .build import build_index
from .config import IndexBuildError, IndexConfig
from .merge import merge_shards
from .output import inspect_output, refuse_existing, refuse_foreign, remove_index


def launched_ranks() -> tuple[int, int, int]:
    """(rank, world size, local rank) as ``torchrun`` and ``accelerate launch`` export them; (0, 1, 0) otherwise."""
    return tuple(int(os.environ.get(name, default)) for name, default in
                 (("RANK", 0), ("WORLD_SIZE", 1), ("LOCAL_RANK", 0)))


def build_index_distributed(corpus: str | os.PathLike, output: str | os.PathLike, config: IndexConfig = IndexConfig(),
                            *, resume: bool = False, overwrite: bool = False) -> Path:
    """``build_index`` split over the processes of ``torchrun`` / ``accelerate launch``: one shard each, then one index.

    Each rank encodes its shard into ``OUTPUT.shards/RANK`` (on ``cuda:LOCAL_RANK`` when the
    device is ``cuda``) and says so in the launcher's key-value store; rank 0 waits for all of
    them, merges them into ``output`` as ``config.index_type`` and only then removes the
    shards' files, as their records list them. The store alone is enough for that, and unlike a
    gloo process group its teardown cannot abort a finished build. After a crash at any point,
    rerunning with ``resume`` and the same number of processes continues every shard where it
    stopped and merges again.
    """
    import torch.distributed as dist

    rank, world, local_rank = launched_ranks()
    if config.shard_num > 1:
        raise ValueError("under torchrun / accelerate launch each process builds the shard of its rank: "
                         "drop --shard-id/--shard-num")
    output = Path(output)
    work = output.with_name(output.name + ".shards")
    found = inspect_output(output)  # checked before hours of encoding, not at the merge
    refuse_existing(output, found, resume, overwrite)
    refuse_foreign(output, found)
    if resume and found.building is not None:
        raise IndexBuildError(f"cannot resume {output} under torchrun: it holds a single-process build in "
                              "progress; resume it without torchrun, or use --overwrite")
    if resume and found.finished and not work.exists():
        if rank == 0:  # compares settings and corpus with the index's, as a single-process resume does
            build_index(corpus, output, config, resume=True)
        return output
    # From here on the shards are the build in progress: a resume finishes them and merges again
    # (cheap, no encoding), also over an index that was being overwritten or already merged.
    shards = [work / f"{r:05d}" for r in range(world)]
    device = f"cuda:{local_rank}" if config.device == "cuda" else config.device
    shard = dataclasses.replace(config, device=device, index_type="Flat", nprobe=None, shard_id=rank, shard_num=world)
    # Rank 0 waits here for the slowest shard, which may take hours of encoding.
    store = next(dist.rendezvous("env://", timeout=timedelta(days=7)))[0]
    build_index(corpus, shards[rank], shard, resume=resume, overwrite=overwrite)
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")  # a restarted launch must not see old keys
    store.set(f"pyserini_llara/{attempt}/shard/{rank}", "done")
    if rank == 0:
        store.wait([f"pyserini_llara/{attempt}/shard/{r}" for r in range(world)], timedelta(days=7))
        crashpoints.reached("merge:shards-done")
        merge_shards(shards, output, index_type=config.index_type, nprobe=config.nprobe, overwrite=True)
        for directory in shards:  # only the files the shards' records list: a user's own files in work stay
            remove_index(directory)
        if not any(work.iterdir()):
            work.rmdir()
    return output
