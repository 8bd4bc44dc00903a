"""Output streams whose reader is gone (`generate.py ... | head -1`, a closed terminal, a log pipe that died) never
end a run: what would have been written there is dropped, and the run goes on to finish its clip. Whether stderr was
lost is known, so a failure's advice can be left in a file instead."""

from __future__ import annotations

import contextlib
import errno
import os
import sys

GONE = (errno.EPIPE, errno.EIO, errno.ECONNRESET)


class ReaderMayLeave:
    """A text stream whose writes and flushes stop (silently) once its reader has gone."""

    def __init__(self, stream):
        self.stream, self.lost = stream, False

    def write(self, text: str) -> int:
        self._guarded(self.stream.write, text)
        return len(text)

    def flush(self) -> None:
        self._guarded(self.stream.flush)

    def _guarded(self, operation, *args) -> None:
        if self.lost:
            return
        try:
            operation(*args)
        except OSError as err:
            if err.errno not in GONE:
                raise
            self._drop()

    def _drop(self) -> None:
        """From now on the stream's descriptor writes to /dev/null, so what is buffered (and Python's own flush at
        exit) goes nowhere instead of failing again."""
        self.lost = True
        with contextlib.suppress(OSError, ValueError, AttributeError):
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, self.stream.fileno())
            os.close(null)

    def __getattr__(self, name):
        return getattr(self.stream, name)


def survive_readers_leaving() -> None:
    """Wrap sys.stdout and sys.stderr (once) so that a closed pipe never ends the run."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, ReaderMayLeave):
            setattr(sys, name, ReaderMayLeave(stream))


def stderr_lost() -> bool:
    return isinstance(sys.stderr, ReaderMayLeave) and sys.stderr.lost
