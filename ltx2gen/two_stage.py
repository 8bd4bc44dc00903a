"""`--pipeline two-stage`: diffuse at half the size, upsample the latents 2x, refine at the full size.

This is LTX-2's own recipe for its distilled model (diffusers' LTX-2 docs, Lightricks' `distilled.py`):
1. the distilled 8-step schedule at half width and height (a quarter of the tokens);
2. `LTX2LatentUpsamplerModel` doubles the latents' width and height (stock `LTX2LatentUpsamplePipeline`, which
   reads only the VAE's configuration, so it gets the same latent-statistics stand-in as the diffusion stage);
3. three refine steps at the full size from the official sigmas [0.909375, 0.725, 0.421875, 0]: the upsampled
   video latents and the stage-one audio latents are re-noised to the first sigma (`noise_scale`) and denoised
   again by the stock `LTX2Pipeline`.

The transformer stays loaded from step 1 to step 3: it is the same model, and reading its 35 GB again would cost
about 16 s, while the upsampler (about 1 GB) and its activations fit beside it at far less than the refine's own
activation peak. The upsampler loads and frees between the two. The stage-one latents are saved (atomically)
before the upsampler runs, so a failure later resumes from them with `--refine-from`.

Everything here that runs before the first weight is read (validation, reading a stage-one file's metadata) is
pure: no torch import.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

from ltx2gen.checkpoint import GUIDANCE_OFF, Guidance, detect_pipeline, from_hub_cache, is_local_path
from ltx2gen.errors import ConfigError
from ltx2gen.files import safetensors_header
from ltx2gen.report import command_line

STAGE_ONE_STEPS = 8  # the distilled schedule
REFINE_SIGMAS = [0.909375, 0.725, 0.421875]  # diffusers' STAGE_2_DISTILLED_SIGMA_VALUES; the scheduler appends 0
STAGE_ONE_KIND = "two-stage stage one"
UPSAMPLER_SUBFOLDER = "latent_upsampler"
# The settings a stage-one latents file fixes: a resumed refine takes them from the file.
CLIP_FIELDS = ("prompt", "negative_prompt", "seed", "width", "height", "num_frames", "fps", "model", "upsampler")


def stage_one_path(config) -> Path:
    return config.output.with_suffix(".stage1.latents.safetensors")


def nearest_multiples_of_64(value: int) -> str:
    lower, upper = max(64, value // 64 * 64), max(64, math.ceil(value / 64) * 64)
    return f"{lower}" if lower == upper else f"{lower} or {upper}"


def validate(config) -> None:
    """Two-stage constraints, checked in `GenerateConfig.from_args` before anything is loaded."""
    for name in ("width", "height"):
        value = getattr(config, name)
        if value % 64:
            raise ConfigError(f"--{name} {value}: --pipeline two-stage needs a multiple of 64 (stage one runs at "
                              f"half the size, which must be a multiple of 32); try {nearest_multiples_of_64(value)}")
    if config.steps is not None and config.steps != STAGE_ONE_STEPS:
        raise ConfigError(f"--steps {config.steps}: two-stage runs the distilled schedule ({STAGE_ONE_STEPS} steps) "
                          f"and then {len(REFINE_SIGMAS)} refine steps; omit --steps")
    for name, off in GUIDANCE_OFF.items():
        value, flag = getattr(config, name), f"--{name.replace('_', '-')}"
        if value is not None and value != off:
            raise ConfigError(f"{flag} {value:g}: two-stage runs the distilled model without guidance; omit {flag} "
                              "(or use --pipeline full for guidance)")
    if config.num_frames is None:
        raise ConfigError("--num-frames auto: not with --pipeline two-stage, which runs on LTX-2.0 models only so "
                          "far, and those have no duration head; give --num-frames N (8n+1)")
    for flag, path in config.conditioning_inputs:
        raise ConfigError(f"{flag} {path}: conditioning is not built into --pipeline two-stage yet (the refine "
                          "would have to re-impose it at full size); use --pipeline distilled")
    detected, reason = detect_pipeline(config.model)
    if detected != "distilled":
        print(f"warning: --model {config.model} does not look like a distilled checkpoint ({reason}); two-stage "
              "runs the distilled schedules (use e.g. rootonchair/LTX-2-19b-distilled)")
    if config.upsampler and is_local_path(config.upsampler):
        find_upsampler_folder(Path(config.upsampler).expanduser(), f"--upsampler {config.upsampler}")


def find_upsampler_folder(folder: Path, source: str) -> Path:
    """The folder holding the upsampler's config.json: `folder` itself or its latent_upsampler subfolder."""
    for candidate in (folder, folder / UPSAMPLER_SUBFOLDER):
        if (candidate / "config.json").is_file():
            return candidate
    raise ConfigError(f"{source}: no latent upsampler there (no config.json in it or in its {UPSAMPLER_SUBFOLDER}/ "
                      "folder); give --upsampler PATH|REPO, e.g. Lightricks/LTX-2 (its latent_upsampler folder)")


