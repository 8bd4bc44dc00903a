"""The memory plan of one clip on a discrete GPU, from its settings: the fastest modes that fit both pools
(`fit.choose`), what would fit where nothing does, and whether the transformer's files are read ahead."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ltx2gen import fit, memory
from ltx2gen.built_at_load import built_at_load_names
from ltx2gen.components import VIDEO_DECODER_FOLDERS
from ltx2gen.config import GenerateConfig
from ltx2gen.errors import ConfigError


def plan_memory(config: GenerateConfig, transformer_folder: Path, tokens: int, machine: fit.Machine, *,
                fp8_kernels: bool, upsampler_folder: Path | None = None) -> fit.Fit:
    """The fastest modes that fit both pools of `machine` (`fit.choose`), or ConfigError naming what does not fit and
    the flags that would. `upsampler_folder`: a two-stage run's latent upsampler, loaded beside the transformer."""
    # The diffusion decoder's activations are not measured yet: its stage is planned with the VAE's per-frame figure.
    sizes = fit.Sizes.of(transformer_folder.parent, transformer_folder.name, VIDEO_DECODER_FOLDERS[config.decoder])
    conditioned = bool(config.image or config.keyframe or config.extend or config.windows or config.retake
                       or config.pipeline == "dfr")  # dfr: its keyframe slots and reference
    work = fit.Work(tokens, config.planned_num_frames, conditioned, decode_chunk_frames=config.vae_chunk_frames,
                    megapixels=config.width * config.height / 1e6,
                    upsampler_gib=upsampler_gib(upsampler_folder) if upsampler_folder else 0.0)
    requested = fit.Requested(config.fp8, config.offload, config.text_fp8, fp8_kernels,
                              files=not (config.lora or config.camera),
                              text_files="text_encoder" not in built_at_load_names(transformer_folder.parent))
    try:
        return fit.choose(sizes, work, machine, requested)
    except fit.DoesNotFit as refusal:
        raise ConfigError(f"{refusal}; {what_would_fit(config, sizes, work, machine, requested)}") from None


def upsampler_gib(folder: Path) -> float:
    """A latent upsampler's loaded size (0.93 GiB for LTX-2.0's and LTX-2.5's), from its configuration."""
    from diffusers.pipelines.ltx2.latent_upsampler import LTX2LatentUpsamplerModel

    from ltx2gen.sizes import folder_bytes

    return folder_bytes(folder, LTX2LatentUpsamplerModel) / fit.GIB


def what_would_fit(config: GenerateConfig, sizes: fit.Sizes, work: fit.Work, machine: fit.Machine,
                   requested: fit.Requested) -> str:
    """The flags that would fit `machine`, for a refusal: FP8 weights, then smaller sizes of the same aspect."""
    def fits(work: fit.Work, requested: fit.Requested) -> bool:
        try:
            fit.choose(sizes, work, machine, requested)
            return True
        except fit.DoesNotFit:
            return False

    if requested.fp8 in ("off", "auto") and fits(work, dataclasses.replace(requested, fp8="weight", offload="auto")):
        return "--fp8 weight would fit"
    for width, height in ((1280, 704), (768, 512), (512, 320)):
        for frames in sorted({min(config.planned_num_frames, 121), 97, 49}, reverse=True):
            smaller = dataclasses.replace(work, tokens=fit.clip_tokens(width, height, frames), frames=frames,
                                          megapixels=width * height / 1e6)
            if width * height < config.width * config.height and fits(smaller, dataclasses.replace(
                    requested, offload="auto", fp8="weight" if requested.fp8 == "off" else requested.fp8)):
                return f"--width {width} --height {height} --num-frames {frames} would fit"
    return "no smaller clip fits either: the machine needs more memory for the weights"


def choose_read_ahead(transformer_folder: Path, memory_fit: fit.Fit) -> bool:
    """On a discrete GPU: read the transformer's files while the text stage runs (the disk is otherwise idle then)
    where the host has the memory to hold them in its page cache beside the weights the diffusion stage keeps there,
    said in one line. Not when several processes on this host load the model (torchrun), whose other ranks read it
    during the text stage anyway, and never on unified memory, where the page cache would take from the memory the
    stages peak in."""
    from ltx2gen.ranks import Ranks

    available = int(memory_fit.machine.host_gib * fit.GIB)
    host_weights = int((memory_fit.diffusion.host - fit.HOST_STAGE_GIB["diffusion"]) * fit.GIB)
    if Ranks.share_the_page_cache() or not fit.read_ahead_fits(transformer_folder, available, host_weights):
        return False
    print(f"note: the transformer's files are read ahead into the page cache while the text stage runs "
          f"({available / memory.GIB:.0f} GiB of host memory available)")
    return True
