"""A run's output names: the MP4, its sidecar and its latents files belong to that run alone.

Before any weight is read, a run refuses an output that is one of its own inputs (writing it would replace or
delete what the run reads), and reserves its output name with an exclusive lock held until it exits: a second run
given the same name while the first still runs takes the next free timestamped name (said in one line), or, with
--no-timestamp, is refused."""

from __future__ import annotations

import contextlib
import dataclasses
import re
from pathlib import Path

from ltx2gen import two_stage
from ltx2gen.errors import ConfigError
from ltx2gen.lock import FileLock, holder, try_lock
from ltx2gen.retake import find_clip

STAMP = re.compile(r"^(?P<stem>.*_\d{8}_\d{6})(?:_(?P<number>\d+))?$")


def run_files(config) -> list[Path]:
    """Every file a run of `config` writes under its output name: the MP4, the sidecar, the latents, the stage-one
    latents of a two-stage run."""
    return [config.output, config.sidecar_path, config.latents_path, two_stage.stage_one_path(config)]


def run_inputs(config) -> list[tuple[str, Path]]:
    """(flag, file) for each file a run of `config` reads, with the files it reaches through them (an --extend MP4's
    sidecar and latents). A run's own files that it is meant to read back are left out: --resume of the output's
    latents, --refine-from of its stage-one latents. A retake's clip, its sidecar and its latents are inputs too."""
    inputs = [("--image", config.image), ("--audio", config.audio),
              *(("--keyframe", spec.path) for spec in config.keyframe)]
    if config.extend:
        inputs += [("--extend", config.extend), ("--extend", config.earlier.path)]
        if Path(config.extend).suffix.lower() == ".mp4":
            inputs.append(("--extend", Path(config.extend).with_suffix(".json")))
    if config.retake:
        inputs += [("--retake", config.retake), ("--retake", find_clip(config.retake).path),
                   ("--retake", Path(config.retake).with_suffix(".json"))]
    if config.resume and not _same(config.resume, config.latents_path):
        inputs.append(("--resume", config.resume))
    if config.refine_from and not _same(config.refine_from, two_stage.stage_one_path(config)):
        inputs.append(("--refine-from", config.refine_from))
    return [(flag, Path(path)) for flag, path in inputs if path]


def refuse_inputs_as_outputs(config) -> None:
    """ConfigError where a file the run writes is one it reads (compared as resolved paths)."""
    written = {_resolved(path): path for path in run_files(config)}
    for flag, path in run_inputs(config):
        clash = written.get(_resolved(path))
        if clash is not None:
            what = "is the output" if clash == config.output else f"is the output's {_kind(config, clash)}"
            raise ConfigError(f"{flag} {path}: {what} ({clash}), which this run would replace; give another "
                              "--output")


def _kind(config, path: Path) -> str:
    return {config.sidecar_path: "sidecar", config.latents_path: "latents file"}.get(path, "stage-one latents file")


def _resolved(path) -> Path:
    return Path(path).expanduser().resolve()


def _same(first, second) -> bool:
    return _resolved(first) == _resolved(second)


class Reservation:
    """An output name held for one run: its lock file, and the folders made for it (removed again if the run leaves
    them empty)."""

    def __init__(self, lock: FileLock | None = None, made: list[Path] = ()):
        self.lock, self.made = lock, list(made)

    def release(self) -> None:
        if self.lock is not None:
            self.lock.release()
        _remove_empty(self.made)

    def __enter__(self) -> "Reservation":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def lock_path(output: Path) -> Path:
    return Path(output).with_name(f".{Path(output).name}.lock")


def reserve(config):
    """(`config` with the output name this run holds, its `Reservation`). A timestamped name that another run holds
    or that has files already passes to the next free one (NAME_2, NAME_3, ...), said in one line; an exact name
    (--no-timestamp) that another run holds is a ConfigError."""
    timestamped = not config.no_timestamp
    made = _make_folders(Path(config.output).parent)
    candidate = config
    try:
        while True:
            lock = _try_lock(candidate.output)
            if lock is not None and (not timestamped or not any(path.exists() for path in run_files(candidate))):
                break
            if lock is not None:
                lock.release()
            elif not timestamped:
                raise _taken(config.output)
            candidate = dataclasses.replace(candidate, output=next_name(candidate.output))
    except BaseException:
        _remove_empty(made)
        raise
    if candidate.output != config.output:
        print(f"note: {config.output} is taken by another run; this run writes {candidate.output}", flush=True)
    return candidate, Reservation(lock, made)


def reserve_exactly(output: Path) -> Reservation:
    """The `Reservation` of exactly `output` (decode_latents.py's MP4 and its sidecar), the lock `reserve` takes: a
    ConfigError where another run (generate.py or decode_latents.py) is writing that name."""
    made = _make_folders(Path(output).parent)
    try:
        lock = _try_lock(output)
        if lock is None:
            raise _taken(output)
    except BaseException:
        _remove_empty(made)
        raise
    return Reservation(lock, made)


def _taken(output: Path) -> ConfigError:
    return ConfigError(f"--output {output}: another run ({holder(lock_path(output))}) is writing it; wait for it to "
                       "finish, or give another --output")


def next_name(output: Path) -> Path:
    """The timestamped name after `output`: NAME_YYYYMMDD_HHMMSS_2, _3, ..."""
    match = STAMP.match(output.stem)
    stem, number = (match["stem"], int(match["number"] or 1)) if match else (output.stem, 1)
    return output.with_name(f"{stem}_{number + 1}{output.suffix}")


def _try_lock(output: Path) -> FileLock | None:
    try:
        return try_lock(lock_path(output))
    except OSError as err:
        raise ConfigError(f"--output {output}: cannot reserve the name ({lock_path(output)}: "
                          f"{err.strerror or err})") from None


def _make_folders(folder: Path) -> list[Path]:
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        path.mkdir()
    return list(reversed(missing))


def _remove_empty(made: list[Path]) -> None:
    for folder in reversed(made):
        with contextlib.suppress(OSError):
            folder.rmdir()
