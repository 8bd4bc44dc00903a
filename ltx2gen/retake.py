"""`--retake CLIP --retake-span START-END`: a span of a finished clip regenerated (its video, its audio or both), the
rest kept: Lightricks' RetakePipeline (ltx-pipelines `retake.py`, ltx-core's `TemporalRegionMask`), in place.

The clip: a latents file, an MP4 this product wrote with --keep-latents (found through its sidecar, as --extend
finds it), or any MP4 (its frames encoded by the video VAE and its audio by the audio VAE, `audio_input`, in this
module's own stage before the transformer loads; said in one line). The output is a new clip of the same size,
length and frame rate, by default of the same model, and of the same prompt unless a new one is given; its seed
is new unless --seed gives one (the clip's own would start the span from the noise the clip started from, and
with the same prompt bring back almost the same take).

The span, in seconds, as Lightricks maps it: a latent frame is regenerated where the time its frames cover meets
[START, END): video latent frame 0 covers frame 0 alone, latent frame i >= 1 frames 8i-7 to 8i, each frame 1/fps;
audio latent frame i covers the mel frames max(0, 4i-3) to 4i (the causal audio VAE), each a hop (10 ms). So the
video span snaps outwards to whole 8-frame latent frames and the audio span to whole 40 ms audio latent frames
(one line says both). The edges are hard (no soft blend), as Lightricks' mask is.

How (`patches.following_latent_frames` for the video, `patches.following_audio` with a strength per audio latent
frame for the audio; `audio_input` explains the method): every token has a strength s, 1 outside the span and 0
inside. Kept tokens start as the clip's clean latents and stay clean: the transformer sees them at timestep 0 and
their x0 is the clean latents at every step, so nothing is noised outside the span (Lightricks' denoise mask 0:
no noise, timestep 0, the clean latents blended back at every step). Regenerated tokens start from the very noise
the plain run of the seed draws. After the run, the kept latent frames are copied from the clip verbatim, so they
come back bit for bit (the model's own state differs from them only by the normalisation's float rounding).
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

from ltx2gen.audio_input import AudioInput, audio_latent_frames, file_sha256
from ltx2gen.checkpoint import latent_frame_count
from ltx2gen.errors import ConfigError
from ltx2gen.image import FRAMES_PER_LATENT_FRAME
from ltx2gen.latents import LatentsFileError, LatentsHeader, kept_beside, nonfinite_values, read_header

if TYPE_CHECKING:
    import torch

SPAN_GRAMMAR = "START-END in seconds (e.g. 2-4 or 2.5-4.25)"
SPAN = re.compile(r"\s*([0-9]*\.?[0-9]+)\s*-\s*([0-9]*\.?[0-9]+)\s*")
WHAT = ("both", "video", "audio")
# The audio VAE's temporal compression (diffusers' LATENT_DOWNSAMPLE_FACTOR, fixed in its code, not its config).
AUDIO_LATENT_MEL_FRAMES = 4
SPATIAL_COMPRESSION = 32


@dataclass(frozen=True)
class RetakeSpan:
    """--retake-span as given: [start, end) in seconds, exact."""

    text: str
    start: Fraction
    end: Fraction

    @classmethod
    def parse(cls, text: str) -> "RetakeSpan":
        match = SPAN.fullmatch(str(text))
        if not match:
            raise ConfigError(f"--retake-span {text}: give {SPAN_GRAMMAR}")
        start, end = (Fraction(value) for value in match.groups())
        if start >= end:
            raise ConfigError(f"--retake-span {text}: an empty span (its end is not after its start); give "
                              f"{SPAN_GRAMMAR}")
        return cls(str(text), start, end)


@dataclass(frozen=True)
class SourceClip:
    """The clip to retake: what was given, the file its latents come from (the latents file, or the MP4 whose
    frames and audio are encoded), its digest and timing, and its latents file's header."""

    given: Path
    path: Path
    encoded: bool  # True: an MP4 encoded through the VAEs; False: a latents file
    sha256: str
    num_frames: int
    width: int
    height: int
    fps: Fraction
    has_audio: bool
    header: LatentsHeader | None  # a latents file's (None for an MP4 encoded)

    @property
    def metadata(self) -> dict:
        """The latents file's metadata: the settings it was rendered with ({} for an MP4 encoded)."""
        return self.header.metadata if self.header else {}

    @property
    def flag(self) -> str:
        return f"--retake {self.given}"

    @property
    def seconds(self) -> Fraction:
        return self.num_frames / self.fps


