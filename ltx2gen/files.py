"""Atomic file writes (the final name only ever holds a complete file), and safetensors headers read without torch."""

from __future__ import annotations

import contextlib
import json
import os
import struct
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path` (same suffix, so tools infer the format); rename on success,
    delete on failure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.partial-{os.getpid()}{path.suffix}")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


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
