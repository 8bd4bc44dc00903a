"""`--reference-video`: a video an IC-LoRA makes the clip follow (`ltx2gen.reference_video` fits and encodes it)."""

from __future__ import annotations

from dataclasses import dataclass

from ltx2gen.conditioners.base import Conditioner, RunConditions, Span
from ltx2gen.errors import ConfigError
from ltx2gen.flags import opt
from ltx2gen.reference_video import REFERENCE_GRAMMAR, FittedReference, ReferenceSpec, check_pairing, inspect_video


@dataclass(frozen=True)
class ReferenceOptions:
    """reference video (IC-LoRA)"""

    reference_video: ReferenceSpec | None = opt(
        None, f"a video for the clip to follow with an IC-LoRA given with --lora (canny, depth or pose control, a "
              f"detailer, LTX-2.3's union control): {REFERENCE_GRAMMAR}; its first frames, frame for frame, scaled to "
              "cover the clip's size divided by the IC-LoRA's reference downscale factor and center-cropped (said in "
              "one line); a clip in windows follows each window's slice of it", type=str, metavar="FILE[:STRENGTH]")


@dataclass(frozen=True)
class ReferenceConditioner(Conditioner):
    """The clip's reference video, inspected once and fitted to the clip (and to each of its windows)."""

    reference: FittedReference
    clip_frames: int

    name = "reference"
    stage = "reference video"
    options = ReferenceOptions
    absent_record = {"reference_video": None}

    @classmethod
    def parse(cls, values: dict) -> dict:
        given = values["reference_video"]
        return {**values, "reference_video": ReferenceSpec.parse(given) if given is not None else None}

    @classmethod
    def given(cls, settings) -> list[tuple[str, object]]:
        return [("--reference-video", settings.reference_video.text)] if settings.reference_video else []

    @classmethod
    def validate(cls, settings) -> None:
        """The file, and its pairing with the local LoRA files (those from a repo are looked at in `plan`)."""
        spec = settings.reference_video
        if spec:
            flag = spec.flag
            if settings.num_frames is None:
                raise ConfigError(f"--num-frames auto with {flag}: the clip follows the reference frame for frame, "
                                  "so its length is given; give --num-frames N (8n+1)")
            if settings.extend:
                raise ConfigError(f"--extend {settings.extend} with {flag}: a continued clip does not follow a "
                                  "reference yet; render the whole clip with the reference (long clips render in "
                                  "windows, each following its slice)")
            inspect_video(spec)
        check_pairing(spec, settings.lora, settings.width, settings.height, local_only=True)

    @classmethod
    def plan(cls, settings, model_dir) -> "ReferenceConditioner | None":
        lora = check_pairing(settings.reference_video, settings.lora, settings.width, settings.height,
                             local_only=False)
        if lora is None:
            return None
        if settings.pipeline == "two-stage":
            raise ConfigError(f"--pipeline two-stage with {settings.reference_video.flag}: the reference is followed "
                              "by the distilled or full pipeline at the clip's size; give --pipeline distilled or full")
        reference = FittedReference.fit(inspect_video(settings.reference_video), settings.reference_video.strength,
                                        lora, width=settings.width, height=settings.height,
                                        num_frames=settings.num_frames, windows=settings.windows)
        print(reference.describe(settings.num_frames))
        return cls(reference, settings.num_frames)

    def describe(self) -> str:
        return f", following {self.reference.source.path.name} with {self.reference.lora.label}"

    def record(self) -> dict:
        return {"reference_video": self.reference.record()}

    @classmethod
    def encode(cls, stage, model_dir, items: list["ReferenceConditioner"], *, device, dtype) -> list:
        from ltx2gen.reference_video import encode

        return encode(stage, model_dir, [item.reference for item in items], device=device, dtype=dtype)

    def condition(self, encoded, conditions: RunConditions, span: Span | None) -> None:
        """The reference frames of the run: the whole clip's, or a window's own slice (none for a window past the
        end of a shorter reference)."""
        conditions.reference = encoded.by_start.get(0 if span is None else span.start)
