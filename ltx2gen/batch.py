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

Two ways to render: one generate.py process per clip (`run_processes`, what batch/run_batch.sh calls: a crash
or a leak in one clip cannot touch the next), or everything in one process (`run_in_process`, what
`generate.py --batch` calls: the text encoder and the transformer are loaded once for the whole batch).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ltx2gen import batch_lines
from ltx2gen.config import GenerateConfig
from ltx2gen.errors import ConfigError
from ltx2gen.files import atomic_path, write_json, write_text
from ltx2gen.flag_values import ensure_writable_dir
from ltx2gen.lock import FileLock, lock_batch_folder
from ltx2gen.provenance import describe, differences
from ltx2gen.signals import stopped_with_this_process

ROOT = Path(__file__).resolve().parent.parent
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
INPUT_FILE_KEYS = {"image", "audio", "extend"}  # local files a clip reads: relative to the batch file where they are


@dataclass(frozen=True)
class Clip:
    name: str
    line: int
    flags: dict  # the line's settings, typed (`batch_lines.typed_values`)
    source: Path | None = None  # the batch file

    @property
    def where(self) -> str:
        """The clip as an error names it: its file and line, and its name."""
        return f"{self.source}:{self.line}: clip {self.name!r}"

    def argv(self, output: Path) -> list[str]:
        """generate.py arguments for this clip, writing exactly `output`."""
        return batch_lines.argv(self.flags) + [f"--output={output}", "--no-timestamp"]

    def config(self, output: Path, **settings) -> GenerateConfig:
        """The clip's validated configuration, writing exactly `output` (and any of the batch's own `settings`:
        --resume); a ConfigError names the clip's file and line."""
        return batch_lines.clip_config(self.flags, self.where, output=output, no_timestamp=True, **settings)


