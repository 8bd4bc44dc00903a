"""The pipeline's stages. Each loads only its own models, uses them, and frees them before returning.

Sampling is diffusers' stock `LTX2Pipeline`: a stage builds one from just the components it needs (the rest
are None), so the numerics are exactly the stock pipeline's while peak memory is the largest single stage.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from ltx2gen import context_parallel, enhance, nag
from ltx2gen import memory as mem
from ltx2gen.audio_input import AudioCondition, conditioned
from ltx2gen.config import (MODEL_FILE_PATTERNS, MODEL_IGNORE_PATTERNS, PROMPT_TOKENS, ConfigError,
                            check_video_vae, latent_frame_count)
from ltx2gen.image import ImageConditioning
from ltx2gen.lora import fuse_loras
from ltx2gen.kernels import chunk_rotary_embedding, chunk_token_wise_layers, compile_blocks
from ltx2gen.quant import quantize_block, quantize_fp8, quantize_text_encoder_linears, text_encoder_quantization
from ltx2gen.ranks import Ranks
from ltx2gen.stand_ins import ConnectorOutputs, LatentStatistics
from ltx2gen.weights import (GEMMA_IMAGE_MODULES, WeightNamesMismatch, load_streamed, load_transformers_streamed,
                             stored_tensors, weight_files)

NEUTRAL_GUIDANCE = dict(stg_scale=0.0, modality_scale=1.0, guidance_rescale=0.0, audio_stg_scale=0.0,
                        audio_modality_scale=1.0, audio_guidance_rescale=0.0, spatio_temporal_guidance_blocks=None)
# Above this many frames the automatic plan decodes in temporal pieces to keep the decode peak flat.
WHOLE_DECODE_MAX_FRAMES = 161
AUTO_CHUNK_FRAMES = 64
VAE_TILE_LATENTS = 16
FRAMES_PER_TRANSFER = 16  # decoded frames converted to uint8 and copied to the host at a time
CPU = torch.device("cpu")
TEXT_ENCODER_MODES = ("resident", "fp8", "offloaded")
TEXT_ENCODER_LAYERS = "model.language_model.layers"  # Gemma's decoder layers, quantized one by one as they load
TEXT_ENCODER_UNUSED = tuple(f"model.{name}" for name in GEMMA_IMAGE_MODULES)  # as Gemma3ForConditionalGeneration


@dataclass
class TextConditioning:
    """What the text stage leaves for diffusion: the connectors' outputs for the video and audio streams (a batch
    of [negative, positive] with guidance, as the stock pipeline builds it; with NAG each row's tokens followed by
    the negative prompt's, `nag.with_negative_context`), the Gemma attention masks and the prompt they encode
    (the enhanced one with --enhance-prompt)."""

    video: torch.Tensor
    audio: torch.Tensor
    mask: torch.Tensor
    prompt_mask: torch.Tensor
    prompt: str | None = None

    @property
    def with_guidance(self) -> bool:
        return self.video.shape[0] == 2

    def tensors(self) -> dict[str, torch.Tensor]:
        return {name: value for name, value in vars(self).items() if isinstance(value, torch.Tensor)}

    def to(self, device) -> "TextConditioning":
        return dataclasses.replace(self, **{name: value.to(device) for name, value in self.tensors().items()})

    def pipeline_inputs(self) -> dict:
        """The stock call's prompt arguments; its connectors call then returns these outputs unchanged."""
        if self.with_guidance:
            return dict(prompt_embeds=self.video[1:], prompt_attention_mask=self.prompt_mask[1:],
                        negative_prompt_embeds=self.video[:1], negative_prompt_attention_mask=self.prompt_mask[:1])
        return dict(prompt_embeds=self.video, prompt_attention_mask=self.prompt_mask)