def find_clip(given: Path) -> SourceClip:
    """The clip `--retake` names, checked without torch; any problem is a ConfigError naming it."""
    given = Path(given).expanduser()
    if not given.is_file():
        raise ConfigError(f"--retake {given}: no such file; give a clip's .latents.safetensors file or an MP4")
    stat = given.stat()
    return _inspect(given, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def _inspect(given: Path, modified_ns: int, size: int) -> SourceClip:
    """One look per version of the file (the flags, the adoption of its settings and the plan all ask)."""
    flag = f"--retake {given}"
    if given.suffix == ".safetensors":
        return _latents_clip(given, given, flag)
    kept = _kept_latents(given)
    if kept is not None:
        return _latents_clip(given, kept, flag)
    return _any_video(given, flag)


def _kept_latents(video: Path) -> Path | None:
    """The latents file a video's sidecar names (kept with --keep-latents), where it is still there."""
    try:
        kept = json.loads(video.with_suffix(".json").read_text()).get("latents")
    except (OSError, ValueError, AttributeError):
        return None
    return kept_beside(video, kept) if kept else None


def _latents_clip(given: Path, path: Path, flag: str) -> SourceClip:
    try:
        header = read_header(path)
    except LatentsFileError as err:
        raise ConfigError(f"{flag}: not a clip ({err}); give a clip's .latents.safetensors file or an MP4") from None
    if header.audio_shape is None:
        raise ConfigError(f"{flag}: holds no audio latents (an older latents file); retake a clip rendered by this "
                          "version, or its MP4")
    if nonfinite_values(path):
        raise ConfigError(f"{flag}: some of its latent values are NaN or infinite; there is no clip to keep")
    meta = header.metadata
    return SourceClip(given, path, False, file_sha256(path), int(meta["num_frames"]), int(meta["width"]),
                      int(meta["height"]), Fraction(str(meta["fps"])), True, header)


def _any_video(given: Path, flag: str) -> SourceClip:
    from ltx2gen.video import probe

    try:
        info = probe(given)
    except (subprocess.CalledProcessError, AttributeError, IndexError, ZeroDivisionError):
        raise ConfigError(f"{flag}: not a clip: neither a latents file nor a video ffmpeg can read; give a clip's "
                          ".latents.safetensors file or an MP4") from None
    if (info.frames - 1) % FRAMES_PER_LATENT_FRAME:
        fewer = (info.frames - 1) // FRAMES_PER_LATENT_FRAME * FRAMES_PER_LATENT_FRAME + 1
        raise ConfigError(f"{flag}: has {info.frames} frames; the VAE encodes 8n+1 (cut it to {fewer}, e.g. "
                          f"ffmpeg -i IN -frames:v {fewer} OUT.mp4)")
    if info.width % SPATIAL_COMPRESSION or info.height % SPATIAL_COMPRESSION:
        raise ConfigError(f"{flag}: is {info.width}x{info.height}; the VAE encodes sizes that are multiples of "
                          f"{SPATIAL_COMPRESSION} (crop or scale it to one)")
    return SourceClip(given, given.resolve(), True, file_sha256(given), info.frames, info.width, info.height,
                      Fraction(info.fps), bool(info.audio_sample_rate), None)


def adopt_clip(values: dict, given: set[str]) -> dict:
    """--retake: the new clip keeps the clip's size, length and frame rate (a flag given must agree), and takes its
    model and prompt where those are not given (a clip this product wrote records them). Not its seed: the span
    would start from the very noise the clip started from and, with the same prompt, come back almost as it was."""
    clip = find_clip(values["retake"])
    for other in ("extend", "resume", "refine_from"):
        if values[other] is not None:
            raise ConfigError(f"{clip.flag} with --{other.replace('_', '-')}: a retake renders the clip's own length "
                              "in one run; give one of them")
    if values["seconds"] is not None:
        raise ConfigError(f"{clip.flag}: a retake keeps the clip's length; drop --seconds")
    stored = {"width": clip.width, "height": clip.height, "fps": clip.fps, "num_frames": clip.num_frames}
    for name, value in stored.items():
        if name in given and values[name] != value:
            flag = "--" + name.replace("_", "-")
            asked = "auto" if values[name] is None else values[name]  # --num-frames auto
            shown = f"{float(value):g}" if name == "fps" else value
            raise ConfigError(f"{flag} {asked}: the clip to retake has {shown}; a retake keeps it (drop {flag})")
    values = {**values, **stored}
    meta = clip.metadata
    if "model" not in given and meta.get("model"):
        values["model"] = meta["model"]
    if values["prompt"] is None:
        if not meta.get("prompt"):
            raise ConfigError(f"{clip.flag}: a video without this tool's latents, so no prompt is known; give "
                              "--prompt, what the retaken span shows")
        values["prompt"] = meta["prompt"]
        print(f"note: no --prompt; the span is retaken with the clip's own: {values['prompt']}")
    return values


def overlapping(starts_ends: list[tuple[Fraction, Fraction]], span: RetakeSpan) -> list[bool]:
    """For each latent frame's [start, end) in seconds, whether it meets the span: regenerated."""
    return [end > span.start and start < span.end for start, end in starts_ends]


def video_regenerated(span: RetakeSpan, num_frames: int, fps: Fraction) -> list[bool]:
    """Which of the clip's video latent frames the span regenerates."""
    times = [(Fraction(max(0, FRAMES_PER_LATENT_FRAME * i - 7)), Fraction(FRAMES_PER_LATENT_FRAME * i + 1))
             for i in range(latent_frame_count(num_frames))]
    return overlapping([(start / fps, end / fps) for start, end in times], span)


def audio_regenerated(span: RetakeSpan, num_frames: int, fps: Fraction, sample_rate: int,
                      hop_length: int) -> list[bool]:
    """Which of the clip's audio latent frames the span regenerates."""
    count = audio_latent_frames(num_frames, fps, sample_rate, hop_length, AUDIO_LATENT_MEL_FRAMES)
    mel = Fraction(hop_length, sample_rate)
    return overlapping([(max(0, AUDIO_LATENT_MEL_FRAMES * i - 3) * mel, (AUDIO_LATENT_MEL_FRAMES * i + 1) * mel)
                        for i in range(count)], span)


def check_span(clip: SourceClip, span: RetakeSpan) -> None:
    """The span within the clip, and not all of it."""
    if span.end > clip.seconds:
        raise ConfigError(f"--retake-span {span.text}: ends after the clip, which lasts {float(clip.seconds):.3f} s "
                          f"({clip.num_frames} frames at {float(clip.fps):g} fps); give a span within it")


def first_and_last(regenerated: list[bool]) -> tuple[int, int]:
    """The first and last regenerated latent frame (the span is one run of them)."""
    chosen = [index for index, flag in enumerate(regenerated) if flag]
    return chosen[0], chosen[-1]


@dataclass
class RetakeCondition:
    """What the retake stage leaves for diffusion: the clip's latents as the VAEs give them (video [1, C, F, H, W],
    audio [1, C, L, M] or None where the clip has no audio, which is then generated whole) and, per latent frame,
    whether it is kept."""

    video: "torch.Tensor"
    video_kept: tuple[bool, ...]
    audio: "torch.Tensor | None"
    audio_kept: tuple[bool, ...]

    @property
    def frame_strengths(self) -> "torch.Tensor":
        """Per video latent frame: 1 kept, 0 regenerated (`patches.following_latent_frames`)."""
        import torch

        return torch.tensor(self.video_kept, dtype=torch.float32)

    def audio_condition(self):
        """The audio the run follows (`audio_input.AudioCondition`, a strength per audio latent frame), or None."""
        import torch

        from ltx2gen.audio_input import AudioCondition

        if self.audio is None:
            return None
        return AudioCondition(self.audio, torch.tensor(self.audio_kept, dtype=torch.float32))

    def restore_kept(self, video: "torch.Tensor", audio: "torch.Tensor"):
        """The run's latents with every kept latent frame the clip's own, copied."""
        import torch

        video = video.clone()
        kept = torch.tensor(self.video_kept)
        video[:, :, kept] = self.video[:, :, kept].to(video.dtype)
        if self.audio is not None:
            audio = audio.clone()
            kept = torch.tensor(self.audio_kept)
            audio[:, :, kept] = self.audio[:, :, kept].to(audio.dtype)
        return video, audio


@dataclass(frozen=True)
class Retake:
    """A planned retake: the clip, the span, what is regenerated, and per latent frame whether it is kept."""

    clip: SourceClip
    span: RetakeSpan
    what: str
    video_kept: tuple[bool, ...]
    audio_kept: tuple[bool, ...]


def encode(stage, model_dir: Path, retakes: list[Retake], *, device, dtype) -> list[RetakeCondition]:
    """The retake stage: each clip's latents, read from its latents file or encoded from its MP4 (the video VAE
    and the audio VAE loaded once for all of them, freed when the stage ends)."""
    from ltx2gen import audio_input
    from ltx2gen.latents import load_latents

    videos = iter(encode_videos(stage, model_dir, [retake.clip for retake in retakes if retake.clip.encoded],
                                device=device, dtype=dtype))
    heard = [AudioInput(retake.clip.path, retake.clip.sha256, float(retake.clip.seconds), 1.0,
                        retake.clip.num_frames, retake.clip.fps)
             for retake in retakes if retake.clip.encoded and retake.clip.has_audio]
    audios = iter(audio_input.encode(stage, model_dir, heard, device=device, dtype=dtype) if heard else [])
    conditions = []
    for retake in retakes:
        clip = retake.clip
        if clip.encoded:
            video, audio = next(videos), next(audios).latents if clip.has_audio else None
        else:
            loaded = load_latents(clip.path)
            video, audio = loaded.video.float(), loaded.audio.float()
        if audio is not None and audio.shape[2] != len(retake.audio_kept):
            raise RuntimeError(f"{clip.flag}: {audio.shape[2]} audio latent frames, the clip needs "
                               f"{len(retake.audio_kept)}")
        conditions.append(RetakeCondition(video, retake.video_kept, audio, retake.audio_kept))
    return conditions


def encode_videos(stage, model_dir: Path, clips: list[SourceClip], *, device, dtype) -> list["torch.Tensor"]:
    """Each MP4's frames through the video VAE's encoder: its latents' mode, as the pipelines take them."""
    import torch

    from ltx2gen.components import load_component
    from ltx2gen.reference_video import SourceVideo, decode_frames

    if not clips:
        return []
    vae = stage.load("vae", lambda: load_component(model_dir, "vae", device, dtype))
    encoded = []
    for clip in clips:
        frames = decode_frames(SourceVideo(clip.path, clip.sha256, clip.num_frames, clip.width, clip.height,
                                           clip.fps), clip.num_frames)
        pixels = torch.from_numpy(frames.copy()).to(torch.float32).permute(3, 0, 1, 2).unsqueeze(0) / 127.5 - 1.0
        with torch.no_grad():
            encoded.append(vae.encode(pixels.to(device, vae.dtype)).latent_dist.mode().float().cpu())
    return encoded
