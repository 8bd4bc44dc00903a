"""Continuing a clip (`--extend`) and clips longer than one window (`--num-frames`/`--seconds` beyond
`--window-seconds`): each window continues the one before it, in one diffusion stage (the transformer loaded once).

A window is one denoising run. Every window after a clip's first takes the last `--window-overlap` latent frames of
what came before (an earlier clip's with --extend, else the previous window's) as its own first latent frames, at
strength 1 (`LTX2ConditionPipeline`'s first-frame conditioning, the original code's `VideoConditionByLatentIndex`),
and the audio latents over the same time as the start of its audio (`patches.following_audio`, a conditioned
prefix); with --audio, each window follows its slice of the soundtrack instead. The join keeps what came before and
the window's latents after the overlap, so the clip's latents run on with no repeated or missing frame; they are
decoded once, in temporal pieces streamed into one MP4.

Frames and latent frames: latent frame 0 is frame 0 alone, latent frame s >= 1 holds frames 8s-7..8s. A window
whose latent frame 0 is the clip's latent frame s puts its latent frame i at the clip's s + i, so the frames it adds
continue the clip's exactly, and its own frame 0 stands for the clip's frame 8s. The model places a window's latent
frame 0 as one frame where the overlap's first latent frame holds eight: the price of joining in latent space, where
the decode then sees one clip.

`--prompt-at TIME:TEXT` changes the prompt from TIME on: the windows break at that time's latent frame, so each
window follows one prompt and the change falls on a window's first new frame.

After each window the clip so far is saved as the run's latents file, so a failure keeps every finished window: the
same command with `--resume FILE` renders only the windows still missing (the same seeds, so the same clip), and
decode_latents.py decodes the part that is there.
"""

from __future__ import annotations

import bisect
import functools
import json
import math
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from ltx2gen.checkpoint import latent_frame_count
from ltx2gen.conditioners import RunConditions, Span, conditions_for
from ltx2gen.errors import ConfigError
from ltx2gen.image import FRAMES_PER_LATENT_FRAME
from ltx2gen.latents import (
    LatentsFileError,
    LatentsHeader,
    fallback_paths,
    kept_beside,
    nonfinite_values,
    read_header,
)

# The automatic window: at most the video tokens of 1920x1088x161, the largest single run measured to fit an 80 GB
# GPU and Jetson Thor (docs/BENCHMARKS.md), and at most 20 s, short of where users report single runs losing
# quality (Lightricks/LTX-2 #48, "past 25 s").
WINDOW_MAX_TOKENS = 42_840
WINDOW_MAX_SECONDS = 20


def frames_for_seconds(seconds: float, fps: Fraction) -> int:
    """The shortest 8n+1 frame count that lasts at least `seconds` (n >= 1)."""
    frames = math.ceil(Fraction(seconds) * fps)
    return max(1, math.ceil((frames - 1) / FRAMES_PER_LATENT_FRAME)) * FRAMES_PER_LATENT_FRAME + 1


def added_frames(seconds: float, fps: Fraction) -> int:
    """The frames a continuation of `seconds` adds: whole latent frames, at least one."""
    return max(1, math.ceil(Fraction(seconds) * fps / FRAMES_PER_LATENT_FRAME)) * FRAMES_PER_LATENT_FRAME


def window_num_frames(window_seconds: float | None, width: int, height: int, fps: Fraction) -> int:
    """The longest window, in frames: `--window-seconds` rounded up to 8n+1, or the automatic window."""
    if window_seconds is not None:
        return frames_for_seconds(window_seconds, fps)
    by_tokens = WINDOW_MAX_TOKENS // ((width // 32) * (height // 32))
    by_time = latent_frame_count(math.floor(WINDOW_MAX_SECONDS * fps) + 1)
    return (max(2, min(by_tokens, by_time)) - 1) * FRAMES_PER_LATENT_FRAME + 1