@dataclass
class DiffusionResult:
    video_latents: torch.Tensor
    audio_latents: torch.Tensor
    pipeline_call: dict
    sigmas: list[float]
    timesteps: list[float]
    transformer_calls: int
    stages: list[dict] | None = None  # each diffusion stage's size, steps and sigmas, for multi-stage pipelines


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        ranks = Ranks.from_env()  # under torchrun: one GPU per process
        return torch.device("cuda", ranks.local_rank) if ranks.distributed else torch.device("cuda")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: CUDA is not available on this machine (use --device cpu)")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ConfigError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device


def default_dtype(device: torch.device) -> torch.dtype:
    # bf16 is the checkpoints' dtype; CPU convolutions in bf16 are slow and poorly supported, so CPU runs in fp32.
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def resolve_model_dir(model: str) -> Path:
    """A local directory as is; a repo id from the Hugging Face cache (downloaded unless HF_HUB_OFFLINE=1).
    Raises ConfigError, before any weight is read, when the model cannot be found or its video VAE is not one this
    product decodes."""
    local = Path(model).expanduser()
    if local.is_dir():
        if not (local / "model_index.json").is_file():
            raise ConfigError(f"--model {model}: not a diffusers-format model directory (no model_index.json)")
        model_dir = local.resolve()
    else:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError

        try:
            model_dir = Path(snapshot_download(model, allow_patterns=MODEL_FILE_PATTERNS,
                                               ignore_patterns=MODEL_IGNORE_PATTERNS))
        except LocalEntryNotFoundError:
            raise ConfigError(f"--model {model}: not in the Hugging Face cache and downloads are off "
                              f"(HF_HUB_OFFLINE=1); download it first (docker: 'download {model}') or give a local "
                              "directory") from None
    check_video_vae(model_dir, f"--model {model}")
    return model_dir


def model_weight_files(model_dir: Path) -> list[Path]:
    """The weight files a run reads: each component's (`weights.weight_files`: the indexed shard set where a
    folder holds two) and the latent upsampler's, never a stale set beside them."""
    model_dir = Path(model_dir).resolve()
    components = [name for name, value in json.loads((model_dir / "model_index.json").read_text()).items()
                  if isinstance(value, list)]
    return [file for name in [*components, "latent_upsampler"] for file in weight_files(model_dir / name)]


def release_page_cache(model_dir: Path, drop_system_cache: bool) -> None:
    """Stage 6: with every model deleted and the video on disk, evict the weight files from the page cache
    (no root needed) and, if asked and permitted, drop the whole page cache."""
    advised = mem.evict_from_page_cache(model_weight_files(model_dir))
    dropped = drop_system_cache and mem.drop_system_page_cache()
    extra = "; whole page cache dropped" if dropped else (
        "; dropping the whole page cache is not permitted here" if drop_system_cache else "")
    print(f"page cache: evicted {advised / mem.GIB:.3f} GiB of model files{extra}", flush=True)


def _component_class(model_dir: Path, name: str):
    library, class_name = json.loads((model_dir / "model_index.json").read_text())[name]
    module = library if library in ("diffusers", "transformers") else f"diffusers.pipelines.{library}"
    return getattr(importlib.import_module(module), class_name)


def load_component(model_dir: Path, name: str, device: torch.device, dtype: torch.dtype, fp8: bool = False):
    """One component of the model directory on `device`. `fp8` (transformers models: the text encoder) stores
    its linear layers in float8 as they load, so the bf16 model is never whole in memory."""
    from ltx2gen.synthetic import build_at_load

    built = build_at_load(model_dir, name, device, dtype, quantize=quantize_text_encoder_linears if fp8 else None)
    if built is not None:
        return built.eval().requires_grad_(False)
    cls = _component_class(model_dir, name)
    if name in ("tokenizer", "scheduler", "processor"):
        return cls.from_pretrained(model_dir, subfolder=name)
    if cls.__module__.startswith("transformers"):
        model = _load_transformers_model(cls, model_dir / name, device, dtype, fp8)
    elif fp8:
        raise ValueError(f"{name}: FP8 while loading is for the transformers text encoder, not {cls.__name__}")
    else:
        model = cls.from_pretrained(model_dir, subfolder=name, torch_dtype=dtype, device_map=str(device))
    return model.eval().requires_grad_(False)


