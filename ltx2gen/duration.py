"""`--num-frames auto`: LTX-2.5's duration head chooses the clip's length from the prompt.

The head (diffusers' `LTX2DurationHead`, about 1.9M parameters) reads the text connectors' outputs for the prompt,
predicts the shot's natural length in seconds, and `predict_num_frames` clamps it to [min, max] seconds and snaps it
to the VAE's 8n+1 frame grid. It runs in its own small stage right after the text stage, on the conditioning that
stage leaves (cached or encoded), with exactly the tokens and arithmetic of the stock `LTX2Pipeline.__call__` when
it is called with `num_frames=None`: the positive prompt's row of the connectors' outputs, `predict_num_frames` at
the clip's frame rate.

Until the head has chosen, nothing may assume a frame count: the memory plan is made for the longest clip the bounds
allow (`AutoLength.longest_num_frames`), and the video decode is planned once the count is known.

Pure at import (no torch), so the flags are checked before anything heavy loads.
"""

from __future__ import annotations

import json
import math
from contextlib import contextmanager
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

from ltx2gen.checkpoint import model_version, video_vae_compression
from ltx2gen.errors import ConfigError

if TYPE_CHECKING:
    import torch

    from ltx2gen import memory as mem
    from ltx2gen.text import TextConditioning

# The bounds of the prediction when none are given: diffusers 0.42.1's (`LTX2Pipeline.__call__`'s `min_seconds` and
# `max_seconds`, and `LTX2DurationHead.predict_num_frames`'s), the same as Lightricks' own (`AutoDuration` in
# ltx-pipelines' utils/types.py at 400fd31). Lightricks' CLI also takes min == max; diffusers refuses a collapsed
# range, and so does this product, whose numbers are diffusers'.
DEFAULT_MIN_SECONDS = 1.0
DEFAULT_MAX_SECONDS = 20.0
COMPONENT = "duration_head"


@dataclass(frozen=True)
class AutoLength:
    """One clip's `--num-frames auto`: the bounds its length is chosen within and, once the head has predicted, the
    prediction and the frame count it gives."""

    min_seconds: float
    max_seconds: float
    fps: Fraction
    predicted_seconds: float | None = None
    num_frames: int | None = None

    @classmethod
    def from_flags(cls, min_seconds: float | None, max_seconds: float | None, fps: Fraction) -> "AutoLength":
        """The flags' bounds, the defaults where not given."""
        return cls(DEFAULT_MIN_SECONDS if min_seconds is None else min_seconds,
                   DEFAULT_MAX_SECONDS if max_seconds is None else max_seconds, Fraction(fps))

    @property
    def frame_window(self) -> tuple[int, int]:
        """The frame counts the prediction is clamped to, as `predict_num_frames` rounds the bounds."""
        rate = float(self.fps)
        return max(1, round(self.min_seconds * rate)), round(self.max_seconds * rate)

    @property
    def longest_num_frames(self) -> int:
        """The longest clip the head can choose: the last 8n+1 count in the frame window (a window that holds one
        always gets one, `validate_length_options`). What the memory plan is made for until the head has chosen."""
        return (self.frame_window[1] - 1) // 8 * 8 + 1

    def describe_bounds(self) -> str:
        return (f"its length chosen by the model within {self.min_seconds:g}-{self.max_seconds:g} s (memory planned "
                f"for up to {self.longest_num_frames} frames)")

    def describe_choice(self) -> str:
        """What the head chose, for the one line that says it (normalise loudly)."""
        seconds = self.predicted_seconds
        clamped = (f", shorter than --min-seconds {self.min_seconds:g}" if seconds < self.min_seconds else
                   f", longer than --max-seconds {self.max_seconds:g}" if seconds > self.max_seconds else "")
        return (f"the duration head predicts {seconds:.2f} s for this prompt{clamped}; {self.num_frames} frames "
                f"({float(self.num_frames / self.fps):.2f} s at {float(self.fps):g} fps)")

    def record(self) -> dict:
        """The sidecar's and the latents file's entry (their `num_frames` is the chosen count)."""
        return {"min_seconds": self.min_seconds, "max_seconds": self.max_seconds,
                "predicted_seconds": self.predicted_seconds, "num_frames": self.num_frames}