@dataclass(frozen=True)
class Window:
    """One denoising run of a long clip: its place in the clip (from 0), the clip's latent frame its latent frame 0
    is, its length in latent frames and how many of them it takes from what came before (0 for a clip's first)."""

    index: int
    start: int
    latent_frames: int
    overlap: int

    @property
    def num_frames(self) -> int:
        return (self.latent_frames - 1) * FRAMES_PER_LATENT_FRAME + 1

    @property
    def end(self) -> int:
        """The clip's latent frames once this window is joined."""
        return self.start + self.latent_frames

    def seed(self, clip_seed: int) -> int:
        """Each window draws its own noise; the clip's seed and the window's place fix it."""
        return clip_seed + self.index

    def new_frames(self) -> tuple[int, int]:
        """The clip's frames this window adds: [first, end)."""
        first = 0 if self.start + self.overlap == 0 else (self.start + self.overlap) * FRAMES_PER_LATENT_FRAME - 7
        return first, (self.end - 1) * FRAMES_PER_LATENT_FRAME + 1


def layout(total_latents: int, window_latents: int, overlap: int, given_latents: int = 0,
           given_windows: int = 0, breaks: tuple[int, ...] = ()) -> tuple[Window, ...]:
    """The windows that bring a clip to `total_latents` latent frames, each at most `window_latents` long, after
    the `given_latents` of an earlier clip of `given_windows` windows (none: the first window starts the clip).
    A window ends at each of `breaks` (latent frames where the prompt changes), so the next one starts there."""
    windows, end, index = [], given_latents, given_windows
    for target in [*sorted(breaks), total_latents]:
        if end == 0:
            windows.append(Window(index, 0, min(window_latents, target), 0))
            end, index = windows[0].end, index + 1
        while end < target:
            start = end - overlap
            windows.append(Window(index, start, min(window_latents, target - start), overlap))
            end, index = windows[-1].end, index + 1
    return tuple(windows)


def window_prompt(window: Window, breaks: tuple[int, ...]) -> int:
    """Which prompt a window follows: 0 for --prompt, i for the i-th --prompt-at."""
    return bisect.bisect_right(breaks, window.start + window.overlap)


def earlier_clip(given: Path, flag: str) -> LatentsHeader:
    """The latents of a clip to continue or resume: a latents file, or an MP4 this product wrote, found through
    its sidecar (whose `latents` names the file kept with --keep-latents). Any problem is a ConfigError naming it."""
    given = Path(given).expanduser()
    path = given
    if given.suffix.lower() == ".mp4":
        sidecar = given.with_suffix(".json")
        if not given.is_file():
            raise ConfigError(f"{flag} {given}: no such file")
        try:
            kept = json.loads(sidecar.read_text()).get("latents")
        except (OSError, ValueError):
            raise ConfigError(f"{flag} {given}: no readable sidecar {sidecar.name} beside it, which would name the "
                              "clip's latents; give its .latents.safetensors file") from None
        if not kept:
            raise ConfigError(f"{flag} {given}: its latents were not kept (render with --keep-latents to continue "
                              "a clip later); give a clip's .latents.safetensors file")
        path = kept_beside(given, kept) or Path(kept)
    try:  # read once per version of the file: a run that finishes a window rewrites it
        header = _header(path, *(path.stat().st_mtime_ns, path.stat().st_size) if path.is_file() else (0, 0))
    except LatentsFileError as err:
        raise ConfigError(f"{flag} {given}: {err}") from None
    if header.audio_shape is None:
        raise ConfigError(f"{flag} {given}: holds no audio latents (an older latents file); continue a clip "
                          "rendered by this version")
    return header


@functools.lru_cache(maxsize=16)
def _header(path: Path, modified_ns: int, size: int) -> LatentsHeader:
    """The header of a clip to go on from; a LatentsFileError too where its values went bad (NaN or infinite)."""
    header = read_header(path)
    bad = nonfinite_values(path)
    if bad:
        raise LatentsFileError(f"{bad} of its latent values are NaN or infinite; no clip can be continued from them "
                               "(render it again, with lower guidance scales if they were raised)")
    return header


def windows_of(header: LatentsHeader) -> list[dict]:
    """The windows a latents file's clip was rendered in (one for a clip of one window)."""
    meta = header.metadata
    return meta.get("windows") or [{"index": 0, "seed": meta.get("seed"), "num_frames": meta["num_frames"]}]


