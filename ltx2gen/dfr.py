"""`--pipeline dfr`: LTX-2.5's Diffusion Fidelity Rendering, composed from diffusers' stock DFR pipelines in the order
diffusers' LTX-2 documentation and Lightricks' `dfr_pipeline.py` run them:

1. stage one: `LTX2DFRPipeline` at half the width and height, the distilled 8-step schedule, generating single-frame
   keyframe slots on a segment grid of 3 or 4 latent frames (`dfr_layout.resolve_canvas`; the canvas is padded to
   whole segments);
2. the model's x2 spatial latent upsampler on the video and on the slots (stock `LTX2LatentUpsamplePipeline`);
3. stage two: `LTX2DFRPipeline` at the full size from the upsampled video and slots, stage one's canvas as its
   in-context reference, the three refine sigmas;
4. each `--temporal-rounds` round: `LTX2DFRTemporalRefinePipeline` interpolates the canvas x2 in time with the
   temporal latent upsampler and re-denoises it in tiles cut on keyframe seams (ancestral Euler, eta 0.5): N frames
   become 2(N-1)+1 at twice the frame rate, the model's own frame-rate doubling.

The audio is stage one's (stage two re-denoises it only for the video's cross-attention; the rounds follow it
frozen). The canvas is trimmed to the clip's frames before the decode. The transformer is loaded once for every
pass; each upsampler loads and frees between them. Each pass's latents are saved (atomically) before the next
begins (`dfr_passes`), so a failure keeps the last finished one and `--dfr-from` resumes after it. The detailing
IC-LoRA (`--detailing-lora`, optional as in Lightricks' pipeline) joins stage two alone as an adapter, as diffusers'
documentation loads it; a `--lora` is fused for every pass.

One difference from the documentation's composition, on purpose: every pass draws its noise from a generator of its
own (seed + pass index; the documentation threads one generator through all), so that a pass can be repeated alone.

Validation (`validate`, `check_temporal_upsampler`) is pure: no torch import.
"""

from __future__ import annotations

import contextlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

from ltx2gen.checkpoint import GUIDANCE_OFF
from ltx2gen.dfr_passes import load_pass, read_pass_metadata, save_pass
from ltx2gen.errors import ConfigError, nearest_multiples
from ltx2gen.flags import opt

TEMPORAL_ROUNDS = (0, 1, 2)
STAGE_ONE_STEPS = 8  # diffusers' DISTILLED_SIGMA_VALUES
STAGE_TWO_SIGMAS = [0.909375, 0.725, 0.421875]  # diffusers' STAGE_2_DISTILLED_SIGMA_VALUES
ROUND_STEPS = 4  # diffusers' TEMPORAL_ROUND_DISTILLED_SIGMA_VALUES: the distilled schedule from its fifth sigma
ROUND_ETA = 0.5  # the ancestral noise fraction of a round (diffusers' TEMPORAL_ANCESTRAL_ETA)
SIZE_STEP = 64  # stage one runs at half the size, on the VAE's 32-pixel grid
CHECKPOINT_SCHEDULER = "the checkpoint's FlowMatchEulerDiscreteScheduler, sigmas as given (no shifting)"


