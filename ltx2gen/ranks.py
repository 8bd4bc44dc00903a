"""One batch over many GPUs or hosts: under `torchrun`, each process (rank) renders its own share of the clips with
its own model replica, on the GPU of its local rank; rank 0 writes the combined summary once every rank is done.

The share is fixed by the clip's position in the batch file (clip i goes to rank i mod the number of ranks), so it
never depends on timing: every clip is rendered by exactly one rank, and a resumed run with the same number of
ranks gives each rank the same clips, of which it skips those already rendered.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

from ltx2gen.errors import ConfigError

# Ranks that finish their share early wait for the others at the end of the batch, which can take hours.
BATCH_WAIT = timedelta(days=7)


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> "Ranks":
        """torchrun's RANK, WORLD_SIZE and LOCAL_RANK; a plain process is rank 0 of 1."""
        try:
            ranks = cls(*(int(os.environ.get(name, default)) for name, default in
                          (("RANK", 0), ("WORLD_SIZE", 1), ("LOCAL_RANK", 0))))
        except ValueError:
            raise ConfigError("RANK, WORLD_SIZE and LOCAL_RANK must be integers (torchrun sets them)") from None
        if not 0 <= ranks.rank < ranks.world_size:
            raise ConfigError(f"RANK {ranks.rank} is outside WORLD_SIZE {ranks.world_size}")
        return ranks

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @staticmethod
    def share_the_page_cache() -> bool:
        """Several ranks on this host (torchrun's LOCAL_WORLD_SIZE): they read the same model files, so none of them
        may evict those files from the page cache while the others load."""
        return int(os.environ.get("LOCAL_WORLD_SIZE", "1")) > 1

    def share(self, items: list) -> list:
        return items[self.rank::self.world_size]

    def join(self) -> None:
        """Meet the other ranks (over gloo, which needs no GPU); returns once all have joined."""
        import torch.distributed as dist

        dist.init_process_group("gloo", timeout=BATCH_WAIT)

    def wait_for_all(self) -> None:
        """Return once every rank has called this; leaves the group."""
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
