"""Exclusive locks on files (flock), for what only one process may do at a time: render into a batch output folder,
write one output name. A lock is held while its holder lives and released when it exits however it exits (the kernel
drops a killed process's locks, so a lock file left by `kill -9` is stale and taken by the next run); its file is
removed on release."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from ltx2gen.errors import ConfigError


class FileLock:
    """A held lock: `release()` (or leaving its `with` block) removes its file and lets it go."""

    def __init__(self, path: Path, descriptor: int):
        self.path, self.descriptor = Path(path), descriptor

    def release(self) -> None:
        if self.descriptor < 0:
            return
        with contextlib.suppress(OSError):  # removed while held, so no other process can be holding this file
            if os.stat(self.path, follow_symlinks=False).st_ino == os.fstat(self.descriptor).st_ino:
                self.path.unlink()
        os.close(self.descriptor)
        self.descriptor = -1

    def __enter__(self) -> "FileLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def try_lock(path: Path) -> FileLock | None:
    """The lock of `path`, taken now, or None where a living process holds it. Its file is created without following
    a link and holds the holder's process number. Raises OSError where the file cannot be created."""
    path = Path(path)
    while True:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            return None
        try:  # the holder before may have removed the file between our open and our lock: lock the file there now
            current = os.stat(path, follow_symlinks=False).st_ino == os.fstat(descriptor).st_ino
        except FileNotFoundError:
            current = False
        if current:
            os.ftruncate(descriptor, 0)
            os.write(descriptor, f"{os.getpid()}\n".encode())
            return FileLock(path, descriptor)
        os.close(descriptor)


def holder(path: Path) -> str:
    """Who holds the lock of `path`, for a message: "process N" (the process that took it)."""
    with contextlib.suppress(OSError, ValueError):
        return f"process {int(Path(path).read_text().split()[0])}"
    return "another process"


BATCH_LOCK = ".ltx2gen-batch.lock"


def lock_batch_folder(out_dir: Path, rank: int = 0) -> FileLock:
    """A batch output folder takes one runner at a time (the ranks of one torchrun batch each take their own lock,
    rank 0 the folder's). Raises ConfigError naming the runner that has it."""
    path = Path(out_dir) / (BATCH_LOCK if rank == 0 else f"{BATCH_LOCK}.rank{rank}")
    try:
        taken = try_lock(path)
    except OSError as err:
        raise ConfigError(f"--out {out_dir}: cannot lock the folder for this batch ({path}: "
                          f"{err.strerror or err})") from None
    if taken is None:
        raise ConfigError(f"--out {out_dir}: another batch runner ({holder(path)}, or a clip it started) is rendering "
                          "into this folder; wait for it to finish, or give another --out")
    return taken
