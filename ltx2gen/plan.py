"""The resolved plan of one run: device, dtype, model location, FP8/offload decisions and the exact pipeline
arguments, printed once (normalise loudly) and recorded in the latents file and the sidecar."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from ltx2gen import (
    compiling,
    components,
    continuation,
    dfr,
    diffusion,
    duration,
    enhance,
    fit,
    memory,
    memory_plan,
    pipeline_choice,
    report,
    retake,
    two_stage,
    video_decode,
)
from ltx2gen.checkpoint import (
    FULL_MODEL_SETTINGS,
    PROMPT_TOKENS,
    RECOMMENDED_FULL_GUIDANCE,
    Guidance,
    check_latents_fit,
    latent_frame_count,
    model_version,
    transformer_folder,
)
from ltx2gen.conditioners import Conditioner, plan_all, records
from ltx2gen.config import GenerateConfig
from ltx2gen.errors import ConfigError
from ltx2gen.files import write_json
from ltx2gen.latents import LatentsHeader
from ltx2gen.lora import ResolvedLora, check_camera_published, resolve_loras
from ltx2gen.nag import NagSettings
from ltx2gen.provenance import made_from
from ltx2gen.quant import fp8_supported
from ltx2gen.text import EncodedPrompt
from ltx2gen.video import check_encoder
from ltx2gen.weight_shapes import check_weights_fit_the_model


@dataclass(frozen=True)
class RunPlan:
    """One clip, resolved: its validated settings and everything worked out from them and from the model before any
    weight is read. The stages take it (or the part they need); nothing below planning works it out again."""

    settings: GenerateConfig
    device: torch.device
    dtype: torch.dtype
    model_dir: Path
    fp8: str
    offload: str
    call: dict
    decode_plan: video_decode.DecodePlan | None  # None until --num-frames auto has chosen the length
    loras: tuple[ResolvedLora, ...] = ()
    compiled: bool = False
    text_encoder: str = "resident"  # how the text stage holds Gemma: resident, fp8 or offloaded
    memory_fit: fit.Fit | None = None  # on a discrete GPU: the modes chosen and each stage's estimated peaks
    nag: NagSettings | None = None
    conditioners: tuple[Conditioner, ...] = ()  # the clip's inputs besides its prompts (`ltx2gen.conditioners`)
    upsampler: two_stage.Upsampler | None = None  # two-stage only
    detailing: ResolvedLora | None = None  # dfr: the IC-LoRA of its stage two
    version: str = "2.0"  # the checkpoint's LTX-2 version (`checkpoint.model_version`)
    guidance: Guidance = Guidance()
    transformer_folder: str = "transformer"  # LTX-2.5's full model: transformer_full
    auto_length: duration.AutoLength | None = None  # --num-frames auto: its bounds, then what the model chose
    prompt_enhancer: Path | None = None  # --enhance-prompt on LTX-2.5: the separate enhancer's folder
    read_ahead: bool = False  # the transformer's files are read into the page cache while the text stage runs
    fp8_attention: bool = False  # the video self-attention in FP8 (`attention.fp8_attention`)
    windows: tuple = ()  # a clip in consecutive windows (`continuation.Window`); () for one window
    earlier: LatentsHeader | None = None  # --extend: the clip continued
    resume: LatentsHeader | None = None  # --resume: the clip so far of the run cut short
    prompt_breaks: tuple[int, ...] = ()  # the latent frame each --prompt-at starts at

    @classmethod
    def choose(cls, config: GenerateConfig, machine: fit.Machine | None = None, *,
               weights_needed: bool = True) -> "RunPlan":
        """`machine`: plan for this GPU and host memory instead of this machine's (`--plan-for-gpu`), taken to be a
        discrete CUDA GPU with float8 kernels. Without `weights_needed` (`--plan-only`) the model's weight files need
        not be there: a repo id not in the cache gets its configuration files alone."""
        device = components.resolve_device(config.device)
        fp8 = choose_fp8(config.fp8, device) if machine is None else config.fp8
        offload = config.offload
        # planning for another machine (`--plan-for-gpu`), its GPU is a discrete one whatever this machine has
        offload_asked_here = machine is None and offload not in ("auto", "none")
        if offload_asked_here and device.type != "cuda":
            print(f"note: --offload {offload} needs a CUDA GPU; ignored")
        elif offload_asked_here and torch.cuda.get_device_properties(device).is_integrated:
            print(f"warning: --offload {offload} saves nothing on an integrated (unified-memory) GPU; ignored")
        discrete_gpu = machine is not None or (device.type == "cuda" and
                                               not torch.cuda.get_device_properties(device).is_integrated)
        offload = offload if discrete_gpu else "none"
        if config.negative_prompt and not config.uses_guidance and not config.uses_nag:
            print("warning: --negative-prompt has no effect at guidance 1.0 without NAG; it is ignored "
                  "(give --nag-scale, e.g. 8, to use it at guidance 1, or raise --guidance-scale above 1)")
        upsamples = config.pipeline in ("two-stage", "dfr")  # dfr upsamples as two-stage does
        model_dir = components.resolve_model_dir(config.model, configs_only=not weights_needed)
        if config.auto_length:
            duration.check_supported(model_dir, f"--model {config.model}")
        reads = (*components.READ_BY_A_RUN, components.video_decoder_folder(model_dir, config.decoder, config.model),
                 *((duration.COMPONENT,) if config.auto_length else ()))
        if weights_needed:
            components.check_model_files(model_dir, f"--model {config.model}", tuple(dict.fromkeys(reads)))
        version = model_version(model_dir)
        if config.camera:
            check_camera_published(config.camera, version)
        folder = transformer_folder(version, full=not config.distilled)
        if config.pipeline == "dfr":
            dfr.check_model(model_dir, config.model)
        detailing = dfr.resolve_detailing(config, model_dir, version)
        if folder != "transformer":
            components.check_component(model_dir / folder, f"--model {config.model} --pipeline full")
        if weights_needed:  # each header against the model its configuration builds, before any weight is read
            check_weights_fit_the_model(model_dir, tuple(dict.fromkeys((*reads, folder))), f"--model {config.model}")
        guidance = choose_guidance(config, version)
        steps = config.steps or FULL_MODEL_SETTINGS[version].steps  # distilled ones are set: 8
        upsampler = two_stage.plan_upsampler(config, model_dir, version) if upsamples else None
        # two-stage diffuses first at the size divided by the upsampler's scale
        width, height = upsampler.stage_one_size(config.width, config.height) if upsampler else \
            (config.width, config.height)
        windows = config.windows
        if config.earlier:
            continuation.check_model(config.earlier, version, f"--extend {config.extend}")
            check_latents_fit(config.earlier.video_shape, config.earlier.audio_shape, model_dir,
                              f"--extend {config.extend}")
        resume = continuation.earlier_clip(config.resume, "--resume") if config.resume else None
        if resume:
            continuation.check_model(resume, version, f"--resume {config.resume}")
            check_latents_fit(resume.video_shape, resume.audio_shape, model_dir, f"--resume {config.resume}")
        kept = retake.find_clip(config.retake).header if config.retake else None
        if kept:
            continuation.check_model(kept, version, f"--retake {config.retake}", use="retake it")
            check_latents_fit(kept.video_shape, kept.audio_shape, model_dir, f"--retake {config.retake}")
        call = diffusion.pipeline_call_arguments(  # a clip in windows: the first window's; each sets its length
            width=width, height=height, num_frames=windows[0].num_frames if windows else config.num_frames,
            fps=float(config.fps), steps=steps, guidance=guidance, distilled=config.distilled, version=version)
        check_encoder()
        loras = resolve_loras(config.lora, model_dir, version)  # found and checked before the base model loads
        prompt_enhancer = enhance.check_supported(model_dir, config.prompt_enhancer) if config.enhance_prompt \
            else None
        if upsampler and weights_needed:
            components.check_component(upsampler.folder, upsampler.source)
        tokens = dfr.planned_tokens(config) if config.pipeline == "dfr" else \
            fit.clip_tokens(config.width, config.height, config.diffused_num_frames)
        text_encoder = fit.text_encoder_asked(config.text_fp8, fp8)
        memory_fit = None
        if discrete_gpu:
            machine = machine or fit.Machine(fit.gpu_budget_gib(device), fit.host_memory_available_bytes() / fit.GIB)
            memory_fit = memory_plan.plan_memory(config, model_dir / folder, tokens, machine, fp8_kernels=(
                machine.source != "this machine" or fp8_supported(device)),
                upsampler_folder=upsampler.folder if upsampler else None)
            fp8, offload, text_encoder = memory_fit.fp8, memory_fit.offload, memory_fit.text_encoder
            if config.fp8 == "auto" and fp8 == "off" and offload == "none":
                print(f"note: the run fits this GPU ({machine.gpu_gib:.0f} GiB) in bf16, which is exact and faster "
                      "than FP8 weight storage; --fp8 weight would halve the transformer's memory")
            if offload == "files":
                print(f"note: the host ({machine.host_gib:.0f} GiB) cannot hold the transformer, so its blocks are "
                      "read from the weight files as they run, in bf16, at every step (the page cache keeps what it "
                      "can); slower than offloading to host memory")
            if text_encoder == "offloaded" and config.text_fp8 == "on":
                print("note: the text encoder does not fit this GPU even in float8, so it is streamed layer by layer "
                      "in bf16 instead of --text-fp8 on")
            if config.fp8 == "dynamic" and fp8 != "dynamic":
                print(f"note: the transformer does not fit resident, so it is streamed ({offload} offload) with "
                      "FP8 weight storage instead of --fp8 dynamic")
        if text_encoder == "offloaded" and config.enhance_prompt and prompt_enhancer is None:
            raise ConfigError("--enhance-prompt generates with the text encoder on the GPU, which the memory plan "
                              "streams layer by layer here (it does not fit); drop --enhance-prompt on this GPU")
        offload = "none" if offload == "auto" else offload
        compiled, compile_reason = fp8 == "dynamic" and config.compile != "off", ""  # auto compiles no more here
        if discrete_gpu or config.compile != "auto":  # nor on unified memory
            compiled, compile_reason = compiling.choose(
                config.compile, fp8, offload, tokens=tokens, key=compiling.graph_key(
                    fp8=fp8, offload=offload, call=call, version=version),
                calls=steps * guidance.transformer_calls_per_step() * max(1, len(windows)))
        if compile_reason and (config.compile == "auto" or (config.compile == "on" and not compiled)):
            print(f"note: {compile_reason}")
        dfr.check_detailing_fits(detailing, fp8, offload, compiled)
        if memory_fit and compiled:
            memory_fit = fit.with_compile(memory_fit)
        if memory_fit:
            print(memory_fit.describe())
        # With --num-frames auto the decode is planned once the model has chosen the length (`with_chosen_length`)
        decode_plan = decode_plan_for(config, config.video_format.num_frames, memory_fit) \
            if config.num_frames is not None else None
        video_decode.check_cpu_decode(model_dir, config.decoder, device, config.width, config.height,
                                      config.video_format.num_frames or config.planned_num_frames,
                                      fit.host_memory_available_bytes())
        read_ahead = bool(memory_fit) and memory_plan.choose_read_ahead(model_dir / folder, memory_fit)
        fp8_attention = choose_fp8_attention(config.fp8_attention, fp8, device, model_dir / folder, tokens)
        conditioners = plan_all(config, model_dir)
        dtype = components.default_dtype(device) if machine is None else torch.bfloat16  # another machine's GPU
        run = cls(settings=config, device=device, dtype=dtype, model_dir=model_dir, fp8=fp8, offload=offload, call=call,
                  decode_plan=decode_plan, loras=loras, compiled=compiled, text_encoder=text_encoder,
                  memory_fit=memory_fit, nag=NagSettings(config.nag_scale, config.nag_tau, config.nag_alpha)
                  if config.uses_nag else None, conditioners=conditioners, upsampler=upsampler, version=version,
                  detailing=detailing,
                  guidance=guidance, transformer_folder=folder, auto_length=config.auto_length,
                  prompt_enhancer=prompt_enhancer, read_ahead=read_ahead, fp8_attention=fp8_attention,
                  windows=windows, earlier=config.earlier, resume=resume, prompt_breaks=config.prompt_breaks)
        pipeline = dfr.describe(config) if config.pipeline == "dfr" else \
            two_stage.describe(config, upsampler) if upsampler else config.pipeline
        size = f"{config.width}x{config.height}" + (f"x{config.num_frames}" if config.num_frames else
                                                    f", {config.auto_length.describe_bounds()},")
        print(f"plan: LTX-{version} {pipeline} ({pipeline_choice.reason(config)}) {size} at "
              f"{report.fps_text(config.fps)} "
              f"fps, {steps} steps, {guidance.describe()}, {guidance.transformer_calls_per_step()} transformer "
              f"call(s) per step, seed {config.seed}, {run.describe()}",
              flush=True)
        return run

    def describe(self) -> str:
        weights = {"weight": "fp8 weights", "dynamic": "fp8 weights+activations (compiled)"}.get(
            self.fp8, str(self.dtype).replace("torch.", ""))
        offload = ", compiled" if self.compiled and self.fp8 != "dynamic" else ""
        offload += ", fp8 video self-attention" if self.fp8_attention else ""
        offload += f", {self.offload} offload" if self.offload != "none" else ""
        offload += f", {self.text_encoder} text encoder" if self.text_encoder != "resident" else ""
        offload += "".join(f", LoRA {lora.spec.label} x{lora.spec.scale:g}" for lora in self.loras)
        offload += f", NAG scale {self.nag.scale:g} tau {self.nag.tau:g} alpha {self.nag.alpha:g}" if self.nag else ""
        offload += "".join(conditioner.describe() for conditioner in self.conditioners)
        offload += continuation.describe(self.windows, self.earlier, self.resume, self.prompt_breaks)
        decode = self.decode_plan.describe(latent_frame_count(self.settings.video_format.num_frames)) \
            if self.decode_plan else \
            "video decode planned once the length is chosen"
        planned_elsewhere = self.memory_fit and self.memory_fit.machine.source != "this machine"
        return f"{'the planned GPU' if planned_elsewhere else self.device} {weights}{offload}, {decode}"

    def with_chosen_length(self, chosen: duration.AutoLength) -> "RunPlan":
        """--num-frames auto, once the duration head has chosen: this clip at that frame count, with the video decode
        planned for it; said in one line."""
        config = dataclasses.replace(self.settings, num_frames=chosen.num_frames)
        decode_plan = decode_plan_for(config, config.video_format.num_frames)
        print(f"length of {config.output.name}: {chosen.describe_choice()}; "
              f"{decode_plan.describe(latent_frame_count(config.video_format.num_frames))}", flush=True)
        return dataclasses.replace(self, settings=config, call={**self.call, "num_frames": chosen.num_frames},
                                   decode_plan=decode_plan, auto_length=chosen)

    def estimate_line(self) -> str:
        """--plan-only's last line: the largest stage in each pool and the diffusion's time where it was measured."""
        if self.memory_fit is None:
            return (f"plan only (no weight read): {self.device} shares its memory with the host or is no GPU, so "
                    "nothing is offloaded; --plan-for-gpu GIB --plan-for-host GIB plans for a discrete GPU")
        peaks = self.memory_fit
        stages = {"text": peaks.text, "diffusion": peaks.diffusion, "video": peaks.decode}
        gpu, host = (max(stages, key=lambda name: getattr(stages[name], pool)) for pool in ("gpu", "host"))
        calls = self.steps * self.guidance.transformer_calls_per_step() * max(1, len(self.windows))
        seconds = compiling.diffusion_seconds(peaks.work.tokens, calls, self.fp8, self.offload, self.compiled)
        timing = f"; diffusion about {seconds:.0f} s on an H100 (measured constants)" if seconds else ""
        return (f"plan only (no weight read): peak GPU {stages[gpu].gpu:.1f} GiB ({gpu}), peak host "
                f"{stages[host].host:.1f} GiB ({host}), for {peaks.machine.describe()}{timing}")

    def read_ahead_transformer(self) -> None:
        """Before the text stage: start reading the transformer's files into the page cache, when the plan chose to
        (`choose_read_ahead`); the diffusion stage's load takes over from wherever the read-ahead has got to."""
        if self.read_ahead:
            diffusion.read_ahead_transformer(self.model_dir / self.transformer_folder)

    def load_denoiser(self, stage: memory.Stage) -> diffusion.Denoiser:
        """The diffusion stage's transformer as this plan holds it (precision, offload, LoRAs, compilation)."""
        return diffusion.load_denoiser(stage, self.model_dir, self.device, self.dtype, diffusion.TransformerOptions(
            fp8=self.fp8, offload=self.offload, loras=self.loras, compiled=self.compiled,
            folder=self.transformer_folder, fp8_attention=self.fp8_attention,
            compile_key=compiling.graph_key(fp8=self.fp8, offload=self.offload, call=self.call, version=self.version)))

    @property
    def steps(self) -> int:
        """The (first) diffusion's steps."""
        return self.call["num_inference_steps"]

    def model_reference(self) -> str:
        """A repo id as given; a local directory as an absolute path, so recovery works from any folder."""
        model = self.settings.model
        return str(self.model_dir) if Path(model).expanduser().is_dir() else model

    def sample_rate(self) -> int | None:
        vocoder_config = self.model_dir / "vocoder" / "config.json"
        return json.loads(vocoder_config.read_text()).get("output_sampling_rate") if vocoder_config.is_file() else None

    def clip_record(self) -> dict:
        """The clip as asked for and resolved: the part every record of it shares (the latents file, the sidecar, a
        two-stage run's stage-one file, and through the latents file a recovered clip's sidecar)."""
        config = self.settings
        return {
            "model": self.model_reference(), "fps": report.fps_text(config.video_format.fps), "width": config.width,
            "height": config.height, "num_frames": config.video_format.num_frames, "seed": config.seed,
            "model_version": self.version, "prompt": config.prompt, "negative_prompt": config.negative_prompt,
            "prompt_tokens": PROMPT_TOKENS, "pipeline": config.pipeline, "steps": self.steps,
            "guidance_scale": config.guidance_scale, "guidance": self.guidance.record(), "output": str(config.output),
            **records(self.conditioners), **self.length_record(), **self.windows_record(),
            **made_from(config, length_chosen=self.auto_length is not None),  # what a batch's re-run compares
            **({"dfr": dfr.record(config)} if config.pipeline == "dfr" else {}),
        }

    def latents_metadata(self) -> dict:
        """Everything decode_latents.py needs, with no other flag: the clip, its audio rate and its decode settings."""
        config = self.settings
        return {**self.clip_record(), "sample_rate": self.sample_rate(), "vae_chunk_frames": config.vae_chunk_frames,
                "vae_context_frames": config.vae_context_frames, "vae_tile_size": config.vae_tile_size,
                "vae_tile_overlap": config.vae_tile_overlap, "decoder": config.decoder}

    def windows_record(self) -> dict:
        """A clip in windows: the layout (which --resume must find again) and the clip it continues."""
        config = self.settings
        if not self.windows:
            return {}
        return {"planned_num_frames": config.num_frames, "window_num_frames": config.window_frames,
                "window_overlap": config.window_overlap, "prompt_at": [change.text for change in config.prompt_at],
                "prompt_breaks": list(self.prompt_breaks),
                "extended_from": str(self.earlier.path) if self.earlier else None}

    def length_record(self) -> dict:
        """The latents file's and the sidecar's `auto_duration`: with --num-frames auto, the bounds, the model's
        prediction and the frame count it gave (their `num_frames`); None for a frame count given."""
        return {"auto_duration": self.auto_length.record() if self.auto_length else None}

    def soundtrack(self):
        """The MP4's audio (waveform, rate) where an input replaces it (--audio), or None to decode the audio
        latents."""
        return next((track for conditioner in self.conditioners
                     if (track := conditioner.soundtrack(self.sample_rate())) is not None), None)

    def write_sidecar(self, diffusion: diffusion.DiffusionResult, tracker: memory.MemoryTracker, *,
                      sample_rate: int | None, latents_path: Path, encoded: EncodedPrompt,
                      later_stages: dict) -> Path:
        """`encoded`: the prompt the text stage encoded (the enhanced one with --enhance-prompt); `later_stages`: the
        records of the stages after the decode (post-processing)."""
        config = self.settings
        latent_frames = latent_frame_count(config.num_frames)
        sidecar = {
            "created": report.timestamp(), **self.clip_record(), "model_dir": str(self.model_dir),
            "transformer_folder": self.transformer_folder,
            "transformer_calls_per_step": self.guidance.transformer_calls_per_step(), "fp8": self.fp8,
            "fp8_attention": self.fp8_attention, "compiled": self.compiled, **later_stages,
            "offload": self.offload, "text_offload": self.text_encoder == "offloaded",
            "text_encoder": self.text_encoder, "memory_plan": self.memory_fit.describe() if self.memory_fit else "",
            "memory_plan_estimates": self.memory_fit.record() if self.memory_fit else None,
            "transformer_read_ahead": self.read_ahead, "device": str(self.device),
            "loras": [lora.record() for lora in self.loras], "camera": config.camera,
            "nag": self.nag.record() if self.nag else None, **encoded.record(config.enhance_prompt),
            "prompt_enhancer": str(self.prompt_enhancer) if self.prompt_enhancer else None,
            "dtype": str(self.dtype).replace("torch.", ""), "noise": "torch.Generator('cpu').manual_seed(seed)",
            "pipeline_call": diffusion.pipeline_call, "scheduler_sigmas": diffusion.sigmas,
            "scheduler_timesteps": diffusion.timesteps, "transformer_calls": diffusion.transformer_calls,
            "diffusion_stages": diffusion.stages, "windows": diffusion.windows,
            "vae_decode": self.decode_plan.describe(latent_frames), "video_decoder": self.decode_plan.record(),
            "audio_sample_rate": sample_rate,
            "latents": str(latents_path) if config.keep_latents else None,
            "stage_seconds": tracker.timings(), "stages": report.stage_reports(tracker), "versions": report.versions(),
        }
        return write_json(config.sidecar_path, sidecar)