def _load_transformers_model(cls, folder: Path, device: torch.device, dtype: torch.dtype, fp8: bool):
    """Streamed from the files one tensor at a time, each decoder layer quantized as it arrives with `fp8`:
    from_pretrained memory-maps the files, and every page it reads stays in the process's memory until it returns
    (21.6 GiB of RSS beside the GPU copy for Gemma 12B, measured). Where the stored names cannot be matched, it is
    from_pretrained after all (quantizing as it loads with `fp8`), said in one line."""
    try:
        model = load_transformers_streamed(cls, folder, device, dtype,
                                           on_block=quantize_text_encoder_linears if fp8 else None,
                                           blocks=TEXT_ENCODER_LAYERS, evict=not Ranks.share_the_page_cache(),
                                           without=TEXT_ENCODER_UNUSED)
    except WeightNamesMismatch as mismatch:
        print(f"note: {mismatch}; loading it with from_pretrained, which holds its files in memory while it loads",
              flush=True)
        return cls.from_pretrained(folder, dtype=dtype, device_map=str(device),
                                   quantization_config=text_encoder_quantization() if fp8 else None)
    if fp8:
        quantize_text_encoder_linears(model)  # the layers outside the decoder
    return model


def _pipeline(**components):
    from diffusers import LTX2Pipeline

    names = ("scheduler", "vae", "audio_vae", "text_encoder", "tokenizer", "connectors", "transformer", "vocoder",
             "processor")
    return LTX2Pipeline(**{name: components.get(name) for name in names})


@dataclass(frozen=True)
class PromptRequest:
    prompt: str
    negative_prompt: str | None
    with_guidance: bool
    with_nag: bool = False
    enhance_seed: int | None = None  # --enhance-prompt: rewrite the prompt first, with this seed

    @classmethod
    def for_clip(cls, config) -> "PromptRequest":
        """What the text stage encodes for one clip's settings (a `GenerateConfig`)."""
        return cls(config.prompt, config.negative_prompt, config.uses_guidance, config.uses_nag, config.enhance_seed)


