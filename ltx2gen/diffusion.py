"""Stage 2, diffusion: the transformer denoises the video and audio latents with diffusers' stock `LTX2Pipeline`,
built from just the transformer and scheduler (the text conditioning is given, the VAEs stand in by their latent
statistics), so the numerics are the stock pipeline's while the stage holds one model. The transformer is freed
when the stage ends."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ltx2gen import context_parallel, nag
from ltx2gen import memory as mem
from ltx2gen.checkpoint import FULL_MODEL_SCHEDULER, FULL_TRANSFORMER_FOLDER, Guidance
from ltx2gen.components import CPU, component_class, decoder_weight_ranges, load_component, stock_pipeline
from ltx2gen.conditioners.base import RunConditions
from ltx2gen.kernels import compile_blocks
from ltx2gen.lora import fuse_loras
from ltx2gen.patches import (
    following_audio,
    following_latent_frames,
    given_text_conditioning,
    host_copies_apart_from_weights,
    rotary_embedding_in_chunks,
    self_attention_perturbable,
    timestep_modulation_per_run,
    token_wise_layers_in_chunks,
    video_self_attention_in_fp8,
)
from ltx2gen.quant import quantize_block, quantize_fp8
from ltx2gen.ranks import Ranks
from ltx2gen.stand_ins import LatentStatistics
from ltx2gen.streaming import from_files
from ltx2gen.text import TextConditioning
from ltx2gen.weights import load_streamed, weight_files


@dataclass
class DiffusionResult:
    video_latents: torch.Tensor
    audio_latents: torch.Tensor
    pipeline_call: dict
    sigmas: list[float]
    timesteps: list[float]
    transformer_calls: int
    stages: list[dict] | None = None  # each diffusion stage's size, steps and sigmas, for multi-stage pipelines
    windows: list[dict] | None = None  # each window's place, seed and sigmas, for a clip in windows


def pipeline_call_arguments(*, width: int, height: int, num_frames: int, fps: float, steps: int, guidance: Guidance,
                            distilled: bool, version: str) -> dict:
    """The exact keyword arguments given to `LTX2Pipeline.__call__` (besides embeddings and generator), for a
    checkpoint of `version` (`checkpoint.model_version`). Every guidance setting is given, off ones too: the
    pipeline's own defaults are the full LTX-2.3 model's, which would run extra transformer passes."""
    from diffusers.pipelines.ltx2.utils import DISTILLED_SIGMA_VALUES

    return dict(
        height=height, width=width, num_frames=num_frames, frame_rate=fps, num_inference_steps=steps,
        sigmas=list(DISTILLED_SIGMA_VALUES) if distilled else None, **guidance.pipeline_arguments(),
        # LTX-2.3 and later modulate each modality's cross-attention with the other's timestep; 2.0 was not trained so
        use_cross_timestep=version != "2.0",
        output_type="latent",
    )


@dataclass
class Denoiser:
    """The loaded diffusion stage: a stock pipeline with just the transformer, connectors and scheduler."""

    pipe: object
    calls: list
    device: torch.device


@dataclass(frozen=True)
class TransformerOptions:
    """How the diffusion stage holds the transformer. `fp8`: off, weight or dynamic (which needs `compiled`);
    `offload`: none, model, group, sequential or files (`streaming`); `loras` are fused first; `compiled`: the
    transformer blocks (not with sequential or files offload, whose per-block hooks would sit inside the compiled
    graph); `folder`: the model folder
    it is read from (`checkpoint.transformer_folder`); `fp8_attention`: the video self-attention in FP8
    (`attention.fp8_attention`)."""

    fp8: str = "off"
    offload: str = "none"
    loras: tuple = ()
    compiled: bool = False
    folder: str = "transformer"
    fp8_attention: bool = False
    compile_key: str = ""  # the compiled graph's shape (`compiling.graph_key`), noted in the cache once it has run


def load_denoiser(stage: mem.Stage, model_dir: Path, device: torch.device, dtype: torch.dtype,
                  options: TransformerOptions = TransformerOptions()) -> Denoiser:
    fp8, offload, folder = options.fp8, options.offload, options.folder
    quantized = fp8 != "off"
    if offload == "none" and not options.loras:
        transformer = stage.load("transformer", lambda: load_transformer(model_dir, device, dtype, fp8, folder))
    elif offload == "files":
        transformer = stage.load("transformer", lambda: from_files(
            component_class(model_dir, folder), model_dir / folder, device, dtype, blocks="transformer_blocks",
            on_block=(lambda block: quantize_block(block, fp8)) if fp8 != "off" else None))
    elif not options.loras:
        transformer = stage.load("transformer", lambda: load_transformer_to_host(model_dir, device, dtype, fp8,
                                                                                 folder))
    else:
        # LoRAs fuse into the whole bf16 transformer before quantization; offload keeps the weights in host memory.
        # With FP8 the transformer then reaches the device block by block, quantized.
        load_device = CPU if offload != "none" or quantized else device
        transformer = stage.load("transformer", lambda: load_component(model_dir, folder, load_device, dtype))
        fuse_loras("transformer", transformer, options.loras)
        if quantized:
            quantize_fp8(transformer, fp8, None if offload != "none" else device)
    self_attention_perturbable(transformer)
    timestep_modulation_per_run(transformer)
    if options.fp8_attention:
        video_self_attention_in_fp8(transformer)
    token_wise_layers_in_chunks(transformer)
    rotary_embedding_in_chunks()
    if options.compiled:
        compile_blocks(transformer)  # before the offload hooks, which then wrap the compiled forward
        note_compiled_once(transformer, options.compile_key)
    calls = []
    transformer.register_forward_pre_hook(lambda module, args: calls.append(1))
    scheduler = stage.load("scheduler", lambda: load_component(model_dir, "scheduler", device, dtype))
    pipe = stock_pipeline(
        transformer=transformer,
        scheduler=shifting_with_the_clip(scheduler) if folder == FULL_TRANSFORMER_FOLDER else scheduler,
        vae=LatentStatistics.load(component_class(model_dir, "vae"), model_dir / "vae", device),
        audio_vae=LatentStatistics.load(component_class(model_dir, "audio_vae"), model_dir / "audio_vae", device),
    )
    if offload == "model":
        # The transformer sits in host memory and moves to the GPU whole when the first step runs.
        pipe.enable_model_cpu_offload(device=device)
    elif offload == "group":
        stream_blocks(transformer, device)
    elif offload == "sequential":
        pipe.enable_sequential_cpu_offload(device=device)
    prefetch_decoders(model_dir, device)
    return Denoiser(pipe, calls, device)


def note_compiled_once(transformer: torch.nn.Module, key: str) -> None:
    """Once the first compiled call has finished, its graph is in the compile cache: a later run of the same shape
    plans for a warm compile (`compiling.remember`)."""
    from ltx2gen import compiling

    def remember(module, args, output) -> None:
        handle.remove()
        compiling.remember(key)

    handle = transformer.register_forward_hook(remember)


def shifting_with_the_clip(scheduler):
    """The scheduler of a full model kept beside a distilled one (LTX-2.5's transformer_full/): the repo's scheduler
    is the distilled model's, without shifting; the full model's shifts with the clip size and ends at 0.1, as
    diffusers' LTX-2.5 documentation rebuilds it ("Full / SFT transformer") and as LTX-2.0's full repo ships it."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler.from_config(scheduler.config, **FULL_MODEL_SCHEDULER)


def load_transformer(model_dir: Path, device: torch.device, dtype: torch.dtype, fp8: str = "off",
                     folder: str = "transformer"):
    """The transformer straight from its files in `folder` to `device`, one tensor at a time, each block quantized
    for `fp8` (off, weight or dynamic) as soon as it is whole."""
    return load_streamed(component_class(model_dir, folder), model_dir / folder, device, dtype,
                         on_block=(lambda block: quantize_block(block, fp8)) if fp8 != "off" else None,
                         evict=not Ranks.share_the_page_cache())


def load_transformer_to_host(model_dir: Path, device: torch.device, dtype: torch.dtype, fp8: str = "off",
                             folder: str = "transformer"):
    """The transformer for offloading: streamed from its files into pinned host memory one block at a time, each
    block quantized for `fp8` on `device` as soon as it is whole and moved back. Host memory holds the (FP8)
    transformer once: loading it whole and pinning a copy, as offloading does with a loaded model, took twice."""
    def to_host(block: torch.nn.Module) -> None:
        if fp8 != "off":
            quantize_block(block.to(device), fp8)
            block.to(CPU)
        mem.pin_to_host(block, device)

    transformer = load_streamed(component_class(model_dir, folder), model_dir / folder, CPU, dtype, on_block=to_host,
                                evict=not Ranks.share_the_page_cache())
    mem.pin_to_host(transformer, device)  # the layers outside the blocks
    return transformer


def stream_blocks(transformer: torch.nn.Module, device: torch.device, level: str = "block") -> None:
    """Group offload with the next group's transfer overlapped with compute on a CUDA stream. `block`: one
    transformer block per group (0.73 GiB of bf16 weights each, two on the GPU at a time); `leaf`: one layer per
    group, so the weights on the GPU never exceed a few layers."""
    transformer.enable_group_offload(onload_device=device, offload_device=CPU, offload_type=f"{level}_level",
                                     num_blocks_per_group=1 if level == "block" else None,
                                     use_stream=device.type == "cuda")
    host_copies_apart_from_weights(transformer)


def run_denoiser(denoiser: Denoiser, conditioning: TextConditioning, call: dict, seed: int, *,
                 nag_settings: nag.NagSettings | None = None, conditions: RunConditions | None = None,
                 inputs: dict | None = None) -> DiffusionResult:
    """Stage 2 with a loaded denoiser (a batch shares one among its clips; two-stage runs it twice): the
    transformer denoises video and audio latents with the stock pipeline, NAG in its text cross-attention with
    `nag_settings`. `conditions` are what the run follows besides its text (`ltx2gen.conditioners`): the stock
    pipeline they choose over the same loaded components (`RunConditions.pipeline`: image-to-video, keyframes, a
    reference video); with audio, the video follows the given audio latents (`ltx2gen.audio_input`).
    `call` is recorded in the sidecar; `inputs` are further pipeline arguments that are not (starting latents)."""
    denoiser.calls.clear()
    conditioning = conditioning.to(denoiser.device)
    audio = conditions.audio if conditions else None
    retake = conditions.retake if conditions else None
    pipe, condition_inputs = conditions.pipeline(denoiser.pipe) if conditions else (denoiser.pipe, {})
    with given_text_conditioning(pipe, conditioning, sigmas_as_given=call.get("sigmas") is not None) as scheduler, \
            nag.guidance(denoiser.pipe.transformer, nag_settings, conditioning), following_audio(pipe, audio), \
            following_latent_frames(pipe, retake):
        output = pipe(generator=torch.Generator("cpu").manual_seed(seed), **conditioning.pipeline_inputs(),
                      **condition_inputs, **call, **(inputs or {}))
    video_latents, audio_latents = output.frames.detach().to("cpu"), output.audio.detach().to("cpu")
    if retake is not None:  # the kept latent frames exactly the clip's, not their normalisation's round trip
        video_latents, audio_latents = retake.restore_kept(video_latents, audio_latents)
    return DiffusionResult(
        video_latents=video_latents, audio_latents=audio_latents,
        pipeline_call=call, sigmas=[round(float(s), 8) for s in scheduler.sigmas],
        timesteps=[round(float(t), 6) for t in scheduler.timesteps], transformer_calls=len(denoiser.calls),
    )


def split_over_ranks(denoiser: Denoiser, conditioning: TextConditioning | None,
                     world_size: int) -> TextConditioning:
    """One clip over several GPUs: each rank computes its share of the video tokens from rank 0's conditioning
    (the other ranks pass None), which reaches them once they have loaded the transformer. Every rank ends with the
    same latents."""
    context_parallel.enable(denoiser.pipe.transformer, world_size, denoiser.device)
    return context_parallel.from_rank_zero(conditioning and conditioning.to(CPU), denoiser.device)


def read_ahead_transformer(transformer_folder: Path) -> mem.PageCachePrefetch:
    """The transformer's weight files read into the page cache in the background (`RunPlan.read_ahead_transformer`
    says when); its load stops the read-ahead where it has got to and reads the rest itself."""
    return mem.prefetch_into_page_cache([(file, 0, 0) for file in weight_files(transformer_folder)])


def prefetch_decoders(model_dir: Path, device: torch.device) -> None:
    """On a discrete GPU, once the transformer is loaded: read the decoders' weights into the page cache while the
    transformer runs and the disk is idle, so the audio and video stages load them from memory. Not on unified
    memory (Jetson Thor), where the page cache takes from the memory the diffusion stage peaks in."""
    if device.type == "cuda" and not torch.cuda.get_device_properties(device).is_integrated:
        mem.prefetch_into_page_cache(decoder_weight_ranges(model_dir))
