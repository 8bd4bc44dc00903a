"""What a run tells the user and leaves beside the video: notices, the sidecar, the summary line."""

from __future__ import annotations

import dataclasses
import datetime
import os
import shlex
import sys
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ltx2gen.memory import MemoryTracker


def fps_text(fps: Fraction) -> str:
    return str(fps.numerator) if fps.denominator == 1 else f"{fps.numerator}/{fps.denominator}"


def recovery_command(latents_path: Path, output: Path) -> str:
    return command_line("decode_latents.py", "decode", ["--input", str(latents_path), "--output", str(output)])


def command_line(script: str, container_command: str, arguments: list[str]) -> str:
    """A command to run `script` (beside this package) with `arguments`, as the user runs it: in the Docker image,
    its entrypoint's `container_command`."""
    if os.environ.get("LTX2GEN_IN_CONTAINER") == "1":
        return f"docker run <the same options and image> {container_command} " + shlex.join(arguments)
    return shlex.join([sys.executable, str(Path(__file__).resolve().parent.parent / script), *arguments])


def resume_command(plan, flag: str, kept: Path) -> str:
    """generate.py going on from kept work (`flag` FILE): every clip setting is in the file; the LoRAs and the
    transformer's precision are given again so that what follows uses the same weights as what was kept."""
    arguments = [flag, str(kept), "--fp8", plan.fp8]
    for spec in plan.settings.lora:
        arguments += ["--lora", spec.label, f"{spec.scale:g}"]
    return command_line("generate.py", "generate", arguments)


def stage_reports(tracker: MemoryTracker) -> list[dict]:
    return [_rounded(dataclasses.asdict(report)) for report in tracker.reports]


def _rounded(values: dict) -> dict:
    return {key: round(value, 3) if isinstance(value, float) else _rounded(value) if isinstance(value, dict) else value
            for key, value in values.items()}


def summary_line(output: Path, num_frames: int, *, width: int, height: int, fps: Fraction,
                 tracker: MemoryTracker, total_seconds: float) -> str:
    """Ends every run: where the clip is, and each stage's time with how much of it went to loading weights (from
    disk, so the first thing to look at when a run is slower than the GPU should make it)."""
    stages = ", ".join(f"{report.name} {report.seconds:.1f} s"
                       + (f" (loading {sum(report.load_seconds.values()):.1f} s)" if report.load_seconds else "")
                       for report in tracker.reports)
    return (f"done: {output} ({num_frames} frames {width}x{height} at {float(fps):g} fps, "
            f"{float(num_frames / fps):.2f} s) | {stages} | total {total_seconds:.1f} s")


def timestamp() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def versions() -> dict:
    import diffusers
    import torch
    import transformers

    return {"torch": torch.__version__, "diffusers": diffusers.__version__, "transformers": transformers.__version__}
