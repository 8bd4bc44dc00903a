"""Which pipeline `--pipeline auto` takes: what the checkpoint is (`checkpoint.detect_pipeline`: distilled or full)
and, for a distilled one, Lightricks' own recipe, two-stage, wherever it applies; the plan line says which and why.
Decided from files alone, before torch is imported."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

from ltx2gen.checkpoint import GUIDANCE_OFF, detect_pipeline, is_local_path, model_version
from ltx2gen.errors import ConfigError
from ltx2gen.two_stage import (
    LTX23_UPSAMPLER_REPO,
    UPSAMPLER_SUBFOLDER,
    Upsampler,
    check_sizes,
    scale_known_before_download,
    size_step,
)


def choose(config) -> str:
    """The pipeline of `config`, whose --pipeline may be auto."""
    if config.pipeline != "auto":
        return config.pipeline
    detected = detect_pipeline(config.model)[0]
    return "two-stage" if detected == "distilled" and why_not_reference_recipe(config) is None else detected


def reason(config) -> str:
    """Why the run takes its pipeline, for the plan line: what the checkpoint's files say, or the flag."""
    detected, reason = detect_pipeline(config.model)
    wanted = "distilled" if config.distilled else "full"
    if detected != wanted:
        return f"as asked with --pipeline; auto would take {detected}: {reason}"
    if detected == "full":
        return f"{reason}; give --pipeline distilled if it is"
    if config.pipeline == "dfr":
        return f"{reason}; LTX-2.5's own recipe, as asked with --pipeline (auto takes it once it is measured)"
    why_not = why_not_reference_recipe(config)
    if config.pipeline == "two-stage":
        return f"{reason}; two stages, Lightricks' recipe for a distilled model (--pipeline distilled: one stage)"
    if why_not is None:
        return "as asked with --pipeline; auto would take two-stage, Lightricks' recipe for a distilled model"
    return f"{reason}; one stage: {why_not}"


def why_not_reference_recipe(config) -> str | None:
    """Why `--pipeline auto` renders a distilled checkpoint's clip in one stage instead of two, Lightricks' own recipe
    for it (their `DistilledPipeline` always renders at half the size, upsamples the latents and refines); None where
    two-stage applies: the clip's frame count is given, it takes no conditioning input and renders in one window
    without guidance, its size suits stage one, it renders on one GPU, and the version's latent upsampler is at hand
    without a download."""
    if config.num_frames is None:
        return "--num-frames auto chooses a length two-stage does not plan for"
    if config.conditioning_inputs:
        return f"{config.conditioning_inputs[0][0]} is not built into two-stage yet"
    if config.windows:
        return "the clip renders in windows, which two-stage does not"
    asked = [f"--{name.replace('_', '-')}" for name, off in GUIDANCE_OFF.items()
             if getattr(config, name) not in (None, off)]
    if asked:
        return f"{asked[0]} asks for guidance, which two-stage runs without"
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return "one clip over several GPUs renders in one stage"
    at_hand = upsampler_at_hand(config)
    if at_hand is None:
        return "no latent upsampler for it in the model or the Hugging Face cache (give --upsampler, or " \
               "--pipeline two-stage to fetch the default)"
    try:
        check_sizes(config.width, config.height, *at_hand)
    except ConfigError:
        return (f"{config.width}x{config.height} is not a multiple of {size_step(at_hand[0])} px, as stage one at "
                f"1/{float(at_hand[0]):g} of the size needs")
    return None


def upsampler_at_hand(config) -> tuple[Fraction, str] | None:
    """The scale and name of the upsampler a two-stage run of `config` would take, where it is on disk already (a
    local model's latent_upsampler/, a --upsampler folder, the Hugging Face cache); None where it is not."""
    from huggingface_hub import try_to_load_from_cache

    def cached(repo: str) -> Path | None:
        found = try_to_load_from_cache(repo, f"{UPSAMPLER_SUBFOLDER}/config.json")
        return Path(found).parent if isinstance(found, str) else None

    if config.upsampler and is_local_path(config.upsampler):
        return scale_known_before_download(config)
    if config.upsampler:
        folder = cached(config.upsampler)
        return (Upsampler.read(folder, f"--upsampler {config.upsampler}").scale, config.upsampler) if folder else None
    if is_local_path(config.model):
        model_dir = Path(config.model).expanduser()
        if (model_dir / UPSAMPLER_SUBFOLDER / "config.json").is_file():
            return scale_known_before_download(config)
        version = model_version(model_dir) if (model_dir / "transformer" / "config.json").is_file() else None
    else:
        folder = cached(config.model)
        if folder:
            return Upsampler.read(folder, f"{config.model}'s {UPSAMPLER_SUBFOLDER}/").scale, config.model
        transformer = try_to_load_from_cache(config.model, "transformer/config.json")
        version = model_version(Path(transformer).parent.parent) if isinstance(transformer, str) else None
    folder = cached(LTX23_UPSAMPLER_REPO) if version == "2.3" else None  # LTX-2.3's repos ship none
    return (Upsampler.read(folder, LTX23_UPSAMPLER_REPO).scale, LTX23_UPSAMPLER_REPO) if folder else None