def read_batch(path: Path) -> list[Clip]:
    """Parse and check the structure of a batch file (flag values are checked per clip, by generate.py)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such batch file")
    clips, names = [], set()
    for number, line in enumerate(path.read_bytes().splitlines(), 1):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as err:
            raise ConfigError(f"{path}:{number}: byte 0x{line[err.start]:02x} at column {err.start + 1} is not UTF-8 "
                              "text; save the batch file as UTF-8") from None
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        try:
            entry = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(f"{path}:{number}: not valid JSON ({err.msg} at column {err.colno})") from None
        if not isinstance(entry, dict):
            raise ConfigError(f"{path}:{number}: each line must be a JSON object with name and prompt")
        name = entry.pop("name", None)
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise ConfigError(f"{path}:{number}: 'name' must be a file-name-safe string (letters, digits, . _ -)")
        if name in names:
            raise ConfigError(f"{path}:{number}: the name {name!r} is used twice")
        where = f"{path}:{number}: clip {name!r}"
        batch_lines.check_keys(entry, where)
        if "prompts" in entry:
            entry.update(timed_prompts(entry.pop("prompts"), entry.get("prompt"), where))
        if not isinstance(entry.get("prompt"), str):
            raise ConfigError(f"{where} has no 'prompt' string")
        for key in INPUT_FILE_KEYS & set(entry):
            entry[key] = beside_batch_file(entry[key], path)
        if "keyframes" in entry:
            entry["keyframe"] = keyframe_flags(entry.pop("keyframes"), path, where)
        names.add(name)
        clips.append(Clip(name, number, batch_lines.typed_values(entry, where), path))
    if not clips:
        raise ConfigError(f"{path}: holds no clips")
    return clips


def beside_batch_file(value, batch_file: Path):
    """A relative input file path that names a file beside the batch file, as that file's path; any other value as
    it is."""
    if isinstance(value, str) and not Path(value).is_absolute() and (batch_file.parent / value).is_file():
        return str(batch_file.parent / value)
    return value


def keyframe_flags(keyframes, batch_file: Path, where: str) -> list[str]:
    """A clip's `keyframes` as --keyframe values (PATH@TIME[:STRENGTH], checked by generate.py), each path relative
    to the batch file where the file is there."""
    if not isinstance(keyframes, list):
        raise ConfigError(f"{where}: 'keyframes' must be a list of \"PATH@TIME[:STRENGTH]\" strings or "
                          "{\"path\": ..., \"at\": ..., \"strength\": ...} objects")
    flags = []
    for keyframe in keyframes:
        if isinstance(keyframe, dict):
            unknown = set(keyframe) - {"path", "at", "strength"}
            if unknown or not isinstance(keyframe.get("path"), str) or \
                    not isinstance(keyframe.get("at"), (str, int, float)):
                raise ConfigError(f"{where}: keyframe {json.dumps(keyframe)} needs a 'path' string and an 'at' time "
                                  "(seconds, \"f60\" or \"end\"), and optionally a 'strength', nothing else")
            strength = f":{keyframe['strength']}" if "strength" in keyframe else ""
            keyframe = f"{keyframe['path']}@{keyframe['at']}{strength}"
        elif not isinstance(keyframe, str):
            raise ConfigError(f"{where}: keyframe {json.dumps(keyframe)} is neither a \"PATH@TIME[:STRENGTH]\" string "
                              "nor an object")
        image, at_sign, when = keyframe.rpartition("@")
        flags.append(f"{beside_batch_file(image, batch_file)}{at_sign}{when}")
    return flags


def timed_prompts(prompts, prompt, where: str) -> dict:
    """A clip's `prompts` list as `prompt` (the one at 0, unless `prompt` is given beside it) and `prompt_at` flags
    (TIME:TEXT, checked by generate.py)."""
    shape = ("'prompts' must be a list of {\"at\": seconds or \"fNN\", \"prompt\": text} objects in order of time, "
             "the first at 0 unless 'prompt' is given")
    if not isinstance(prompts, list) or not prompts or not all(
            isinstance(item, dict) and set(item) == {"at", "prompt"} and isinstance(item["prompt"], str)
            and isinstance(item["at"], (str, int, float)) and not isinstance(item["at"], bool) for item in prompts):
        raise ConfigError(f"{where}: {shape}")
    starts_at_zero = str(prompts[0]["at"]).rstrip("s") in ("0", "0.0", "f0")
    if prompt is None and not starts_at_zero:
        raise ConfigError(f"{where}: the first of 'prompts' is at {prompts[0]['at']}; {shape}")
    if prompt is not None and starts_at_zero:
        raise ConfigError(f"{where}: 'prompt' and a 'prompts' entry at 0 both give the opening prompt; keep one")
    later = prompts if prompt is not None else prompts[1:]
    return {"prompt": prompt if prompt is not None else prompts[0]["prompt"],
            "prompt_at": [f"{item['at']}:{item['prompt']}" for item in later] or None}


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

    def progress(self, index: int, total: int, row: Row) -> None:
        elapsed = time.perf_counter() - self.started
        rendered = [r.seconds for r in self.rows if r.status == "done"]
        remaining = total - index
        eta = f", ETA {_clock(sum(rendered) / len(rendered) * remaining)}" if rendered and remaining else ""
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
    return _status(summary)


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


def run_in_process(batch_file: Path, out_dir: Path, cache_dir: Path | None) -> int:
    """Render the whole batch in this process: each prompt is encoded once (or read from the embedding cache),
    the transformer is loaded once per model/LoRA/FP8 combination for all its clips, then each clip is decoded.
    Latents are saved as soon as each clip is diffused, so a failure later loses only that clip's decode.
    Under torchrun, this process renders only its rank's share (`ltx2gen.ranks`)."""
    from ltx2gen.ranks import Ranks

    ranks = Ranks.from_env()
    clips = read_batch(batch_file)
    out_dir = Path(out_dir)
    with contextlib.suppress(OSError):  # first, so that no rank removes a probe folder another rank writes in
        out_dir.mkdir(parents=True, exist_ok=True)
    ensure_writable_dir(out_dir, "--out")  # says why where the folder could not be made
    with lock_batch_folder(out_dir, ranks.rank):
        return _render_in_process(clips, out_dir, cache_dir, ranks)


def _render_in_process(clips: list[Clip], out_dir: Path, cache_dir: Path | None, ranks) -> int:
    from ltx2gen import text

    my_clips = ranks.share(clips)
    if ranks.distributed:
        ranks.join()
        print(f"rank {ranks.rank} of {ranks.world_size}: {len(my_clips)} of the batch's {len(clips)} clips "
              f"(process {os.getpid()})", flush=True)  # the process to look at, or to stop, on this host
    summary = Summary(out_dir)
    cache = text.EmbeddingCache(cache_dir) if cache_dir else None
    with contextlib.ExitStack() as reservations:  # each clip's output name is the batch's until it ends
        return _render_jobs(_plan_jobs(my_clips, out_dir, summary, reservations), my_clips, clips, summary, cache,
                            ranks)


