"""Batches: a JSON Lines prompt file rendered clip by clip, resumable, with previews, a contact sheet and a summary.

Each line is one clip: `name`, `prompt`, and any generate.py setting by its exact name with underscores
(`num_frames`, `camera`, `seed`, ...), each a JSON value (`ltx2gen.batch_lines`: a switch such as `no_fp8` takes
`true`, a repeatable setting (`lora`) a list of value lists); any other key is refused, naming the known ones.
`keyframes` is a list of `--keyframe` values, each a string (`"end.png@end:0.8"`) or an object
(`{"path": "end.png", "at": "end", "strength": 0.8}`). `prompts` times the prompts of a long clip:
`[{"at": 0, "prompt": ...}, {"at": 8, "prompt": ...}]`, the first at 0 (or `prompt` beside it), each later one a
`--prompt-at`. A long clip cut short is resumed from the latents it kept (`--resume`), not decoded; kept latents
are taken up only where they were made from what the line asks for now (`ltx2gen.provenance`), else the clip
renders again, said in one line.

Two ways to render: one generate.py process per clip (`run_processes` here, what batch/run_batch.sh calls: a
crash or a leak in one clip cannot touch the next), or everything in one process (`batch_in_process`, what
`generate.py --batch` calls: the text encoder and the transformer are loaded once for the whole batch). The lines
become clips in `batch_lines`.
"""

from __future__ import annotations

import contextlib
import io
import json
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ltx2gen.batch_lines import Clip, read_batch
from ltx2gen.config import GenerateConfig
from ltx2gen.errors import ConfigError
from ltx2gen.files import atomic_path, write_json, write_text
from ltx2gen.flag_values import ensure_writable_dir
from ltx2gen.lock import FileLock, lock_batch_folder
from ltx2gen.provenance import describe, differences
from ltx2gen.signals import stopped_with_this_process

ROOT = Path(__file__).resolve().parent.parent
def default_out_dir(batch_file: Path) -> Path:
    return Path("outputs") / Path(batch_file).stem


def clip_video(out_dir: Path, clip: Clip) -> Path:
    return Path(out_dir) / f"{clip.name}.mp4"


def is_done(out_dir: Path, clip: Clip) -> bool:
    return finished(out_dir, clip)[0]


def finished(out_dir: Path, clip: Clip) -> tuple[bool, str]:
    """Whether the clip is rendered as its line asks now: its MP4 and sidecar are there and the sidecar's record of
    what the clip was made from (`provenance`) still matches the line (a sidecar without one, written by an earlier
    version, is taken as it is). Otherwise False, with the line that says why a clip already there renders again."""
    video = clip_video(out_dir, clip)
    sidecar = video.with_suffix(".json")
    if not (video.is_file() and sidecar.is_file()):
        return False, ""
    try:
        differ = differences(json.loads(sidecar.read_text()), clip.config(video),
                             ignore=() if "seed" in clip.flags else ("seed",))
    except ConfigError:  # a bad line: it fails as bad input when it renders
        return False, ""
    except (OSError, ValueError):
        return False, f"{clip.where}: its {sidecar.name} cannot be read; rendering the clip again"
    if differ:
        return False, f"{clip.where}: its {video.name} {describe(differ)}; rendering the clip again"
    return True, ""


def skip_if_finished(out_dir: Path, clip: Clip, row: Row) -> bool:
    """A clip rendered as its line asks: skipped. One rendered from another line: said in one line and in the
    summary, and rendered again."""
    done, why = finished(out_dir, clip)
    if done:
        row.status, row.detail = "skipped", "already rendered"
    elif why:
        print(f"note: {why}", flush=True)
        row.detail = f"rendered again: {why}"
    return done


def clip_latents(out_dir: Path, clip: Clip) -> Path:
    """Where a clip's latents file is, beside its MP4."""
    return clip_video(out_dir, clip).with_suffix(".latents.safetensors")


@dataclass(frozen=True)
class ClipRun:
    """How a clip renders this time: its configuration, and the latents an earlier run of it kept where they were
    made from what its line asks for now (`reusable_latents`): a whole clip's are decoded, a long clip's cut short
    resumed (`config.resume`)."""

    config: GenerateConfig
    latents: Path | None = None
    note: str = ""  # why kept latents are not taken up

    @property
    def decodes(self) -> bool:
        return self.latents is not None and self.config.resume is None