@dataclass(frozen=True)
class DfrOptions:
    """The flags of `--pipeline dfr`."""

    temporal_rounds: int = opt(
        0, "--pipeline dfr: temporal refine rounds, each doubling the frame rate with frames the model makes itself "
           "(N frames become 2(N-1)+1 at twice the fps): 0, 1 (24 to 48 fps) or 2 (to 96 fps), with the "
           "temporal upsampler below", type=int, choices=TEMPORAL_ROUNDS, metavar="N")
    dfr_from: Path | None = opt(
        None, "--pipeline dfr: resume from the latents of a finished pass (NAME.dfrK.latents.safetensors, kept when "
              "a later pass failed): the passes after it, then the decode; the prompt, size, seed, temporal rounds "
              "and output come from the file", type=Path, metavar="FILE")
    detailing_lora: str | None = opt(
        None, "--pipeline dfr: the detailing IC-LoRA for stage two (Lightricks/LTX-2.5-22b-IC-LoRA-Pixel-Spatial-"
              "Upscaler, or its .safetensors file, or REPO::FILE), an adapter for that pass alone; optional, as in "
              "Lightricks' own pipeline", metavar="PATH|REPO")
    detailing_strength: float = opt(0.5, "--pipeline dfr: the detailing IC-LoRA's strength (diffusers' documented "
                                         "0.5; Lightricks' pipeline: 1)", metavar="S")
    temporal_upsampler: Path | None = opt(
        None, "--pipeline dfr with --temporal-rounds: LTX-2.5's temporal latent upsampler as a diffusers folder "
              "(config.json and weights, converted from Lightricks' ltx-2.5-latent-temporal-upscaler-x2)", type=Path,
        metavar="FOLDER")


def output_frames(num_frames: int, rounds: int) -> int:
    """The clip's frames after `rounds` temporal rounds of a canvas of `num_frames`."""
    return (num_frames - 1) * 2**rounds + 1


def validate(config) -> None:
    """`--pipeline dfr` and its flags, checked in `GenerateConfig.from_values` before anything is loaded."""
    if config.pipeline != "dfr":
        for name, flag in (("temporal_rounds", "--temporal-rounds"), ("temporal_upsampler", "--temporal-upsampler"),
                           ("dfr_from", "--dfr-from"), ("detailing_lora", "--detailing-lora")):
            if getattr(config, name):
                raise ConfigError(f"{flag} is for --pipeline dfr (LTX-2.5's recipe); add --pipeline dfr or drop it")
        return
    for name, value in (("width", config.width), ("height", config.height)):
        if value % SIZE_STEP:
            raise ConfigError(f"--{name} {value}: --pipeline dfr runs stage one at half the size, on the VAE's "
                              f"32-pixel grid; give a multiple of {SIZE_STEP}: try "
                              f"{nearest_multiples(value, SIZE_STEP)}")
    if config.num_frames is not None and config.num_frames < 9:
        raise ConfigError(f"--num-frames {config.num_frames}: --pipeline dfr lays keyframes on a grid of 24- or "
                          "32-frame segments; give at least 9 frames (8n+1)")
    if config.steps is not None and config.steps != STAGE_ONE_STEPS:
        raise ConfigError(f"--steps {config.steps}: dfr runs the distilled schedule ({STAGE_ONE_STEPS} steps), then "
                          f"{len(STAGE_TWO_SIGMAS)} at the full size and {ROUND_STEPS} per temporal round; omit "
                          "--steps")
    for name, off in GUIDANCE_OFF.items():
        value, flag = getattr(config, name), f"--{name.replace('_', '-')}"
        if value is not None and value != off:
            raise ConfigError(f"{flag} {value:g}: dfr runs the distilled model without guidance; omit {flag}")
    taken = [flag for flag, value in (("--nag-scale", config.nag_scale), ("--prompt-at", config.prompt_at),
                                      ("--extend", config.extend), ("--refine-from", config.refine_from)) if value]
    taken += [flag for flag, _ in config.conditioning_inputs]
    if taken or config.windows:
        what = taken[0] if taken else f"{config.num_frames} frames in windows"
        raise ConfigError(f"{what}: --pipeline dfr renders one clip from its prompt alone yet; use --pipeline "
                          "distilled for it")
    if not (math.isfinite(config.detailing_strength) and 0 < config.detailing_strength <= 1):
        raise ConfigError(f"--detailing-strength {config.detailing_strength}: must be above 0 and at most 1")
    done = read_pass_metadata(config.dfr_from)["pass"] if config.dfr_from else 0
    if config.temporal_rounds < done - 1:
        raise ConfigError(f"--temporal-rounds {config.temporal_rounds}: --dfr-from {config.dfr_from} is after temporal "
                          f"round {done - 1}; give --temporal-rounds {done - 1} or more")
    if config.temporal_rounds and config.temporal_upsampler is None:
        raise ConfigError(f"--temporal-rounds {config.temporal_rounds} needs --temporal-upsampler FOLDER: LTX-2.5's "
                          "temporal latent upsampler (Lightricks/LTX-2.5, latent_upscale_models/ltx-2.5-latent-"
                          "temporal-upscaler-x2-bf16-1.0.safetensors) converted to a diffusers folder with diffusers' "
                          "scripts/convert_ltx2_to_diffusers.py --temporal_latent_upsampler")
    if config.temporal_upsampler is not None:
        if not config.temporal_rounds:
            raise ConfigError("--temporal-upsampler has no effect with --temporal-rounds 0; give --temporal-rounds 1 "
                              "or 2, or drop it")
        check_temporal_upsampler(Path(config.temporal_upsampler).expanduser())


