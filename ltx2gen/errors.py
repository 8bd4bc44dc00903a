"""The errors every layer raises (bad user input; a clip that failed or was stopped) and the checks several features
share. Pure: no torch, so that a run stopped while torch is still being imported can say so."""

from __future__ import annotations

import math


class ConfigError(ValueError):
    """A user input problem: reported as one line with exit status 2."""


STOPPED_BEFORE_DIFFUSION = "it stopped before the diffusion finished, so nothing was saved; render it again with:"


class ClipFailed(Exception):
    """A stage failed (or was interrupted); `advice` says what was kept and how to go on from it."""

    def __init__(self, cause: BaseException, advice: str, foreseen: bool = False, rerun: bool = False):
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.cause, self.advice = cause, advice
        self.foreseen = foreseen  # a failure the message explains in full: no traceback
        self.rerun = rerun  # the advice is to run the same command again: the command line follows it

    @classmethod
    def stopped_early(cls, cause: KeyboardInterrupt) -> ClipFailed:
        """Ctrl-C or SIGTERM before the first stage began (while planning, or importing torch): nothing to keep."""
        return cls(cause, STOPPED_BEFORE_DIFFUSION, rerun=True)

    @property
    def interrupted(self) -> bool:
        return isinstance(self.cause, KeyboardInterrupt)


def check_strength(flag: str, strength: float, meaning: str, source_flag: str, source) -> None:
    """A conditioning strength: within [0, 1] (`meaning` says what its ends do), and other than 1 only where its
    `source_flag` input is given."""
    if not (math.isfinite(strength) and 0.0 <= strength <= 1.0):
        raise ConfigError(f"{flag} {strength}: must be between 0 and 1 ({meaning})")
    if source is None and strength != 1.0:
        raise ConfigError(f"{flag} {strength} has no effect without {source_flag}; give {source_flag} too")


def nearest_multiples(value: int, step: int) -> str:
    """The multiples of `step` (at least `step`) nearest `value`, for a message: "768" or "768 or 800"."""
    lower, upper = max(step, value // step * step), max(step, math.ceil(value / step) * step)
    return f"{lower}" if lower == upper else f"{lower} or {upper}"