def plan_clip(out_dir: Path, clip: Clip) -> ClipRun:
    """The clip's run (a ConfigError, naming its file and line, where the line is bad input)."""
    config = clip.config(clip_video(out_dir, clip))
    latents, note = reusable_latents(out_dir, clip, config)
    if latents and cut_short(latents):
        config = clip.config(clip_video(out_dir, clip), resume=latents)
    return ClipRun(config, latents, note)


def say_rendered_again(run: ClipRun, row) -> None:
    """Kept latents that no longer match the line: one line now, and the summary's detail."""
    if run.note:
        print(f"note: {run.note}", flush=True)
        row.detail = f"rendered again: {run.note}"


def reusable_latents(out_dir: Path, clip: Clip, config: GenerateConfig) -> tuple[Path | None, str]:
    """The latents an earlier run of this clip kept (it failed or was stopped after diffusion, or a long clip was
    cut short), where their record matches `config` (the seed too, where the line gives one); otherwise None and the
    line saying why the clip renders again."""
    from ltx2gen.latents import LatentsFileError, read_header

    latents = clip_latents(out_dir, clip)
    if not latents.is_file():
        return None, ""
    try:
        differ = differences(read_header(latents).metadata, config, ignore=() if "seed" in clip.flags else ("seed",))
        why = describe(differ) if differ is None or differ else ""
    except LatentsFileError as err:
        why = f"cannot be read ({err})"
    return (None, f"{clip.where}: its kept {latents.name} {why}; rendering the clip again") if why else (latents, "")


def cut_short(latents: Path) -> bool:
    """Whether a latents file holds a long clip cut short (`continuation.cut_short`)."""
    from ltx2gen.continuation import cut_short as holds_a_clip_cut_short
    from ltx2gen.latents import LatentsFileError, read_header

    try:
        return holds_a_clip_cut_short(read_header(latents))
    except LatentsFileError:
        return False


def unfinished(out_dir: Path, clip: Clip) -> str:
    """The summary's detail for a clip the batch did not finish."""
    latents = clip_latents(out_dir, clip)
    if cut_short(latents):
        return f"not finished; its finished windows are kept ({latents}), a re-run renders the rest"
    if latents.is_file() and not is_done(out_dir, clip):
        return f"not finished; its latents are kept ({latents}), a re-run decodes them"
    return "not finished"


@dataclass
class Row:
    name: str
    status: str = "pending"  # done, skipped (already done), failed, interrupted
    seconds: float = 0.0
    attempts: int = 0
    detail: str = ""


@dataclass
class Summary:
    out_dir: Path
    rows: list[Row] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

    def progress(self, index: int, total: int, row: Row, remaining_seconds: float | None = None) -> None:
        """The `[index/total]` line of a clip whose work has ended. The ETA is `remaining_seconds` where the caller
        has worked it out, else the clips left at the mean seconds of those done."""
        elapsed = time.perf_counter() - self.started
        rendered = [r.seconds for r in self.rows if r.status == "done"]
        remaining = total - index
        if remaining_seconds is None and rendered:
            remaining_seconds = sum(rendered) / len(rendered) * remaining
        going_on = remaining and remaining_seconds is not None and row.status != "interrupted"
        eta = f", ETA {_clock(remaining_seconds)}" if going_on else ""
        detail = f" ({row.detail})" if row.detail else ""
        print(f"[{index}/{total}] {row.name}: {row.status} in {row.seconds:.1f} s{detail} | elapsed "
              f"{_clock(elapsed)}{eta}", flush=True)

    @property
    def failed(self) -> list[Row]:
        return [row for row in self.rows if row.status in ("failed", "interrupted", "pending")]

    def write(self, name: str = "summary") -> Path:
        """`name`.md (the table) and `name`.json in the output folder."""
        lines = ["| clip | status | seconds | attempts | detail |", "|---|---|---|---|---|"]
        lines += [f"| {r.name} | {r.status} | {r.seconds:.1f} | {r.attempts} | {r.detail} |" for r in self.rows]
        table = "\n".join(lines)
        total = _clock(time.perf_counter() - self.started)
        print("\n" + table + f"\n\n{len(self.rows) - len(self.failed)} of {len(self.rows)} clips ready in "
              f"{self.out_dir}; {len(self.failed)} failed or not run; total {total}", flush=True)
        write_text(Path(self.out_dir) / f"{name}.md", table + "\n", errors="backslashreplace")
        return write_json(Path(self.out_dir) / f"{name}.json", {"clips": [vars(r) for r in self.rows]})


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{seconds:02d}"


