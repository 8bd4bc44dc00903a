"""What an in-process batch (`batch_in_process`) tells its user as it goes: one `[i/N]` line as each clip's work ends
(its MP4 written, or it failed), with an ETA worked out stage by stage from the clips measured so far, and the
planning lines that every clip repeats (notes about FP8, compilation, the memory plan) said once for the batch."""

from __future__ import annotations

import contextlib
import io
import sys
from typing import Iterator

from ltx2gen.batch import Row, Summary

# A clip's seconds, by the stages its ETA is worked out from: its share of its group's work before the clips'
# own diffusion (the text stage, the duration head, the conditioners and the transformer's load), its diffusion (and
# the latents saved), then its decode (audio, video, sidecar and previews).
STAGES = ("shared", "diffusion", "decode")


class BatchProgress:
    """The `[i/N]` lines, numbered in the order clips end. Each clip being rendered is `expect`ed with the dict of
    the seconds it has spent in each of `STAGES` so far; the ETA is each clip's stages still to run at the mean of
    the clips that have run them (and not failed)."""

    def __init__(self, summary: Summary, total: int):
        self.summary, self.total, self.reported = summary, total, 0
        self.rendering: list[dict[str, float]] = []  # of each clip expected and not failed, ended or not
        self.waiting: list[dict[str, float]] = []  # of each clip not ended yet

    def expect(self, seconds: dict[str, float]) -> None:
        self.rendering.append(seconds)
        self.waiting.append(seconds)

    def ended(self, row: Row, seconds: dict[str, float] | None = None) -> None:
        """The line of a clip whose work has ended: `seconds` as given to `expect`, None for a clip settled before
        any model loads (skipped, bad input, decoded from kept latents)."""
        if seconds is not None:
            _remove(self.waiting, seconds)
            if row.status != "done":  # a failed clip's stages say nothing of how long the others take
                _remove(self.rendering, seconds)
        self.reported += 1
        self.summary.progress(self.reported, self.total, row, self.remaining_seconds())

    def remaining_seconds(self) -> float | None:
        """The stages still to run of every clip waiting, each at its measured mean; None before each stage a
        waiting clip still needs has been measured."""
        means = {}
        for stage in STAGES:
            measured = [seconds[stage] for seconds in self.rendering if stage in seconds]
            if measured:
                means[stage] = sum(measured) / len(measured)
        try:
            return sum(means[stage] for seconds in self.waiting for stage in STAGES if stage not in seconds)
        except KeyError:
            return None


def _remove(items: list, item) -> None:
    """Remove `item` itself (dicts that are equal may be different clips')."""
    for index, candidate in enumerate(items):
        if candidate is item:
            del items[index]
            return


class PlanningLines:
    """The lines printed while a batch's clips are planned: each clip's `plan:` line as it is planned, under the
    clip's name; every other line (notes, warnings, the memory plan) once, by `say`, with how many clips it
    applies to where it is more than one."""

    def __init__(self):
        self.out = sys.stdout
        self.clips_of: dict[str, list[str]] = {}  # each distinct line: the clips that printed it, in first-seen order

    @contextlib.contextmanager
    def of_clip(self, name: str) -> Iterator[None]:
        captured = io.StringIO()
        try:
            with contextlib.redirect_stdout(captured):
                yield
        finally:
            for line in captured.getvalue().splitlines():
                if line.startswith("plan:"):
                    print(f"{name}: {line}", file=self.out, flush=True)
                elif line.strip() and name not in self.clips_of.setdefault(line, []):
                    self.clips_of[line].append(name)

    def say(self, total: int) -> None:
        for line, clips in self.clips_of.items():
            applies = "" if len(clips) == 1 else f" (all {total} clips)" if len(clips) == total else \
                f" ({len(clips)} of {total} clips: {', '.join(clips)})"
            print(line + applies, file=self.out, flush=True)
        self.clips_of.clear()
