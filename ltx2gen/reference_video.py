"""Reference-video control (`--reference-video FILE[:STRENGTH]`): an in-context LoRA (IC-LoRA, `lora.in_context_lora`)
makes the clip follow a reference video (canny edges, depth, pose, a clip to detail) whose latent tokens join the
sequence the transformer denoises, clean at strength 1: diffusers' stock `LTX2InContextPipeline`.

Checked while the flags are validated (torch is not imported here until a stage runs): the file is a video ffmpeg
reads, the strength, and that a reference and an IC-LoRA come together. The reference is fitted to the clip as
Lightricks' IC-LoRA pipeline fits it (ltx-pipelines `load_video_conditioning`): its first frames, frame for frame
(no resampling of its frame rate), as many as the clip has; each frame scaled bilinearly to cover the clip's size
divided by the IC-LoRA's reference downscale factor and center-cropped. A shorter reference is cut to the longest
8n+1 frames it holds (the VAE's frame counts) and conditions the clip's first frames only, as the stock pipeline
takes a shorter reference. One line says what was done. Its own stage encodes it with the video VAE and frees the
VAE before the transformer loads: the whole clip's frames, or for a clip in windows each window's own frames (its
slice of the reference, encoded as a one-window clip of those frames would have it). Diffusion then runs the stock
pipeline with a stand-in VAE that hands it those latents (`stand_ins.EncodedImage`).
"""

from __future__ import annotations

import functools
import inspect
import math
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from ltx2gen.errors import ConfigError, check_strength
from ltx2gen.files import file_sha256
from ltx2gen.image import FRAMES_PER_LATENT_FRAME, cover_and_crop
from ltx2gen.lora import InContextLora, LoraSpec, in_context_lora, local_file, resolve_file

REFERENCE_GRAMMAR = "FILE[:STRENGTH] (STRENGTH in [0, 1], default 1)"
STRENGTH_MEANING = "1 shows the model the reference clean, 0 as noisy as the clip"
SPATIAL_COMPRESSION = 32  # the video VAE's, which the reference's size must be a multiple of


@dataclass(frozen=True)
class ReferenceSpec:
    """A --reference-video as given: the file and the strength after its last ':' (a file whose own name ends in
    ':something' is taken whole where it exists)."""

    text: str
    path: Path
    strength: float

    @classmethod
    def parse(cls, text: str) -> "ReferenceSpec":
        path, colon, strength_text = str(text).rpartition(":")
        if not colon or Path(text).exists() or "/" in strength_text:
            return cls(str(text), Path(text), 1.0)
        try:
            strength = float(strength_text)
        except ValueError:
            raise ConfigError(f"--reference-video {text}: the strength {strength_text!r} after ':' is not a number; "
                              f"give {REFERENCE_GRAMMAR}") from None
        check_strength(f"--reference-video {text}: strength", strength, STRENGTH_MEANING, "--reference-video", path)
        return cls(str(text), Path(path), strength)

    @property
    def flag(self) -> str:
        return f"--reference-video {self.text}"


@dataclass(frozen=True)
class SourceVideo:
    """A reference video as its file holds it: where, its digest, and its frames, size and rate as ffmpeg decodes
    them."""

    path: Path
    sha256: str
    frames: int
    width: int
    height: int
    fps: Fraction


def inspect_video(spec: ReferenceSpec) -> SourceVideo:
    """The file, checked: there, and a video ffmpeg decodes (every frame is decoded, once per version of the file:
    the flags' check and the plan both ask)."""
    if not spec.path.is_file():
        raise ConfigError(f"{spec.flag}: no such file; give a video file ({REFERENCE_GRAMMAR})")
    stat = spec.path.stat()
    return _inspect(spec.path.resolve(), stat.st_mtime_ns, stat.st_size, spec.flag)


@functools.lru_cache(maxsize=8)
def _inspect(path: Path, modified_ns: int, size: int, flag: str) -> SourceVideo:
    from ltx2gen.video import probe

    try:
        info = probe(path)
    except (subprocess.CalledProcessError, AttributeError, IndexError, ZeroDivisionError):
        raise ConfigError(f"{flag}: not a video ffmpeg can read; give an MP4, MOV, WebM or any file with a "
                          "video stream") from None
    return SourceVideo(path, file_sha256(path), info.frames, info.width, info.height, info.fps)


def longest_frame_count(frames: int) -> int:
    """The most frames of the form 8n+1 within `frames` (0 for none)."""
    return 0 if frames < 1 else (frames - 1) // FRAMES_PER_LATENT_FRAME * FRAMES_PER_LATENT_FRAME + 1


@dataclass(frozen=True)
class ReferenceSlice:
    """The reference frames one denoising run follows: from frame `first`, `frames` of them (8n+1); `start` is the
    clip's latent frame the run starts at (0: the whole clip, or its first window)."""

    start: int
    first: int
    frames: int