def decode_plan_for(options: GenerateConfig, num_frames: int, memory_fit: fit.Fit | None = None
                    ) -> video_decode.DecodePlan:
    """The video decode of a clip of `num_frames` with the decode flags of `options`, in the pieces the memory plan
    chose where the whole clip does not fit the GPU; a diffusion decoder's noise from the clip's seed."""
    chunk = options.vae_chunk_frames or (memory_fit.decode_chunk_frames if memory_fit else 0)
    return video_decode.DecodePlan.choose(num_frames, chunk, options.vae_context_frames, options.vae_tile_size,
                                          options.vae_tile_overlap, options.decoder, options.seed)


def choose_guidance(config: GenerateConfig, version: str) -> Guidance:
    """The guidance the run samples with: the scales of the flags (`GenerateConfig.from_args` set the defaults),
    STG and modality isolation alike for video and audio, STG in the block Lightricks recommend for the version, and
    their rescale for the full model (none for the distilled one, which was not tuned with guidance)."""
    rescale = 0.0 if config.distilled else RECOMMENDED_FULL_GUIDANCE.rescale
    audio_rescale = 0.0 if config.distilled else RECOMMENDED_FULL_GUIDANCE.audio_rescale
    return Guidance(cfg=config.guidance_scale, stg=config.stg_scale, modality=config.modality_scale, rescale=rescale,
                    audio_cfg=config.audio_guidance_scale, audio_stg=config.stg_scale,
                    audio_modality=config.modality_scale, audio_rescale=audio_rescale,
                    stg_blocks=FULL_MODEL_SETTINGS[version].stg_blocks if config.stg_scale > 0 else ())