def resolve_upsampler(upsampler: str | None, model_dir: Path) -> Path:
    """Called by the plan: the upsampler's folder, from --upsampler or the model's latent_upsampler subfolder.
    A repo id comes from the Hugging Face cache (downloaded unless HF_HUB_OFFLINE=1). Raises ConfigError."""
    if upsampler is None:
        return find_upsampler_folder(model_dir, f"--model {model_dir} (the default upsampler location)")
    if is_local_path(upsampler):
        return find_upsampler_folder(Path(upsampler).expanduser().resolve(), f"--upsampler {upsampler}")
    from huggingface_hub import snapshot_download

    folder = from_hub_cache(f"--upsampler {upsampler}", lambda: snapshot_download(
        upsampler, allow_patterns=[f"{UPSAMPLER_SUBFOLDER}/*"]), " or give a local folder")
    return find_upsampler_folder(folder, f"--upsampler {upsampler}")


def read_stage_one_metadata(path: Path) -> dict:
    """The metadata of a stage-one latents file, read from the safetensors header alone (no torch)."""
    try:
        metadata = json.loads(safetensors_header(path)[0]["__metadata__"]["ltx2gen"])
    except FileNotFoundError:
        raise ConfigError(f"--refine-from {path}: no such file") from None
    except (OSError, struct.error, ValueError, KeyError, TypeError):
        raise ConfigError(f"--refine-from {path}: not an ltx2gen latents file") from None
    if metadata.get("kind") != STAGE_ONE_KIND:
        raise ConfigError(f"--refine-from {path}: not a two-stage stage-one latents file (a finished clip's "
                          "latents decode with decode_latents.py)")
    return metadata


def settings_from_stage_one(values: dict, defaults: dict) -> dict:
    """`--refine-from FILE`: the clip's settings come from the file. A setting also given on the command line must
    agree with it (a different prompt or seed would refine latents it did not make). The output is the
    interrupted run's unless --output is given."""
    metadata = read_stage_one_metadata(Path(values["refine_from"]).expanduser())
    if values["pipeline"] not in ("auto", "two-stage"):
        raise ConfigError(f"--refine-from resumes a two-stage run; drop --pipeline {values['pipeline']}")
    stored = dict(metadata["clip"])
    values = dict(values, pipeline="two-stage")
    if values["output"] == defaults["output"]:
        values.update(output=stored["output"], no_timestamp=True)
    for name in CLIP_FIELDS:
        given = values[name]
        if given != defaults[name] and str(given) != str(stored[name]):
            raise ConfigError(f"--{name.replace('_', '-')} {given}: the stage-one latents were made with "
                              f"{stored[name]!r}; drop the flag to take it from the file")
        values[name] = given if given != defaults[name] else stored[name]
    values["output"] = Path(values["output"])
    return values


def size_text(width: int, height: int) -> str:
    return f"{width}x{height}"


def describe(config) -> str:
    """The plan line's pipeline part."""
    start = "from its stage-one latents, " if config.refine_from else ""
    return (f"two-stage ({start}{size_text(config.width // 2, config.height // 2)}, {STAGE_ONE_STEPS} distilled "
            f"steps -> 2x latent upsample -> {size_text(config.width, config.height)}, {len(REFINE_SIGMAS)} refine "
            "steps)")


def resume_command(config, plan) -> str:
    """generate.py with the stage-one file: every clip setting is in the file; the LoRAs and the transformer's
    precision are given again so the refine uses the same weights as stage one."""
    arguments = ["--refine-from", str(stage_one_path(config)), "--fp8", plan.fp8]
    for spec in config.lora:
        arguments += ["--lora", spec.label, f"{spec.scale:g}"]
    return command_line("generate.py", "generate", arguments)


def failure_advice(config, plan) -> str | None:
    """What to tell the user when the diffusion stage fails: resume the refine if stage one is on disk."""
    if config.pipeline != "two-stage" or not stage_one_path(config).is_file():
        return None
    return f"the stage-one latents are kept; resume the refine with:\n  {resume_command(config, plan)}"


def discard_stage_one(config) -> None:
    """After success the stage-one latents are no longer needed (kept with --keep-latents)."""
    if config.pipeline == "two-stage" and not config.keep_latents:
        stage_one_path(config).unlink(missing_ok=True)


def refine_call(config) -> dict:
    from ltx2gen.diffusion import pipeline_call_arguments

    # Two-stage is LTX-2.0's alone so far (`plan.refuse_what_the_version_lacks`).
    call = pipeline_call_arguments(width=config.width, height=config.height, num_frames=config.num_frames,
                                   fps=float(config.fps), steps=len(REFINE_SIGMAS), guidance=Guidance(),
                                   distilled=False, version="2.0")
    return dict(call, sigmas=list(REFINE_SIGMAS), noise_scale=REFINE_SIGMAS[0])


def refine_seed(seed: int) -> int:
    # The refine's re-noise must not repeat stage one's noise stream, and a resumed refine must draw the same noise.
    return seed + 1


