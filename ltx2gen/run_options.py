"""The options of generate.py beside one clip's settings: a batch run in this process, and a plan without a run."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ltx2gen.errors import ConfigError
from ltx2gen.flags import opt


def default_embedding_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ltx2gen" / "prompt-embeddings"


@dataclass(frozen=True)
class BatchOptions:
    """generate.py --batch: the whole batch in this process."""

    batch: Path | None = opt(None, "render a JSON Lines batch file in this process (text encoder and transformer "
                                   "loaded once); see batch/prompts/", type=Path, metavar="FILE")
    out: Path | None = opt(None, "output folder for --batch (default: outputs/<batch file name>/)", type=Path)
    embedding_cache: Path = opt(default_embedding_cache(), "where --batch keeps prompt embeddings, so re-renders "
                                "skip the text encoder", type=Path)


@dataclass(frozen=True)
class PlanOnlyOptions:
    """--plan-only: the memory plan for the flags given, without reading any weight."""

    plan_only: bool = opt(False, "print the plan for the other flags (stages, precision, offloading, each stage's "
                                 "estimated GPU and host memory peak) and exit without reading any weight; works "
                                 "without a GPU, and a repo id not yet downloaded gets its configuration files alone")
    plan_for_gpu: float | None = opt(None, "with --plan-only: plan for a GPU with this much memory (GiB, e.g. 24 for "
                                           "an RTX 4090) instead of this machine's", metavar="GIB")
    plan_for_host: float | None = opt(None, "with --plan-only: plan for a host with this much free memory (GiB) "
                                            "instead of this machine's", metavar="GIB")

    def machine(self):
        """The machine to plan for (`fit.Machine`), or None for this one. Raises ConfigError for a bad value."""
        for flag, value in (("--plan-for-gpu", self.plan_for_gpu), ("--plan-for-host", self.plan_for_host)):
            if value is not None and not self.plan_only:
                raise ConfigError(f"{flag} plans for another machine and needs --plan-only; add it, or set "
                                  "LTX2GEN_GPU_MEMORY_GIB / LTX2GEN_HOST_MEMORY_GIB to cap this machine")
            if value is not None and not 1 <= value <= 4096:
                raise ConfigError(f"{flag} {value:g}: give the memory in GiB, from 1 to 4096")
        if self.plan_for_gpu is None and self.plan_for_host is None:
            return None
        from ltx2gen import fit

        if self.plan_for_gpu is None or self.plan_for_host is None:
            raise ConfigError("--plan-for-gpu and --plan-for-host go together: a plan needs both pools (e.g. "
                              "--plan-for-gpu 24 --plan-for-host 32)")
        source = f"--plan-for-gpu {self.plan_for_gpu:g} --plan-for-host {self.plan_for_host:g}, an FP8-capable GPU"
        return fit.Machine(self.plan_for_gpu, self.plan_for_host, source)
