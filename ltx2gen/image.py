"""Image-to-video: the first frame conditioned on a still image (`--image`, `--image-strength`).

The image is checked while the flags are validated (torch is not imported here until a stage runs). Its own stage
loads the video VAE, encodes the prepared frame and frees the VAE before the transformer loads; diffusion then runs
diffusers' stock image-to-video sampling with a stand-in VAE that hands the pipeline those latents:

- strength 1 (the frame kept as the image): `LTX2ImageToVideoPipeline`, numerically the stock pipeline;
- strength below 1: `LTX2ConditionPipeline` with one first-frame `LTX2VideoCondition` of that strength, the stock
  pipeline that has a strength. Its noise is drawn in another layout, so a strength just below 1 is a different
  sample of the same seed, not a small change of the strength-1 clip.

FP8 works with it (tested with --fp8 weight on the CPU): image-to-video differs from text-to-video in per-token
timesteps (the conditioned tokens get `t * (1 - mask)`) and in the VAE encoder running. Both stay out of float8
here: `ltx2gen.quant` converts only the block linears with torchao, so the timestep embedding and AdaLN layers
that see the per-token timesteps stay bf16, the float32 latents are cast to the transformer's dtype by the
pipeline before any float8 linear dequantizes, and the encoder runs unquantized in its own stage. Casting every
parameter to float8 by hand, as the earlier tool did, also put those layers in float8 (the likely cause of its
failure; not reproduced here).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
from dataclasses import dataclass
from pathlib import Path

from ltx2gen.errors import ConfigError, check_strength

FORMATS = {"PNG": "PNG", "JPEG": "JPEG", "WEBP": "WebP"}


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

    def crop_note(self, width: int, height: int) -> str | None:
        """One line saying what the center crop removes, or None when the aspect ratio is the clip's."""
        if self.width * height == self.height * width:
            return None
        if self.width * height > self.height * width:  # wider than the clip: the sides go
            kept = round(self.height * width / height)
            lost, where = self.width - kept, "left and right"
        else:
            kept = round(self.width * height / width)
            lost, where = self.height - kept, "top and bottom"
        return (f"note: --image {self.path.name} is {self.width}x{self.height}, the clip {width}x{height}: "
                f"{lost} px of the image ({lost // 2} px each side, {where}) are cropped away, the rest scaled to fit")


def inspect_image(path: Path) -> SourceImage:
    """Open and fully decode the image; any problem is a ConfigError naming the file."""
    from PIL import Image

    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"--image {path}: no such file (give a local PNG, JPEG or WebP image)")
    try:
        with Image.open(path) as image:
            kind = image.format
            image.load()  # decodes every pixel: a truncated file fails here, not in the image stage
            width, height = image.size
    except Exception as err:  # PIL reports unreadable data with many exception types
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConfigError(f"--image {path}: not a readable image ({reason}); give a PNG, JPEG or WebP file") from None
    if kind not in FORMATS:
        raise ConfigError(f"--image {path}: a {kind} image; give a PNG, JPEG or WebP file")
    return SourceImage(path.resolve(), hashlib.sha256(path.read_bytes()).hexdigest(), width, height)


def validate_image_options(image: Path | None, strength: float) -> None:
    check_strength("--image-strength", strength, "1 keeps the first frame as the image", "--image", image)
    if image is not None:
        inspect_image(image)
        if importlib.util.find_spec("av") is None:  # found here, not after the text stage
            raise ConfigError(f"--image {image}: needs PyAV to re-compress the image with H.264 as the model was "
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
        rgb = apply_image_conditioning_crf(np.array(image.convert("RGB")), crf)
    pixels = torch.from_numpy(np.ascontiguousarray(rgb)).to(torch.float32).permute(2, 0, 1)[None]
    source_height, source_width = pixels.shape[2:]
    scale = max(height / source_height, width / source_width)
    covering = (math.ceil(source_height * scale), math.ceil(source_width * scale))
    pixels = torch.nn.functional.interpolate(pixels, size=covering, mode="bilinear", align_corners=False)
    top, left = (covering[0] - height) // 2, (covering[1] - width) // 2
    pixels = pixels[:, :, top:top + height, left:left + width]
    return (pixels / 127.5 - 1.0).unsqueeze(2)


@dataclass
class ImageConditioning:
    """What the image stage leaves for diffusion: the VAE's latents of the prepared frame (not normalised, as the
    VAE returns them) and the strength."""

    latents: object  # torch.Tensor [1, channels, 1, height / 32, width / 32]
    strength: float

    def pipeline(self, pipe):
        """The stock image-to-video pipeline for this strength, over `pipe`'s components, with the VAE replaced by
        a stand-in that returns these latents; and the call arguments that pass it the image."""
        from diffusers import LTX2ConditionPipeline, LTX2ImageToVideoPipeline
        from diffusers.pipelines.ltx2.pipeline_ltx2_condition import LTX2VideoCondition
        from PIL import Image

        from ltx2gen.stand_ins import EncodedImage

        vae = EncodedImage(pipe.vae, self.latents.to(pipe.vae.device))
        _, _, _, latent_height, latent_width = self.latents.shape
        # The pipelines prepare this frame before "encoding" it; the stand-in checks its size and ignores its pixels.
        frame = Image.new("RGB", (latent_width * vae.spatial_compression_ratio,
                                  latent_height * vae.spatial_compression_ratio))
        components = dict(pipe.components, vae=vae)
        if self.strength == 1.0:
            return LTX2ImageToVideoPipeline(**components), dict(image=frame, image_crf=0)
        condition = LTX2VideoCondition(frames=frame, index=0, strength=self.strength, crf=0)
        return LTX2ConditionPipeline(**components), dict(conditions=[condition])


def encode_images(stage, model_dir: Path, requests: list[tuple[SourceImage, int, int, float]], *, device,
                  dtype) -> list[ImageConditioning]:
    """The image stage: load the video VAE, encode each (image, width, height, strength) request, free the VAE."""
    import torch

    from ltx2gen.components import load_component

    vae = stage.load("vae", lambda: load_component(model_dir, "vae", device, dtype))
    crf = image_crf(model_dir)
    results = []
    for source, width, height, strength in requests:
        with torch.no_grad():
            pixels = prepare_frame(source, width, height, crf).to(device, vae.dtype)
            latents = vae.encode(pixels).latent_dist.mode()  # the pipelines' "argmax" latents
        results.append(ImageConditioning(latents.float().cpu(), strength))
    return results


def encode_image(stage, model_dir: Path, source: SourceImage, *, width: int, height: int, strength: float, device,
                 dtype) -> ImageConditioning:
    """The image stage for one clip."""
    return encode_images(stage, model_dir, [(source, width, height, strength)], device=device, dtype=dtype)[0]