def adopt_earlier(values: dict, given: set[str]) -> dict:
    """--extend: the new segment keeps the earlier clip's size, frame rate and model (a flag not `given` takes the
    clip's; one given must agree, whatever its value), and its prompt unless a new one is given. Returns the values
    with `num_frames` the joined clip's."""
    header = earlier_clip(values["extend"], "--extend")
    meta, flag = header.metadata, f"--extend {values['extend']}"
    if values["extend_seconds"] is None:
        raise ConfigError(f"{flag}: give --extend-seconds N, how much to add")
    if not values["extend_seconds"] > 0:
        raise ConfigError(f"--extend-seconds {values['extend_seconds']}: must be above 0")
    if "num_frames" in given or values["seconds"] is not None:
        raise ConfigError(f"{flag}: --extend-seconds sets the length of the new segment; drop --num-frames and "
                          "--seconds")
    stored = {"width": int(meta["width"]), "height": int(meta["height"]), "fps": Fraction(str(meta["fps"]))}
    for name, value in stored.items():
        if name in given and values[name] != value:
            raise ConfigError(f"--{name} {given_text(values, name)}: the clip to extend is {meta[name]}; a "
                              f"continuation keeps it (drop --{name})")
    values = {**values, **stored}
    if "model" not in given and meta.get("model"):
        values["model"] = meta["model"]
    if values["prompt"] is None:
        values["prompt"] = meta.get("prompt")
        print(f"note: no --prompt; the new segment continues the earlier clip's: {values['prompt']}")
    values["num_frames"] = int(meta["num_frames"]) + added_frames(values["extend_seconds"], stored["fps"])
    return values


def given_text(values: dict, name: str) -> str:
    """A setting as the user gave it (a frame rate as a number, not a fraction's repr)."""
    value = values[name]
    return f"{float(value):g}" if isinstance(value, Fraction) and value.denominator != 1 else str(value)


def cut_short(header: LatentsHeader) -> bool:
    """Whether a latents file holds a clip in windows cut short: fewer frames than its windows were planned for."""
    return int(header.metadata.get("planned_num_frames") or 0) > int(header.metadata["num_frames"])


def check_resume(values: dict) -> dict:
    """--resume: the file must be this clip's, cut short; the seed is the file's unless given (and then the same)."""
    header = earlier_clip(values["resume"], "--resume")
    meta, flag = header.metadata, f"--resume {values['resume']}"
    if not cut_short(header):
        raise ConfigError(f"{flag}: a finished clip, not a long clip cut short; continue it with --extend, or "
                          "decode it with decode_latents.py")
    if values["seed"] is not None and values["seed"] != meta["seed"]:
        raise ConfigError(f"--seed {values['seed']}: the clip in {flag} was rendered with seed {meta['seed']}; "
                          "drop --seed (resuming keeps it)")
    return {**values, "seed": meta["seed"]}


def check_resume_matches(config, header: LatentsHeader) -> None:
    """The resumed run must be the run that was cut short: the same clip, prompt and window layout."""
    meta = header.metadata
    wanted = {"width": config.width, "height": config.height, "fps": str(config.fps),
              "planned_num_frames": config.num_frames, "prompt": config.prompt,
              "prompt_at": [change.text for change in config.prompt_at],
              "window_num_frames": config.window_frames, "window_overlap": config.window_overlap}
    for name, value in wanted.items():
        if str(meta.get(name)) != str(value):
            raise ConfigError(f"--resume {config.resume}: was rendered with {name} {meta.get(name)}, this command "
                              f"asks for {value}; resume with the same command that was cut short")


# The versions whose VAEs share one latent space: LTX-2.5 ships LTX-2.3's video and audio VAEs.
LATENT_SPACE = {"2.0": "2.0", "2.3": "2.3", "2.5": "2.3"}


def check_model(earlier: LatentsHeader, version: str, flag: str, use: str = "continue it") -> None:
    """Latents continued (or decoded: `use`) must be in the latent space of the model that takes them: the same
    VAEs."""
    rendered = earlier.metadata.get("model_version")
    if rendered and LATENT_SPACE.get(rendered, rendered) != LATENT_SPACE.get(version, version):
        raise ConfigError(f"{flag}: was rendered by LTX-{rendered} ({earlier.metadata.get('model')}), whose VAEs "
                          f"differ from this LTX-{version} model's; {use} with an LTX-{rendered} model")


