"""Stage 5, video: the video VAE's decoder (its encoder is never read), or LTX-2.5's diffusion decoder, decodes the
latents in temporal pieces and spatial tiles under no_grad, streaming uint8 frames to the MP4 writer a few at a time,
so neither the decode nor the clip in host memory grows with the clip. The decoder is freed when the stage ends."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from ltx2gen import memory as mem
from ltx2gen import patches
from ltx2gen.checkpoint import latent_frame_count
from ltx2gen.components import NOT_FOR_DECODING, VIDEO_DECODER_FOLDERS, component_class, load_component
from ltx2gen.weights import WeightNamesMismatch, load_streamed, weight_files

# Above this many frames the automatic plan decodes in temporal pieces to keep the decode peak flat.
WHOLE_DECODE_MAX_FRAMES = 161
AUTO_CHUNK_FRAMES = 64
VAE_TILE_LATENTS = 16
FRAMES_PER_TRANSFER = 16  # decoded frames converted to uint8 and copied to the host at a time


@dataclass(frozen=True)
class DecodePlan:
    """Temporal pieces of the video decode (latent frames) and its spatial tiles (latents)."""

    chunk_latents: int
    context_latents: int
    tile_latents: int = 16
    overlap_latents: int = 2
    decoder: str = "vae"  # or "diffusion": LTX-2.5's diffusion decoder
    seed: int = 0  # of the noise the diffusion decoder denoises

    @classmethod
    def choose(cls, num_frames: int, chunk_frames: int, context_frames: int, tile_size: int = 512,
               tile_overlap: int = 64, decoder: str = "vae", seed: int = 0) -> "DecodePlan":
        latent_frames = latent_frame_count(num_frames)
        if chunk_frames == 0:
            chunk_frames = 8 * latent_frames if num_frames <= WHOLE_DECODE_MAX_FRAMES else AUTO_CHUNK_FRAMES
        chunk = min(chunk_frames // 8, latent_frames)
        return cls(chunk_latents=chunk, context_latents=0 if chunk == latent_frames else context_frames // 8,
                   tile_latents=tile_size // 32, overlap_latents=tile_overlap // 32, decoder=decoder, seed=seed)

    def describe(self, latent_frames: int) -> str:
        by = "VAE decode" if self.decoder == "vae" else f"diffusion decode (noise seed {self.seed})"
        if self.chunk_latents >= latent_frames:
            return f"{by} whole clip in one decode"
        return (f"{by} in pieces of {self.chunk_latents * 8} frames with {self.context_latents * 8} frames of context "
                f"on each side")

    def record(self) -> dict:
        """The sidecar's `video_decoder`: which decoder, and the noise a diffusion decoder denoised."""
        if self.decoder == "vae":
            return {"decoder": "vae"}
        return {"decoder": "diffusion", "noise": f"torch.Generator('cpu').manual_seed({self.seed}), one draw per "
                                                 "piece and tile in order"}

    def pieces(self, latent_frames: int) -> Iterator[tuple[int, int, int, int]]:
        """(window start, window end, first kept frame, end kept frame) in latent frames and window-local frames.

        Latent frame 0 decodes to one frame and latent k to frames 8k-7..8k, so a window starting at latent s
        puts global frame g at local index g - 8s.
        """
        for start in range(0, latent_frames, self.chunk_latents):
            end = min(start + self.chunk_latents, latent_frames)
            window_start = max(0, start - self.context_latents)
            window_end = min(latent_frames, end + self.context_latents)
            first = 0 if start == 0 else 8 * start - 7
            yield window_start, window_end, first - 8 * window_start, 8 * end - 7 - 8 * window_start


def tile_stride(latent_size: int, tile: int = VAE_TILE_LATENTS, overlap: int = 2) -> int:
    """A spatial tile stride (latents) that never leaves a one-latent last tile, which the VAE's reflect padding
    cannot decode (a crash for sizes of the form 14k+1 with diffusers' defaults): the largest that keeps at least
    the requested overlap, else the one closest to it that overlaps less."""
    largest = max(1, tile - overlap)
    if latent_size <= tile:
        return largest
    for stride in [*range(largest, 0, -1), *range(largest + 1, tile)]:
        if (latent_size - 1) % stride:
            return stride
    return largest