def encode_prompts(stage: mem.Stage, model_dir: Path, requests: list[PromptRequest], device: torch.device,
                   dtype: torch.dtype, loras: tuple = (), cache: "EmbeddingCache | None" = None,
                   text_encoder: str = "resident") -> list[TextConditioning]:
    """Stage 1: Gemma encodes each prompt (and negative prompt with guidance or NAG) and the text connectors turn
    that into the transformer's conditioning; `text_encoder` says how Gemma is held (`load_text_encoder`). Prompts
    to enhance are rewritten first by the same text encoder (`ltx2gen.enhance`). With a cache, prompts encoded
    before are read from disk (keyed by the prompt encoded), and no model is loaded at all when every prompt is
    cached and none is to be enhanced."""
    tokenizer = stage.load("tokenizer", lambda: load_component(model_dir, "tokenizer", device, dtype))
    enhancing = any(request.enhance_seed is not None for request in requests)
    pipe = None

    def text_pipeline():  # the text encoder, loaded once, when first needed
        nonlocal pipe
        if pipe is None:
            pipe = _pipeline(tokenizer=tokenizer,
                             text_encoder=load_text_encoder(stage, model_dir, device, dtype, text_encoder),
                             processor=load_component(model_dir, enhance.PROCESSOR, device, dtype) if enhancing
                             else None)
        return pipe

    requests = list(requests)
    for i, request in enumerate(requests):
        if request.enhance_seed is not None:
            prompt = enhance.enhance(text_pipeline(), request.prompt, request.enhance_seed, device)
            requests[i] = dataclasses.replace(request, prompt=prompt, enhance_seed=None)
    key_extra = [PROMPT_TOKENS, str(dtype), [(lora.spec.label, lora.spec.scale) for lora in loras]]
    if text_encoder == "fp8":  # appended only then, so the bf16 entries cached before FP8 existed keep their keys
        key_extra.append("fp8 text encoder")
    results = [cache.get(model_dir, request, key_extra) if cache else None for request in requests]
    missing = [i for i, result in enumerate(results) if result is None]
    if not missing:
        return results
    connectors = stage.load("connectors", lambda: load_component(model_dir, "connectors", device, dtype))
    fuse_loras("connectors", connectors, loras)
    pipe = text_pipeline()
    for i in missing:
        request = requests[i]
        with_negative = request.with_guidance or request.with_nag
        with torch.no_grad():
            embeds, mask, negative_embeds, negative_mask = pipe.encode_prompt(
                request.prompt, request.negative_prompt, do_classifier_free_guidance=with_negative,
                max_sequence_length=PROMPT_TOKENS, device=device, dtype=dtype)
            if with_negative:  # the order the stock pipeline concatenates them in
                embeds, mask = torch.cat([negative_embeds, embeds]), torch.cat([negative_mask, mask])
            video, audio, connector_mask = connectors(embeds, mask, padding_side=tokenizer.padding_side)
        results[i] = TextConditioning(video, audio, connector_mask, mask, request.prompt)
        if request.with_nag:
            results[i] = nag.with_negative_context(results[i], request.with_guidance)
        if cache:
            cache.put(model_dir, request, key_extra, results[i])
    return results


def load_text_encoder(stage: mem.Stage, model_dir: Path, device: torch.device, dtype: torch.dtype,
                      mode: str = "resident"):
    """Gemma for the text stage, by `mode` (one of TEXT_ENCODER_MODES): `resident` on `device`; `fp8` there with
    its linear layers stored in float8 (about 12 instead of 22 GiB at full size); `offloaded` in host memory, each
    layer streamed to the GPU when it runs."""
    if mode not in TEXT_ENCODER_MODES:
        raise ValueError(f"unknown text encoder mode {mode!r}; expected one of {', '.join(TEXT_ENCODER_MODES)}")
    if mode == "offloaded":
        from diffusers.hooks import apply_group_offloading

        text_encoder = stage.load("text_encoder", lambda: load_component(model_dir, "text_encoder", CPU, dtype))
        apply_group_offloading(text_encoder, onload_device=device, offload_device=CPU, offload_type="leaf_level",
                               use_stream=device.type == "cuda")
        return text_encoder
    return stage.load("text_encoder", lambda: load_component(model_dir, "text_encoder", device, dtype,
                                                             fp8=mode == "fp8"))


def encode_prompt(stage: mem.Stage, model_dir: Path, request: PromptRequest, device: torch.device,
                  dtype: torch.dtype, loras: tuple = (), text_encoder: str = "resident") -> TextConditioning:
    """Stage 1 for one prompt."""
    return encode_prompts(stage, model_dir, [request], device, dtype, loras, text_encoder=text_encoder)[0]