def check_temporal_upsampler(folder: Path) -> None:
    """A folder holding a temporal x2 `LTX2LatentUpsamplerModel`, from its configuration alone."""
    flag = f"--temporal-upsampler {folder}"
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(f"{flag}: cannot read its config.json ({err}); give the folder of a converted temporal "
                          "latent upsampler") from None
    if config.get("_class_name") != "LTX2LatentUpsamplerModel":
        raise ConfigError(f"{flag}: a {config.get('_class_name')}, not an LTX-2 latent upsampler "
                          "(LTX2LatentUpsamplerModel)")
    if not config.get("temporal_upsample") or config.get("spatial_upsample", True):
        raise ConfigError(f"{flag}: a spatial latent upsampler; the temporal rounds need the temporal one "
                          "(temporal_upsample true, spatial_upsample false in its config.json)")
    if not any(folder.glob("*.safetensors")):
        raise ConfigError(f"{flag}: no .safetensors weights in the folder")


def check_model(model_dir: Path, model: str) -> None:
    """At planning, before any weight: the model's transformer places keyframe slots (LTX-2.5 and later) and the
    model ships its spatial upsampler."""
    transformer = json.loads((model_dir / "transformer" / "config.json").read_text())
    if not transformer.get("use_keyframes_abs_pos_embedding"):
        raise ConfigError(f"--pipeline dfr: {model} cannot place keyframe slots (its transformer's configuration has "
                          "no use_keyframes_abs_pos_embedding); dfr is LTX-2.5's recipe: use Lightricks/LTX-2.5-"
                          "Diffusers, or --pipeline two-stage")
    if not (model_dir / "latent_upsampler" / "config.json").is_file():
        raise ConfigError(f"--pipeline dfr: {model} has no latent_upsampler/ folder for the x2 spatial upsample")


def resolve_detailing(config, model_dir: Path, version: str):
    """At planning, before any weight: the detailing IC-LoRA found and checked against the model (`lora`), or None."""
    if not config.detailing_lora:
        return None
    from ltx2gen.lora import LoraSpec, resolve_loras

    source, _, weight_name = config.detailing_lora.partition("::")
    return resolve_loras((LoraSpec(source, weight_name or None, config.detailing_strength),), model_dir, version)[0]


def check_detailing_fits(detailing, fp8: str, offload: str, compiled: bool) -> None:
    """The detailing IC-LoRA joins stage two as an unfused adapter (diffusers' documented way, removed for the
    rounds), which needs the transformer resident in bf16 and uncompiled."""
    if detailing and (fp8 != "off" or offload != "none" or compiled):
        held = ", ".join(what for what, taken in (
            (f"fp8 {fp8}", fp8 != "off"), (f"{offload} offload", offload != "none"), ("compiled", compiled)) if taken)
        raise ConfigError(f"--detailing-lora {detailing.spec.label}: an adapter for stage two alone needs the "
                          f"transformer resident in bf16 and uncompiled, and this run holds it {held}; drop "
                          "--detailing-lora, or give --fp8 off --offload none on a GPU that holds it")