def describe(windows: tuple[Window, ...], earlier: LatentsHeader | None, resume: LatentsHeader | None,
             breaks: tuple[int, ...] = ()) -> str:
    """The plan line's part for a clip in windows: how many, how long, what they continue or resume, and the frame
    each prompt change falls on."""
    if not windows:
        return ""
    line = f", {len(windows)} window(s) of up to {max(window.num_frames for window in windows)} frames " \
           f"(overlap {windows[-1].overlap} latent frame(s))"
    if earlier:
        line += f" continuing {earlier.path.name} ({earlier.metadata['num_frames']} frames)"
    if resume:
        line += f", resuming after the {resume.metadata['num_frames']} frames in {resume.path.name}"
    for number, latent in enumerate(breaks, 2):
        line += f", prompt {number} from frame {(latent - 1) * FRAMES_PER_LATENT_FRAME + 1}"
    return line


def validate(config) -> None:
    """The continuation flags of a `GenerateConfig`, before any model loads."""
    if config.extend_seconds is not None and config.extend is None:
        raise ConfigError(f"--extend-seconds {config.extend_seconds}: give --extend FILE, the clip to continue")
    if config.window_seconds is not None and not config.window_seconds > 0:
        raise ConfigError(f"--window-seconds {config.window_seconds}: must be above 0")
    window_latents = latent_frame_count(config.window_frames)
    if not 1 <= config.window_overlap < window_latents:
        raise ConfigError(f"--window-overlap {config.window_overlap}: must be at least 1 and below the window's "
                          f"{window_latents} latent frames (a window of {config.window_frames} frames)")
    earlier = earlier_clip(config.extend, "--extend") if config.extend else None
    if earlier and config.window_overlap > earlier.video_shape[2]:
        raise ConfigError(f"--window-overlap {config.window_overlap}: the clip to extend has only "
                          f"{earlier.video_shape[2]} latent frames")
    if earlier and config.image:
        raise ConfigError(f"--extend {config.extend} with --image {config.image}: the new segment starts from the "
                          "earlier clip's last frames; pin an image later with --keyframe PATH@TIME")
    if config.prompt_at and config.num_frames is None:
        raise ConfigError(f"--prompt-at {config.prompt_at[0].text} with --num-frames auto: a change's time is placed "
                          "in a length known before the prompt is encoded; give --num-frames N (8n+1) or --seconds")
    if config.audio and earlier:
        raise ConfigError(f"--audio {config.audio} with --extend {config.extend}: the new segment continues the "
                          "earlier clip's audio; render a clip that follows given audio from its start")
    if config.resume and not config.windows:
        raise ConfigError(f"--resume {config.resume}: this command renders one window, so there is nothing to "
                          "resume; run it without --resume")
    if config.resume:
        check_resume_matches(config, earlier_clip(config.resume, "--resume"))


def diffuse(denoiser, plan, conditionings: list, encoded: dict, metadata: dict):
    """The diffusion stage of a clip in windows (`plan.windows`): each window denoised with the loaded `denoiser`
    in turn, with the text conditioning of its prompt (`conditionings`: --prompt's, then each --prompt-at's),
    conditioned on the tail of the clip so far and on its part of what the clip's conditioners `encoded`
    (`conditioners.conditions_for`), joined to it and saved (the clip so far, as the run's latents file, with
    `metadata`) before the next starts. Returns the whole clip's `DiffusionResult`."""
    from ltx2gen import diffusion
    from ltx2gen import latents as latents_file
    from ltx2gen.signals import interrupts_deferred

    config = plan.settings
    start = plan.resume or plan.earlier
    video, audio, records = None, None, []
    if start:
        loaded = latents_file.load_latents(start.path)
        video, audio, records = loaded.video, loaded.audio, list(windows_of(start))
    result, calls = None, 0
    remaining = [window for window in plan.windows if video is None or window.end > video.shape[2]]
    if video is not None and remaining and remaining[0].start + remaining[0].overlap != video.shape[2]:
        raise ValueError(f"{start.path} holds {video.shape[2]} latent frames, which is not where a window of this "
                         "clip ends")
    started = time.perf_counter()
    for done, window in enumerate(remaining):
        first, end = window.new_frames()
        prompt = window_prompt(window, plan.prompt_breaks)
        eta = "" if done == 0 else f", ETA {(time.perf_counter() - started) / done * (len(remaining) - done):.0f} s"
        print(f"[window {window.index + 1}/{plan.windows[-1].index + 1}] frames {first}-{end - 1} of "
              f"{config.num_frames} ({window.num_frames}-frame run, seed {window.seed(config.seed)}"
              + (f", prompt {prompt + 1}" if plan.prompt_breaks else "") + f"){eta}", flush=True)
        first_audio = audio_frames(window.start * FRAMES_PER_LATENT_FRAME, denoiser.pipe.audio_vae, config.fps)
        span = Span(window.start, window.overlap, window.end, first_audio,
                    audio_frames(window.num_frames, denoiser.pipe.audio_vae, config.fps))
        conditions = conditions_for(plan.conditioners, encoded, span, so_far(window, video, audio, first_audio))
        window_started = time.perf_counter()
        result = diffusion.run_denoiser(denoiser, conditionings[prompt], {**plan.call, "num_frames": window.num_frames},
                                        window.seed(config.seed), nag_settings=plan.nag, conditions=conditions)
        video, audio = join(video, audio, result, window, first_audio)
        calls += result.transformer_calls
        records.append({"index": window.index, "seed": window.seed(config.seed), "num_frames": window.num_frames,
                        "start_latent_frame": window.start, "overlap_latent_frames": window.overlap,
                        "first_frame": first, "frames_added": end - first, "prompt": config.prompts[prompt],
                        "seconds": round(time.perf_counter() - window_started, 3), "sigmas": result.sigmas})
        frames = (video.shape[2] - 1) * FRAMES_PER_LATENT_FRAME + 1
        try:
            with interrupts_deferred():
                saved, _ = latents_file.save_anywhere(config.latents_path, video, audio,
                                                      {**metadata, "num_frames": frames, "windows": records})
        except OSError:  # said per folder; the windows go on, and the whole clip is saved again once they are done
            continue
        print(f"saved latents: {saved} ({frames} of {config.num_frames} frames, {float(frames / config.fps):.1f} s)",
              flush=True)
    return diffusion.DiffusionResult(video, audio, plan.call, result.sigmas if result else [],
                                     result.timesteps if result else [], calls, windows=records)


