from fractions import Fraction
from pathlib import Path

import torch

from ltx2gen import memory, report


def test_summary_line_gives_each_stage_and_its_loading_time():
    tracker = memory.MemoryTracker(torch.device("cpu"))
    tracker.run("text", lambda stage: None)
    tracker.run("diffusion", lambda stage: stage.load("transformer", object))
    tracker.reports[0].seconds = 0.5
    tracker.reports[1].seconds, tracker.reports[1].load_seconds = 30.0, {"transformer": 21.04}
    line = report.summary_line(Path("out/fox.mp4"), 97, width=768, height=512, fps=Fraction(24), tracker=tracker,
                               total_seconds=31.0)
    assert line == ("done: out/fox.mp4 (97 frames 768x512 at 24 fps, 4.04 s) | text 0.5 s, "
                           "diffusion 30.0 s (loading 21.0 s) | total 31.0 s")


def test_stage_reports_round_nested_load_times():
    tracker = memory.MemoryTracker(torch.device("cpu"))
    tracker.run("diffusion", lambda stage: stage.load("transformer", object))
    tracker.reports[0].load_seconds = {"transformer": 1.23456}
    assert report.stage_reports(tracker)[0]["load_seconds"] == {"transformer": 1.235}
