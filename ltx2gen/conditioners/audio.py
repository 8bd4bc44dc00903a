"""`--audio`: a soundtrack or speech the video follows, which the MP4 carries (`ltx2gen.audio_input` encodes it)."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from ltx2gen.audio_input import AudioInput, stored_soundtrack, validate_audio_options
from ltx2gen.conditioners.base import Conditioner, RunConditions, Span
from ltx2gen.errors import ConfigError
from ltx2gen.flags import opt


@dataclass(frozen=True)
class AudioOptions:
    """audio to follow"""

    audio: Path | None = opt(None, "a soundtrack or speech for the video to follow (wav, flac, mp3 or any file with an "
                                   "audio stream ffmpeg reads); the MP4 carries it, trimmed or padded to the clip",
                             type=Path, metavar="FILE")
    audio_strength: float = opt(1.0, "how closely the video follows --audio: 1 keeps the audio exactly as given, "
                                     "0 is the plain text-to-video run")


@dataclass(frozen=True)
class AudioConditioner(Conditioner):
    """The clip's input audio, inspected once (its digest and the seconds it holds)."""

    input: AudioInput

    name = "audio"
    stage = "audio input"
    options = AudioOptions
    input_files = ("audio",)
    absent_record = {"audio_input": None}

    @classmethod
    def given(cls, settings) -> list[tuple[str, object]]:
        return [("--audio", settings.audio)] if settings.audio else []

    @classmethod
    def validate(cls, settings) -> None:
        if settings.audio and settings.num_frames is None:
            raise ConfigError(f"--num-frames auto with --audio {settings.audio}: the soundtrack, not the prompt, sets "
                              "the length of a clip that follows it (it is trimmed or padded to the clip); give "
                              "--num-frames N (8n+1)")
        validate_audio_options(settings.audio, settings.audio_strength)

    @classmethod
    def plan(cls, settings, model_dir) -> "AudioConditioner | None":
        if not settings.audio:
            return None
        return cls(AudioInput.inspect(settings.audio, settings.audio_strength, settings.num_frames, settings.fps))

    def describe(self) -> str:
        return f", following {self.input.path.name} at strength {self.input.strength:g}"

    def record(self) -> dict:
        return {"audio_input": self.input.record()}

    @classmethod
    def encode(cls, stage, model_dir, items: list["AudioConditioner"], *, device, dtype) -> list:
        from ltx2gen.audio_input import encode

        return encode(stage, model_dir, [item.input for item in items], device=device, dtype=dtype)

    def condition(self, encoded, conditions: RunConditions, span: Span | None) -> None:
        """The whole input audio; in a window, its slice over the window's time at the same strength, which the
        video follows as a one-window clip follows --audio."""
        from ltx2gen.audio_input import AudioCondition

        if span is None:
            conditions.audio = encoded
            return
        part = encoded.latents[:, :, span.audio_start:span.audio_start + span.audio_length]
        if part.shape[2] < span.audio_length:  # the clip's length and the window's round apart by a frame at the end
            part = repeat_last_frame(part, span.audio_length - part.shape[2])
        conditions.audio = AudioCondition(part, encoded.strength)

    def soundtrack(self, sample_rate: int):
        """The input audio, resampled to the vocoder's rate and fitted to the clip, instead of the decoded audio."""
        from ltx2gen.audio_input import soundtrack

        return soundtrack(self.input, sample_rate)

    @classmethod
    def recovered_soundtrack(cls, metadata: dict, video_format, sample_rate: int):
        return stored_soundtrack(metadata.get("audio_input"), video_format.num_frames, Fraction(video_format.fps),
                                 sample_rate)


def repeat_last_frame(latents, count: int):
    """`latents` with its last latent frame repeated `count` times."""
    import torch

    return torch.cat([latents, latents[:, :, -1:].expand(-1, -1, count, -1)], 2)
