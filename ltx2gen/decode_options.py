"""The settings generate.py and decode_latents.py share (model, video decode, device), and their checks."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ltx2gen.checkpoint import is_local_path
from ltx2gen.errors import ConfigError
from ltx2gen.flags import opt

DEFAULT_MODEL = "rootonchair/LTX-2-19b-distilled"


@dataclass(frozen=True)
class DecodeOptions:
    """Settings shared by generate.py and decode_latents.py."""

    model: str | None = opt(DEFAULT_MODEL, "diffusers-format LTX-2 repo id or local model directory")
    vae_chunk_frames: int = opt(
        0, "decode the video in temporal pieces of this many frames (a multiple of 8); 0 = automatic: "
           "whole clip up to 161 frames (exact), pieces of 64 frames beyond", metavar="N")
    vae_context_frames: int = opt(
        32, "frames of overlap context decoded on each side of a temporal piece and then discarded "
            "(a multiple of 8; more is closer to a whole-clip decode)", metavar="N")
    vae_tile_size: int = opt(512, "spatial tile of the video decode in pixels (a multiple of 32); frames larger "
                                  "than this are decoded tile by tile", metavar="PX")
    vae_tile_overlap: int = opt(64, "overlap of neighbouring spatial tiles in pixels, blended (a multiple of 32, at "
                                    "most half the tile)", metavar="PX")
    decoder: str = opt("vae", "video decoder: vae (the convolutional VAE) or diffusion (LTX-2.5's diffusion decoder, "
                              "itself a one-step diffusion model; its noise comes from the clip's seed)",
                       choices=("vae", "diffusion"))
    device: str = opt("auto", "torch device: auto (CUDA when available), cuda, cuda:N or cpu")
    keep_latents: bool = opt(False, "keep the latents file after a successful run")
    drop_page_cache: bool = opt(
        False, "after the run, also drop the whole system page cache (needs root / --privileged); the model "
               "files themselves are always evicted from the cache")



def validate_decode_options(options: DecodeOptions) -> None:
    for name in ("vae_chunk_frames", "vae_context_frames"):
        value = getattr(options, name)
        if value < 0 or value % 8:
            raise ConfigError(f"--{name.replace('_', '-')} {value}: must be 0 or a positive multiple of 8")
    if options.vae_tile_size < 256 or options.vae_tile_size % 32:
        raise ConfigError(f"--vae-tile-size {options.vae_tile_size}: must be a multiple of 32, at least 256")
    if options.vae_tile_overlap < 0 or options.vae_tile_overlap % 32 or \
            options.vae_tile_overlap > options.vae_tile_size // 2:
        raise ConfigError(f"--vae-tile-overlap {options.vae_tile_overlap}: must be a multiple of 32 between 0 and "
                          f"half the tile ({options.vae_tile_size // 2})")
    if options.vae_chunk_frames and not options.vae_context_frames:
        raise ConfigError("--vae-context-frames 0: temporal pieces need at least 8 frames of context "
                          "(each piece's first latent frame decodes to a single frame)")
    if not re.fullmatch(r"auto|cpu|cuda(:[0-9]+)?", options.device):
        raise ConfigError(f"--device {options.device}: use auto, cpu, cuda or cuda:N (N a GPU number, e.g. cuda:0)")
    if options.model and is_local_path(options.model) and not Path(options.model).expanduser().is_dir():
        raise ConfigError(f"--model {options.model}: no such model directory (give an existing directory "
                          f"or a Hugging Face repo id such as {DEFAULT_MODEL})")