class EmbeddingCache:
    """Text conditioning on disk, keyed by model, prompts, length, dtype and connector LoRAs, so a re-render skips
    the text encoder. One entry is 12-25 MB (the connectors' outputs, not Gemma's 0.4 GB of hidden states)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def _path(self, model_dir: Path, request: PromptRequest, key_extra: list) -> Path:
        import hashlib

        fields = [str(Path(model_dir).resolve()), request.prompt, request.negative_prompt, request.with_guidance,
                  key_extra]
        if request.with_nag:  # appended only when on, so the entries cached before NAG existed keep their keys
            fields.append("nag")
        key = json.dumps(fields)
        return self.folder / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.safetensors"

    def get(self, model_dir: Path, request: PromptRequest, key_extra: list) -> TextConditioning | None:
        from safetensors.torch import load_file

        path = self._path(model_dir, request, key_extra)
        if not path.is_file():
            return None
        return TextConditioning(**load_file(str(path)), prompt=request.prompt)

    def put(self, model_dir: Path, request: PromptRequest, key_extra: list, conditioning: TextConditioning) -> None:
        from safetensors.torch import save_file

        from ltx2gen.files import atomic_path

        tensors = {name: value.detach().cpu().contiguous() for name, value in conditioning.tensors().items()}
        with atomic_path(self._path(model_dir, request, key_extra)) as temporary:
            save_file(tensors, str(temporary))


def pipeline_call_arguments(*, width: int, height: int, num_frames: int, fps: float, steps: int,
                            guidance_scale: float, distilled: bool) -> dict:
    """The exact keyword arguments given to `LTX2Pipeline.__call__` (besides embeddings and generator)."""
    from diffusers.pipelines.ltx2.utils import DISTILLED_SIGMA_VALUES

    return dict(
        height=height, width=width, num_frames=num_frames, frame_rate=fps, num_inference_steps=steps,
        sigmas=list(DISTILLED_SIGMA_VALUES) if distilled else None,
        guidance_scale=guidance_scale, audio_guidance_scale=guidance_scale, **NEUTRAL_GUIDANCE,
        use_cross_timestep=False,  # LTX-2.0 weights; True is LTX-2.3 behaviour
        output_type="latent",
    )


@dataclass
class Denoiser:
    """The loaded diffusion stage: a stock pipeline with just the transformer, connectors and scheduler."""

    pipe: object
    calls: list


def load_denoiser(stage: mem.Stage, model_dir: Path, device: torch.device, dtype: torch.dtype, fp8: str = "off",
                  offload: str = "none", loras: tuple = (), compiled: bool = False) -> Denoiser:
    """`fp8` is off, weight or dynamic (which needs `compiled`); `offload` none, model, group or sequential;
    `compiled` compiles the transformer blocks (not with sequential offload, whose per-layer hooks would sit inside
    the compiled graph)."""
    quantized = fp8 != "off"
    if offload == "none" and not loras:
        transformer = stage.load("transformer", lambda: load_transformer(model_dir, device, dtype, fp8))
    else:
        # LoRAs fuse into the whole bf16 transformer before quantization; offload keeps the weights in host memory.
        # With FP8 the transformer then reaches the device block by block, quantized.
        load_device = CPU if offload != "none" or quantized else device
        transformer = stage.load("transformer", lambda: load_component(model_dir, "transformer", load_device, dtype))
        fuse_loras("transformer", transformer, loras)
        if quantized:
            quantize_fp8(transformer, fp8, None if offload != "none" else device)
    chunk_token_wise_layers(transformer)
    chunk_rotary_embedding()
    if compiled:
        compile_blocks(transformer)  # before the offload hooks, which then wrap the compiled forward
    calls = []
    transformer.register_forward_pre_hook(lambda module, args: calls.append(1))
    pipe = _pipeline(
        transformer=transformer,
        scheduler=stage.load("scheduler", lambda: load_component(model_dir, "scheduler", device, dtype)),
        vae=LatentStatistics.load(_component_class(model_dir, "vae"), model_dir / "vae", device),
        audio_vae=LatentStatistics.load(_component_class(model_dir, "audio_vae"), model_dir / "audio_vae", device),
    )
    if offload == "model":
        # The transformer sits in host memory and moves to the GPU whole when the first step runs.
        pipe.enable_model_cpu_offload(device=device)
    elif offload == "group":
        stream_blocks(transformer, device)
    elif offload == "sequential":
        pipe.enable_sequential_cpu_offload(device=device)
    prefetch_decoders(model_dir, device)
    return Denoiser(pipe, calls)


def load_transformer(model_dir: Path, device: torch.device, dtype: torch.dtype, fp8: str = "off"):
    """The transformer straight from its files to `device`, one tensor at a time, each block quantized for `fp8`
    (off, weight or dynamic) as soon as it is whole."""
    return load_streamed(_component_class(model_dir, "transformer"), model_dir / "transformer", device, dtype,
                         on_block=(lambda block: quantize_block(block, fp8)) if fp8 != "off" else None,
                         evict=not Ranks.share_the_page_cache())


def stream_blocks(transformer: torch.nn.Module, device: torch.device, level: str = "block") -> None:
    """Group offload with the next group's transfer overlapped with compute on a CUDA stream. `block`: one
    transformer block per group (0.73 GiB of bf16 weights each, two on the GPU at a time); `leaf`: one layer per
    group, so the weights on the GPU never exceed a few layers."""
    transformer.enable_group_offload(onload_device=device, offload_device=CPU, offload_type=f"{level}_level",
                                     num_blocks_per_group=1 if level == "block" else None,
                                     use_stream=device.type == "cuda")


def run_denoiser(denoiser: Denoiser, conditioning: TextConditioning, call: dict, seed: int,
                 device: torch.device, nag_settings: nag.NagSettings | None = None,
                 image: ImageConditioning | None = None, inputs: dict | None = None,
                 audio: AudioCondition | None = None) -> DiffusionResult:
    """With `image`, the stock image-to-video sampling over the same loaded components (`ltx2gen.image`); with
    `audio`, the video follows the given audio latents (`ltx2gen.audio_input`).
    `call` is recorded in the sidecar; `inputs` are further pipeline arguments that are not (starting latents)."""
    denoiser.calls.clear()
    conditioning = conditioning.to(device)
    pipe, image_inputs = image.pipeline(denoiser.pipe) if image else (denoiser.pipe, {})
    pipe.connectors = ConnectorOutputs(conditioning.video, conditioning.audio, conditioning.mask)
    checkpoint_scheduler = pipe.scheduler
    if call.get("sigmas") is not None:
        pipe.scheduler = taking_sigmas_as_given(checkpoint_scheduler)
    try:
        with nag.guidance(denoiser.pipe.transformer, nag_settings, conditioning), conditioned(pipe, audio):
            output = pipe(generator=torch.Generator("cpu").manual_seed(seed), **conditioning.pipeline_inputs(),
                          **image_inputs, **call, **(inputs or {}))
        scheduler = pipe.scheduler
    finally:
        pipe.connectors, pipe.scheduler = None, checkpoint_scheduler
    return DiffusionResult(
        video_latents=output.frames.detach().to("cpu"), audio_latents=output.audio.detach().to("cpu"),
        pipeline_call=call, sigmas=[round(float(s), 8) for s in scheduler.sigmas],
        timesteps=[round(float(t), 6) for t in scheduler.timesteps], transformer_calls=len(denoiser.calls),
    )


def taking_sigmas_as_given(scheduler):
    """The checkpoint's scheduler made to step through the sigmas it is given, unchanged, as Lightricks' own
    pipelines step through the distilled lists: with dynamic shifting (the full model's configuration, and distilled
    repos converted before March 2026) diffusers would shift them for the clip size and stretch them to
    `shift_terminal`."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler.from_config(
        scheduler.config, use_dynamic_shifting=False, shift_terminal=None, shift=1.0, use_karras_sigmas=False,
        use_exponential_sigmas=False, use_beta_sigmas=False, invert_sigmas=False)