def save_previews(video: Path) -> tuple[Path, Path]:
    """First and last frame of a finished clip as PNGs beside it."""
    from ltx2gen.video import ffmpeg_exe

    first, last = video.with_name(f"{video.stem}.first.png"), video.with_name(f"{video.stem}.last.png")
    quiet = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y"]
    with atomic_path(first) as temporary:
        subprocess.run(quiet + ["-i", str(video), "-frames:v", "1", str(temporary)], check=True)
    with atomic_path(last) as temporary:
        subprocess.run(quiet + ["-sseof", "-1", "-i", str(video), "-update", "1", str(temporary)], check=True)
    return first, last


def contact_sheet(out_dir: Path, clips: list[Clip], thumb_width: int = 320) -> Path | None:
    """One image of the batch: a row per finished clip with its name, first and last frame."""
    from PIL import Image, ImageDraw

    rows = [(clip.name, Path(out_dir) / f"{clip.name}.first.png", Path(out_dir) / f"{clip.name}.last.png")
            for clip in clips]
    rows = [row for row in rows if row[1].is_file() and row[2].is_file()]
    if not rows:
        return None
    thumbs = []
    for name, first, last in rows:
        pair = [Image.open(p).convert("RGB") for p in (first, last)]
        height = round(pair[0].height * thumb_width / pair[0].width)
        thumbs.append((name, [im.resize((thumb_width, height)) for im in pair]))
    label_width, pad = 200, 8
    sheet_height = sum(pair[0].height + pad for _, pair in thumbs) + pad
    sheet = Image.new("RGB", (label_width + 2 * (thumb_width + pad) + pad, sheet_height), "black")
    draw, y = ImageDraw.Draw(sheet), pad
    for name, pair in thumbs:
        draw.text((pad, y + 4), name, fill="white")
        for column, image in enumerate(pair):
            sheet.paste(image, (label_width + pad + column * (thumb_width + pad), y))
        y += pair[0].height + pad
    path = Path(out_dir) / "contact_sheet.png"
    with atomic_path(path) as temporary:
        sheet.save(temporary)
    return path


def docker_command(image: str, hf_cache: Path, out_dir: Path, command: str = "generate") -> list[str]:
    """How each clip runs with --docker: the output folder is mounted at /outputs."""
    return ["docker", "run", "--rm", "--gpus", "all", "-v", f"{hf_cache}:/cache/huggingface",
            "-v", f"{Path(out_dir).resolve()}:/outputs", image, command]


def run_processes(batch_file: Path, out_dir: Path, *, docker_image: str | None = None, hf_cache: Path | None = None,
                  retries: int = 1) -> int:
    """Render each clip in its own generate.py process; finished clips are skipped, failed ones retried."""
    clips = read_batch(batch_file)
    out_dir = Path(out_dir)
    ensure_writable_dir(out_dir, "--out")
    (out_dir / "logs").mkdir(parents=True, exist_ok=True)
    with lock_batch_folder(out_dir) as lock:
        return _render_processes(batch_file, clips, out_dir, lock, retries=retries, docker_image=docker_image,
                                 hf_cache=hf_cache)


def _render_processes(batch_file: Path, clips: list[Clip], out_dir: Path, lock: FileLock, *, retries: int,
                      docker_image: str | None, hf_cache: Path | None) -> int:
    summary = Summary(out_dir)
    print(f"batch {batch_file}: {len(clips)} clips into {out_dir}", flush=True)
    try:
        for index, clip in enumerate(clips, 1):
            row = Row(clip.name)
            summary.rows.append(row)
            if not skip_if_finished(out_dir, clip, row):
                _render_process(clip, out_dir, row, retries=retries, docker_image=docker_image, hf_cache=hf_cache,
                                lock=lock)
            summary.progress(index, len(clips), row)
    except KeyboardInterrupt:
        if summary.rows:  # the clip that was rendering
            stopped = summary.rows[-1]
            stopped.status, stopped.detail = "interrupted", unfinished(out_dir, clips[len(summary.rows) - 1])
        summary.rows += [Row(clip.name, "interrupted", detail="not run") for clip in clips[len(summary.rows):]]
        print("interrupted: stopping after writing the summary", flush=True)
    contact_sheet(out_dir, clips)
    summary.write()
    return exit_status(summary)