def validate_length_options(num_frames: int | None, min_seconds: float | None, max_seconds: float | None,
                            fps: Fraction) -> None:
    """`num_frames` None is auto. The bounds go with auto only, are positive and finite, leave a range, and hold a
    frame count of the form 8n+1 at `fps` (diffusers would otherwise overshoot them, with a warning)."""
    given = [(flag, value) for flag, value in (("--min-seconds", min_seconds), ("--max-seconds", max_seconds))
             if value is not None]
    if num_frames is not None:
        for flag, value in given:
            raise ConfigError(f"{flag} {value:g} has no effect without --num-frames auto (it bounds the length the "
                              f"model chooses); drop it, or give --num-frames auto")
        return
    for flag, value in given:
        if not (math.isfinite(value) and value > 0):
            raise ConfigError(f"{flag} {value:g}: must be a positive, finite number of seconds")
    auto = AutoLength.from_flags(min_seconds, max_seconds, fps)
    if auto.min_seconds >= auto.max_seconds:
        default = " (its default)" if min_seconds is None else ""
        raise ConfigError(f"--min-seconds {auto.min_seconds:g}{default} must be less than --max-seconds "
                          f"{auto.max_seconds:g}, leaving the model a range to choose in; for a fixed length give "
                          "--num-frames N (8n+1)")
    low, high = auto.frame_window
    if auto.longest_num_frames < low:
        nearest = sorted({max(1, auto.longest_num_frames), auto.longest_num_frames + 8})
        raise ConfigError(f"--min-seconds {auto.min_seconds:g} to --max-seconds {auto.max_seconds:g} at "
                          f"{float(auto.fps):g} fps is {low} to {high} frames, which holds no count of the form 8n+1; "
                          f"widen the range to take in {' or '.join(map(str, nearest))} frames")


def check_supported(model_dir: Path, flag: str) -> None:
    """The checkpoint has a duration head (LTX-2.5 and later ship one), read from its model index before any
    weight."""
    index = json.loads((Path(model_dir) / "model_index.json").read_text())
    if not any(index.get(COMPONENT) or ()):
        raise ConfigError(f"--num-frames auto: {flag} (LTX-{model_version(model_dir)}) has no duration head, the "
                          "model that chooses a clip's length from its prompt (LTX-2.5 checkpoints ship one, e.g. "
                          "Lightricks/LTX-2.5-Diffusers); give --num-frames N (8n+1)")


def choose_lengths(stage: "mem.Stage", model_dir: Path, clips: list[tuple["TextConditioning", AutoLength]], *,
                   device: "torch.device", dtype: "torch.dtype") -> list[AutoLength]:
    """Stage 1a: the duration head loads, predicts each clip's length from its conditioning, and is freed with the
    stage. Returns each clip's `AutoLength` with its prediction and frame count."""
    import torch

    from ltx2gen.components import load_component

    head = stage.load(COMPONENT, lambda: load_component(model_dir, COMPONENT, device, dtype))
    temporal_compression = video_vae_compression(model_dir)[1]
    chosen = []
    for conditioning, auto in clips:
        video, audio = (tokens.to(device) for tokens in conditioning.prompt_tokens())
        with torch.no_grad(), diffusers_clamp_warning_silenced(head):
            seconds = head(video, audio).item()
            num_frames = head.predict_num_frames(
                video, audio, frame_rate=float(auto.fps), temporal_compression_ratio=temporal_compression,
                min_seconds=auto.min_seconds, max_seconds=auto.max_seconds)
        chosen.append(replace(auto, predicted_seconds=seconds, num_frames=num_frames))
    return chosen


@contextmanager
def diffusers_clamp_warning_silenced(head):
    """`predict_num_frames` logs a warning when it clamps; `AutoLength.describe_choice` says the same in the run's
    one line about the length, so the run says it once."""
    import logging

    logger = logging.getLogger(type(head).__module__)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