def denoise(stage: mem.Stage, model_dir: Path, conditioning: TextConditioning | None, call: dict, seed: int,
            device: torch.device, dtype: torch.dtype, fp8: str = "off", offload: str = "none",
            loras: tuple = (), compiled: bool = False, world_size: int = 1,
            nag_settings: nag.NagSettings | None = None, image: ImageConditioning | None = None,
            audio: AudioCondition | None = None) -> DiffusionResult:
    """Stage 2: the transformer denoises video and audio latents with the stock pipeline (NAG in its text
    cross-attention with `nag_settings`; with `image`, the stock image-to-video sampling; with `audio`, the video
    follows the given audio).

    With `world_size` > 1 (one clip over several GPUs) every rank loads the transformer while rank 0 encodes the
    prompt; rank 0's conditioning (the other ranks pass None) reaches them once loaded, and each rank computes its
    share of the video tokens. Every rank ends with the same latents."""
    denoiser = load_denoiser(stage, model_dir, device, dtype, fp8, offload, loras, compiled)
    if world_size > 1:
        context_parallel.enable(denoiser.pipe.transformer, world_size)
        conditioning = context_parallel.from_rank_zero(conditioning and conditioning.to(CPU), device)
    return run_denoiser(denoiser, conditioning, call, seed, device, nag_settings, image, audio=audio)


