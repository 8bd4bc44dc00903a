"""Explicit memory lifecycle: each stage loads, uses and frees its models inside one scope.

On unified memory (Jetson Thor) moving a model to the CPU frees nothing and offload hooks keep references
alive, so a stage frees by dropping every reference, collecting, and emptying the CUDA cache. Listeners
registered with `add_listener` see every load, free and decode event: the tests use them (with weakrefs
and hooks) to prove the order of the lifecycle on real models.
"""

from __future__ import annotations

import contextlib
import gc
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import torch

from ltx2gen.signals import raise_lost_stop

GIB = 1024**3
_listeners: list[Callable[[str, str, object], None]] = []


def add_listener(listener: Callable[[str, str, object], None]) -> None:
    """Call `listener(event, name, obj)` on every lifecycle event ("load", "loaded", "freed", "evict", ...)."""
    _listeners.append(listener)


def remove_listener(listener: Callable[[str, str, object], None]) -> None:
    _listeners.remove(listener)


def emit(event: str, name: str, obj: object = None) -> None:
    for listener in list(_listeners):
        listener(event, name, obj)


def free_memory() -> None:
    """Return freed tensors to the system: collect, then empty the CUDA cache (twice: the first pass can
    release objects whose finalizers free more)."""
    for _ in range(2):
        gc.collect()
        if torch.cuda.is_available():
            # cuBLAS keeps its workspace (tens of MiB) as a live block of the caching allocator; carved out of a
            # segment that held a model, it pins the whole segment (17.6 GiB measured) against empty_cache.
            clear_workspaces = getattr(torch._C, "_cuda_clearCublasWorkspaces", None)
            if clear_workspaces is not None:
                clear_workspaces()
            torch.cuda.empty_cache()
            _empty_pinned_host_cache()


def _empty_pinned_host_cache() -> None:
    # Group offload keeps the transformer in pinned host memory; freed pinned blocks stay cached by PyTorch's host
    # allocator (36 GiB of RSS measured after the stage) unless this cache is emptied too.
    for name in ("_accelerator_emptyHostCache", "_host_emptyCache"):
        empty = getattr(torch._C, name, None)
        if empty is not None:
            empty()
            return


def process_rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def mem_available_bytes() -> int:
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def pin_to_host(module: torch.nn.Module, device: torch.device) -> None:
    """Move `module`'s host tensors into pinned memory in place, one tensor at a time (tied ones stay tied), where
    they will be copied to the CUDA `device` (offloading): copies from pinned memory run asynchronously, and
    offloading then uses these tensors instead of pinning a second copy of the model."""
    if device.type != "cuda":
        return
    places: dict[int, list] = {}  # each host tensor (tied ones once) and the tables that hold it
    for owner in module.modules():
        for table, as_parameter in ((owner._parameters, True), (owner._buffers, False)):
            for name, tensor in table.items():
                if tensor is not None and tensor.device.type == "cpu" and not _is_pinned(tensor):
                    places.setdefault(id(tensor), [tensor]).append((table, name, as_parameter))
    for key in list(places):
        tensor, *tables = places.pop(key)
        host = tensor.detach().pin_memory()
        del tensor  # the unpinned copy goes as soon as the tables let it go
        for table, name, as_parameter in tables:
            table[name] = torch.nn.Parameter(host, requires_grad=False) if as_parameter else host


def _is_pinned(tensor: torch.Tensor) -> bool:
    try:
        return tensor.is_pinned()
    except (NotImplementedError, RuntimeError):  # a tensor subclass (FP8 weights) that does not say
        return False


CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_available_bytes(root: Path = CGROUP_ROOT) -> int | None:
    """What this process's control group (cgroup v2, or v1's memory controller) and those above it still let it
    take: the tightest memory limit less what the group holds beyond the page cache, which the kernel reclaims before
    it kills. None without a limit. A container's or systemd slice's limit is what the OOM killer enforces, and
    MemAvailable does not show it."""
    available = []
    for folder in _cgroup_folders(root):
        for limit_file, usage_file, cache_key in (("memory.max", "memory.current", "file"),
                                                  ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_cache")):
            try:
                limit_text = (folder / limit_file).read_text().strip()
                usage = int((folder / usage_file).read_text())
                stat = dict(line.split() for line in (folder / "memory.stat").read_text().splitlines())
            except (OSError, ValueError):
                continue
            if limit_text != "max" and int(limit_text) < 1 << 60:  # v1 writes "no limit" as a huge number
                available.append(max(0, int(limit_text) - usage + int(stat.get(cache_key, 0))))
    return min(available, default=None)


def _cgroup_folders(root: Path) -> list[Path]:
    """This process's memory control group folder and its ancestors', from /proc/self/cgroup."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return []
    folders = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        base = root if controllers == "" else root / "memory" if "memory" in controllers.split(",") else None
        if base is None:
            continue
        relative = Path(path.lstrip("/"))
        folders += [base / relative.parents[index] for index in range(len(relative.parents))] + [base / relative]
    return folders


@dataclass
class StageReport:
    name: str
    seconds: float = 0.0
    cuda_allocated_gib: float = 0.0
    cuda_reserved_gib: float = 0.0
    cuda_peak_gib: float = 0.0
    rss_gib: float = 0.0
    peak_rss_gib: float = 0.0
    mem_available_gib: float = 0.0
    load_seconds: dict[str, float] = field(default_factory=dict)  # of each model the stage loaded

    def line(self) -> str:
        cuda = (f"CUDA alloc {self.cuda_allocated_gib:.2f} / reserved {self.cuda_reserved_gib:.2f} / "
                f"peak {self.cuda_peak_gib:.2f} GiB, " if torch.cuda.is_available() else "")
        return (f"[memory] {self.name:<9} {self.seconds:7.1f} s | {cuda}RSS {self.rss_gib:.2f} GiB "
                f"(stage peak {self.peak_rss_gib:.2f}), MemAvailable {self.mem_available_gib:.1f} GiB")


def peak_rss_bytes() -> int:
    """This process's own RSS high-water mark (VmHWM). Not getrusage's ru_maxrss: Linux carries that over from the
    parent, so a process started by one that once held 23 GiB would report 23 GiB."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))


def reset_peak_rss() -> None:
    """Start this process's RSS high-water mark afresh, so each stage reports its own host peak (Linux 4.0+; where
    the kernel does not allow it, the peak stays the process's so far)."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        pass


@dataclass
class Stage:
    """The models one stage holds. `load` registers them; leaving the scope frees them all."""

    name: str
    models: dict[str, object] = field(default_factory=dict)
    load_seconds: dict[str, float] = field(default_factory=dict)

    def load(self, name: str, loader: Callable[[], object]):
        emit("load", name)
        start = time.perf_counter()
        model = loader()
        self.load_seconds[name] = self.load_seconds.get(name, 0.0) + time.perf_counter() - start
        self.models[name] = model
        emit("loaded", name, model)
        raise_lost_stop()  # a stop that landed in a finalizer while loading
        return model

    def release(self, *names: str) -> None:
        """Drop models before the stage ends (the caller must hold no other reference)."""
        for name in names:
            model = self.models.pop(name)
            _remove_hooks(model)
            del model
            emit("freed", name)
        free_memory()


def _remove_hooks(model: object) -> None:
    # accelerate's offload hooks hold references to the weights: remove them before dropping the model. A model read
    # from its files block by block (`streaming`) stops its reader thread.
    reader = getattr(model, "blocks_from_files", None)
    if reader is not None:
        reader.close()
    if isinstance(model, torch.nn.Module) and any(hasattr(m, "_hf_hook") for m in model.modules()):
        from accelerate.hooks import remove_hook_from_module

        remove_hook_from_module(model, recurse=True)


@dataclass
class _PeakWindow:
    """The peaks of a stage still open, up to the last time a stage inside it reset the process's counters."""

    device: torch.device
    cuda_bytes: int = 0
    rss_bytes: int = 0

    def take_current(self) -> None:
        if self.device.type == "cuda":
            self.cuda_bytes = max(self.cuda_bytes, torch.cuda.max_memory_allocated(self.device))
        self.rss_bytes = max(self.rss_bytes, peak_rss_bytes())


# The stages open now, outermost first. Stages nest where a batch decodes a clip inside the stage that holds the
# transformer for the clips that share it; the peak counters are the process's, so a stage starting inside another
# first folds them into every stage around it, whose reports then still cover their whole span.
_open_windows: list[_PeakWindow] = []


class MemoryTracker:
    """Runs stages, frees what each held, and keeps one report per stage for the sidecar. Stages may nest (each
    report's peaks cover its whole span, the nested stages' included)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.reports: list[StageReport] = []

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[Stage]:
        stage = Stage(name)
        for window in _open_windows:
            window.take_current()
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        reset_peak_rss()
        window = _PeakWindow(self.device)
        _open_windows.append(window)
        raise_lost_stop()  # a stop that landed in a finalizer since the last stage
        emit("stage-start", name)
        start = time.perf_counter()
        try:
            yield stage
        finally:
            try:
                stage.release(*list(stage.models))
            finally:
                _open_windows.remove(window)
            window.take_current()
            report = self._report(name, time.perf_counter() - start, window)
            report.load_seconds = stage.load_seconds
            self.reports.append(report)
            emit("stage-end", name, report)
            print(report.line(), flush=True)

    def run(self, name: str, stage_function: Callable, *args, **kwargs):
        """Run `stage_function(stage, *args, **kwargs)` as one stage. Its locals are gone when it returns, so the
        stage's models are only referenced by the stage and are really freed when it ends."""
        with self.stage(name) as stage:
            return stage_function(stage, *args, **kwargs)

    def _report(self, name: str, seconds: float, peaks: _PeakWindow) -> StageReport:
        report = StageReport(name=name, seconds=seconds, rss_gib=process_rss_bytes() / GIB,
                             peak_rss_gib=peaks.rss_bytes / GIB, mem_available_gib=mem_available_bytes() / GIB)
        if self.device.type == "cuda":
            report.cuda_allocated_gib = torch.cuda.memory_allocated(self.device) / GIB
            report.cuda_reserved_gib = torch.cuda.memory_reserved(self.device) / GIB
            report.cuda_peak_gib = peaks.cuda_bytes / GIB
        return report

    def timings(self) -> dict[str, float]:
        return {report.name: round(report.seconds, 3) for report in self.reports}


def evict_from_page_cache(paths: list[Path]) -> int:
    """Ask the kernel to drop these files from the page cache (no root needed). Returns bytes advised."""
    emit("evict", "page-cache", paths)
    return sum(_advise(path, 0, 0, os.POSIX_FADV_DONTNEED) for path in paths)


PREFETCH_CHUNK_BYTES = 256 << 20  # read-ahead is queued a chunk at a time, so a stop takes effect within one chunk
_prefetches: list["PageCachePrefetch"] = []


class PageCachePrefetch(threading.Thread):
    """Reads file ranges (path, offset, length; length 0 is to the end of the file) into the page cache in the
    background, a chunk at a time, until they are all queued or `stop` is called; a range that cannot be opened is
    skipped."""

    def __init__(self, ranges: list[tuple[Path, int, int]], chunk_bytes: int = PREFETCH_CHUNK_BYTES):
        super().__init__(name="page-cache-prefetch", daemon=True)
        self.ranges, self.chunk_bytes = ranges, chunk_bytes
        self.files = {Path(path) for path, _, _ in ranges}
        self._stopping = threading.Event()

    def run(self) -> None:
        try:
            for path, offset, length in self.ranges:
                end = offset + length if length else _file_size(path)
                for start in range(offset, end, self.chunk_bytes):
                    if self._stopping.is_set():
                        return
                    # the kernel queues the reads; each call returns once they are submitted
                    _advise(path, start, min(self.chunk_bytes, end - start), os.POSIX_FADV_WILLNEED)
        finally:
            _prefetches.remove(self)

    def start(self) -> None:
        _prefetches.append(self)  # from now on `stop_prefetching` finds it
        super().start()

    def stop(self) -> None:
        self._stopping.set()


def prefetch_into_page_cache(ranges: list[tuple[Path, int, int]]) -> PageCachePrefetch:
    """Start reading these file ranges into the page cache in the background (`PageCachePrefetch`), so a later
    load reads them from memory. Returns the prefetch, already started."""
    emit("prefetch", "page-cache", ranges)
    prefetch = PageCachePrefetch(ranges)
    prefetch.start()
    return prefetch


def stop_prefetching(files: set[Path]) -> None:
    """A loader about to read `files` itself stops any prefetch of them: what the prefetch has read comes from
    memory, the rest from the loader's own reads, and no range is read twice (the loader drops what it has read
    from the page cache, which a prefetch still running behind it would read again)."""
    files = {Path(file) for file in files}
    for prefetch in list(_prefetches):
        if prefetch.files & files:
            prefetch.stop()
            prefetch.join()
            emit("prefetch-stopped", "page-cache", prefetch.ranges)


def _file_size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _advise(path: Path, offset: int, length: int, advice: int) -> int:
    """posix_fadvise on a file range; returns the file's size, or 0 where it cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return 0
    try:
        os.posix_fadvise(fd, offset, length, advice)
        return os.fstat(fd).st_size
    finally:
        os.close(fd)


def drop_system_page_cache() -> bool:
    """Drop the whole page cache if this process may (root, writable /proc/sys/vm). Returns whether it did."""
    path = "/proc/sys/vm/drop_caches"
    if not os.access(path, os.W_OK):
        return False
    os.sync()
    try:
        with open(path, "w") as drop:
            drop.write("1\n")
    except OSError:
        return False
    emit("drop-caches", "page-cache")
    return True
