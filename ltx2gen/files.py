"""Atomic file writes (the final name only ever holds a complete file), and safetensors headers read without torch."""

from __future__ import annotations

import contextlib
import functools
import glob
import hashlib
import json
import os
import re
import struct
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path` (same suffix, so tools infer the format); rename on success,
    delete on failure. Partial files of the same name that a killed run left behind are removed first. The
    temporary file is created here, exclusively and without following a link (`create_partial`), so whatever
    writes it writes a file of this process's own."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(path)
    temporary = create_partial(path)
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def create_partial(path: Path) -> Path:
    """A new empty `.NAME.partial-PID[-N].EXT` beside `path`, created with O_EXCL | O_NOFOLLOW: a name already
    taken (a link planted there, or a file of an earlier process that had this process number) is passed over,
    never opened."""
    for attempt in range(1000):
        extra = f"-{attempt}" if attempt else ""
        temporary = path.with_name(f".{path.stem}.partial-{os.getpid()}{extra}{path.suffix}")
        try:
            os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644))
        except FileExistsError:
            continue
        return temporary
    raise FileExistsError(f"{path.parent}: every partial-file name of {path.name} for process {os.getpid()} is taken")


PARTIAL_PID = re.compile(r"\.partial-(\d+)(?:-\d+)?$")


def remove_stale_partials(path: Path) -> list[Path]:
    """Remove the hidden partial files of `path` whose writing process is gone (killed before it could clean up).
    Returns those removed."""
    removed = []
    for partial in Path(path).parent.glob(f".{glob.escape(Path(path).stem)}.partial-*{Path(path).suffix}"):
        pid = PARTIAL_PID.search(partial.name.removesuffix(Path(path).suffix))
        if pid and not _running(int(pid.group(1))):
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
    return write_text(path, json.dumps(data, indent=2, default=str) + "\n")


def write_text(path: Path, text: str, errors: str = "strict") -> Path:
    """`text` as UTF-8 at `path`, atomically."""
    with atomic_path(path) as temporary:
        with open(os.open(temporary, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC), "w", encoding="utf-8",
                  errors=errors) as handle:
            handle.write(text)
    return Path(path)


def safetensors_header(path: Path) -> tuple[dict, int]:
    """A safetensors file's JSON header and the offset its tensor data starts at. Raises ValueError (or
    struct.error for a file shorter than 8 bytes) when the file is not safetensors."""
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        if length > Path(path).stat().st_size - 8:  # not a safetensors header: don't try to read it
            raise ValueError(f"{path}: header length beyond the end of the file")
        return json.loads(handle.read(length)), 8 + length


def kept_work_metadata(path: Path, flag: str, kind: str, otherwise: str) -> dict:
    """The ltx2gen metadata of a file of kept work of `kind` (a two-stage run's stage one, a dfr pass), read from its
    safetensors header alone; ConfigError naming `flag` for anything else (`otherwise` says what it is then)."""
    from ltx2gen.errors import ConfigError

    try:
        metadata = json.loads(safetensors_header(path)[0]["__metadata__"]["ltx2gen"])
    except FileNotFoundError:
        raise ConfigError(f"{flag} {path}: no such file") from None
    except (OSError, struct.error, ValueError, KeyError, TypeError):
        raise ConfigError(f"{flag} {path}: not an ltx2gen latents file") from None
    if metadata.get("kind") != kind:
        raise ConfigError(f"{flag} {path}: {otherwise}")
    return metadata


def file_sha256(path: Path | str) -> str:
    """The SHA-256 of a file's bytes, read in 1 MiB blocks; worked out once per version of the file (its size and
    modification time)."""
    path = Path(path).expanduser().resolve()
    stat = path.stat()
    return _sha256(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _sha256(path: str, size: int, modified_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