@contextlib.contextmanager
def detailing_adapter(pipe, detailing):
    """Within this scope `pipe`'s transformer carries the detailing IC-LoRA as an adapter at its strength; it is
    unloaded afterwards, the weights as they were."""
    if detailing is None:
        yield
        return
    state = pipe.lora_state_dict(str(detailing.path))
    pipe.load_lora_weights({key: value for key, value in state.items() if key.startswith("transformer.")},
                           adapter_name="detailing")
    pipe.set_adapters(["detailing"], adapter_weights=[detailing.spec.scale])
    try:
        yield
    finally:
        pipe.unload_lora_weights()


def canvas(num_frames: int) -> tuple[int, list[int]]:
    """The padded canvas's frames and stage one's keyframe slot positions (diffusers' `resolve_canvas`)."""
    from diffusers.pipelines.ltx2.dfr_layout import resolve_canvas

    padded, _, positions = resolve_canvas(num_frames)
    return padded, positions


def planned_tokens(config) -> int:
    """The video tokens of the largest transformer call of the clip, or with --num-frames auto of any length near
    the longest it may choose (a shorter one may pad its canvas further)."""
    if config.num_frames is not None:
        return pass_tokens(config.width, config.height, config.num_frames, config.temporal_rounds)
    longest = config.planned_num_frames
    return max(pass_tokens(config.width, config.height, frames, config.temporal_rounds)
               for frames in range(max(9, longest - 32), longest + 1, 8))


def pass_tokens(width: int, height: int, num_frames: int, rounds: int) -> int:
    """The video tokens of the largest transformer call: stage two (its canvas, its slots and stage one's canvas at
    half the size as its reference) or a temporal round's largest tile (its frames, anchors and new slots)."""
    from diffusers.pipelines.ltx2.dfr_layout import temporal_tile_plan

    padded, positions = canvas(num_frames)
    latent_frames, grid = (padded - 1) // 8 + 1, (height // 32) * (width // 32)
    largest = (latent_frames + len(positions)) * grid + latent_frames * grid // 4
    for round_index in range(1, rounds + 1):  # each doubles the canvas; its seams and new slots carry on
        padded, positions = 2 * (padded - 1) + 1, [2 * position for position in positions]
        tiles = temporal_tile_plan(positions, padded, 2**round_index)
        largest = max(largest, *((tile.interval.end - tile.interval.start + len(tile.anchors) + len(tile.slots))
                                 * grid for tile in tiles))
        positions = sorted({*positions, *(slot for tile in tiles for slot in tile.slots)})
    return largest


def describe(config) -> str:
    """The plan line's pipeline part (with --num-frames auto, the grid is laid once the length is chosen)."""
    if config.num_frames is None:
        slots, rounds = "keyframe slots on the grid of the length chosen", "".join(
            f" -> temporal round {r} (x{2**r} frames at {float(config.fps) * 2**r:g} fps)"
            for r in range(1, config.temporal_rounds + 1))
    else:
        padded, positions = canvas(config.num_frames)
        rounds = "".join(f" -> temporal round {r} ({output_frames(config.num_frames, r)} frames at "
                         f"{float(config.fps) * 2**r:g} fps)" for r in range(1, config.temporal_rounds + 1))
        slots = f"{len(positions)} keyframe slot{'s' if len(positions) > 1 else ''} on a {padded}-frame canvas"
    return (f"dfr ({config.width // 2}x{config.height // 2}, {STAGE_ONE_STEPS} distilled steps with {slots} -> x2 "
            f"latent upsample -> {config.width}x{config.height}, {len(STAGE_TWO_SIGMAS)} refine steps{rounds})")