def load_upsampler(stage, folder: Path, device, dtype):
    from diffusers.pipelines.ltx2.latent_upsampler import LTX2LatentUpsamplerModel

    return stage.load("latent_upsampler", lambda: LTX2LatentUpsamplerModel.from_pretrained(
        folder, torch_dtype=dtype, device_map=str(device)).eval().requires_grad_(False))


def upsample(stage, plan, video_latents, *, width: int, height: int, num_frames: int):
    """Stock `LTX2LatentUpsamplePipeline` on the denormalized stage-one latents (the upsampler works in the VAE's
    own units); the upsampler is freed before returning."""
    import torch
    from diffusers.pipelines.ltx2 import LTX2LatentUpsamplePipeline

    from ltx2gen.components import component_class
    from ltx2gen.stand_ins import LatentStatistics

    upsampler = load_upsampler(stage, plan.upsampler_dir, plan.device, plan.dtype)
    statistics = LatentStatistics.load(component_class(plan.model_dir, "vae"), plan.model_dir / "vae", plan.device)
    pipe = LTX2LatentUpsamplePipeline(vae=statistics, latent_upsampler=upsampler)
    with torch.no_grad():
        upsampled = pipe(latents=video_latents.to(plan.device), width=width, height=height, num_frames=num_frames,
                         output_type="latent", return_dict=False)[0]
    del pipe, upsampler
    stage.release("latent_upsampler")
    return upsampled


def refine(denoiser, conditioning, video_latents, audio_latents, *, call: dict, seed: int, nag_settings=None):
    """The stock pipeline from the given latents, through the refine sigmas as given (`call` holds them)."""
    from ltx2gen.diffusion import run_denoiser

    device = denoiser.device
    return run_denoiser(denoiser, conditioning, call, seed, nag_settings=nag_settings,
                        inputs=dict(latents=video_latents.to(device), audio_latents=audio_latents.to(device)))


def stage_one_metadata(config, plan) -> dict:
    """The latents file's usual metadata at half the size (so decode_latents.py previews it), plus the clip's
    settings for `--refine-from`."""
    clip = {name: getattr(config, name) for name in CLIP_FIELDS}
    # An absolute output, so the resumed run writes the same file from any folder.
    clip.update(fps=str(config.fps), output=str(config.output.resolve()), model=plan.model_reference(config.model))
    return dict(plan.latents_metadata(config), width=config.width // 2, height=config.height // 2,
                kind=STAGE_ONE_KIND, clip=clip)


def diffuse(stage, denoiser, config, plan, conditioning):
    """Stage 2 of a two-stage run with the loaded denoiser: stage one (or its saved latents), upsample, refine, all
    with the one transformer load."""
    import time

    from ltx2gen import diffusion, latents

    half_width, half_height = config.width // 2, config.height // 2
    started = time.perf_counter()
    if config.refine_from:
        saved = latents.load_latents(config.refine_from)
        first_video, first_audio, first_record = saved.video, saved.audio, {"resumed_from": str(config.refine_from)}
        print(f"stage one: resumed from {config.refine_from}", flush=True)
    else:
        first = diffusion.run_denoiser(denoiser, conditioning, plan.call, config.seed, nag_settings=plan.nag)
        path = latents.save_latents(stage_one_path(config), first.video_latents, first.audio_latents,
                                    stage_one_metadata(config, plan))
        print(f"saved stage-one latents: {path}", flush=True)
        first_video, first_audio = first.video_latents, first.audio_latents
        first_record = {"pipeline_call": first.pipeline_call, "scheduler_sigmas": first.sigmas,
                        "transformer_calls": first.transformer_calls, "latents": str(path)}
    stage_one_seconds, started = time.perf_counter() - started, time.perf_counter()
    upsampled = upsample(stage, plan, first_video, width=half_width, height=half_height, num_frames=config.num_frames)
    upsample_seconds, started = time.perf_counter() - started, time.perf_counter()
    call = refine_call(config)
    result = refine(denoiser, conditioning, upsampled, first_audio, call=call, seed=refine_seed(config.seed),
                    nag_settings=plan.nag)
    result.stages = [
        dict(stage="stage one", width=half_width, height=half_height, steps=STAGE_ONE_STEPS,
             seconds=round(stage_one_seconds, 3), **first_record),
        dict(stage="upsample", upsampler=str(plan.upsampler_dir), width=config.width, height=config.height,
             seconds=round(upsample_seconds, 3)),
        dict(stage="refine", width=config.width, height=config.height, steps=len(REFINE_SIGMAS),
             noise_scale=call["noise_scale"], noise=f"torch.Generator('cpu').manual_seed({refine_seed(config.seed)})",
             scheduler_sigmas=result.sigmas, transformer_calls=result.transformer_calls,
             seconds=round(time.perf_counter() - started, 3)),
    ]
    result.transformer_calls += first_record.get("transformer_calls", 0)
    return result
