import gc
import weakref

import pytest
import torch

from ltx2gen import memory


def test_stage_frees_its_models_when_it_ends_even_on_error():
    tracker = memory.MemoryTracker(torch.device("cpu"))
    refs = []

    def stage_body(stage):
        model = stage.load("model", lambda: torch.nn.Linear(256, 256))
        refs.append(weakref.ref(model))
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        tracker.run("work", stage_body)
    gc.collect()
    assert refs[0]() is None
    assert [report.name for report in tracker.reports] == ["work"]


def test_events_reach_listeners_in_order():
    events = []
    listener = lambda event, name, obj: events.append((event, name))  # noqa: E731
    memory.add_listener(listener)
    try:
        memory.MemoryTracker(torch.device("cpu")).run("s", lambda stage: stage.load("m", object))
    finally:
        memory.remove_listener(listener)
    assert events == [("stage-start", "s"), ("load", "m"), ("loaded", "m"), ("freed", "m"), ("stage-end", "s")]


def test_report_line_has_rss_and_available_memory(capsys):
    tracker = memory.MemoryTracker(torch.device("cpu"))
    tracker.run("text", lambda stage: None)
    line = capsys.readouterr().out
    assert line.startswith("[memory] text") and "RSS" in line and "MemAvailable" in line
    assert tracker.reports[0].mem_available_gib > 0 and tracker.reports[0].rss_gib > 0


def test_page_cache_eviction_covers_the_files(tmp_path):
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"\x01" * 65536)
    assert memory.evict_from_page_cache([weights, tmp_path / "missing.safetensors"]) == 65536
