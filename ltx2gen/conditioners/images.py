"""`--image` and `--keyframe`: frames of the clip conditioned on still images (`ltx2gen.image` encodes them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ltx2gen.conditioners.base import Conditioner, RunConditions, Span
from ltx2gen.flags import opt
from ltx2gen.image import KEYFRAME_GRAMMAR, Keyframe, KeyframeSpec, image_crf, place_keyframes, validate_image_options


@dataclass(frozen=True)
class ImageOptions:
    """image and keyframes"""

    image: Path | None = opt(None, "condition the first frame on this local PNG, JPEG or WebP image (scaled to cover "
                                   "--width x --height and center-cropped)", type=Path)
    image_strength: float = opt(1.0, "how closely the first frame follows --image, from 0 (not at all) to 1 (kept "
                                     "as the image)")
    keyframe: tuple = opt(None, f"pin an image (PNG, JPEG or WebP) to a time of the clip: {KEYFRAME_GRAMMAR}; "
                                "repeatable (first, middle and last in one run). @0 is the first frame (as --image); "
                                "any other time goes to the nearest frame a keyframe can take (1, 9, 17, ..., "
                                "num-frames - 8: one per 8-frame latent frame), said in one line",
                          action="append", metavar="PATH@TIME[:STRENGTH]")


@dataclass(frozen=True)
class ImageConditioner(Conditioner):
    """The clip's images in latent-frame order (--image first), with the H.264 CRF of the model's version."""

    keyframes: tuple[Keyframe, ...]
    width: int
    height: int
    fps: object
    strength: float  # --image-strength
    crf: int

    name = "image"
    stage = "image"
    options = ImageOptions
    input_files = ("image",)
    absent_record = {"image": None, "keyframes": []}

    @classmethod
    def parse(cls, values: dict) -> dict:
        return {**values, "keyframe": tuple(KeyframeSpec.parse(text) for text in values["keyframe"] or ())}

    @classmethod
    def given(cls, settings) -> list[tuple[str, object]]:
        return [(flag, value) for flag, value in [("--image", settings.image),
                                                  *(("--keyframe", spec.text) for spec in settings.keyframe)] if value]

    @classmethod
    def validate(cls, settings) -> None:
        validate_image_options(settings.image, settings.image_strength, settings.keyframe, settings.num_frames,
                               settings.fps, settings.first_new_frame)

    @classmethod
    def plan(cls, settings, model_dir) -> "ImageConditioner | None":
        keyframes = tuple(place_keyframes(settings.image, settings.image_strength, settings.keyframe,
                                          settings.num_frames, settings.fps, settings.first_new_frame))
        if not keyframes:
            return None
        for keyframe in keyframes:
            crop_note = keyframe.source.crop_note(keyframe.flag, settings.width, settings.height)
            if crop_note:
                print(crop_note)
        planned = cls(keyframes, settings.width, settings.height, settings.fps, settings.image_strength,
                      image_crf(model_dir))
        if settings.keyframe:
            print(planned.describe_keyframes())
        return planned

    @property
    def pinned(self) -> list[Keyframe]:
        """The --keyframe images (without --image's)."""
        return [keyframe for keyframe in self.keyframes if keyframe.pinned]

    def describe(self) -> str:
        if self.pinned:
            return f", {len(self.keyframes)} keyframes"
        return f", first frame from {self.keyframes[0].source.path.name}"  # --image alone

    def describe_keyframes(self) -> str:
        """One line: where each image of the clip sits, and why where one moved from the time asked."""
        line = "keyframes: " + ", ".join(keyframe.describe(self.fps) for keyframe in self.keyframes)
        if any(keyframe.moved for keyframe in self.keyframes):
            line += ("; a keyframe sits on frame 0 or on the first frame of one of the clip's 8-frame latent frames "
                     "(1, 9, 17, ...), the nearest is taken")
        return line

    def record(self) -> dict:
        """Each image's entry, with the H.264 CRF the checkpoint's version was trained with."""
        first = self.keyframes[0]
        image = {**first.source.record(self.strength), "image_crf": self.crf} if not first.pinned else \
            {"image": None}  # --image is the first keyframe: no other can share its latent frame
        return {**image, "keyframes": [keyframe.record(self.fps, self.crf) for keyframe in self.pinned]}

    @classmethod
    def encode(cls, stage, model_dir, items: list["ImageConditioner"], *, device, dtype) -> list:
        from ltx2gen.image import encode_images

        return encode_images(stage, model_dir, [(item.keyframes, item.width, item.height) for item in items],
                             device=device, dtype=dtype)

    def condition(self, encoded, conditions: RunConditions, span: Span | None) -> None:
        """Every image for the whole clip; in a window, those in the frames it adds, at their latent frames in it."""
        from ltx2gen.image import EncodedKeyframe

        for keyframe in encoded.keyframes:
            if span is None:
                conditions.keyframes.append(keyframe)
            elif span.start + span.overlap <= keyframe.latent_frame < span.end:
                conditions.keyframes.append(EncodedKeyframe(keyframe.latents, keyframe.latent_frame - span.start,
                                                            keyframe.strength))
