"""The error every layer raises for bad user input, and the checks several features share. Pure: no torch."""

from __future__ import annotations

import math


class ConfigError(ValueError):
    """A user input problem: reported as one line with exit status 2."""


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
