"""`--retake`: a span of a finished clip regenerated, the rest kept (`ltx2gen.retake` reads or encodes the clip)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ltx2gen.conditioners.base import Conditioner, RunConditions, Span
from ltx2gen.errors import ConfigError
from ltx2gen.flags import opt
from ltx2gen.image import FRAMES_PER_LATENT_FRAME
from ltx2gen.retake import (
    AUDIO_LATENT_MEL_FRAMES,
    SPAN_GRAMMAR,
    WHAT,
    Retake,
    RetakeSpan,
    audio_regenerated,
    check_span,
    find_clip,
    first_and_last,
    video_regenerated,
)


@dataclass(frozen=True)
class RetakeOptions:
    """retake"""

    retake: Path | None = opt(None, "regenerate a span of a finished clip and keep the rest: its latents file "
                                    "(.latents.safetensors), an MP4 this tool wrote with --keep-latents (found "
                                    "through its sidecar), or any MP4 of 8n+1 frames whose size is a multiple of 32 "
                                    "(encoded through the VAEs); the output is a new clip of the same size, length "
                                    "and frame rate, with the clip's model and prompt unless given (and a new seed)",
                              type=Path, metavar="CLIP")
    retake_span: str | None = opt(None, f"with --retake: the span to regenerate, {SPAN_GRAMMAR}; widened to the "
                                        "whole 8-frame latent frames (video) and 40 ms audio latent frames it "
                                        "touches, said in one line", metavar="START-END")
    retake_what: str = opt("both", "with --retake: what the span regenerates: video (the audio is kept whole), "
                                   "audio (the video is kept whole) or both", choices=WHAT)


# What a retake cannot be combined with yet: (setting, flag), where the setting is given.
EXCLUSIVE = (("image", "--image"), ("keyframe", "--keyframe"), ("audio", "--audio"),
             ("reference_video", "--reference-video"), ("prompt_at", "--prompt-at"))


@dataclass(frozen=True)
class RetakeConditioner(Conditioner):
    """The clip to retake, inspected once, and which of its latent frames are kept."""

    retake: Retake

    name = "retake"
    stage = "retake"
    options = RetakeOptions
    input_files = ("retake",)
    absent_record = {"retake": None}

    @classmethod
    def parse(cls, values: dict) -> dict:
        span = values["retake_span"]
        return {**values, "retake_span": RetakeSpan.parse(span) if span is not None else None}

    @classmethod
    def given(cls, settings) -> list[tuple[str, object]]:
        return [("--retake", settings.retake)] if settings.retake else []

    @classmethod
    def validate(cls, settings) -> None:
        span = settings.retake_span
        if settings.retake is None:
            if span is not None:
                raise ConfigError(f"--retake-span {span.text}: give --retake CLIP, the clip to retake")
            return
        clip = find_clip(settings.retake)
        if span is None:
            raise ConfigError(f"{clip.flag}: give --retake-span {SPAN_GRAMMAR}, the span to regenerate")
        if settings.retake_what not in WHAT:
            raise ConfigError(f"--retake-what {settings.retake_what}: give one of {', '.join(WHAT)}")
        for name, flag in EXCLUSIVE:
            if getattr(settings, name):
                raise ConfigError(f"{clip.flag} with {flag}: a retake follows the clip outside the span and the "
                                  f"prompt inside it, nothing else yet; drop {flag}")
        if settings.pipeline == "two-stage":
            raise ConfigError(f"--pipeline two-stage with {clip.flag}: a retake renders in one stage at the clip's "
                              "size; give --pipeline distilled or full")
        if settings.windows:
            raise ConfigError(f"{clip.flag}: its {clip.num_frames} frames are longer than one window of "
                              f"{settings.window_frames}; a retake renders in one run (give a longer "
                              "--window-seconds)")
        check_span(clip, span)
        if settings.retake_what == "audio" and not clip.has_audio:
            raise ConfigError(f"--retake-what audio: {clip.given} has no audio stream to retake")
        if settings.retake_what != "audio" and all(video_regenerated(span, clip.num_frames, clip.fps)):
            raise ConfigError(f"--retake-span {span.text}: covers the whole clip once widened to whole latent "
                              "frames; render a new clip instead, or give a shorter span")

    @classmethod
    def plan(cls, settings, model_dir) -> "RetakeConditioner | None":
        if settings.retake is None:
            return None
        clip, span, what = find_clip(settings.retake), settings.retake_span, settings.retake_what
        video = video_regenerated(span, clip.num_frames, clip.fps)
        config = json.loads((Path(model_dir) / "audio_vae" / "config.json").read_text())
        audio = audio_regenerated(span, clip.num_frames, clip.fps, config["sample_rate"], config["mel_hop_length"])
        if what != "video" and clip.has_audio and all(audio):
            raise ConfigError(f"--retake-span {span.text}: covers the whole clip's audio; render a new clip instead, "
                              "or give a shorter span")
        if what == "audio" and not any(audio):
            raise ConfigError(f"--retake-span {span.text}: holds none of the clip's audio latent frames (the last "
                              "ends before it); give a span that starts earlier")
        video_kept = tuple(not (regenerated and what != "audio") for regenerated in video)
        # a clip without audio has its audio generated whole
        audio_kept = tuple(clip.has_audio and not (regenerated and what != "video") for regenerated in audio)
        planned = cls(Retake(clip, span, what, video_kept, audio_kept))
        print(planned.describe_span(video, audio, config["mel_hop_length"] / config["sample_rate"]))
        if clip.encoded:
            print(f"retake: {clip.given.name} has no kept latents; its frames"
                  + (" and audio are" if clip.has_audio else " are") + " encoded through the VAE"
                  + ("" if clip.has_audio else " (it has no audio: the clip's audio is generated whole)"))
        return planned

    def describe_span(self, video: list[bool], audio: list[bool], hop_seconds: float) -> str:
        """One line: the span asked, and the frames and audio it regenerates once snapped to latent frames."""
        retake = self.retake
        parts = []
        if retake.what != "audio":
            first, last = first_and_last(video)
            parts.append(f"frames {max(0, FRAMES_PER_LATENT_FRAME * first - 7)}-{FRAMES_PER_LATENT_FRAME * last} "
                         f"(latent frames {first}-{last})")
        if retake.what != "video" and retake.clip.has_audio and not any(audio):
            parts.append("no audio (its last audio latent frame ends before the span)")
        elif retake.what != "video" and retake.clip.has_audio:
            first, last = first_and_last(audio)
            start, end = max(0, AUDIO_LATENT_MEL_FRAMES * first - 3), AUDIO_LATENT_MEL_FRAMES * last + 1
            parts.append(f"audio {start * hop_seconds:.2f}-{end * hop_seconds:.2f} s (audio latent frames "
                         f"{first}-{last})")
        return (f"retake: {retake.span.text} s of {retake.clip.given.name} regenerates " + " and ".join(parts)
                + "; the rest is kept")

    def describe(self) -> str:
        return f", retaking {self.retake.span.text} s ({self.retake.what}) of {self.retake.clip.given.name}"

    def record(self) -> dict:
        retake, clip = self.retake, self.retake.clip
        regenerated = [index for index, kept in enumerate(retake.video_kept) if not kept]
        regenerated_audio = [index for index, kept in enumerate(retake.audio_kept) if not kept]
        return {"retake": {
            "source": str(clip.given), "path": str(clip.path), "sha256": clip.sha256,
            "encoded_through_vae": clip.encoded, "span_asked": [float(retake.span.start), float(retake.span.end)],
            "what": retake.what,
            "latent_frames": [regenerated[0], regenerated[-1]] if regenerated else None,
            "frames": [max(0, FRAMES_PER_LATENT_FRAME * regenerated[0] - 7),
                       FRAMES_PER_LATENT_FRAME * regenerated[-1]] if regenerated else None,
            "audio_latent_frames": [regenerated_audio[0], regenerated_audio[-1]] if regenerated_audio else None}}

    @classmethod
    def encode(cls, stage, model_dir, items: list["RetakeConditioner"], *, device, dtype) -> list:
        from ltx2gen.retake import encode

        return encode(stage, model_dir, [item.retake for item in items], device=device, dtype=dtype)

    def condition(self, encoded, conditions: RunConditions, span: Span | None) -> None:
        """The clip's latents in place, kept outside the span (a retake renders the whole clip in one run)."""
        if span is not None:
            raise ValueError("a retake renders in one run, not in windows")
        conditions.retake = encoded
        conditions.audio = encoded.audio_condition()