def record(config) -> dict:
    """The latents file's and the sidecar's `dfr`: the clip as asked (its `num_frames` and `fps` are the output's)."""
    padded, positions = canvas(config.num_frames)
    return {"requested_num_frames": config.num_frames, "requested_fps": str(config.fps), "canvas_frames": padded,
            "keyframe_positions": positions, "temporal_rounds": config.temporal_rounds,
            "temporal_upsampler": str(config.temporal_upsampler) if config.temporal_upsampler else None,
            "detailing_lora": config.detailing_lora, "detailing_strength": config.detailing_strength}


def noise(seed: int, index: int):
    """Pass `index`'s generator: its own, so that each pass can be repeated alone."""
    import torch

    return torch.Generator("cpu").manual_seed(seed + index)


def diffuse(stage, denoiser, plan, conditioning):
    """Stage 2 of a dfr run with the loaded denoiser: every pass with the one transformer load (with --dfr-from, those
    after the pass it saved), each pass's latents saved before the next begins. Returns the trimmed canvas and stage
    one's audio."""
    import time

    from diffusers import LTX2DFRPipeline
    from diffusers.pipelines.ltx2.utils import DISTILLED_SIGMA_VALUES

    from ltx2gen import diffusion, two_stage
    from ltx2gen.patches import given_text_conditioning

    config, device = plan.settings, denoiser.device
    conditioning = conditioning.to(device)
    pipe = over_components(LTX2DFRPipeline, denoiser.pipe)
    common = dict(frame_rate=float(config.fps), output_type="latent", **conditioning.pipeline_inputs())
    denoiser.calls.clear()
    stages, started = [], time.perf_counter()
    done, last = load_pass(config.dfr_from) if config.dfr_from else (-1, None)
    if config.dfr_from:
        stages.append(dict(stage=f"resumed after pass {done}", latents=str(config.dfr_from), transformer_calls=0))
        print(f"dfr: resumed from pass {done}'s latents ({config.dfr_from})", flush=True)
    audio = last.audio if last else None  # stage one's, throughout

    def finished(name: str, index: int, output, **facts):
        nonlocal started
        path = save_pass(plan, index, output, audio)
        stages.append(dict(stage=name, noise=f"torch.Generator('cpu').manual_seed({config.seed + index})",
                           transformer_calls=len(denoiser.calls) - sum(s["transformer_calls"] for s in stages),
                           seconds=round(time.perf_counter() - started, 3), latents=str(path), **facts))
        started = time.perf_counter()

    if done < 0:
        with given_text_conditioning(pipe, conditioning, sigmas_as_given=False):
            last = pipe(height=config.height // 2, width=config.width // 2, num_frames=config.num_frames,
                        generator=noise(config.seed, 0), **common)
        audio = last.audio
        finished("stage one", 0, last, width=config.width // 2, height=config.height // 2, steps=STAGE_ONE_STEPS,
                 sigmas=list(DISTILLED_SIGMA_VALUES), scheduler=CHECKPOINT_SCHEDULER,
                 keyframe_positions=last.keyframe_positions)
    if done < 1:
        first, half = last, dict(width=config.width // 2, height=config.height // 2)
        video, keyframes = two_stage.upsample(stage, plan, first.frames, first.keyframes, **half)
        with given_text_conditioning(pipe, conditioning, sigmas_as_given=False), \
                detailing_adapter(pipe, plan.detailing):
            last = pipe(height=config.height, width=config.width, num_frames=config.num_frames, latents=video,
                        audio_latents=audio, keyframes_latents=keyframes,
                        keyframe_positions=first.keyframe_positions, reference_latents=first.frames,
                        reference_downscale_factor=2, sigmas=STAGE_TWO_SIGMAS, noise_scale=STAGE_TWO_SIGMAS[0],
                        generator=noise(config.seed, 1), **common)
        del first, video, keyframes
        finished("stage two", 1, last, width=config.width, height=config.height, steps=len(STAGE_TWO_SIGMAS),
                 sigmas=STAGE_TWO_SIGMAS, noise_scale=STAGE_TWO_SIGMAS[0], scheduler=CHECKPOINT_SCHEDULER,
                 upsampler=str(plan.upsampler.folder), reference_downscale_factor=2,
                 detailing=plan.detailing.record() if plan.detailing else None)
    if config.temporal_rounds > max(0, done - 1):
        last = temporal_rounds(stage, plan, denoiser.pipe, conditioning, audio, last, finished, max(1, done))
    video = last.frames[:, :, :(output_frames(config.num_frames, config.temporal_rounds) - 1) // 8 + 1]
    return diffusion.DiffusionResult(
        video_latents=video.detach().to("cpu"), audio_latents=audio.detach().to("cpu"),
        pipeline_call={"pipeline": "LTX2DFRPipeline, LTX2DFRTemporalRefinePipeline", **record(config)},
        sigmas=[], timesteps=[], transformer_calls=len(denoiser.calls), stages=stages)


def temporal_rounds(stage, plan, loaded, conditioning, audio, last, finished, first_round: int):
    """The rounds from `first_round` on, with the temporal upsampler loaded once for all of them and freed after;
    `loaded` is the denoiser's pipeline, whose components the rounds' pipeline takes; `audio` stage one's."""
    from diffusers import LTX2DFRTemporalRefinePipeline, LTXEulerAncestralRFScheduler
    from diffusers.pipelines.ltx2.latent_upsampler import LTX2LatentUpsamplerModel
    from diffusers.pipelines.ltx2.utils import DISTILLED_SIGMA_VALUES

    from ltx2gen.patches import given_text_conditioning

    config = plan.settings
    folder = Path(config.temporal_upsampler).expanduser()
    upsampler = stage.load("temporal_upsampler", lambda: LTX2LatentUpsamplerModel.from_pretrained(
        folder, torch_dtype=plan.dtype, device_map=str(plan.device)).eval().requires_grad_(False))
    refine = over_components(LTX2DFRTemporalRefinePipeline, loaded, temporal_latent_upsampler=upsampler,
                             scheduler=LTXEulerAncestralRFScheduler(eta=ROUND_ETA))
    seconds = float(canvas(config.num_frames)[0] / config.fps)  # of stage one's audio, which every round follows
    for round_index in range(first_round, config.temporal_rounds + 1):
        with given_text_conditioning(refine, conditioning, sigmas_as_given=False):
            last = refine(latents=last.frames, keyframes_latents=last.keyframes,
                          keyframe_positions=last.keyframe_positions, audio_latents=audio,
                          height=config.height, width=config.width, num_frames=first_frames(last.frames),
                          frame_rate=float(config.fps) * 2 ** (round_index - 1), source_seconds=seconds,
                          condition_num_frames=config.num_frames, round_index=round_index,
                          generator=noise(config.seed, 1 + round_index), output_type="latent",
                          **conditioning.pipeline_inputs())
        finished(f"temporal round {round_index}", 1 + round_index, last, steps=ROUND_STEPS,
                 sigmas=list(DISTILLED_SIGMA_VALUES[-ROUND_STEPS:]),
                 scheduler=f"LTXEulerAncestralRFScheduler(eta={ROUND_ETA})",
                 num_frames=first_frames(last.frames), fps=float(config.fps) * 2**round_index,
                 temporal_upsampler=str(folder))
    del refine, upsampler
    stage.release("temporal_upsampler")
    return last


def over_components(cls, pipe, **replaced):
    """diffusers' stock `cls` over the loaded pipeline's components (those it takes), `replaced` instead of some; a
    component the stage does not hold (the text encoder, the vocoder) is None."""
    import inspect

    taken = [name for name in inspect.signature(cls.__init__).parameters if name != "self"]
    return cls(**{name: replaced.get(name, pipe.components.get(name)) for name in taken})


def first_frames(latents) -> int:
    """The pixel frames of a canvas (or of keyframe slots laid end to end) of these latents."""
    return (latents.shape[2] - 1) * 8 + 1
