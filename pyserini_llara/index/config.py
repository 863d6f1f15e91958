"""What a build is asked to do (``IndexConfig``), and how it says no (``IndexBuildError``)."""

from __future__ import annotations

from dataclasses import dataclass

from ..encoder_config import EncoderConfig


class IndexBuildError(RuntimeError):
    """A build that cannot go on as asked; the message says what to change."""


@dataclass(frozen=True)
class IndexConfig(EncoderConfig):
    """How to encode and index; the CLI flags of the same names map onto these fields."""

    index_type: str = "Flat"
    nprobe: int | None = None
    chunk_size: int = 4096
    shard_id: int = 0
    shard_num: int = 1

    def __post_init__(self):
        super().__post_init__()
        for name in ("chunk_size", "shard_num"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0 <= self.shard_id < self.shard_num:
            raise ValueError(f"shard_id must be in 0..{self.shard_num - 1}, got {self.shard_id}")
        if self.shard_num > 1 and self.index_type != "Flat":
            raise ValueError("shards keep exact vectors: build them with index type Flat and choose "
                             f"{self.index_type!r} when merging them")