@dataclass(frozen=True)
class FittedReference:
    """A reference fitted to a clip: the source, its strength, the IC-LoRA it is for, the size its frames are
    prepared at and the frames used, and the slice of each denoising run."""

    source: SourceVideo
    strength: float
    lora: InContextLora
    width: int
    height: int
    frames: int
    slices: tuple[ReferenceSlice, ...]

    @classmethod
    def fit(cls, source: SourceVideo, strength: float, lora: InContextLora, *, width: int, height: int,
            num_frames: int, windows: tuple = ()) -> "FittedReference":
        """`windows`: a clip in windows (`continuation.Window`), each following its own frames of the reference."""
        frames = min(source.frames, num_frames)
        frames = frames if frames == num_frames else longest_frame_count(frames)
        runs = [(window.start, window.num_frames) for window in windows] or [(0, num_frames)]
        slices = []
        for start, run_frames in runs:
            first = start * FRAMES_PER_LATENT_FRAME
            count = longest_frame_count(min(run_frames, frames - first))
            if count:
                slices.append(ReferenceSlice(start, first, count))
        return cls(source, strength, lora, width // lora.downscale, height // lora.downscale, frames, tuple(slices))

    def describe(self, clip_frames: int) -> str:
        """One line: how the reference was fitted to the clip."""
        source, scale = self.source, self.lora.downscale
        size = f"{self.width}x{self.height}" + (f" (the clip's size / {scale}, {self.lora.label}'s reference "
                                                f"downscale factor)" if scale != 1 else " (the clip's size)")
        if (source.width, source.height) != (self.width, self.height):
            size = f"scaled to cover {size} and center-cropped"
        else:
            size = f"at {size}"
        if self.frames == clip_frames:
            length = f"its first {self.frames} frames" if source.frames > clip_frames else f"all {self.frames} frames"
        else:
            length = (f"its {self.frames} frames of the form 8n+1 (of {source.frames}) follow the clip's first "
                      f"{self.frames} of {clip_frames} frames; the rest follows the prompt alone")
        return (f"reference video: {source.path.name} ({source.width}x{source.height}, {source.frames} frames at "
                f"{float(source.fps):g} fps), {size}, {length}, frame for frame, at strength {self.strength:g}")

    def record(self) -> dict:
        """The latents file's and the sidecar's entry."""
        source = self.source
        return {"path": str(source.path), "sha256": source.sha256, "strength": self.strength,
                "source_frames": source.frames, "source_size": [source.width, source.height],
                "source_fps": str(source.fps), "frames": self.frames, "size": [self.width, self.height],
                "downscale_factor": self.lora.downscale, "ic_lora": self.lora.label,
                "slices": [{"start_latent_frame": piece.start, "first_frame": piece.first, "frames": piece.frames}
                           for piece in self.slices]}


def in_context_loras(specs: tuple[LoraSpec, ...], local_only: bool) -> tuple[list[InContextLora], bool]:
    """The IC-LoRAs among `specs`, and whether every LoRA was looked at (with `local_only`, those from a repo are
    not: they are found, downloaded where needed, once the run is planned; nor a file that is no safetensors, which
    the LoRA checks of the plan refuse in their own words)."""
    found, all_seen = [], True
    for spec in specs:
        path = local_file(spec) if local_only else resolve_file(spec)
        try:
            lora = in_context_lora(path, spec) if path is not None else None
        except ConfigError:
            if not local_only:
                raise
            path, lora = None, None
        all_seen = all_seen and path is not None
        if lora is not None:
            found.append(lora)
    return found, all_seen


def check_pairing(reference: ReferenceSpec | None, specs: tuple[LoraSpec, ...], width: int, height: int,
                  local_only: bool) -> InContextLora | None:
    """A reference needs one IC-LoRA, and an IC-LoRA a reference; the clip's size divided by its downscale factor
    must be a size the VAE encodes. Returns the IC-LoRA (None where not known yet, or without either)."""
    loras, all_seen = in_context_loras(specs, local_only)
    if loras and reference is None:
        raise ConfigError(f"--lora {loras[0].label}: an IC-LoRA, made to follow a reference video; give the video "
                          f"with --reference-video {REFERENCE_GRAMMAR}, or use another LoRA")
    if reference is None or (not loras and not all_seen):
        return None
    if not loras:
        raise ConfigError(f"{reference.flag}: needs an IC-LoRA (--lora), the LoRA that makes the clip follow a "
                          "reference video, e.g. Lightricks/LTX-2.3-22b-IC-LoRA-Union-Control for LTX-2.3; none of "
                          "the LoRAs given is one")
    if len({lora.downscale for lora in loras}) > 1:
        raise ConfigError(f"--lora {loras[0].label} and --lora {loras[1].label}: IC-LoRAs trained with references "
                          f"of different sizes (downscale {loras[0].downscale} and {loras[1].downscale}); give one")
    lora = loras[0]
    step = SPATIAL_COMPRESSION * lora.downscale
    for name, value in (("width", width), ("height", height)):
        if value % step:
            raise ConfigError(f"--{name} {value}: {reference.flag} with {lora.label}, whose reference is the clip's "
                              f"size / {lora.downscale}, needs a multiple of {step} (try "
                              f"{max(step, value // step * step)} or {math.ceil(value / step) * step})")
    return lora


def decode_frames(source: SourceVideo, frames: int):
    """The first `frames` frames of the reference as ffmpeg decodes them: uint8 [frames, height, width, 3]."""
    import numpy as np

    from ltx2gen.video import ffmpeg_exe

    raw = subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i", str(source.path), "-map",
                          "0:v:0", "-frames:v", str(frames), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, source.height, source.width, 3)[:frames]


