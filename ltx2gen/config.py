"""Command-line configuration: one dataclass is the single source of defaults, help text and validation.

Everything here is pure and cheap (no torch import), so bad input is rejected before any weight is read.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import secrets
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from functools import cached_property
from pathlib import Path

from ltx2gen import continuation, dfr, dfr_passes, duration, pipeline_choice, timed_prompts, two_stage
from ltx2gen.checkpoint import (
    DEFAULT_NEGATIVE_PROMPT,
    FULL_MODEL_SETTINGS,
    GUIDANCE_MOST,
    GUIDANCE_OFF,
    RECOMMENDED_FULL_GUIDANCE,
    latent_frame_count,
)
from ltx2gen.conditioners import CONDITIONERS, given_inputs
from ltx2gen.conditioners.audio import AudioOptions
from ltx2gen.conditioners.images import ImageOptions
from ltx2gen.conditioners.reference import ReferenceOptions
from ltx2gen.conditioners.retake import RetakeOptions
from ltx2gen.decode_options import DecodeOptions, validate_decode_options
from ltx2gen.dfr import DfrOptions
from ltx2gen.earlier_work import check_kept_work, continuation_length
from ltx2gen.errors import ConfigError, nearest_multiples
from ltx2gen.flag_values import (
    check_output_file,
    check_text,
    parse_fps,
    parse_num_frames,
    stamped,
    utf8_from_argv,
    validate_frame_count,
    validate_nag_options,
)
from ltx2gen.flags import OneLineErrors, add_fields, opt
from ltx2gen.lora import parse_lora_args
from ltx2gen.outputs import refuse_inputs_as_outputs
from ltx2gen.postprocess_options import PostprocessOptions, validate_postprocess_options
from ltx2gen.run_options import BatchOptions, PlanOnlyOptions
from ltx2gen.video import VideoFormat

DISTILLED_STEPS = 8
FULL = RECOMMENDED_FULL_GUIDANCE
FULL_STEPS_HELP = ", ".join(f"{settings.steps} for LTX-{version}" for version, settings in FULL_MODEL_SETTINGS.items())
FULL_STG_BLOCKS_HELP = ", ".join(f"{','.join(map(str, settings.stg_blocks))} for LTX-{version}"
                                 for version, settings in FULL_MODEL_SETTINGS.items())
@dataclass(frozen=True)
class GenerateConfig(DecodeOptions, PostprocessOptions, ImageOptions, AudioOptions, ReferenceOptions,
                     RetakeOptions, DfrOptions):
    """Everything one generation needs (the conditioners' flags are their own bases, `ltx2gen.conditioners`).
    Built only through `from_args` or `from_values`, which validate."""

    prompt: str = opt(None, "what to generate (required)")
    negative_prompt: str | None = opt(None, "what to avoid; used with guidance above 1.0, and at any guidance with "
                                            "--nag-scale (which defaults it to LTX-2's default negative prompt)")
    output: Path = opt(Path("outputs/video.mp4"), "output MP4; a _YYYYMMDD_HHMMSS stamp is appended", type=Path)
    no_timestamp: bool = opt(False, "write exactly --output, without the timestamp")
    width: int = opt(768, "video width in pixels (positive, divisible by 32)")
    height: int = opt(512, "video height in pixels (positive, divisible by 32)")
    num_frames: int | None = opt(
        97, "number of frames, of the form 8n+1 (e.g. 97, 121, 161), or auto: the model chooses the clip's length from "
            "the prompt with its duration head (LTX-2.5 and later), within --min-seconds and --max-seconds",
        type=str, metavar="N|auto")
    min_seconds: float | None = opt(
        None, f"with --num-frames auto: the shortest clip the model may choose, in seconds (default "
              f"{duration.DEFAULT_MIN_SECONDS:g}, diffusers' and Lightricks' own)", metavar="S")
    max_seconds: float | None = opt(
        None, f"with --num-frames auto: the longest clip the model may choose, in seconds (default "
              f"{duration.DEFAULT_MAX_SECONDS:g}, diffusers' and Lightricks' own); the memory plan is made for a clip "
              "this long", metavar="S")
    fps: Fraction = opt(Fraction(24), "frame rate: 24, 25, 23.976 or an exact fraction such as 24000/1001",
                        type=str)
    steps: int | None = opt(None, f"denoising steps (default {DISTILLED_STEPS} distilled and two-stage stage one; "
                                  f"full: the version's recommended count, {FULL_STEPS_HELP})")
    guidance_scale: float | None = opt(
        None, f"classifier-free guidance of the video against --negative-prompt (default 1.0 = off for distilled, "
              f"{FULL.cfg:g} full)")
    audio_guidance_scale: float | None = opt(
        None, f"classifier-free guidance of the audio (default: --guidance-scale for distilled, {FULL.audio_cfg:g} "
              "full); CFG costs one transformer pass of twice the batch per step whenever either scale is above 1")
    stg_scale: float | None = opt(
        None, f"spatio-temporal guidance of video and audio, against a pass that skips the self-attention of the "
              f"version's block ({FULL_STG_BLOCKS_HELP}); default 0 = off for distilled, {FULL.stg:g} full; on, it "
              "costs one more transformer pass per step")
    modality_scale: float | None = opt(
        None, f"modality-isolation guidance of video and audio, against a pass without their cross-attention; "
              f"default 1 = off for distilled, {FULL.modality:g} full; above 1 it costs one more transformer pass "
              "per step")
    seed: int | None = opt(None, "random seed (random when omitted; always recorded in the sidecar)")
    pipeline: str = opt("auto", "auto (from the checkpoint: a distilled one renders two-stage, Lightricks' recipe for "
                                "it, where its latent upsampler is at hand and the clip suits it, else distilled, "
                                "saying why), distilled (fixed 8-step schedule at the full size), full (the "
                                "non-distilled model with guidance and a negative prompt) or two-stage (distilled: 8 "
                                "steps at half the size, latents upsampled x2, 3 refine steps at the full size; with "
                                "an x1.5 --upsampler stage one runs at two thirds of the size) or dfr (LTX-2.5's "
                                "Diffusion Fidelity Rendering: two-stage with keyframe slots and stage one as the "
                                "reference, then --temporal-rounds)",
                        choices=("auto", "distilled", "full", "two-stage", "dfr"))
    upsampler: str | None = opt(None, "two-stage: the latent upsampler, a folder (its config.json and weights, or a "
                                      "latent_upsampler/ folder in it) or a repo id whose latent_upsampler/ folder "
                                      "holds it; its config.json sets the scale, x2 or x1.5, and must be made for the "
                                      "model's version (default: the model's latent_upsampler/ folder; LTX-2.3, whose "
                                      f"repos have none: {two_stage.LTX23_UPSAMPLER_REPO} from the Hugging Face "
                                      "cache)",
                                metavar="PATH|REPO")
    refine_from: Path | None = opt(None, "two-stage: resume from a stage-one latents file (NAME.stage1.latents."
                                         "safetensors, kept when a later stage failed): upsample, refine and decode; "
                                         "the prompt, size, seed and output come from the file", type=Path,
                                   metavar="FILE")
    fp8: str = opt("auto", "transformer precision: weight (float8 weight storage, about half the memory), dynamic "
                           "(float8 weights and activations, compiled, for speed on Hopper and newer) or off (bf16); "
                           "auto = off on a discrete GPU where the whole run fits in bf16 (exact and faster), else "
                           "weight on GPUs of compute capability 8.9+ (always on integrated GPUs such as Jetson Thor, "
                           "whose memory the system shares), off elsewhere",
                   choices=("auto", "off", "weight", "dynamic"))
    no_fp8: bool = opt(False, "the same as --fp8 off")
    text_fp8: str = opt("auto", "Gemma text encoder precision: on stores its linear layers in float8 as they load "
                                "(about 12 instead of 22 GiB, the text stage's peak), off keeps bf16; auto = on "
                                "whenever the transformer is FP8. Where even the FP8 encoder does not fit, the memory "
                                "plan streams it in bf16", choices=("auto", "on", "off"))
    fp8_attention: str = opt("auto", "the video self-attention in float8 (cuDNN's FP8 attention, GPUs of compute "
                                     "capability 9.0+ with the nvidia-cudnn-frontend package): faster steps at large "
                                     "sizes, and a change of numbers (its output is rounded to float8); on fails "
                                     "before any weight is read where it cannot run; auto = on with --fp8 dynamic "
                                     "where it can run (said in one line where it cannot), off otherwise",
                             choices=("auto", "on", "off"))
    offload: str = opt("auto", "transformer weights in host memory: model (moved to the GPU whole while it runs), "
                               "group (block by block, overlapped with compute; for 24-32 GB GPUs) or sequential "
                               "(layer by layer; lowest GPU memory, slowest); files: each block read from the weight "
                               "files when it runs, for a host too small to hold the transformer (the page cache "
                               "keeps what it can between steps); auto picks the fastest that fits both the free GPU "
                               "memory and the host memory (and offloads the text encoder too when it does not fit "
                               "the GPU); discrete GPUs only",
                       choices=("auto", "none", "model", "group", "sequential", "files"))
    sequential_offload: bool = opt(False, "the same as --offload sequential")
    compile: str = opt("auto", "compile the transformer blocks with torch.compile: faster steps (4.7 instead of 5.1 s "
                               "at 1920x1088x161 on an H200) and 1.3 GiB less activation memory, for a one-time "
                               "compile (about 30 s the first time on a machine in bf16, 6 minutes with FP8 weights, "
                               "10 s once cached); auto = on with --fp8 dynamic (which needs it), where the clip's "
                               "shape is in the compile cache, or where a first compile pays for itself in the run; "
                               "eager otherwise, said in one line", choices=("auto", "on", "off"))
    lora: tuple = opt(None, "a LoRA to fuse: a local .safetensors file, REPO::FILE.safetensors or a repo id, "
                            "optionally followed by its scale in [-2, 2] (default 1); repeatable",
                      nargs="+", action="append", metavar="SPEC [SCALE]")
    lora_weight_name: str | None = opt(None, "file inside the --lora repo (older form of REPO::FILE)")
    lora_scale: float | None = opt(None, "scale of the --lora (older form of --lora SPEC SCALE)")
    camera: str | None = opt(None, "camera move with Lightricks' camera-control LoRA: dolly-in, dolly-out, "
                                   "dolly-left, dolly-right, jib-up, jib-down or static")
    list_lora_files: str | None = opt(None, "list the .safetensors files of a LoRA repo and exit", metavar="REPO")
    nag_scale: float = opt(0.0, "Normalized Attention Guidance: steers every block's text cross-attention (video and "
                                "audio) away from --negative-prompt, so negative prompts work at guidance 1 (the "
                                "distilled model) for one extra cross-attention per block, not a second transformer "
                                "pass: z = z+ + scale (z+ - z-); 0 = off (the default). The NAG paper's Wan2.1 "
                                "video setting (phi 9 in its phi z+ - (phi - 1) z- form) is 8 here")
    nag_tau: float = opt(2.5, "NAG clipping: where a token's guided output has more than tau times the L1 norm of its "
                              "unguided one, it is scaled down to tau times (at least 1; 2.5 is the NAG paper's "
                              "setting for DiT image and video models)")
    nag_alpha: float = opt(0.25, "NAG blend: alpha x guided + (1 - alpha) x unguided output (above 0, at most 1; "
                                 "0.25 is the NAG paper's setting for DiT image and video models)")
    enhance_prompt: bool = opt(False, "rewrite --prompt into a detailed LTX-2-style paragraph before encoding it "
                                      "(diffusers' prompt enhancement with Lightricks' system prompt, seeded by "
                                      "--seed): LTX-2.0/2.3 with their Gemma 3 text encoder, LTX-2.5 with "
                                      "--prompt-enhancer; the enhanced prompt is printed and recorded beside the "
                                      "original")
    prompt_enhancer: str = opt("google/gemma-4-E2B-it", "LTX-2.5 --enhance-prompt: the Gemma 4 instruct model that "
                                                        "rewrites the prompt (its text encoder is not trained to), a "
                                                        "repo id in the Hugging Face cache or a local folder",
                               metavar="REPO|PATH")
    seconds: float | None = opt(None, "the clip's length in seconds instead of --num-frames (rounded up to the next "
                                      "8n+1 frame count); longer than one window, it renders in windows", metavar="S")
    window_seconds: float | None = opt(
        None, "the longest window one denoising run renders: a longer clip renders as consecutive windows, each "
              "continuing the last, the transformer loaded once and the clip decoded once; default: at most "
              f"{continuation.WINDOW_MAX_SECONDS} s and the video tokens of 1920x1088x161", metavar="S")
    window_overlap: int = opt(1, "latent frames (8 frames each) that a window takes from what came before it (the "
                                 "last window, or the clip given to --extend), at strength 1; at least 1",
                              metavar="N")
    extend: Path | None = opt(None, "continue a clip: its latents file (.latents.safetensors), or an MP4 this tool "
                                    "wrote with --keep-latents (found through its sidecar); the output is one clip, "
                                    "the earlier one and the new segment, video and audio, with its size, frame rate "
                                    "and model, and its prompt unless --prompt gives a new one; --keyframe times "
                                    "count from the new segment's first frame", type=Path, metavar="FILE")
    extend_seconds: float | None = opt(None, "with --extend: the new segment's length (rounded up to whole 8-frame "
                                             "latent frames)", metavar="S")
    prompt_at: tuple = opt(None, "from TIME on (seconds, or fNN for a frame; counted from the new segment's first "
                                 "frame with --extend) the clip follows TEXT instead of --prompt; repeatable, in "
                                 "order of time. The clip renders in windows that break at each time (moved to the "
                                 "nearest 8-frame latent frame), each window following one prompt",
                           action="append", metavar="TIME:TEXT")
    resume: Path | None = opt(None, "finish a clip in windows that was cut short: the latents file it left (the "
                                    "clip so far, saved after each window); give it to the same command, which "
                                    "then renders only the missing windows", type=Path, metavar="FILE")

    @classmethod
    def from_args(cls, args: argparse.Namespace, now: datetime | None = None) -> "GenerateConfig":
        """From `build_parser`'s namespace, which holds only the flags given."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls.from_values({name: value for name, value in vars(args).items() if name in names}, now)

    @classmethod
    def from_values(cls, given: dict, now: datetime | None = None) -> "GenerateConfig":
        """From the settings given (each as its flag's parser gives it; a batch line's are typed alike by
        `ltx2gen.batch_lines`), the rest at their defaults. What was given, not whether a value equals its default,
        decides where a setting may come from a file (--extend, --refine-from)."""
        values = {f.name: given.get(f.name, f.default) for f in dataclasses.fields(cls)}
        given = set(given)
        if values["refine_from"] is not None:
            values = two_stage.settings_from_stage_one(values, given)
        values = dfr_passes.settings_from_pass(values, given)
        values.update({name: utf8_from_argv(values[name]) for name in ("prompt", "negative_prompt")})
        values["prompt_at"] = values["prompt_at"] and [utf8_from_argv(text) for text in values["prompt_at"]]
        values["fps"] = parse_fps(values["fps"])
        values["num_frames"] = parse_num_frames(values["num_frames"])
        values["prompt_at"] = tuple(timed_prompts.PromptChange.parse(text) for text in values["prompt_at"] or ())
        values = timed_prompts.opening_prompt_at(values)
        values = continuation_length(values, given)
        for kind in CONDITIONERS:
            values = kind.parse(values)
        values["lora"] = parse_lora_args(values["lora"], values["lora_weight_name"], values["lora_scale"],
                                         values["camera"])
        config = cls(**values)
        config.validate()
        pipeline = pipeline_choice.choose(config)
        if pipeline == "two-stage":
            two_stage.validate(config)
            if config.windows:
                raise ConfigError(f"--pipeline two-stage renders one window of at most {config.window_frames} frames; "
                                  "continue a clip and render long clips with the distilled or full pipeline")
        dfr.validate(dataclasses.replace(config, pipeline=pipeline))
        distilled = pipeline in ("distilled", "two-stage", "dfr")
        if distilled and config.steps not in (None, DISTILLED_STEPS):
            raise ConfigError(f"--steps {config.steps}: the distilled schedule has exactly {DISTILLED_STEPS} steps; "
                              "omit --steps or use --pipeline full")
        # The distilled model samples without guidance unless asked; the full one with Lightricks' recommendation.
        defaults = dict(guidance_scale=1.0, audio_guidance_scale=config.guidance_scale or 1.0, stg_scale=0.0,
                        modality_scale=1.0) if distilled else \
            dict(guidance_scale=FULL.cfg, audio_guidance_scale=FULL.audio_cfg, stg_scale=FULL.stg,
                 modality_scale=FULL.modality)
        guidance = {name: default if getattr(config, name) is None else getattr(config, name)
                    for name, default in defaults.items()}
        offload = config.offload
        if config.sequential_offload:
            if offload not in ("auto", "none", "sequential"):
                raise ConfigError(f"--sequential-offload contradicts --offload {offload}; give one of them")
            offload = "sequential"
        fp8 = config.fp8
        if config.no_fp8:
            if fp8 not in ("auto", "off"):
                raise ConfigError(f"--no-fp8 contradicts --fp8 {fp8}; give one of them")
            fp8 = "off"
        if config.compile == "off" and fp8 == "dynamic":
            raise ConfigError("--fp8 dynamic needs the compiled transformer (its activation quantization is fused "
                              "by the compiler); drop --compile off, or use --fp8 weight")
        if config.compile == "on" and offload in ("sequential", "files"):
            raise ConfigError(f"--compile on cannot compile through the per-layer hooks of --offload {offload}; "
                              "use --offload group or drop --compile on")
        if offload == "files" and (config.lora or config.camera):
            raise ConfigError("--offload files reads the transformer's blocks from its files at every step, where a "
                              "LoRA cannot be fused; use --offload group or sequential with a LoRA")
        if fp8 == "dynamic" and offload not in ("auto", "none"):
            raise ConfigError(f"--fp8 dynamic compiles the resident transformer and cannot stream it (--offload "
                              f"{offload}); use --fp8 weight with --offload {offload}, or --offload none")
        output = config.output if config.no_timestamp else stamped(config.output, now or datetime.now())
        seed = config.seed if config.seed is not None else secrets.randbelow(2**31)
        negative_prompt = config.negative_prompt
        if negative_prompt is None and (max(guidance["guidance_scale"], guidance["audio_guidance_scale"]) > 1.0
                                        or config.uses_nag):
            negative_prompt = DEFAULT_NEGATIVE_PROMPT
            print(f"note: no --negative-prompt; using LTX-2's default negative prompt: {negative_prompt}")
        steps = DISTILLED_STEPS if distilled else config.steps  # full: the version's, once the plan knows it
        config = dataclasses.replace(config, pipeline=pipeline, steps=steps, **guidance, output=output, seed=seed,
                                     offload=offload, sequential_offload=False, fp8=fp8, no_fp8=False,
                                     negative_prompt=negative_prompt)
        refuse_inputs_as_outputs(config)
        check_kept_work(config)
        return config

    def validate(self) -> None:
        if self.prompt is None:
            raise ConfigError("--prompt is required: describe the video to generate")
        if not self.prompt.strip():
            raise ConfigError("--prompt is empty: describe the video to generate")
        check_text("--prompt", self.prompt)
        for change in self.prompt_at:
            check_text(f"--prompt-at {change.at}", change.prompt)
        if self.negative_prompt is not None:
            check_text("--negative-prompt", self.negative_prompt)
        for name in ("width", "height"):
            value = getattr(self, name)
            if value <= 0 or value % 32:
                raise ConfigError(f"--{name} {value}: must be a positive multiple of 32 (try "
                                  f"{nearest_multiples(value, 32)})")
        if self.num_frames is not None:
            validate_frame_count(self.num_frames)
        duration.validate_length_options(self.num_frames, self.min_seconds, self.max_seconds, self.fps)
        if self.steps is not None and self.steps < 1:
            raise ConfigError(f"--steps {self.steps}: must be at least 1")
        for name, off in GUIDANCE_OFF.items():
            value = getattr(self, name)
            if value is not None and (not math.isfinite(value) or not off <= value <= GUIDANCE_MOST[name]):
                raise ConfigError(f"--{name.replace('_', '-')} {value}: must be between {off:g} (off) and "
                                  f"{GUIDANCE_MOST[name]:g} (beyond, the model's output diverges)")
        if self.seed is not None and not 0 <= self.seed < 2**63:
            raise ConfigError(f"--seed {self.seed}: must be between 0 and 2**63-1")
        check_output_file(self.output)
        validate_nag_options(self.nag_scale, self.nag_tau, self.nag_alpha)
        validate_decode_options(self)
        validate_postprocess_options(self)
        for kind in CONDITIONERS:
            kind.validate(self)
        continuation.validate(self)

    @property
    def distilled(self) -> bool:
        """Whether the (first) diffusion runs the distilled schedule."""
        return self.pipeline in ("distilled", "two-stage", "dfr")

    @property
    def uses_guidance(self) -> bool:
        """Whether classifier-free guidance is on for video or audio, so the negative prompt is encoded."""
        return any(scale is not None and scale > 1.0 for scale in (self.guidance_scale, self.audio_guidance_scale))

    @property
    def conditioning_inputs(self) -> list[tuple[str, Path | str]]:
        """(flag, value) of each conditioning input given (`ltx2gen.conditioners`)."""
        return given_inputs(self)

    @property
    def uses_nag(self) -> bool:
        return self.nag_scale > 0

    @property
    def enhance_seed(self) -> int | None:
        """The seed of the prompt enhancement; None when the prompt is encoded as given."""
        return self.seed if self.enhance_prompt else None

    @property
    def auto_length(self) -> duration.AutoLength | None:
        """With --num-frames auto, the bounds the model chooses the length within; None with a given frame count."""
        return duration.AutoLength.from_flags(self.min_seconds, self.max_seconds, self.fps) \
            if self.num_frames is None else None

    @property
    def planned_num_frames(self) -> int:
        """The frame count memory is planned for: the clip's, or the longest --num-frames auto may choose."""
        return self.num_frames if self.num_frames is not None else self.auto_length.longest_num_frames

    # The values derived from the --extend file and the windows' layout are worked out once per settings: each
    # reads or stats that file (and an MP4's sidecar). A settings object never changes; `dataclasses.replace` makes a
    # new one, which works them out afresh.
    @cached_property
    def window_frames(self) -> int:
        """The longest window of a clip in windows (`ltx2gen.continuation`)."""
        return continuation.window_num_frames(self.window_seconds, self.width, self.height, self.fps)

    @cached_property
    def earlier(self):
        """With --extend: the header of the clip continued (`ltx2gen.latents.LatentsHeader`); else None."""
        return continuation.earlier_clip(self.extend, "--extend") if self.extend else None

    @cached_property
    def first_new_frame(self) -> int:
        """The first frame this run generates: 0, or with --extend the one after the earlier clip's last."""
        return int(self.earlier.metadata["num_frames"]) if self.extend else 0

    @cached_property
    def windows(self) -> tuple:
        """The consecutive windows the clip renders in (`continuation.Window`); () for a clip of one window."""
        if self.num_frames is None:
            return ()
        earlier = self.earlier
        windows = continuation.layout(latent_frame_count(self.num_frames), latent_frame_count(self.window_frames),
                                      self.window_overlap, earlier.video_shape[2] if earlier else 0,
                                      len(continuation.windows_of(earlier)) if earlier else 0, self.prompt_breaks)
        return windows if earlier or len(windows) > 1 else ()

    @cached_property
    def prompt_breaks(self) -> tuple[int, ...]:
        """The latent frame each --prompt-at starts at (`continuation.prompt_breaks`)."""
        if not self.prompt_at or self.num_frames is None:
            return ()
        return timed_prompts.prompt_breaks(self.prompt_at, self.num_frames, self.fps, self.first_new_frame)

    @property
    def prompts(self) -> list[str]:
        """Every prompt of the clip: --prompt, then each --prompt-at's, in order."""
        return [self.prompt, *(change.prompt for change in self.prompt_at)]

    @property
    def diffused_num_frames(self) -> int:
        """The frames of the longest single denoising run, which memory is planned for."""
        return max(window.num_frames for window in self.windows) if self.windows else self.planned_num_frames

    @property
    def video_format(self) -> VideoFormat:
        """The clip's, as decoded: with dfr's temporal rounds, 2(N-1)+1 frames at twice the rate for each."""
        rounds = self.temporal_rounds if self.pipeline == "dfr" else 0
        if rounds and self.num_frames is not None:
            frames = dfr.output_frames(self.num_frames, rounds)
            return VideoFormat(self.width, self.height, frames, self.fps * 2**rounds)
        return VideoFormat(self.width, self.height, self.num_frames, self.fps)

    @property
    def latents_path(self) -> Path:
        return self.output.with_suffix(".latents.safetensors")

    @property
    def sidecar_path(self) -> Path:
        return self.output.with_suffix(".json")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrors(
        prog="generate.py",
        description="Generate a video with synchronized audio from a text prompt with LTX-2, one model at a time.",
    )
    groups = [kind.options for kind in CONDITIONERS] + [PostprocessOptions]  # each its own group of --help
    add_fields(parser, GenerateConfig, skip=tuple(f.name for group in groups for f in dataclasses.fields(group)),
               given_only=True)
    for group in groups:
        add_fields(parser.add_argument_group(group.__doc__.splitlines()[0].rstrip(".")), group, given_only=True)
    add_fields(parser.add_argument_group("batch"), BatchOptions)
    add_fields(parser.add_argument_group("plan"), PlanOnlyOptions)
    return parser
