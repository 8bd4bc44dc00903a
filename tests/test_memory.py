import gc
import os
import time
import weakref

import pytest
import torch
from safetensors.torch import load_file, save_file

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


def test_peak_rss_is_the_process_own_not_its_parents():
    import subprocess
    import sys

    import numpy as np

    from conftest import ROOT
    from ltx2gen.memory import GIB, peak_rss_bytes

    held = np.ones(GIB // 8 * 2)  # 2 GiB touched by this (parent) process
    child = subprocess.run([sys.executable, "-c", "from ltx2gen.memory import peak_rss_bytes; print(peak_rss_bytes())"],
                           capture_output=True, text=True, cwd=ROOT, check=True)
    assert peak_rss_bytes() >= 2 * GIB
    assert int(child.stdout) < 1.5 * GIB  # torch and the module, not the parent's 2 GiB
    del held


def test_each_stage_reports_how_long_its_models_took_to_load():
    import time

    def slow_loader():
        time.sleep(0.05)
        return object()

    tracker = memory.MemoryTracker(torch.device("cpu"))
    tracker.run("diffusion", lambda stage: (stage.load("transformer", slow_loader), stage.load("vae", object)))
    tracker.run("audio", lambda stage: None)
    diffusion, audio = tracker.reports
    assert list(diffusion.load_seconds) == ["transformer", "vae"]
    assert 0.05 <= diffusion.load_seconds["transformer"] <= diffusion.seconds
    assert audio.load_seconds == {}


def resident_bytes(path) -> int:
    import shutil
    import subprocess

    if shutil.which("fincore") is None:
        pytest.skip("fincore (util-linux) is not on PATH")
    result = subprocess.run(["fincore", "--bytes", "--noheadings", "--raw", "--output", "RES", str(path)],
                            capture_output=True, text=True, check=True)
    return int(result.stdout)


def test_prefetch_reads_the_given_ranges_into_the_page_cache(tmp_path):
    weights = tmp_path / "w.safetensors"
    mib = 1 << 20
    with open(weights, "wb") as handle:
        handle.write(bytes(range(256)) * (32 * mib // 256))
        handle.flush()
        os.fsync(handle.fileno())  # written back, so eviction can drop every page
    memory.evict_from_page_cache([weights])
    if resident_bytes(weights) > mib:
        pytest.skip("this file system keeps the file's pages in memory regardless (tmpfs?)")
    memory.prefetch_into_page_cache([(weights, 8 * mib, 8 * mib), (tmp_path / "missing", 0, 0)]).join(timeout=30)
    deadline = time.monotonic() + 10
    while resident_bytes(weights) < 8 * mib and time.monotonic() < deadline:  # the reads complete asynchronously
        time.sleep(0.05)
    assert 8 * mib <= resident_bytes(weights) < 32 * mib  # the range, give or take the kernel's read-ahead


def test_a_loader_stops_the_prefetch_of_the_files_it_reads_and_no_other(tmp_path):
    """A prefetch still running when a load of its files starts is stopped (the loader reads the rest itself); a
    prefetch of other files runs on."""
    from ltx2gen.weights import read_tensors, stored_tensors

    torch.manual_seed(0)
    save_file({"w": torch.randn(64, 64)}, str(tmp_path / "loaded.safetensors"))
    other = tmp_path / "other.bin"
    other.write_bytes(bytes(4 << 20))
    stopped = []
    listener = lambda event, name, ranges: stopped.append(ranges[0][0]) if event == "prefetch-stopped" else None  # noqa: E731
    memory.add_listener(listener)
    try:
        # one-page chunks: thousands of calls, still queueing when the load starts
        of_loaded = memory.PageCachePrefetch([(tmp_path / "loaded.safetensors", 0, 0)] * 4096, chunk_bytes=4096)
        of_other = memory.PageCachePrefetch([(other, 0, 0)], chunk_bytes=4096)
        of_loaded.start()
        of_other.start()
        (name, value), = read_tensors(stored_tensors(tmp_path), torch.device("cpu"), torch.float32)
    finally:
        memory.remove_listener(listener)
    assert stopped == [tmp_path / "loaded.safetensors"] and not of_loaded.is_alive()
    assert torch.equal(value, load_file(str(tmp_path / "loaded.safetensors"))["w"])
    of_other.join(timeout=30)
    assert not of_other.is_alive()


def write_control_group(root, folder, limit: str, usage: int, cache: int):
    """A control group's memory files as the kernel shows them: cgroup v1's under `root`/memory, else v2's."""
    folder.mkdir(parents=True, exist_ok=True)
    v1 = folder.relative_to(root).parts[:1] == ("memory",)
    (folder / ("memory.limit_in_bytes" if v1 else "memory.max")).write_text(f"{limit}\n")
    (folder / ("memory.usage_in_bytes" if v1 else "memory.current")).write_text(f"{usage}\n")
    (folder / "memory.stat").write_text(f"{'total_cache' if v1 else 'file'} {cache}\nanon 1\n")


def test_a_control_groups_limit_counts_what_it_holds_beyond_the_page_cache(tmp_path):
    folders = memory._cgroup_folders(tmp_path)  # this process's group and those above it, under tmp_path
    if not folders:
        pytest.skip("this system shows no control group in /proc/self/cgroup")
    gib = 1 << 30
    assert memory.cgroup_available_bytes(tmp_path) is None  # no files: no limit
    for folder in folders:
        v1 = folder.relative_to(tmp_path).parts[:1] == ("memory",)
        write_control_group(tmp_path, folder, str(1 << 62) if v1 else "max", 5 * gib, gib)
    assert memory.cgroup_available_bytes(tmp_path) is None  # unlimited, as v2 and v1 write it
    write_control_group(tmp_path, folders[0], str(20 * gib), 4 * gib, gib)  # the same folder where there is one
    write_control_group(tmp_path, folders[-1], str(10 * gib), 4 * gib, gib)
    assert memory.cgroup_available_bytes(tmp_path) == 7 * gib  # the tightest: 10 less the 3 not page cache


def test_a_stage_around_another_reports_the_peak_from_before_the_inner_stage_reset_the_counters():
    import numpy as np

    tracker = memory.MemoryTracker(torch.device("cpu"))
    with tracker.stage("outer"):
        held = np.ones(memory.GIB // 8 // 2)  # 512 MiB, touched, then let go before the inner stage starts
        outer_peak = memory.peak_rss_bytes()
        del held
        with tracker.stage("inner"):
            pass
    inner, outer = tracker.reports
    # the kernel's RSS counters lag by a few pages
    assert outer.peak_rss_gib >= outer_peak / memory.GIB - 0.01 > inner.peak_rss_gib + 0.4
