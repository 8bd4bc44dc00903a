"""Image-to-video and keyframes: frames of the clip conditioned on still images (`--image`, `--image-strength`,
`--keyframe PATH@TIME[:STRENGTH]`).

Every image is checked while the flags are validated (torch is not imported here until a stage runs): the file, the
frame its time falls on, and that no two share a latent frame. Their own stage loads the video VAE, encodes each
prepared frame and frees the VAE before the transformer loads; diffusion then runs diffusers' stock sampling with a
stand-in VAE that hands the pipeline those latents:

- the first frame alone at strength 1 (`--image`, or `--keyframe PATH@0`): `LTX2ImageToVideoPipeline`, numerically
  the stock pipeline;
- anything else: `LTX2ConditionPipeline` with one `LTX2VideoCondition` per image, the stock pipeline that has a
  strength and keyframes. Its noise is drawn in another layout, so a first-frame strength just below 1 is a different
  sample of the same seed, not a small change of the strength-1 clip.

Where a keyframe can sit: `LTX2ConditionPipeline` takes a latent frame, not a frame. Latent frame 0 is the first
frame alone, and a condition there replaces its latents. Latent frame k >= 1 holds frames 8k-7 to 8k; a condition
there is appended as extra tokens placed in time at frame 8k-7 (the original LTX-2 code's
`VideoConditionByKeyframeIndex`), which the model attends to while denoising the clip; the clip's own latents there
are generated. So a keyframe's time is moved to the nearest of frames 0, 1, 9, 17, ..., num_frames - 8, and said so.

FP8 works with it (tested with --fp8 weight on the CPU): image-to-video differs from text-to-video in per-token
timesteps (the conditioned tokens get `t * (1 - mask)`) and in the VAE encoder running. Both stay out of float8
here: `ltx2gen.quant` converts only the block linears with torchao, so the timestep embedding and AdaLN layers
that see the per-token timesteps stay bf16, the float32 latents are cast to the transformer's dtype by the
pipeline before any float8 linear dequantizes, and the encoder runs unquantized in its own stage. Casting every
parameter to float8 by hand, as the earlier tool did, also put those layers in float8 (the likely cause of its
failure; not reproduced here).
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from ltx2gen.checkpoint import latent_frame_count
from ltx2gen.errors import ConfigError, check_strength
from ltx2gen.files import file_sha256

FORMATS = {"PNG": "PNG", "JPEG": "JPEG", "WEBP": "WebP"}
KEYFRAME_GRAMMAR = ("PATH@TIME[:STRENGTH], TIME in seconds (2.5 or 2.5s), a frame number (f60) or end (the last "
                    "frame), STRENGTH in [0, 1] (default 1)")
TIME = re.compile(r"end|f[0-9]+|[0-9]*\.?[0-9]+s?")
FRAMES_PER_LATENT_FRAME = 8  # the video VAE's temporal compression, after the first frame (`latent_frame_count`)


@dataclass(frozen=True)
class SourceImage:
    """A checked conditioning image: where it is, what it holds and its size."""

    path: Path
    sha256: str
    width: int
    height: int

    def record(self, strength: float) -> dict:
        """Sidecar and latents-file entries."""
        return {"image": str(self.path), "image_sha256": self.sha256, "image_strength": strength}

    def crop_note(self, flag: str, width: int, height: int) -> str | None:
        """One line saying what the center crop removes, or None when the aspect ratio is the clip's; `flag` names
        the image as the user gave it."""
        if self.width * height == self.height * width:
            return None
        if self.width * height > self.height * width:  # wider than the clip: the sides go
            kept = round(self.height * width / height)
            lost, where = self.width - kept, "left and right"
        else:
            kept = round(self.width * height / width)
            lost, where = self.height - kept, "top and bottom"
        return (f"note: {flag} is {self.width}x{self.height}, the clip {width}x{height}: "
                f"{lost} px of the image ({lost // 2} px each side, {where}) are cropped away, the rest scaled to fit")


def inspect_image(path: Path, flag: str | None = None) -> SourceImage:
    """Open and fully decode the image; any problem is a ConfigError naming it as `flag` gave it (--image PATH
    unless told)."""
    from PIL import Image

    path = Path(path).expanduser()
    flag = flag or f"--image {path}"
    if not path.is_file():
        raise ConfigError(f"{flag}: no such file (give a local PNG, JPEG or WebP image)")
    try:
        with Image.open(path) as image:
            kind = image.format
            image.load()  # decodes every pixel: a truncated file fails here, not in the image stage
            if kind in FORMATS:
                height, width = rgb_pixels(image, flag).shape[:2]  # as shown: upright, after its EXIF orientation
    except ConfigError:
        raise
    except Exception as err:  # PIL reports unreadable data with many exception types
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConfigError(f"{flag}: not a readable image ({reason}); give a PNG, JPEG or WebP file") from None
    if kind not in FORMATS:
        raise ConfigError(f"{flag}: a {kind} image; give a PNG, JPEG or WebP file")
    return SourceImage(path.resolve(), file_sha256(path), width, height)


WIDE_GREYSCALE = ("I;16", "I;16L", "I;16B", "I;16N", "I")  # 16-bit greyscale PNGs open as I;16


def rgb_pixels(image, flag: str):
    """The image as the model sees it: 8-bit RGB [height, width, 3], upright (its EXIF orientation applied). Each
    mode is converted faithfully: 16-bit greyscale scaled to 8 bits (Pillow's own conversion clips it, leaving an
    image near white), palette, greyscale, CMYK and 16-bit RGB by Pillow's conversion, an alpha channel dropped
    where every pixel is opaque. A ConfigError naming `flag` for what cannot be: transparent pixels (the model has
    no background to show through them), floating-point pixels."""
    import numpy as np
    from PIL import ImageOps

    image = ImageOps.exif_transpose(image)
    if image.mode in WIDE_GREYSCALE:
        values = np.asarray(image).astype(np.int64)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise ConfigError(f"{flag}: a 32-bit greyscale image with values outside 16 bits; save it as an 8- or "
                              "16-bit PNG")
        grey = ((values * 255 + 32767) // 65535).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if image.mode == "F":
        raise ConfigError(f"{flag}: a floating-point greyscale image, whose range is not known; save it as an 8- or "
                          "16-bit PNG")
    if image.mode in ("RGBA", "RGBa", "LA", "La", "PA") or "transparency" in image.info:
        rgba = np.asarray(image.convert("RGBA"))
        if (rgba[..., 3] < 255).any():
            raise ConfigError(f"{flag}: has transparent pixels, which a video frame cannot show; flatten it onto "
                              "a background (an opaque RGB image)")
        return np.ascontiguousarray(rgba[..., :3])
    try:
        return np.array(image.convert("RGB"))
    except ValueError:
        raise ConfigError(f"{flag}: a {image.mode} image, which does not convert to RGB; save it as an RGB PNG, "
                          "JPEG or WebP") from None


@dataclass(frozen=True)
class KeyframeSpec:
    """A --keyframe as given, its grammar checked (`KEYFRAME_GRAMMAR`); where it falls is known once the clip's
    length is (`Keyframe`)."""

    text: str
    path: Path
    at: str  # the TIME as given
    strength: float

    @classmethod
    def parse(cls, text: str) -> "KeyframeSpec":
        path, at_sign, where = str(text).rpartition("@")  # the last @: a file name may hold one
        at, colon, strength_text = where.partition(":")
        if not at_sign or not path or not TIME.fullmatch(at):
            raise ConfigError(f"--keyframe {text}: give {KEYFRAME_GRAMMAR}, e.g. start.png@0 middle.png@2.5s "
                              "last.png@end")
        try:
            strength = float(strength_text) if colon else 1.0
        except ValueError:
            raise ConfigError(f"--keyframe {text}: the strength {strength_text!r} after ':' is not a number; give "
                              f"{KEYFRAME_GRAMMAR}") from None
        check_strength(f"--keyframe {text}: strength", strength, "1 keeps the frame as the image, 0 ignores it",
                       "--keyframe", path)
        return cls(str(text), Path(path), at, strength)

    @property
    def flag(self) -> str:
        return f"--keyframe {self.text}"

    def frame(self, num_frames: int, fps: Fraction) -> int:
        """The frame TIME names in a clip of `num_frames` at `fps` (seconds round to the nearest frame)."""
        last = num_frames - 1
        if self.at == "end":
            return last
        if self.at.startswith("f"):
            frame, named = int(self.at[1:]), f"frame {int(self.at[1:])}"
        else:
            seconds = Fraction(self.at.rstrip("s"))
            frame, named = round(seconds * fps), f"{float(seconds):g} s (frame {round(seconds * fps)})"
        if frame > last:
            raise ConfigError(f"{self.flag}: {named} is past the clip's last frame, {last} ({float(last / fps):g} s "
                              f"at {float(fps):g} fps); give a time inside the clip, or @end")
        return frame


def nearest_latent_frame(frame: int) -> int:
    """The latent frame k >= 1 whose first frame, 8k-7, is nearest `frame` (the earlier one on a tie)."""
    return max(1, (frame + FRAMES_PER_LATENT_FRAME + 2) // FRAMES_PER_LATENT_FRAME)


def keyframe_latent_frame(frame: int, num_frames: int) -> int:
    """The latent frame a keyframe at `frame` is given to `LTX2ConditionPipeline` as: 0 for frame 0, else the
    `nearest_latent_frame` (the clip's last at most)."""
    if frame == 0:
        return 0
    return min(nearest_latent_frame(frame), latent_frame_count(num_frames) - 1)


def placed_frame(latent_frame: int) -> int:
    """The frame a keyframe at `latent_frame` stands for: the first frame of that latent frame."""
    return 0 if latent_frame == 0 else (latent_frame - 1) * FRAMES_PER_LATENT_FRAME + 1


@dataclass(frozen=True)
class Keyframe:
    """A checked conditioning image of the clip: the image, the flag that gave it (for messages), the frame it was
    asked for and the latent frame it is given to the pipeline as, and its strength."""

    source: SourceImage
    flag: str
    at: str  # the TIME as given; "0" for --image
    requested_frame: int
    latent_frame: int
    strength: float

    @property
    def frame(self) -> int:
        return placed_frame(self.latent_frame)

    @property
    def pinned(self) -> bool:
        """Given with --keyframe (not the --image shortcut)."""
        return self.flag.startswith("--keyframe")

    @property
    def moved(self) -> bool:
        return self.frame != self.requested_frame

    def describe(self, fps: Fraction) -> str:
        moved = f", asked {self.requested_frame}" if self.moved else ""
        return f"{self.source.path.name} at frame {self.frame} ({float(self.frame / fps):.3g} s{moved})"

    def record(self, fps: Fraction, crf: int) -> dict:
        """The sidecar's and the latents file's entry: enough to tell which image went where, as what."""
        return {"path": str(self.source.path), "sha256": self.source.sha256, "at": self.at,
                "requested_frame": self.requested_frame, "frame": self.frame,
                "seconds": round(float(self.frame / fps), 6), "latent_frame": self.latent_frame,
                "strength": self.strength, "crf": crf}


def place_keyframes(image: Path | None, image_strength: float, keyframes: tuple[KeyframeSpec, ...],
                    num_frames: int | None, fps: Fraction, start_frame: int = 0) -> list[Keyframe]:
    """Every conditioning image of a clip, --image first (the first-frame shortcut), each file read and each time
    placed (`keyframe_latent_frame`); two on one latent frame, a time outside the clip or keyframes with a length
    the model has yet to choose are a ConfigError naming the keyframe. Times count from `start_frame` (a
    continuation's first new frame, `ltx2gen.continuation`)."""
    placed = [Keyframe(inspect_image(image), f"--image {image}", "0", 0, 0, image_strength)] if image else []
    if keyframes and num_frames is None:
        raise ConfigError(f"{keyframes[0].flag} with --num-frames auto: a keyframe's time is placed in a length known "
                          "before the prompt is encoded; give --num-frames N (8n+1)")
    for spec in keyframes:
        frame = start_frame + spec.frame(num_frames - start_frame, fps)
        keyframe = Keyframe(inspect_image(spec.path, spec.flag), spec.flag, spec.at, frame,
                            keyframe_latent_frame(frame, num_frames), spec.strength)
        taken = next((other for other in placed if other.latent_frame == keyframe.latent_frame), None)
        if taken and not taken.pinned:
            raise ConfigError(f"{spec.flag}: the first frame is {taken.flag}'s already (--image is the shortcut for "
                              "--keyframe PATH@0); give one of them")
        if taken:
            raise ConfigError(f"{spec.flag}: falls on frame {keyframe.frame} (latent frame {keyframe.latent_frame}), "
                              f"as {taken.flag} does; one latent frame ({FRAMES_PER_LATENT_FRAME} frames) holds one "
                              "keyframe, so move one of them")
        placed.append(keyframe)
    return sorted(placed, key=lambda keyframe: keyframe.latent_frame)


def validate_image_options(image: Path | None, strength: float, keyframes: tuple[KeyframeSpec, ...],
                           num_frames: int | None, fps: Fraction, start_frame: int = 0) -> None:
    check_strength("--image-strength", strength, "1 keeps the first frame as the image", "--image", image)
    placed = place_keyframes(image, strength, keyframes, num_frames, fps, start_frame)
    if placed and importlib.util.find_spec("av") is None:  # found here, not after the text stage
        raise ConfigError(f"{placed[0].flag}: needs PyAV to re-compress the image with H.264 as the model was "
                          "trained (pip install av, as requirements.txt pins it)")


def image_crf(model_dir: Path) -> int:
    """The H.264 CRF the model's conditioning images were compressed with in training, as diffusers chooses it
    (from the text encoder's generation), read from the configuration alone: the text encoder is not loaded here."""
    from types import SimpleNamespace

    from diffusers.pipelines.ltx2.utils import resolve_default_image_crf

    config = json.loads((Path(model_dir) / "text_encoder" / "config.json").read_text())
    return resolve_default_image_crf(SimpleNamespace(config=SimpleNamespace(model_type=config.get("model_type"))))


def prepare_frame(source: SourceImage, width: int, height: int, crf: int):
    """The frame the VAE encodes, as diffusers' LTX-2 conditioning prepares an image: H.264 re-compression at
    `crf`, bilinear resize (no antialiasing, like the original LTX-2 code) so the image covers the clip, center
    crop, [-1, 1]. Returns float pixels [1, 3, 1, height, width]."""
    import numpy as np
    import torch
    from diffusers.pipelines.ltx2.utils import apply_image_conditioning_crf
    from PIL import Image

    with Image.open(source.path) as image:
        rgb = apply_image_conditioning_crf(rgb_pixels(image, f"--image {source.path}"), crf)
    pixels = torch.from_numpy(np.ascontiguousarray(rgb)).to(torch.float32).permute(2, 0, 1)[None]
    return cover_and_crop(pixels, width, height).unsqueeze(2)


def cover_and_crop(pixels, width: int, height: int):
    """8-bit RGB pixels as float [frames, 3, H, W] scaled bilinearly (no antialiasing, like the original LTX-2 code)
    to cover `width` x `height`, center-cropped and in [-1, 1]: [frames, 3, height, width]."""
    import torch

    source_height, source_width = pixels.shape[2:]
    scale = max(height / source_height, width / source_width)
    covering = (math.ceil(source_height * scale), math.ceil(source_width * scale))
    pixels = torch.nn.functional.interpolate(pixels, size=covering, mode="bilinear", align_corners=False)
    top, left = (covering[0] - height) // 2, (covering[1] - width) // 2
    return pixels[:, :, top:top + height, left:left + width] / 127.5 - 1.0


@dataclass
class EncodedKeyframe:
    """One image as the image stage leaves it for diffusion: the VAE's latents of the prepared frame (not normalised,
    as the VAE returns them), the latent frame it conditions and its strength."""

    latents: object  # torch.Tensor [1, channels, latent frames (1 for an image), height / 32, width / 32]
    latent_frame: int
    strength: float


@dataclass
class ImageConditioning:
    """What the image stage leaves for diffusion: the clip's encoded images, in latent-frame order."""

    keyframes: list[EncodedKeyframe]

    def pipeline(self, pipe):
        """The stock pipeline for these conditions, over `pipe`'s components, with the VAE replaced by a stand-in
        that returns these latents; and the call arguments that pass it the images. A condition of several latent
        frames (the tail of a clip being continued, `ltx2gen.continuation`) is passed as the frames it stands for."""
        from diffusers import LTX2ConditionPipeline, LTX2ImageToVideoPipeline

        from ltx2gen.stand_ins import EncodedImage

        vae = EncodedImage(pipe.vae, [keyframe.latents.to(pipe.vae.device) for keyframe in self.keyframes])
        components = dict(pipe.components, vae=vae)
        if [(keyframe.latent_frame, keyframe.strength, keyframe.latents.shape[2]) for keyframe in self.keyframes] == \
                [(0, 1.0, 1)]:
            return LTX2ImageToVideoPipeline(**components), dict(image=self.stand_in_frame(vae), image_crf=0)
        return LTX2ConditionPipeline(**components), dict(conditions=self.video_conditions(vae))

    def stand_in_frame(self, vae):
        """What the pipelines are given for an image: they prepare each frame before "encoding" it with `vae` (a
        `stand_ins.EncodedImage`), which checks its size and ignores its pixels."""
        from PIL import Image

        _, _, _, latent_height, latent_width = self.keyframes[0].latents.shape
        return Image.new("RGB", (latent_width * vae.spatial_compression_ratio,
                                 latent_height * vae.spatial_compression_ratio))

    def video_conditions(self, vae) -> list:
        """One `LTX2VideoCondition` per image, for the pipelines that take them, encoded by the stand-in `vae`."""
        from diffusers.pipelines.ltx2.pipeline_ltx2_condition import LTX2VideoCondition

        frame = self.stand_in_frame(vae)
        return [LTX2VideoCondition(frames=frames_standing_for(keyframe.latents.shape[2], frame),
                                   index=keyframe.latent_frame, strength=keyframe.strength, crf=0)
                for keyframe in self.keyframes]


def frames_standing_for(latent_frames: int, frame):
    """What a condition of `latent_frames` latent frames is given to the pipeline as: one image, or the video of
    the 8n+1 frames that many latent frames decode to."""
    return frame if latent_frames == 1 else [frame] * ((latent_frames - 1) * FRAMES_PER_LATENT_FRAME + 1)


def encode_images(stage, model_dir: Path, requests: list[tuple[list[Keyframe], int, int]], *, device,
                  dtype) -> list[ImageConditioning]:
    """The image stage: load the video VAE, encode the keyframes of each (keyframes, width, height) request (one
    clip's), free the VAE. Each image is compressed at the CRF of the model's version (`image_crf`)."""
    import torch

    from ltx2gen.components import load_component

    vae = stage.load("vae", lambda: load_component(model_dir, "vae", device, dtype))
    crf = image_crf(model_dir)
    results = []
    for keyframes, width, height in requests:
        encoded = []
        for keyframe in keyframes:
            with torch.no_grad():
                pixels = prepare_frame(keyframe.source, width, height, crf).to(device, vae.dtype)
                latents = vae.encode(pixels).latent_dist.mode()  # the pipelines' "argmax" latents
            encoded.append(EncodedKeyframe(latents.float().cpu(), keyframe.latent_frame, keyframe.strength))
        results.append(ImageConditioning(encoded))
    return results
