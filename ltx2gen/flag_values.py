"""Checks and conversions of single flag values, pure and cheap (no torch import): frame counts, frame rates,
output paths, prompt text. Each raises ConfigError with one line saying what is wrong and what would be right."""

from __future__ import annotations

import contextlib
import math
import os
from datetime import datetime
from fractions import Fraction
from pathlib import Path

from ltx2gen.checkpoint import GUIDANCE_MOST
from ltx2gen.errors import ConfigError

NTSC_RATES = {Fraction(n * 1000, 1001) for n in (24, 30, 48, 60, 120)}


def parse_num_frames(text: str | int) -> int | None:
    """A frame count, or None for auto (the model chooses)."""
    if text == "auto":
        return None
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"--num-frames {text}: give a frame count of the form 8n+1 (e.g. 97) or auto") from None


def validate_frame_count(num_frames: int) -> None:
    if num_frames < 1 or (num_frames - 1) % 8:
        lower = max(1, (num_frames - 1) // 8 * 8 + 1)
        upper = lower + 8 if lower < num_frames or num_frames < 1 else lower
        upper = max(upper, 9)
        raise ConfigError(f"--num-frames {num_frames}: must be of the form 8n+1; nearest valid counts are "
                          f"{lower} and {upper}")


def check_output_file(output: Path, flag: str = "--output") -> None:
    """An MP4 path that can be written: its folder takes files, and it is not a folder itself."""
    if output.suffix.lower() != ".mp4":
        raise ConfigError(f"{flag} {output}: must end in .mp4")
    if output.is_dir():
        raise ConfigError(f"{flag} {output}: is a folder; give a file name ending in .mp4, e.g. {output / 'clip.mp4'}")
    ensure_writable_dir(output.parent, flag)


def utf8_from_argv(text: str | None) -> str | None:
    """A command-line text as typed: under an ASCII locale without UTF-8 mode (LC_ALL=C PYTHONUTF8=0), Python holds
    the bytes of UTF-8 text as surrogate escapes, decoded here. Text that is not UTF-8 stays as it is, for
    `check_text` to refuse."""
    try:
        text and text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        return os.fsencode(text).decode("utf-8")
    except UnicodeError:
        return text


def check_text(flag: str, text: str) -> None:
    """Prompts are text: bytes that are not UTF-8 (a shell variable holding Latin-1, a damaged file) reach Python as
    lone surrogates, which the tokenizer cannot take."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        code = ord(text[err.start])
        what = f"the byte 0x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"U+{code:04X}"
        raise ConfigError(f"{flag}: character {err.start + 1} is {what}, which is not UTF-8 text; give the text in "
                          "UTF-8") from None


def parse_fps(text: str | Fraction) -> Fraction:
    try:
        fps = Fraction(str(text))
    except (ValueError, ZeroDivisionError):
        raise ConfigError(f"--fps {text}: not a number; use e.g. 24, 23.976 or 24000/1001") from None
    if fps <= 0 or fps > 240:
        raise ConfigError(f"--fps {text}: must be above 0 and at most 240")
    for ntsc in NTSC_RATES:
        if fps != ntsc and abs(fps - ntsc) < Fraction(1, 500):
            print(f"note: --fps {text} taken as the exact NTSC rate {ntsc} ({float(ntsc):.6f})")
            return ntsc
    return fps


def stamped(output: Path, now: datetime) -> Path:
    stem = f"{output.stem}_{now:%Y%m%d_%H%M%S}"
    candidate, n = output.with_name(stem + output.suffix), 2
    while candidate.exists():
        candidate, n = output.with_name(f"{stem}_{n}{output.suffix}"), n + 1
    return candidate


def ensure_writable_dir(folder: Path, flag: str) -> None:
    """Proven by writing a probe file: as root, os.access says yes to folders that cannot be written (/proc, a
    network mount that squashes root). The probe and any folder made for it are removed again; the writers create
    the folder when they write."""
    folder = folder if folder != Path("") else Path(".")
    existing, missing = folder, []
    while not existing.exists():
        missing.append(existing)
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{flag}: {existing} is a file, so the folder {folder} cannot be created")
    made = []
    try:
        for path in reversed(missing):
            try:
                path.mkdir()
            except FileExistsError:  # made meanwhile by another process (a torchrun batch's other rank): not ours
                continue
            made.append(path)
        probe = folder / f".ltx2gen-write-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise ConfigError(f"{flag}: cannot write in {folder} ({err.strerror or err}); choose an output folder you "
                          "can write to") from None
    finally:
        for path in reversed(made):
            with contextlib.suppress(OSError):
                path.rmdir()


def validate_nag_options(scale: float, tau: float, alpha: float) -> None:
    if not math.isfinite(scale) or not 0 <= scale <= GUIDANCE_MOST["nag_scale"]:
        raise ConfigError(f"--nag-scale {scale}: must be between 0 (off) and "
                          f"{GUIDANCE_MOST['nag_scale']:g}; the NAG paper's video setting is 8 in this form")
    if not math.isfinite(tau) or tau < 1:
        raise ConfigError(f"--nag-tau {tau}: must be at least 1 (below 1 it would shrink the "
                          "cross-attention even where the prompts agree); the NAG paper uses 2.5")
    if not 0 < alpha <= 1:
        raise ConfigError(f"--nag-alpha {alpha}: must be above 0 and at most 1 (0 would discard the "
                          "guidance: use --nag-scale 0 to turn NAG off); the NAG paper uses 0.25")