def decode_audio(stage: mem.Stage, model_dir: Path, audio_latents: torch.Tensor, device: torch.device,
                 dtype: torch.dtype) -> tuple[np.ndarray, int]:
    """Stage 4: audio VAE to a mel spectrogram, vocoder to a stereo waveform [channels, samples]."""
    audio_vae = stage.load("audio_vae", lambda: load_component(model_dir, "audio_vae", device, dtype))
    vocoder = stage.load("vocoder", lambda: load_component(model_dir, "vocoder", device, dtype))
    sample_rate = int(vocoder.config.output_sampling_rate)
    with torch.no_grad():
        mel = audio_vae.decode(audio_latents.to(device, audio_vae.dtype), return_dict=False)[0]
        waveform = vocoder(mel)
    return waveform[0].float().cpu().numpy(), sample_rate


@dataclass(frozen=True)
class DecodePlan:
    """Temporal pieces of the video decode (latent frames) and its spatial tiles (latents)."""

    chunk_latents: int
    context_latents: int
    tile_latents: int = 16
    overlap_latents: int = 2

    @classmethod
    def choose(cls, num_frames: int, chunk_frames: int, context_frames: int, tile_size: int = 512,
               tile_overlap: int = 64) -> "DecodePlan":
        latent_frames = latent_frame_count(num_frames)
        if chunk_frames == 0:
            chunk_frames = 8 * latent_frames if num_frames <= WHOLE_DECODE_MAX_FRAMES else AUTO_CHUNK_FRAMES
        chunk = min(chunk_frames // 8, latent_frames)
        return cls(chunk_latents=chunk, context_latents=0 if chunk == latent_frames else context_frames // 8,
                   tile_latents=tile_size // 32, overlap_latents=tile_overlap // 32)

    def describe(self, latent_frames: int) -> str:
        if self.chunk_latents >= latent_frames:
            return "whole clip in one decode"
        return (f"pieces of {self.chunk_latents * 8} frames with {self.context_latents * 8} frames of context "
                f"on each side")

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


def decode_video_frames(vae, latents: torch.Tensor, plan: DecodePlan) -> Iterator[np.ndarray]:
    """Stage 5 core: decode in temporal pieces under no_grad and yield uint8 [H, W, 3] frames one piece at a time."""
    _, _, latent_frames, latent_height, latent_width = latents.shape
    tile, overlap = plan.tile_latents, plan.overlap_latents
    vae.enable_tiling(tile_sample_min_height=tile * 32, tile_sample_min_width=tile * 32,
                      tile_sample_stride_height=tile_stride(latent_height, tile, overlap) * 32,
                      tile_sample_stride_width=tile_stride(latent_width, tile, overlap) * 32)
    device = vae.device
    pieces = list(plan.pieces(latent_frames))
    for window_start, window_end, first, end in tqdm(pieces, desc="VAE decode", unit="piece",
                                                     disable=len(pieces) == 1):
        with torch.no_grad():
            window = latents[:, :, window_start:window_end].to(device, vae.dtype)
            video = vae.decode(window, None, return_dict=False)[0][0, :, first:end]
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


NOT_FOR_DECODING = ("encoder",)  # the video VAE's submodules that decoding never runs


def load_video_decoder(model_dir: Path, device: torch.device, dtype: torch.dtype):
    """The video VAE without its encoder, whose weights decoding never uses (1.29 of the 2.28 GiB at full size):
    they are neither read from disk nor held. Its file pages stay in the page cache until the run releases them, as
    the other decoders' do. A VAE that a synthetic model builds at load comes whole, and so does one whose stored
    names do not pair with the model's (through from_pretrained, said in one line)."""
    folder = Path(model_dir) / "vae"
    if not weight_files(folder):
        return load_component(model_dir, "vae", device, dtype)
    try:
        return load_streamed(_component_class(model_dir, "vae"), folder, device, dtype, evict=False,
                             without=NOT_FOR_DECODING)
    except WeightNamesMismatch as mismatch:
        print(f"note: {mismatch}; loading the whole VAE with from_pretrained", flush=True)
        return load_component(model_dir, "vae", device, dtype)


def decoder_weight_ranges(model_dir: Path) -> list[tuple[Path, int, int]]:
    """The file ranges the audio and video decode stages read: the video VAE's without its encoder, the audio VAE
    and the vocoder whole (a length of 0 is to the end of the file)."""
    model_dir = Path(model_dir)
    ranges = [(tensor.file, tensor.offset, tensor.nbytes) for tensor in stored_tensors(model_dir / "vae")
              if tensor.name.split(".")[0] not in NOT_FOR_DECODING]
    return ranges + [(file, 0, 0) for name in ("audio_vae", "vocoder") for file in weight_files(model_dir / name)]


def prefetch_decoders(model_dir: Path, device: torch.device) -> None:
    """On a discrete GPU, once the transformer is loaded: read the decoders' weights into the page cache while the
    transformer runs and the disk is idle, so the audio and video stages load them from memory. Not on unified
    memory (Jetson Thor), where the page cache takes from the memory the diffusion stage peaks in."""
    if device.type == "cuda" and not torch.cuda.get_device_properties(device).is_integrated:
        mem.prefetch_into_page_cache(decoder_weight_ranges(model_dir))


def decode_video(stage: mem.Stage, model_dir: Path, latents: torch.Tensor, plan: DecodePlan, write,
                 device: torch.device, dtype: torch.dtype):
    """Stage 5: load the video VAE's decoder and hand the streamed frames to `write(frames)`."""
    vae = stage.load("vae", lambda: load_video_decoder(model_dir, device, dtype))
    mem.emit("decode", "vae", vae)
    return write(decode_video_frames(vae, latents, plan))


def decode_to_mp4(tracker: mem.MemoryTracker, model_dir: Path, video_latents: torch.Tensor,
                  audio_latents: torch.Tensor | None, output: Path, *, width: int, height: int, num_frames: int,
                  fps, plan: DecodePlan, device: torch.device, dtype: torch.dtype,
                  soundtrack: tuple[np.ndarray, int] | None = None) -> int | None:
    """Stages 4 and 5, shared by generation and recovery: audio waveform, then the streamed video decode
    into `output`. Returns the audio sample rate (None without audio). A `soundtrack` (waveform, rate), the
    --audio input, replaces the audio decode."""
    from ltx2gen.video import write_mp4

    waveform, sample_rate = soundtrack or (None, None)
    if audio_latents is not None and soundtrack is None:
        waveform, sample_rate = tracker.run("audio", decode_audio, model_dir, audio_latents, device, dtype)

    def write(frames):
        return write_mp4(output, frames, width=width, height=height, num_frames=num_frames, fps=fps,
                         audio=waveform, sample_rate=sample_rate)

    tracker.run("video", decode_video, model_dir, video_latents, plan, write, device, dtype)
    return sample_rate