def so_far(window: Window, video, audio, first_audio: int) -> RunConditions:
    """What a window continues: the tail of the clip so far (its first `overlap` latent frames) and the clip's
    audio from the window's start (its audio latent frame `first_audio`) on, both at strength 1; the rest of the
    window's audio is generated. An input the clip follows (--audio) replaces that audio
    (`conditioners.conditions_for`)."""
    from ltx2gen.audio_input import AudioCondition
    from ltx2gen.image import EncodedKeyframe

    if window.overlap == 0:
        return RunConditions()
    return RunConditions([EncodedKeyframe(video[:, :, window.start:window.start + window.overlap], 0, 1.0)],
                         AudioCondition(audio[:, :, first_audio:], 1.0, prefix=True))


def audio_frames(num_frames: int, audio_vae, fps: Fraction) -> int:
    """The audio latent frames `audio_vae` gives `num_frames` video frames (a window's frame 0 is the clip's frame
    8 x start, so its audio starts at the clip's audio latent frame `audio_frames(8 x start)`)."""
    from ltx2gen.audio_input import audio_latent_frames

    config = audio_vae.config
    return audio_latent_frames(num_frames, fps, config.sample_rate, config.mel_hop_length,
                               audio_vae.temporal_compression_ratio)


def join(video, audio, result, window: Window, first_audio: int):
    """The clip so far with the window's latents after its overlap: video latent frames, and the window's audio
    after the clip's so far (the window's audio starts at the clip's audio latent frame `first_audio`)."""
    import torch

    if video is None:
        return result.video_latents, result.audio_latents
    kept_audio = audio.shape[2] - first_audio
    return (torch.cat([video[:, :, :window.start + window.overlap], result.video_latents[:, :, window.overlap:]], 2),
            torch.cat([audio, result.audio_latents[:, :, kept_audio:]], 2))


def failure_advice(config) -> str | None:
    """After a window failed: what was kept (the finished windows, beside the output or in a fallback folder) and
    the command that resumes."""
    if not config.windows:
        return None
    for path in [config.latents_path, *fallback_paths(config.latents_path.name)]:
        try:
            kept = read_header(path)
        except LatentsFileError:
            continue
        frames = int(kept.metadata["num_frames"])
        if cut_short(kept) and kept.metadata["planned_num_frames"] == config.num_frames:
            return (f"windows 1-{len(windows_of(kept))} of {config.windows[-1].index + 1} are kept ({frames} of "
                    f"{config.num_frames} frames) in {path}; render the rest with the same command and --resume "
                    f"{path}")
    return None