def _render_jobs(jobs: list[_Job], my_clips: list[Clip], clips: list[Clip], summary: Summary, cache,
                 ranks) -> int:
    from ltx2gen import audio_input, components, duration, text
    from ltx2gen.image import encode_images
    from ltx2gen.memory import MemoryTracker
    from ltx2gen.ranks import Ranks

    out_dir = summary.out_dir
    groups: dict[tuple, list[_Job]] = {}
    for job in jobs:
        groups.setdefault(job.shared_models_key(), []).append(job)
    try:
        for group in groups.values():
            first = group[0].plan
            tracker = MemoryTracker(first.device)
            first.read_ahead_transformer()  # while the group's prompts are encoded
            requests = [text.PromptRequest.for_clip_prompts(job.config, job.plan.prompt_enhancer) for job in group]
            conditionings = iter(tracker.run("text", text.encode_prompts, first.model_dir, sum(requests, []),
                                             first.device, first.dtype, loras=first.loras, cache=cache,
                                             text_encoder=first.text_encoder))
            for job, asked in zip(group, requests):  # one clip's conditioning on the GPU at a time
                job.conditioning, *job.later_prompts = [next(conditionings).to("cpu") for _ in asked]
            del conditionings
            choosing = [job for job in group if job.plan.auto_length]  # num_frames auto: the model sets each length
            if choosing:
                lengths = tracker.run("duration", duration.choose_lengths, first.model_dir,
                                      [(job.conditioning, job.plan.auto_length) for job in choosing],
                                      device=first.device, dtype=first.dtype)
                for job, chosen in zip(choosing, lengths):
                    job.config, job.plan = job.plan.with_chosen_length(job.config, chosen)
            with_images = [job for job in group if job.plan.keyframes]
            if with_images:  # the video VAE once for the group's images, freed before the transformer loads
                images = tracker.run("image", encode_images, first.model_dir,
                                     [(job.plan.keyframes, job.config.width, job.config.height)
                                      for job in with_images],
                                     device=first.device, dtype=first.dtype)
                for job, image in zip(with_images, images):
                    job.image = image
            listening = [job for job in group if job.plan.audio_input]  # --audio: encoded before the transformer
            if listening:
                audio = tracker.run("audio input", audio_input.encode, first.model_dir,
                                    [job.plan.audio_input for job in listening], device=first.device, dtype=first.dtype)
                for job, condition in zip(listening, audio):
                    job.audio = condition
            tracker.run("diffusion", _diffuse_group, group)
            for job in group:
                if job.diffusion is not None:
                    _decode_job(job, tracker.reports)
            if not Ranks.share_the_page_cache():  # otherwise each rank evicts once all ranks are done, below
                components.release_page_cache(first.model_dir, drop_system_cache=False)
    except KeyboardInterrupt:
        for row, clip in zip(summary.rows, my_clips):
            if row.status == "pending":
                row.status, row.detail = "interrupted", unfinished(out_dir, clip)
        print("interrupted: stopping after writing the summary", flush=True)
    for index, row in enumerate(summary.rows, 1):
        summary.progress(index, len(summary.rows), row)
    if ranks.distributed:
        summary.write(f"summary.rank{ranks.rank}")
        ranks.wait_for_all()
        if Ranks.share_the_page_cache():  # every rank of the host has finished loading
            for model_dir in {job.plan.model_dir for job in jobs}:
                components.release_page_cache(model_dir, drop_system_cache=False)
        if ranks.rank != 0:
            return _status(summary)
        summary = _merge_rank_summaries(out_dir, clips, ranks.world_size, summary.started)
    contact_sheet(out_dir, clips)
    summary.write()
    return _status(summary)


def _status(summary: Summary) -> int:
    return 130 if any(r.status == "interrupted" for r in summary.rows) else (1 if summary.failed else 0)


def _merge_rank_summaries(out_dir: Path, clips: list[Clip], world_size: int, started: float) -> Summary:
    """Every rank's rows, in batch order."""
    rows = {}
    for rank in range(world_size):
        for row in json.loads((out_dir / f"summary.rank{rank}.json").read_text())["clips"]:
            rows[row["name"]] = Row(**row)
    return Summary(out_dir, [rows[clip.name] for clip in clips], started)