def _render_process(clip: Clip, out_dir: Path, row: Row, *, retries: int, docker_image, hf_cache,
                    lock: FileLock) -> None:
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # its notes are the clip's process's to print, in its log
            run = plan_clip(out_dir, clip)
    except ConfigError as err:  # bad input: no process is started
        row.status, row.detail = "failed", f"bad input: {err}"
        return
    video = clip_video(out_dir, clip)
    inside = Path("/outputs") if docker_image else Path(out_dir)
    say_rendered_again(run, row)
    if run.decodes:  # diffused by an earlier run: decode its latents
        arguments = ["--input", str(inside / run.latents.name), "--output", str(inside / video.name)]
        row.detail = f"decoded from the kept {run.latents.name}"
    else:
        resume = [f"--resume={inside / run.latents.name}"] if run.latents else []
        arguments = clip.argv(inside / video.name) + resume
    if docker_image:
        command = docker_command(docker_image, hf_cache, out_dir, "decode" if run.decodes else "generate") + arguments
    else:
        command = [sys.executable, str(ROOT / ("decode_latents.py" if run.decodes else "generate.py"))] + arguments
    log = out_dir / "logs" / f"{clip.name}.log"
    started = time.perf_counter()
    while True:
        row.attempts += 1
        with open(log, "a", errors="backslashreplace") as handle:  # a prompt's stray bytes must not stop the batch
            handle.write(f"$ {shlex.join(command)}\n")
            handle.flush()
            # The clip's process holds the folder's lock too, and is stopped (keeping its work) when this runner
            # dies: a runner killed with -9 leaves no clip rendering beside the next runner.
            process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True,
                                       pass_fds=(lock.descriptor,), preexec_fn=stopped_with_this_process())
            try:
                status = process.wait()
            except KeyboardInterrupt:
                process.terminate()  # generate.py keeps its latents and prints the recovery command
                process.wait()
                raise
        # Status 2 is bad input: running it again cannot help.
        if status == 0 or status == 2 or row.attempts > retries:
            break
    row.seconds = time.perf_counter() - started
    if status == 0:
        row.status = "done"
        if run.decodes and not run.config.keep_latents:  # its sidecar now records where the clip came from
            run.latents.unlink()
        save_previews(video)
    else:
        row.status, row.detail = "failed", f"exit {status}: {_last_error(log)}; log {log}"


def _last_error(log: Path) -> str:
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if "error" in line.lower()]
    return (lines[-1] if lines else "see the log")[:200]


def exit_status(summary: Summary) -> int:
    """0 when every clip is done, 1 when any failed, 130 when the batch was interrupted."""
    return 130 if any(r.status == "interrupted" for r in summary.rows) else (1 if summary.failed else 0)


def main(argv: list[str] | None = None) -> int:
    from ltx2gen.flags import OneLineErrors
    from ltx2gen.signals import stop_like_ctrl_c
    from ltx2gen.streams import survive_readers_leaving

    parser = OneLineErrors(prog="run_batch.sh", description="Render a JSON Lines batch of clips, one "
                                     "generate.py process per clip; finished clips are skipped on a re-run.")
    parser.add_argument("file", type=Path, help="batch file: one JSON object per line with name, prompt and flags")
    parser.add_argument("--out", type=Path, help="output folder (default: outputs/<file name>/)")
    parser.add_argument("--docker", nargs="?", const="ltx2", metavar="IMAGE",
                        help="run each clip in the Docker image (default image name: ltx2)")
    parser.add_argument("--hf-cache", type=Path, default=Path.home() / ".cache" / "huggingface",
                        help="Hugging Face cache mounted into the container with --docker")
    parser.add_argument("--retries", type=int, default=1, help="retries of a clip that failed at run time")
    args = parser.parse_args(argv)
    stop_like_ctrl_c()  # `kill` or `docker stop`: the clip is stopped, its latents kept, the summary written
    survive_readers_leaving()  # a closed pipe never ends the run
    try:
        return run_processes(args.file, args.out or default_out_dir(args.file), docker_image=args.docker,
                             hf_cache=args.hf_cache, retries=args.retries)
    except ConfigError as err:
        parser.error(str(err))


if __name__ == "__main__":
    sys.exit(main())
