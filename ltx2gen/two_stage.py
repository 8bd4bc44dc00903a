"""`--pipeline two-stage`: diffuse at a reduced size, upsample the latents, refine at the full size.

This is LTX-2's own recipe for its distilled model (diffusers' LTX-2 docs, "Distilled checkpoint generation" and
"Two-stage generation for LTX-2.5"; Lightricks' `distilled.py`):
1. the distilled 8-step schedule at the full size divided by the upsampler's scale (half with an x2 upsampler, a
   quarter of the tokens; two thirds with an x1.5 one);
2. `LTX2LatentUpsamplerModel` scales the latents' width and height by its scale (stock
   `LTX2LatentUpsamplePipeline`, which reads only the VAE's configuration, so it gets the same latent-statistics
   stand-in as the diffusion stage);
3. three refine steps at the full size from the official sigmas [0.909375, 0.725, 0.421875, 0]: the upsampled
   video latents and the stage-one audio latents are re-noised to the first sigma (`noise_scale`) and denoised
   again by the stock `LTX2Pipeline`.

The upsampler is each version's: LTX-2.0's and LTX-2.5's repos ship one in `latent_upsampler/`; LTX-2.3's repos ship
none, so its default is the one diffusers-format LTX-2.3 upsampler known (`LTX23_UPSAMPLER_REPO`), taken from the
Hugging Face cache only. `--upsampler` chooses another: its `config.json` says its scale and which latents it was
made for (`Upsampler.read`).

The transformer stays loaded from step 1 to step 3: it is the same model, and reading its 35 GB again would cost
about 16 s, while the upsampler (about 1 GB) and its activations fit beside it at far less than the refine's own
activation peak. The upsampler loads and frees between the two. The stage-one latents are saved (atomically)
before the upsampler runs, so a failure later resumes from them with `--refine-from`.

Everything here that runs before the first weight is read (validation, reading the upsampler's configuration and a
stage-one file's metadata) is pure: no torch import.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from ltx2gen import report
from ltx2gen.checkpoint import GUIDANCE_OFF, Guidance, detect_pipeline, from_hub_cache, is_local_path, model_version
from ltx2gen.errors import ConfigError, nearest_multiples
from ltx2gen.files import kept_work_metadata

STAGE_ONE_STEPS = 8  # the distilled schedule
REFINE_SIGMAS = [0.909375, 0.725, 0.421875]  # diffusers' STAGE_2_DISTILLED_SIGMA_VALUES; the scheduler appends 0
STAGE_ONE_KIND = "two-stage stage one"
UPSAMPLER_SUBFOLDER = "latent_upsampler"
# LTX-2.3's default upsampler: its repos ship none, and Lightricks publish theirs (x2 v1.1, x1.5) only in their own
# format (MODELS-LTX-2.3.md); this unofficial conversion of the x2 v1.1 one is the only diffusers-format one known
# (ltx2gen/published/SOURCES.md). Taken from the Hugging Face cache only: a third party's weights are downloaded
# when asked for by name (--upsampler), never by default.
LTX23_UPSAMPLER_REPO = "rootonchair/LTX-2.3-spatial-upscaler-x2-v1.1-Diffusers"
# The scales diffusers 0.42.1's `LTX2LatentUpsamplerModel` builds that Lightricks publish a spatial upsampler for.
SCALES = (Fraction(2), Fraction(3, 2))
# Every default upsampler is x2 as published (the LTX-2.0 and LTX-2.5 repos' latent_upsampler/ and
# LTX23_UPSAMPLER_REPO's: ltx2gen/published/), so sizes are checked against it before anything is downloaded.
DEFAULT_SCALE = Fraction(2)
LATENT_PIXELS = 32  # the VAE's spatial compression: every diffused size is a multiple of it
# The latents an upsampler was made for, by model version: LTX-2.5 keeps LTX-2.3's video VAE (the same
# configuration; diffusers' conversion of 2.5: "byte-identical to 2.3's").
LATENT_SPACE = {"2.0": "LTX-2.0", "2.3": "LTX-2.3/2.5", "2.5": "LTX-2.3/2.5"}
# The settings a stage-one latents file fixes: a resumed refine takes them from the file.
CLIP_FIELDS = ("prompt", "negative_prompt", "seed", "width", "height", "num_frames", "fps", "model", "upsampler")


def stage_one_path(config) -> Path:
    return config.output.with_suffix(".stage1.latents.safetensors")


def scale_text(scale: Fraction) -> str:
    return f"x{float(scale):g}"


@dataclass(frozen=True)
class Upsampler:
    """A spatial latent upsampler as its `config.json` describes it, read before any weight: `source` is what the
    user knows it by (the repo id or folder given, or where the default came from)."""

    folder: Path
    source: str
    scale: Fraction
    rational: bool  # its configuration's `use_rational_resampler`, as diffusers reads it

    @classmethod
    def read(cls, folder: Path, source: str) -> "Upsampler":
        """The scale is what diffusers 0.42.1's `LTX2LatentUpsamplerModel` builds from the configuration: its
        rational resampler at `rational_spatial_scale` unless `use_rational_resampler` is false (then a plain x2
        pixel shuffle). The latents it was made for follow from the same keys, as diffusers' conversion writes them
        (`get_ltx2_spatial_latent_upsampler_config`): LTX-2.0's x2 upsampler is the rational resampler at 2
        (`use_rational_resampler` true, or absent in the January 2026 conversions, whose class had no such key and
        always built it); LTX-2.3's (and LTX-2.5's) x2 is the plain pixel shuffle (`use_rational_resampler` false);
        an x1.5 one exists for LTX-2.3 only (Lightricks' MODELS-LTX-2.3.md)."""
        try:
            config = json.loads((folder / "config.json").read_text())
        except (OSError, ValueError) as err:
            raise ConfigError(f"{source}: cannot read its latent upsampler's configuration ({err})") from None
        if config.get("_class_name") != "LTX2LatentUpsamplerModel":
            raise ConfigError(f"{source}: {folder / 'config.json'} is a {config.get('_class_name')}, not an LTX-2 "
                              "latent upsampler (LTX2LatentUpsamplerModel)")
        if config.get("temporal_upsample") or not config.get("spatial_upsample", True):
            raise ConfigError(f"{source}: a temporal latent upsampler (it adds frames); two-stage needs a spatial one "
                              f"({' or '.join(map(scale_text, SCALES))})")
        rational = config.get("use_rational_resampler", True)
        scale = config.get("rational_spatial_scale", 2.0) if rational else 2
        if not isinstance(scale, (int, float)) or Fraction(scale) not in SCALES:
            raise ConfigError(f"{source}: a latent upsampler of rational_spatial_scale {scale}; two-stage takes "
                              f"{' or '.join(map(scale_text, SCALES))}")
        scale = Fraction(scale)
        return cls(folder, source, scale, rational)

    @property
    def latent_space(self) -> str:
        """The latents it was made for (`LATENT_SPACE`'s values), from its design (`read`)."""
        return LATENT_SPACE["2.0" if self.rational and self.scale == 2 else "2.3"]

    def check_made_for(self, version: str) -> None:
        """Refuses an upsampler made for another version's latents: by its configuration (`read`), and where it
        ships in an LTX-2 model repo (a transformer/ beside it), by that repo's version."""
        if self.latent_space != LATENT_SPACE[version]:
            raise ConfigError(f"{self.source}: a latent upsampler made for {self.latent_space} latents (its "
                              f"config.json: use_rational_resampler {str(self.rational).lower()} at "
                              f"{scale_text(self.scale)}), not for LTX-{version}'s; {default_upsampler_hint(version)}")
        repo = self.folder.parent
        if (repo / "transformer" / "config.json").is_file() and model_version(repo) != version:
            raise ConfigError(f"{self.source}: the latent upsampler of an LTX-{model_version(repo)} model, not of "
                              f"LTX-{version}; {default_upsampler_hint(version)}")

    def describe(self) -> str:
        return f"the {scale_text(self.scale)} upsampler ({self.source})"

    def stage_one_size(self, width: int, height: int) -> tuple[int, int]:
        return int(width / self.scale), int(height / self.scale)

    def record(self) -> dict:
        """The sidecar's and the stage-one latents file's entries."""
        return {"upsampler": str(self.folder), "upsampler_source": self.source, "upsampler_scale": float(self.scale)}


def default_upsampler_hint(version: str) -> str:
    if version == "2.3":
        return f"drop --upsampler for {LTX23_UPSAMPLER_REPO}, or give one made for LTX-2.3"
    return f"drop --upsampler for the model's own {UPSAMPLER_SUBFOLDER}/"


def size_step(scale: Fraction) -> int:
    """The sizes two-stage takes with an upsampler of `scale` are the multiples of this: multiples of 32 whose stage-one
    size (size / scale) is a multiple of 32 too (x2: 64; x1.5: 96)."""
    return math.lcm(LATENT_PIXELS, int(LATENT_PIXELS * scale))


def check_sizes(width: int, height: int, scale: Fraction, upsampler: str) -> None:
    """Stage one runs at the size divided by the upsampler's scale, which must land on the VAE's 32-pixel grid.
    `upsampler` names it in the message."""
    step = size_step(scale)
    for name, value in (("width", width), ("height", height)):
        if value % step:
            raise ConfigError(f"--{name} {value}: --pipeline two-stage with {upsampler} runs stage one at "
                              f"{value}/{float(scale):g} px, which must be a multiple of {LATENT_PIXELS}; give a "
                              f"multiple of {step}: try {nearest_multiples(value, step)}")


def scale_known_before_download(config) -> tuple[Fraction, str] | None:
    """The upsampler's scale, and what it is, as far as its files are known without downloading anything: a local
    --upsampler's configuration; without --upsampler, a local model's latent_upsampler/ or else the published
    defaults' x2; None for a --upsampler repo id (checked once resolved, by `plan_upsampler`)."""
    if config.upsampler and not is_local_path(config.upsampler):
        return None
    if config.upsampler:
        source = f"--upsampler {config.upsampler}"
        upsampler = Upsampler.read(find_upsampler_folder(Path(config.upsampler).expanduser(), source), source)
    else:
        model_upsampler = Path(config.model).expanduser() / UPSAMPLER_SUBFOLDER
        if not (is_local_path(config.model) and (model_upsampler / "config.json").is_file()):
            return DEFAULT_SCALE, f"the default {scale_text(DEFAULT_SCALE)} upsampler"
        upsampler = Upsampler.read(model_upsampler, f"the model's {UPSAMPLER_SUBFOLDER}/")
    return upsampler.scale, upsampler.describe()


def validate(config) -> None:
    """Two-stage constraints, checked in `GenerateConfig.from_args` before anything is loaded."""
    known = scale_known_before_download(config)
    if known:
        check_sizes(config.width, config.height, *known)
    if config.steps is not None and config.steps != STAGE_ONE_STEPS:
        raise ConfigError(f"--steps {config.steps}: two-stage runs the distilled schedule ({STAGE_ONE_STEPS} steps) "
                          f"and then {len(REFINE_SIGMAS)} refine steps; omit --steps")
    for name, off in GUIDANCE_OFF.items():
        value, flag = getattr(config, name), f"--{name.replace('_', '-')}"
        if value is not None and value != off:
            raise ConfigError(f"{flag} {value:g}: two-stage runs the distilled model without guidance; omit {flag} "
                              "(or use --pipeline full for guidance)")
    if config.num_frames is None:
        raise ConfigError("--num-frames auto: not with --pipeline two-stage yet (its stage-one latents and the "
                          "refine are planned for a frame count given up front); give --num-frames N (8n+1)")
    for flag, path in config.conditioning_inputs:
        raise ConfigError(f"{flag} {path}: conditioning is not built into --pipeline two-stage yet (the refine "
                          "would have to re-impose it at full size); use --pipeline distilled")
    detected, reason = detect_pipeline(config.model)
    if detected != "distilled":
        print(f"warning: --model {config.model} does not look like a distilled checkpoint ({reason}); two-stage "
              "runs the distilled schedules (use e.g. rootonchair/LTX-2-19b-distilled)")


def find_upsampler_folder(folder: Path, source: str) -> Path:
    """The folder holding the upsampler's config.json: `folder` itself or its latent_upsampler subfolder."""
    for candidate in (folder, folder / UPSAMPLER_SUBFOLDER):
        if (candidate / "config.json").is_file():
            return candidate
    raise ConfigError(f"{source}: no latent upsampler there (no config.json in it or in its {UPSAMPLER_SUBFOLDER}/ "
                      "folder); give --upsampler PATH|REPO, e.g. Lightricks/LTX-2 (its latent_upsampler folder)")


def resolve_upsampler(upsampler: str | None, model_dir: Path, version: str) -> tuple[Path, str]:
    """The upsampler's folder and what the user knows it by (`Upsampler.source`), from --upsampler or else the model's
    latent_upsampler/ (LTX-2.3, whose repos have none: `LTX23_UPSAMPLER_REPO` from the Hugging Face cache). A repo id
    given comes from the Hugging Face cache (downloaded unless HF_HUB_OFFLINE=1). Raises ConfigError."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    if upsampler is None:
        if version == "2.3" and not (model_dir / UPSAMPLER_SUBFOLDER / "config.json").is_file():
            source = f"{LTX23_UPSAMPLER_REPO} (LTX-2.3's default)"
            try:
                folder = Path(snapshot_download(LTX23_UPSAMPLER_REPO, allow_patterns=[f"{UPSAMPLER_SUBFOLDER}/*"],
                                                local_files_only=True))
            except LocalEntryNotFoundError:
                raise ConfigError(f"--pipeline two-stage on LTX-2.3: its repos ship no latent upsampler and the "
                                  f"default one, {LTX23_UPSAMPLER_REPO} (an unofficial diffusers conversion of "
                                  "Lightricks' x2 v1.1), is not in the Hugging Face cache and is not downloaded "
                                  f"unasked; give --upsampler {LTX23_UPSAMPLER_REPO} to download it, or "
                                  "--upsampler FOLDER") from None
            return find_upsampler_folder(folder, source), source
        return find_upsampler_folder(model_dir, f"--model {model_dir} (the default upsampler location)"), \
            f"the model's {UPSAMPLER_SUBFOLDER}/"
    source = f"--upsampler {upsampler}"
    if is_local_path(upsampler):
        return find_upsampler_folder(Path(upsampler).expanduser().resolve(), source), source
    folder = from_hub_cache(source, lambda: snapshot_download(upsampler, allow_patterns=[f"{UPSAMPLER_SUBFOLDER}/*"]),
                            " or give a local folder")
    return find_upsampler_folder(folder, source), source


def plan_upsampler(config, model_dir: Path, version: str) -> Upsampler:
    """Called by the plan, before any weight is read: the run's upsampler, checked against the model's version and
    the clip's size. Raises ConfigError."""
    upsampler = Upsampler.read(*resolve_upsampler(config.upsampler, model_dir, version))
    upsampler.check_made_for(version)
    check_sizes(config.width, config.height, upsampler.scale, upsampler.describe())
    return upsampler


def read_stage_one_metadata(path: Path) -> dict:
    """The metadata of a stage-one latents file, read from the safetensors header alone (no torch)."""
    return kept_work_metadata(path, "--refine-from", STAGE_ONE_KIND, "not a two-stage stage-one latents file (a "
                              "finished clip's latents decode with decode_latents.py)")


def settings_from_stage_one(values: dict, given: set[str]) -> dict:
    """`--refine-from FILE`: the clip's settings come from the file. A setting also `given` on the command line must
    agree with it, whatever its value (a different prompt or seed would refine latents it did not make). The output
    is the interrupted run's unless --output is given."""
    metadata = read_stage_one_metadata(Path(values["refine_from"]).expanduser())
    if values["pipeline"] not in ("auto", "two-stage"):
        raise ConfigError(f"--refine-from resumes a two-stage run; drop --pipeline {values['pipeline']}")
    stored = dict(metadata["clip"])
    values = dict(values, pipeline="two-stage")
    if "output" not in given:
        values.update(output=stored["output"], no_timestamp=True)
    for name in CLIP_FIELDS:
        if name in given and str(values[name]) != str(stored[name]):
            raise ConfigError(f"--{name.replace('_', '-')} {values[name]}: the stage-one latents were made with "
                              f"{stored[name]!r}; drop the flag to take it from the file")
        values[name] = stored[name]
    values["output"] = Path(values["output"])
    return values


def size_text(width: int, height: int) -> str:
    return f"{width}x{height}"


def describe(config, upsampler: Upsampler) -> str:
    """The plan line's pipeline part."""
    start = "from its stage-one latents, " if config.refine_from else ""
    stage_one = upsampler.stage_one_size(config.width, config.height)
    return (f"two-stage ({start}{size_text(*stage_one)}, {STAGE_ONE_STEPS} distilled steps -> "
            f"{scale_text(upsampler.scale)} latent upsample ({upsampler.source}) -> "
            f"{size_text(config.width, config.height)}, {len(REFINE_SIGMAS)} refine steps)")


def resume_command(plan, stage_one: Path) -> str:
    """generate.py with the stage-one file (`report.resume_command`)."""
    return report.resume_command(plan, "--refine-from", stage_one)


def failure_advice(plan) -> str | None:
    """What to tell the user when the diffusion stage fails: resume the refine if stage one is on disk."""
    kept = kept_stage_one(plan.settings)
    if kept is None:
        return None
    return f"the stage-one latents are kept in {kept}; resume the refine with:\n  {resume_command(plan, kept)}"


def discard_stage_one(config) -> None:
    """After success the stage-one latents are no longer needed (kept with --keep-latents)."""
    kept = kept_stage_one(config) if not config.keep_latents else None
    if kept:
        kept.unlink(missing_ok=True)


def kept_stage_one(config) -> Path | None:
    """The stage-one latents this clip's run saved, beside the output or in a fallback folder (`latents.kept_copy`);
    None for a run that saved none."""
    from ltx2gen.latents import kept_copy

    return kept_copy(stage_one_path(config), read_stage_one_metadata, config) if config.pipeline == "two-stage" \
        else None


def refine_call(config, version: str) -> dict:
    from ltx2gen.diffusion import pipeline_call_arguments

    call = pipeline_call_arguments(width=config.width, height=config.height, num_frames=config.num_frames,
                                   fps=float(config.fps), steps=len(REFINE_SIGMAS), guidance=Guidance(),
                                   distilled=False, version=version)
    return dict(call, sigmas=list(REFINE_SIGMAS), noise_scale=REFINE_SIGMAS[0])


def refine_seed(seed: int) -> int:
    # The refine's re-noise must not repeat stage one's noise stream, and a resumed refine must draw the same noise.
    return seed + 1


def load_upsampler(stage, folder: Path, device, dtype):
    from diffusers.pipelines.ltx2.latent_upsampler import LTX2LatentUpsamplerModel

    return stage.load("latent_upsampler", lambda: LTX2LatentUpsamplerModel.from_pretrained(
        folder, torch_dtype=dtype, device_map=str(device)).eval().requires_grad_(False))


def upsample(stage, plan, *latents, width: int, height: int):
    """Stock `LTX2LatentUpsamplePipeline` on each of `latents` of `width` x `height` (stage one's video; for dfr, its
    keyframe slots too), denormalized already (`latents_normalized=False`: the upsampler works in the VAE's own
    units); the upsampler is loaded once for them all and freed before returning."""
    import torch
    from diffusers.pipelines.ltx2 import LTX2LatentUpsamplePipeline

    from ltx2gen.components import component_class
    from ltx2gen.stand_ins import LatentStatistics

    upsampler = load_upsampler(stage, plan.upsampler.folder, plan.device, plan.dtype)
    statistics = LatentStatistics.load(component_class(plan.model_dir, "vae"), plan.model_dir / "vae", plan.device)
    pipe = LTX2LatentUpsamplePipeline(vae=statistics, latent_upsampler=upsampler)
    with torch.no_grad():
        upsampled = [pipe(latents=each.to(plan.device), latents_normalized=False, width=width, height=height,
                          num_frames=(each.shape[2] - 1) * 8 + 1, output_type="latent", return_dict=False)[0]
                     for each in latents]
    del pipe, upsampler
    stage.release("latent_upsampler")
    return upsampled


def refine(denoiser, conditioning, video_latents, audio_latents, *, call: dict, seed: int, nag_settings=None):
    """The stock pipeline from the given latents, through the refine sigmas as given (`call` holds them)."""
    from ltx2gen.diffusion import run_denoiser

    device = denoiser.device
    return run_denoiser(denoiser, conditioning, call, seed, nag_settings=nag_settings,
                        inputs=dict(latents=video_latents.to(device), audio_latents=audio_latents.to(device)))


def stage_one_metadata(plan) -> dict:
    """The latents file's usual metadata at stage one's size (so decode_latents.py previews it), the upsampler, and
    the clip's settings for `--refine-from`."""
    config = plan.settings
    clip = {name: getattr(config, name) for name in CLIP_FIELDS}
    # An absolute output, so the resumed run writes the same file from any folder.
    clip.update(fps=str(config.fps), output=str(config.output.resolve()), model=plan.model_reference())
    width, height = plan.upsampler.stage_one_size(config.width, config.height)
    return dict(plan.latents_metadata(), width=width, height=height, **plan.upsampler.record(),
                kind=STAGE_ONE_KIND, clip=clip)


def diffuse(stage, denoiser, plan, conditioning):
    """Stage 2 of a two-stage run with the loaded denoiser: stage one (or its saved latents), upsample, refine, all
    with the one transformer load."""
    import time

    from ltx2gen import diffusion, latents

    config = plan.settings

    first_width, first_height = plan.upsampler.stage_one_size(config.width, config.height)
    started = time.perf_counter()
    if config.refine_from:
        saved = latents.load_latents(config.refine_from)
        first_video, first_audio, first_record = saved.video, saved.audio, {"resumed_from": str(config.refine_from)}
        print(f"stage one: resumed from {config.refine_from}", flush=True)
    else:
        first = diffusion.run_denoiser(denoiser, conditioning, plan.call, config.seed, nag_settings=plan.nag)
        path, tried = latents.save_anywhere(stage_one_path(config), first.video_latents, first.audio_latents,
                                            stage_one_metadata(plan))
        print(f"saved stage-one latents: {path}" + (" (its folder beside the output could not take it)" if tried
                                                     else ""), flush=True)
        first_video, first_audio = first.video_latents, first.audio_latents
        first_record = {"pipeline_call": first.pipeline_call, "scheduler_sigmas": first.sigmas,
                        "transformer_calls": first.transformer_calls, "latents": str(path)}
    stage_one_seconds, started = time.perf_counter() - started, time.perf_counter()
    upsampled, = upsample(stage, plan, first_video, width=first_width, height=first_height)
    upsample_seconds, started = time.perf_counter() - started, time.perf_counter()
    call = refine_call(config, plan.version)
    result = refine(denoiser, conditioning, upsampled, first_audio, call=call, seed=refine_seed(config.seed),
                    nag_settings=plan.nag)
    result.stages = [
        dict(stage="stage one", width=first_width, height=first_height, steps=STAGE_ONE_STEPS,
             seconds=round(stage_one_seconds, 3), **first_record),
        dict(stage="upsample", **plan.upsampler.record(), width=config.width, height=config.height,
             seconds=round(upsample_seconds, 3)),
        dict(stage="refine", width=config.width, height=config.height, steps=len(REFINE_SIGMAS),
             noise_scale=call["noise_scale"], noise=f"torch.Generator('cpu').manual_seed({refine_seed(config.seed)})",
             scheduler_sigmas=result.sigmas, transformer_calls=result.transformer_calls,
             seconds=round(time.perf_counter() - started, 3)),
    ]
    result.transformer_calls += first_record.get("transformer_calls", 0)
    return result