@dataclass
class _Job:
    clip: Clip
    row: Row
    config: object
    plan: object
    conditioning: object = None
    later_prompts: list = field(default_factory=list)  # --prompt-at's conditionings
    image: object = None
    audio: object = None
    diffusion: object = None
    latents_path: Path | None = None

    def shared_models_key(self) -> tuple:
        plan = self.plan
        return (str(plan.model_dir), plan.transformer_folder, str(plan.device), plan.fp8, plan.fp8_attention,
                plan.offload, plan.compiled, plan.text_encoder,
                tuple((str(lora.path), lora.spec.scale) for lora in plan.loras))


def _plan_jobs(clips: list[Clip], out_dir: Path, summary: Summary, reservations: contextlib.ExitStack) -> list[_Job]:
    """The clips to diffuse, each with its output name reserved (`outputs.reserve`) in `reservations`; clips whose
    kept latents are decoded here; rows for the rest."""
    from ltx2gen import outputs
    from ltx2gen.plan import RunPlan

    jobs = []
    for clip in clips:
        row = Row(clip.name)
        summary.rows.append(row)
        if skip_if_finished(out_dir, clip, row):
            continue
        try:
            run = plan_clip(out_dir, clip)
            reservations.enter_context(outputs.reserve(run.config)[1])  # an exact name: refused where it is taken
            say_rendered_again(run, row)
            job = _Job(clip, row, run.config, RunPlan.choose(run.config))
            if run.decodes:  # diffused by an earlier run: decoded now, before any model of the batch loads
                _decode_kept(job, run.latents)
            else:
                jobs.append(job)
        except ConfigError as err:
            row.status, row.detail = "failed", f"bad input: {err}"
    return jobs


def _decode_kept(job: _Job, latents: Path) -> None:
    from ltx2gen.clip import recover
    from ltx2gen.latents import load_latents
    from ltx2gen.plan import decode_plan_for

    started = time.perf_counter()
    try:
        # A clip of num_frames auto has its length in its latents file alone
        decode_plan = job.plan.decode_plan or decode_plan_for(job.config, load_latents(latents).video_format.num_frames)
        recover(latents, job.config.output, model_dir=job.plan.model_dir, device=job.plan.device,
                decode_plan=decode_plan)
        if not job.config.keep_latents:
            latents.unlink()
        save_previews(job.config.output)
        job.row.status, job.row.detail = "done", f"decoded from the kept {latents.name}"
    except Exception as err:
        job.row.status, job.row.detail = "failed", f"decoding the kept {latents.name}: {type(err).__name__}: {err}"
    job.row.seconds += time.perf_counter() - started


def _diffuse_group(stage, group: list[_Job]) -> None:
    from ltx2gen.clip import ClipFailed, diffuse_with, save_latents

    denoiser = group[0].plan.load_denoiser(stage)
    for job in group:
        started = time.perf_counter()
        try:
            job.diffusion = diffuse_with(stage, denoiser, job.config, job.plan, job.conditioning, image=job.image,
                                         audio=job.audio, later_prompts=job.later_prompts)
            job.latents_path = save_latents(job.config, job.plan, job.diffusion)
        except ClipFailed as failure:
            job.row.status, job.row.detail = "failed", f"latents: {failure}; " + failure.advice.replace("\n  ", " ")
            if failure.interrupted:  # the latents are whole; the batch stops here, writing its summary
                job.row.status = "interrupted"
                raise failure.cause
        except Exception as err:
            job.row.status, job.row.detail = "failed", f"diffusion: {type(err).__name__}: {err}"
        job.row.seconds += time.perf_counter() - started


def _decode_job(job: _Job, shared_reports: list) -> None:
    from ltx2gen.clip import ClipFailed, finish
    from ltx2gen.memory import MemoryTracker

    started = time.perf_counter()
    tracker = MemoryTracker(job.plan.device)
    tracker.reports = list(shared_reports)
    try:
        finish(tracker, job.config, job.plan, job.diffusion, latents_path=job.latents_path,
               encoded=job.conditioning.encoded)
        save_previews(job.config.output)
        job.row.status = "done"
    except ClipFailed as failure:
        advice = failure.advice.replace("\n  ", " ")
        if failure.interrupted:  # the batch stops here, writing its summary
            job.row.status, job.row.detail = "interrupted", advice
            raise failure.cause
        job.row.status, job.row.detail = "failed", f"decode: {failure}; {advice}"
    except Exception as err:  # the clip is finished; its preview images are not
        job.row.status, job.row.detail = "failed", f"previews: {type(err).__name__}: {err}"
    job.row.seconds += time.perf_counter() - started


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