def decode_video_frames(decoder, latents: torch.Tensor, plan: DecodePlan) -> Iterator[np.ndarray]:
    """Stage 5 core: decode in temporal pieces under no_grad and yield uint8 [H, W, 3] frames one piece at a time.
    `decoder` is the plan's: the video VAE, tiled as the plan says, or the diffusion decoder, tiled as its reference
    implementation is (768-pixel tiles), denoising noise drawn from the plan's seed."""
    _, _, latent_frames, latent_height, latent_width = latents.shape
    if plan.decoder == "vae":
        tile, overlap = plan.tile_latents, plan.overlap_latents
        decoder.enable_tiling(tile_sample_min_height=tile * 32, tile_sample_min_width=tile * 32,
                              tile_sample_stride_height=tile_stride(latent_height, tile, overlap) * 32,
                              tile_sample_stride_width=tile_stride(latent_width, tile, overlap) * 32)
        options = {}
    else:
        decoder.enable_tiling()
        options = {"generator": torch.Generator("cpu").manual_seed(plan.seed)}
    device = decoder.device
    pieces = list(plan.pieces(latent_frames))
    for window_start, window_end, first, end in tqdm(pieces, desc="video decode", unit="piece",
                                                     disable=len(pieces) == 1):
        with torch.no_grad(), patches.neighborhood_attention_fused(device) if plan.decoder == "diffusion" else \
                contextlib.nullcontext():
            window = latents[:, :, window_start:window_end].to(device, decoder.dtype)
            video = decoder.decode(window, return_dict=False, **options)[0][0, :, first:end]
            del window
        for start in range(0, video.shape[1], FRAMES_PER_TRANSFER):
            yield from to_uint8_frames(video[:, start:start + FRAMES_PER_TRANSFER]).numpy()
        del video


def to_uint8_frames(video: torch.Tensor) -> torch.Tensor:
    """Decoder output [3, F, H, W] to uint8 frames [F, H, W, 3] on the host, converted where the video is: the
    same arithmetic as diffusers' VideoProcessor + numpy_to_pil (so frames match the stock pipeline) without a
    float32 copy of the clip in host memory (13 GiB of it at 1920x1088x161)."""
    pixels = ((video / 2 + 0.5).clamp(0, 1).float() * 255).round().to(torch.uint8)
    return pixels.permute(1, 2, 3, 0).cpu()


# The diffusion decoder's tiles (its reference implementation's, which `decode_video_frames` enables) and what its
# uncompiled neighborhood attention holds per score: measured on the CPU with the tiny model at 128x128x33 (one head,
# 33,792 tokens in its last stage): 14.4 GiB of RSS, about 13 bytes a query-key pair.
DIFFUSION_TILE_PIXELS, DIFFUSION_TILE_FRAMES, EAGER_BYTES_PER_SCORE_AND_HEAD = 768, 80, 12


def check_cpu_decode(model_dir: Path, decoder: str, device: torch.device, width: int, height: int, num_frames: int,
                     available_bytes: int) -> None:
    """On the CPU the diffusion decoder's attention runs uncompiled and holds every score of its last stage's
    largest tile at once; ConfigError, before any weight is read, where that is more than the host has."""
    if decoder != "diffusion" or device.type != "cpu":
        return
    import json

    from ltx2gen.errors import ConfigError

    config = json.loads((Path(model_dir) / "diffusion_decoder" / "config.json").read_text())
    patch, heads = config["patch_size"], config["decoder_stage_channels"][-1] // config["decoder_head_dim"]
    tokens = (min(num_frames, DIFFUSION_TILE_FRAMES) * (min(height, DIFFUSION_TILE_PIXELS) // patch)
              * (min(width, DIFFUSION_TILE_PIXELS) // patch))
    needed = tokens**2 * (EAGER_BYTES_PER_SCORE_AND_HEAD * heads + 1)
    if needed > available_bytes:
        raise ConfigError(f"--decoder diffusion on the CPU: its attention runs uncompiled there and would hold about "
                          f"{needed / mem.GIB:,.0f} GiB for a {width}x{height}x{num_frames} clip "
                          f"({available_bytes / mem.GIB:.0f} GiB available); decode with --decoder vae on the CPU, "
                          "or on a GPU")


def load_video_decoder(model_dir: Path, device: torch.device, dtype: torch.dtype):
    """The video VAE without its encoder, whose weights decoding never uses (1.29 of the 2.28 GiB at full size):
    they are neither read from disk nor held. Its file pages stay in the page cache until the run releases them, as
    the other decoders' do. A VAE that a synthetic model builds at load comes whole, and so does one whose stored
    names do not pair with the model's (through from_pretrained, said in one line)."""
    folder = Path(model_dir) / "vae"
    if not weight_files(folder):
        return load_component(model_dir, "vae", device, dtype)
    try:
        return load_streamed(component_class(model_dir, "vae"), folder, device, dtype, evict=False,
                             without=NOT_FOR_DECODING)
    except WeightNamesMismatch as mismatch:
        print(f"note: {mismatch}; loading the whole VAE with from_pretrained", flush=True)
        return load_component(model_dir, "vae", device, dtype)


def decode_video(stage: mem.Stage, model_dir: Path, latents: torch.Tensor, plan: DecodePlan, *, write,
                 device: torch.device, dtype: torch.dtype):
    """Stage 5: load the plan's video decoder and hand the streamed frames to `write(frames)`."""
    name = VIDEO_DECODER_FOLDERS[plan.decoder]
    if plan.decoder == "vae":
        decoder = stage.load(name, lambda: load_video_decoder(model_dir, device, dtype))
    else:
        decoder = stage.load(name, lambda: load_component(model_dir, name, device, dtype))
    mem.emit("decode", name, decoder)
    return write(decode_video_frames(decoder, latents, plan))
