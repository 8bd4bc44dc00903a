"""Stopping a run: SIGTERM (`docker stop`, `kill`, a batch runner stopping its clip) ends it as Ctrl-C does, with
the same recovery advice, and a write that must not be cut in half finishes before either takes effect."""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

STOPPING = (signal.SIGINT, signal.SIGTERM)


def stop_like_ctrl_c() -> None:
    """SIGTERM raises KeyboardInterrupt, as Ctrl-C's SIGINT does, so every `finally` runs (child processes stopped,
    partial files removed) and the run ends with its advice instead of dying silently."""
    signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Ctrl-C and SIGTERM received inside this block take effect when it ends (as KeyboardInterrupt), so the file it
    writes is whole. Outside the main thread, where signal handlers cannot be set, the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    previous = {number: signal.signal(number, lambda signum, frame: received.append(signum)) for number in STOPPING}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    if received:
        raise KeyboardInterrupt(f"signal {received[0]}, received while saving")