def prepare_pixels(frames, width: int, height: int):
    """The frames as the VAE encodes them, as Lightricks' pipeline prepares a reference: each scaled bilinearly (no
    antialiasing) to cover `width` x `height`, center-cropped, in [-1, 1]. Returns float [1, 3, frames, height,
    width]."""
    import torch

    pixels = torch.from_numpy(frames.copy()).to(torch.float32).permute(0, 3, 1, 2)
    return cover_and_crop(pixels, width, height).permute(1, 0, 2, 3).unsqueeze(0)


@dataclass
class ReferenceCondition:
    """What one denoising run follows of the reference: the VAE's latents of its frames (not normalised, as the VAE
    returns them), the strength and the IC-LoRA's downscale factor."""

    latents: object  # torch.Tensor [1, channels, latent frames, height / 32, width / 32]
    strength: float
    downscale: int


@dataclass
class EncodedReference:
    """What the reference stage leaves for diffusion: each run's condition by the latent frame the run starts at."""

    by_start: dict[int, ReferenceCondition]


def encode(stage, model_dir: Path, references: list[FittedReference], *, device, dtype) -> list[EncodedReference]:
    """The reference stage: load the video VAE, encode each run's slice of each reference, free the VAE."""
    import torch

    from ltx2gen.components import load_component

    vae = stage.load("vae", lambda: load_component(model_dir, "vae", device, dtype))
    results = []
    for reference in references:
        frames = decode_frames(reference.source, reference.frames)
        encoded = {}
        for piece in reference.slices:
            with torch.no_grad():
                pixels = prepare_pixels(frames[piece.first:piece.first + piece.frames], reference.width,
                                        reference.height).to(device, vae.dtype)
                latents = vae.encode(pixels).latent_dist.mode()  # the pipelines' "argmax" latents
            encoded[piece.start] = ReferenceCondition(latents.float().cpu(), reference.strength,
                                                      reference.lora.downscale)
        results.append(EncodedReference(encoded))
    return results


def in_context_pipeline(pipe, keyframes: list, reference: ReferenceCondition):
    """diffusers' stock `LTX2InContextPipeline` over `pipe`'s components, with the VAE replaced by a stand-in that
    returns the encoded latents (the keyframes' first, in the order the pipeline encodes its conditions, then the
    reference's), and the call arguments that pass it the keyframes (`image.ImageConditioning`) and the reference."""
    from diffusers import LTX2InContextPipeline
    from diffusers.pipelines.ltx2.pipeline_ltx2_ic_lora import LTX2ReferenceCondition
    from PIL import Image

    from ltx2gen.image import ImageConditioning, frames_standing_for
    from ltx2gen.stand_ins import EncodedImage

    vae = EncodedImage(pipe.vae, [latents.to(pipe.vae.device) for latents in
                                  [*(keyframe.latents for keyframe in keyframes), reference.latents]])
    _, _, latent_frames, latent_height, latent_width = reference.latents.shape
    # The pipeline prepares the frames before "encoding" them; the stand-in checks their size and ignores the pixels.
    frame = Image.new("RGB", (latent_width * vae.spatial_compression_ratio,
                              latent_height * vae.spatial_compression_ratio))
    frames = frames_standing_for(latent_frames, frame)
    inputs = dict(reference_conditions=[LTX2ReferenceCondition(frames=frames if isinstance(frames, list) else [frames],
                                                               strength=reference.strength)],
                  reference_downscale_factor=reference.downscale)
    if keyframes:
        inputs["conditions"] = ImageConditioning(keyframes).video_conditions(vae)
    # The components it takes: not the duration head (LTX-2.5) that `LTX2Pipeline` also holds
    taken = inspect.signature(LTX2InContextPipeline.__init__).parameters
    components = {name: component for name, component in pipe.components.items() if name in taken}
    return LTX2InContextPipeline(**dict(components, vae=vae)), inputs
