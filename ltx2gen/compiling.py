"""Whether the transformer blocks are compiled: where asked, where needed (dynamic FP8), where this shape is
already in the compile cache, or where a first compile pays for itself in the run at hand. A first compile on a
machine costs about 30 s in bf16 and about 6 minutes with FP8 weights (measured, docs/BENCHMARKS.md); it saves about
12% of each transformer call. A run that compiled leaves a note in torch's compile cache, so a later run of the
same shape knows its compile will be quick.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

COLD_COMPILE_SECONDS = {"off": 30.0, "weight": 340.0, "dynamic": 360.0}  # by --fp8: the first compile on a machine
WARM_COMPILE_SECONDS = 10.0  # the same graph again, from the compile cache
COMPILED_CALL_SAVING = 0.12  # of each transformer call: 1080p steps of 5.66 -> 4.90 s offloaded, 5.14 -> 4.69 resident
# One transformer call on an H100, a + b tokens + c tokens^2 (attention): 0.40 s at 4,992 video tokens, 5.1 s at 42,840
CALL_SECONDS_PER_1K_TOKENS = 0.0749
CALL_SECONDS_PER_1K_TOKENS_SQUARED = 0.001047
WARM_NOTE = "ltx2gen-compiled.json"  # in the compile cache: the shapes already compiled there


def call_seconds(tokens: int) -> float:
    thousands = tokens / 1000
    return CALL_SECONDS_PER_1K_TOKENS * thousands + CALL_SECONDS_PER_1K_TOKENS_SQUARED * thousands**2


# Diffusion time against the resident bf16 transformer's, measured at 1920x1088x161 (H100/H200)
OFFLOAD_SLOWDOWN = {("off", "none"): 1.0, ("weight", "none"): 1.13, ("dynamic", "none"): 0.78, ("off", "group"): 1.07,
                    ("weight", "group"): 1.45}


def diffusion_seconds(tokens: int, calls: int, fp8: str, offload: str, compiled: bool) -> float | None:
    """The transformer calls' time on an H100, or None where the mode's cost was not measured (sequential)."""
    slowdown = OFFLOAD_SLOWDOWN.get((fp8, offload))
    if slowdown is None:
        return None
    return call_seconds(tokens) * calls * slowdown * (1 - COMPILED_CALL_SAVING if compiled else 1.0)


def choose(requested: str, fp8: str, offload: str, *, tokens: int, calls: int, key: str) -> tuple[bool, str]:
    """(compile, why). `calls`: the transformer calls of the run; `key`: the compiled graph's shape
    (`graph_key`)."""
    if offload in ("sequential", "files"):
        return False, f"the transformer streams through per-block hooks ({offload} offload), which cannot be " \
                      "compiled" + ("; --compile on is ignored" if requested == "on" else "")
    if requested != "auto":
        return requested == "on", f"--compile {requested}"
    if fp8 == "dynamic":
        return True, "--fp8 dynamic runs only compiled"
    saved = COMPILED_CALL_SAVING * call_seconds(tokens) * calls
    if key in warm_graphs():  # about even at worst, and the compiled blocks' activations are smaller
        return True, f"the blocks are compiled: this shape is in the compile cache (about " \
                     f"{WARM_COMPILE_SECONDS:.0f} s to load, about {saved:.0f} s saved over {calls} transformer calls)"
    cost = COLD_COMPILE_SECONDS[fp8]
    if saved > cost:
        return True, f"compiling pays: about {saved:.0f} s saved over {calls} transformer calls for a first " \
                     f"compile of about {cost:.0f} s"
    return False, f"the blocks run eager: compiling would save about {saved:.0f} s over {calls} transformer calls " \
                  f"for a first compile of about {cost:.0f} s (--compile on compiles anyway)"


def graph_key(*, fp8: str, offload: str, call: dict, version: str) -> str:
    """What a compiled graph depends on: the software, the weights' precision, the offload hooks around it and the
    shapes of a call (size, frames and the guidance's batch)."""
    import diffusers
    import torch

    shape = "x".join(str(call[name]) for name in ("width", "height", "num_frames"))
    guidance = call.get("guidance_scale", 1.0) > 1 or call.get("audio_guidance_scale", 1.0) > 1
    return f"torch {torch.__version__}, diffusers {diffusers.__version__}, LTX-{version}, fp8 {fp8}, offload " \
           f"{offload}, {shape}, {'guided' if guidance else 'unguided'}"


def cache_dir() -> Path:
    from torch._inductor.runtime.cache_dir_utils import cache_dir as inductor_cache_dir

    return Path(os.environ.get("TORCHINDUCTOR_CACHE_DIR") or inductor_cache_dir())


def warm_graphs() -> list[str]:
    try:
        return json.loads((cache_dir() / WARM_NOTE).read_text())
    except (OSError, ValueError):
        return []


def remember(key: str) -> None:
    """Once a compiled call has finished: this shape compiles from the cache next time. Best effort: a cache folder
    that cannot be written costs only a cold estimate next time."""
    from ltx2gen.files import write_json

    graphs = warm_graphs()
    if key in graphs:
        return
    try:
        cache_dir().mkdir(parents=True, exist_ok=True)
        write_json(cache_dir() / WARM_NOTE, graphs + [key])
    except OSError:
        pass
