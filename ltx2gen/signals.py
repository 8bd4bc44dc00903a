"""Stopping a run: SIGTERM (`docker stop`, `kill`, a batch runner stopping its clip) ends it as Ctrl-C does, with
the same recovery advice, and a write that must not be cut in half finishes before either takes effect. A stop that
lands inside a finalizer (a `__del__`, where Python prints an exception and drops it) is kept and takes effect at the
next safe point (`raise_lost_stop`) instead of being lost."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from typing import Iterator

STOPPING = (signal.SIGINT, signal.SIGTERM)


_lost_stops: list[str] = []  # Ctrl-C or SIGTERM raised inside a finalizer, which Python drops


def stop_like_ctrl_c() -> None:
    """SIGTERM raises KeyboardInterrupt, as Ctrl-C's SIGINT does, so every `finally` runs (child processes stopped,
    partial files removed) and the run ends with its advice instead of dying silently. Either one raised inside a
    finalizer is kept for `raise_lost_stop`."""
    signal.signal(signal.SIGTERM, _interrupt)
    sys.unraisablehook = _keep_lost_stops


def _keep_lost_stops(unraisable) -> None:
    if unraisable.exc_type is not None and issubclass(unraisable.exc_type, KeyboardInterrupt):
        _lost_stops.append(str(unraisable.exc_value or "interrupted"))
    else:
        sys.__unraisablehook__(unraisable)


def raise_lost_stop() -> None:
    """At a safe point (a model loaded, a stage begun): the Ctrl-C or SIGTERM that a finalizer dropped, if any."""
    if _lost_stops:
        reason = _lost_stops[0]
        _lost_stops.clear()
        raise KeyboardInterrupt(f"{reason}, received inside a finalizer")


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


def stopped_with_this_process():
    """For `subprocess.Popen(preexec_fn=...)`: the child receives SIGTERM (and ends as on Ctrl-C, keeping its work)
    when this process dies, even by `kill -9`, instead of running on beside whatever runs next. Linux only; None
    elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    parent = os.getpid()

    def in_the_child() -> None:
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before the request took effect
            os._exit(128 + signal.SIGTERM)

    return in_the_child