def choose_fp8_attention(requested: str, fp8: str, device: torch.device, transformer_folder: Path,
                         tokens: int) -> bool:
    """Whether the video self-attention of `tokens` tokens runs in FP8: `on` (refused before any weight is read
    where it cannot run), `off`, or `auto`, which follows `--fp8 dynamic` (the user has chosen FP8 numbers for
    speed) where the attention is long enough to gain (`attention.FP8_MIN_TOKENS`), and falls back to bf16
    attention in one line where the GPU, cuDNN or the frontend package lacks it."""
    from ltx2gen.attention import FP8_MIN_TOKENS, unavailable_reason

    if requested == "off" or (requested == "auto" and fp8 != "dynamic"):
        return False
    if requested == "auto" and tokens < FP8_MIN_TOKENS:
        print(f"note: the attention stays bf16 with --fp8 dynamic: over {tokens:,} video tokens the FP8 kernel is "
              f"slower than bf16 (it pays from about {FP8_MIN_TOKENS:,}); --fp8-attention on forces it")
        return False
    head_dim = json.loads((transformer_folder / "config.json").read_text())["attention_head_dim"]
    reason = unavailable_reason(device, head_dim)
    if reason and requested == "on":
        raise ConfigError(f"--fp8-attention on: {reason} (device {device}); drop the flag or give --fp8-attention "
                          "off")
    if reason:
        print(f"note: the attention stays bf16 with --fp8 dynamic: {reason}")
    return not reason


def choose_fp8(requested: str, device: torch.device) -> str:
    """auto: FP8 weights where float8 kernels exist (CUDA, compute capability 8.9+), bf16 elsewhere, said in one
    line; the memory plan then keeps bf16 on a discrete GPU where everything fits (`fit.bf16_fits`). An explicit
    `weight` is honoured anywhere (torchao stores float8 on any device); `dynamic` needs the float8 tensor cores."""
    if requested == "dynamic" and not fp8_supported(device):
        raise ConfigError(f"--fp8 dynamic needs float8 tensor cores (an NVIDIA GPU of compute capability 8.9 or "
                          f"newer), not {device}; use --fp8 weight or --fp8 off")
    if requested != "auto":
        return requested
    if fp8_supported(device):
        return "weight"
    print(f"note: FP8 needs an NVIDIA GPU of compute capability 8.9 or newer; the transformer runs in "
          f"{str(components.default_dtype(device)).replace('torch.', '')} on {device} (--fp8 off)")
    return "off"
