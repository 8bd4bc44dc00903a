"""Atomic file writes (the final name only ever holds a complete file), and safetensors headers read without torch."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import struct
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path` (same suffix, so tools infer the format); rename on success,
    delete on failure. Partial files of the same name that a killed run left behind are removed first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(path)
    temporary = path.with_name(f".{path.stem}.partial-{os.getpid()}{path.suffix}")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def remove_stale_partials(path: Path) -> list[Path]:
    """Remove the hidden partial files of `path` whose writing process is gone (killed before it could clean up).
    Returns those removed."""
    removed = []
    for partial in Path(path).parent.glob(f".{glob.escape(Path(path).stem)}.partial-*{Path(path).suffix}"):
        pid = partial.name.removesuffix(Path(path).suffix).rpartition("-")[2]
        if pid.isdigit() and not _running(int(pid)):
            partial.unlink(missing_ok=True)
            removed.append(partial)
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def write_json(path: Path, data: dict) -> Path:
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return Path(path)


def safetensors_header(path: Path) -> tuple[dict, int]:
    """A safetensors file's JSON header and the offset its tensor data starts at. Raises ValueError (or
    struct.error for a file shorter than 8 bytes) when the file is not safetensors."""
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        if length > Path(path).stat().st_size - 8:  # not a safetensors header: don't try to read it
            raise ValueError(f"{path}: header length beyond the end of the file")
        return json.loads(handle.read(length)), 8 + length
