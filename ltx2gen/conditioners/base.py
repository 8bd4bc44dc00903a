"""What every conditioner is: the interface a clip's inputs other than its prompt plug in through.

A conditioner is planned from a clip's settings once the model is known, encodes its input in a stage of its own
before the transformer loads (the model it needs loaded once for every clip of a batch that uses it, and freed
before the next stage), conditions each denoising run of the clip (the whole clip, or one window of a long one),
and records itself in the latents file and the sidecar, which is what recovery reads back. Its flags are a dataclass
of its own (`options`) among `GenerateConfig`'s bases, so its bad input is refused with the others, before any
weight is read, and a batch line takes them by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar


@dataclass(frozen=True)
class Span:
    """The part of a clip one denoising run renders: latent frames `start` to `end` (the first `overlap` of them
    taken from the clip so far), and its audio from the clip's audio latent frame `audio_start`, `audio_length` of
    them."""

    start: int
    overlap: int
    end: int
    audio_start: int
    audio_length: int


@dataclass
class RunConditions:
    """What one denoising run follows besides its text: conditions on latent frames (`image.EncodedKeyframe`, at
    the run's own latent frames, in the order given), the audio it follows (`audio_input.AudioCondition`), the
    reference video an IC-LoRA follows (`reference_video.ReferenceCondition`) and the clip whose latent frames
    outside a span it keeps in place (`retake.RetakeCondition`, with `patches.following_latent_frames`)."""

    keyframes: list = field(default_factory=list)
    audio: object = None
    reference: object = None
    retake: object = None

    def pipeline(self, pipe):
        """The stock pipeline these conditions run with, over `pipe`'s components, and the call arguments that pass
        them: with a reference, `LTX2InContextPipeline` (`ltx2gen.reference_video`); with latent-frame conditions
        alone, the image pipelines (`image.ImageConditioning`); else `pipe` itself."""
        if self.reference is not None:
            from ltx2gen.reference_video import in_context_pipeline

            return in_context_pipeline(pipe, self.keyframes, self.reference)
        if self.keyframes:
            from ltx2gen.image import ImageConditioning

            return ImageConditioning(self.keyframes).pipeline(pipe)
        return pipe, {}


class Conditioner:
    """One input of a clip besides its prompt. Subclasses set the class attributes and override what they use."""

    name: ClassVar[str]  # its key among a clip's encoded inputs
    stage: ClassVar[str]  # the name of the stage that encodes it (the summary line and the sidecar show it)
    options: ClassVar[type]  # the dataclass of its flags, one of `GenerateConfig`'s bases
    input_files: ClassVar[tuple[str, ...]] = ()  # its settings that name a file (relative to a batch file there)
    absent_record: ClassVar[dict] = {}  # what the latents file and the sidecar say of a clip without it

    @classmethod
    def given(cls, settings) -> list[tuple[str, object]]:
        """(flag, value) of each of its inputs `settings` gives, for the refusals of paths that do not take it."""
        return []

    @classmethod
    def parse(cls, values: dict) -> dict:
        """The settings of a clip with its flags' values typed (as given on the command line or a batch line)."""
        return values

    @classmethod
    def validate(cls, settings) -> None:
        """Its flags and files, before torch is imported; a `ConfigError` says what is wrong in one line."""

    @classmethod
    def plan(cls, settings, model_dir) -> "Conditioner | None":
        """The resolved input of a clip that gives it (files inspected once, here), or None."""
        return None

    def describe(self) -> str:
        """Its part of the plan line (", ..."); said lines of its own are printed by `plan`."""
        return ""

    def record(self) -> dict:
        """Its entries of the latents file and the sidecar."""
        return {}

    @classmethod
    def encode(cls, stage, model_dir, items: list, *, device, dtype) -> list:
        """Its stage for `items` (one per clip): what each clip's denoising runs are conditioned on."""
        raise NotImplementedError

    def condition(self, encoded, conditions: RunConditions, span: Span | None) -> None:
        """Add what `encoded` (this clip's, from `encode`) gives the run of `span` (None: the whole clip)."""
        raise NotImplementedError

    def soundtrack(self, sample_rate: int):
        """The MP4's audio (waveform, rate) where this input replaces the decoded audio; None otherwise."""
        return None

    @classmethod
    def recovered_soundtrack(cls, metadata: dict, video_format, sample_rate: int):
        """Recovery from a latents file alone: the soundtrack its record gives back, or None."""
        return None
