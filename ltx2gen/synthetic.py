"""Seeded random-weight LTX-2 models in diffusers format, so the whole product runs without the real weights.

`tiny` is small enough for CPU tests; `full` has the real LTX-2 19B component sizes (for benchmarks); `bench` is
`full` with a narrower text-encoder MLP so that it fits on smaller disks.
Every component comes from its real constructor and is saved with `save_pretrained`, so loading one
exercises exactly the code that loads the real model.

    python -m ltx2gen.synthetic --preset tiny --out models/ltx2-tiny
"""

from __future__ import annotations

import argparse
import json
import string
import sys
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import torch

from ltx2gen.config import SYNTHETIC_MARKER

TINY_GEMMA_HIDDEN = 32
# A character-level Gemma tokenizer: any prompt tokenizes offline, and different prompts condition differently.
TINY_VOCAB = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "\u2581"] + list(
    string.ascii_letters + string.digits + ".,;:!?'\"-()")


def _tiny_configs() -> dict:
    return {
        "transformer": dict(
            in_channels=4, out_channels=4, patch_size=1, patch_size_t=1,
            num_attention_heads=2, attention_head_dim=8, cross_attention_dim=16,
            audio_in_channels=4, audio_out_channels=4, audio_num_attention_heads=2,
            audio_attention_head_dim=4, audio_cross_attention_dim=8, num_layers=2,
            caption_channels=TINY_GEMMA_HIDDEN, rope_type="split",
        ),
        "connectors": dict(
            caption_channels=TINY_GEMMA_HIDDEN, text_proj_in_factor=3,
            video_connector_num_attention_heads=4, video_connector_attention_head_dim=8,
            video_connector_num_layers=1, video_connector_num_learnable_registers=None,
            audio_connector_num_attention_heads=4, audio_connector_attention_head_dim=8,
            audio_connector_num_layers=1, audio_connector_num_learnable_registers=None,
            rope_type="split",
        ),
        "vae": dict(
            in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 16, 32, 64),
            down_block_types=("LTX2VideoDownBlock3D",) * 4, decoder_block_out_channels=(8, 16, 32),
            layers_per_block=(1, 1, 1, 1, 1), decoder_layers_per_block=(1, 1, 1, 1),
            spatio_temporal_scaling=(True, True, True, True), decoder_spatio_temporal_scaling=(True, True, True),
            decoder_inject_noise=(False, False, False, False),
            downsample_type=("spatial", "temporal", "spatiotemporal", "spatiotemporal"),
            upsample_residual=(True, True, True), upsample_factor=(2, 2, 2), timestep_conditioning=False,
            patch_size=4, patch_size_t=1, encoder_causal=True, decoder_causal=False,
            decoder_spatial_padding_mode="reflect", spatial_compression_ratio=32, temporal_compression_ratio=8,
        ),
        "audio_vae": dict(
            # Two downsamplings, as in the real VAE: the encoder's output has the pipeline's audio latent shape
            # (4x fewer frames and mel bins), so --audio can be encoded.
            base_channels=4, output_channels=2, ch_mult=(1, 2, 4), num_res_blocks=1, attn_resolutions=None,
            in_channels=2, resolution=32, latent_channels=2, norm_type="pixel", causality_axis="height",
            dropout=0.0, mid_block_add_attention=False, sample_rate=16000, mel_hop_length=160,
            is_causal=True, mel_bins=8,
        ),
        "vocoder": dict(
            in_channels=16, hidden_channels=32, out_channels=2, upsample_kernel_sizes=[10, 8, 8],
            upsample_factors=[5, 4, 4], resnet_kernel_sizes=[3], resnet_dilations=[[1, 3, 5]],
            output_sampling_rate=8000,
        ),
        "text_encoder": dict(
            hidden_size=TINY_GEMMA_HIDDEN, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=2, num_key_value_heads=1, head_dim=16, vocab_size=len(TINY_VOCAB),
            max_position_embeddings=512, sliding_window=64,
        ),
        # GroupNorm(32, ...) needs at least 32 channels.
        "latent_upsampler": dict(in_channels=4, mid_channels=32, num_blocks_per_stage=1),
        "max_sequence_length": 128,
    }


def _full_configs() -> dict:
    """The LTX-2.0 19B component sizes (diffusers' conversion configs for version 2.0)."""
    return {
        "transformer": dict(rope_type="split"),
        "connectors": dict(rope_type="split"),
        "vae": dict(
            in_channels=3, out_channels=3, latent_channels=128, block_out_channels=(256, 512, 1024, 2048),
            down_block_types=("LTX2VideoDownBlock3D",) * 4, decoder_block_out_channels=(256, 512, 1024),
            layers_per_block=(4, 6, 6, 2, 2), decoder_layers_per_block=(5, 5, 5, 5),
            spatio_temporal_scaling=(True, True, True, True), decoder_spatio_temporal_scaling=(True, True, True),
            decoder_inject_noise=(False, False, False, False),
            downsample_type=("spatial", "temporal", "spatiotemporal", "spatiotemporal"),
            upsample_residual=(True, True, True), upsample_factor=(2, 2, 2), timestep_conditioning=False,
            patch_size=4, patch_size_t=1, resnet_norm_eps=1e-6, encoder_causal=True, decoder_causal=False,
            encoder_spatial_padding_mode="zeros", decoder_spatial_padding_mode="reflect",
            spatial_compression_ratio=32, temporal_compression_ratio=8,
        ),
        "audio_vae": dict(),
        "vocoder": dict(
            in_channels=128, hidden_channels=1024, out_channels=2, upsample_kernel_sizes=[16, 15, 8, 4, 4],
            upsample_factors=[6, 5, 2, 2, 2], resnet_kernel_sizes=[3, 7, 11],
            resnet_dilations=[[1, 3, 5], [1, 3, 5], [1, 3, 5]], leaky_relu_negative_slope=0.1,
            output_sampling_rate=24000,
        ),
        "text_encoder": dict(
            hidden_size=3840, intermediate_size=15360, num_hidden_layers=48, num_attention_heads=16,
            num_key_value_heads=8, head_dim=256, vocab_size=262208, max_position_embeddings=131072,
            sliding_window=1024,
        ),
        "latent_upsampler": dict(in_channels=128, mid_channels=1024, num_blocks_per_stage=4, dims=3,
                                 spatial_upsample=True, temporal_upsample=False, rational_spatial_scale=2.0),
        "max_sequence_length": 1024,
    }


def _bench_configs() -> dict:
    """`full` with a narrow text-encoder MLP (6.6 GB instead of 24 GB on disk), so a full-size model directory fits
    on a 64 GB disk. Every shape the pipeline passes between stages is the real one, and the text stage is not the
    largest stage, so the diffusion and decode stages measure exactly as with the real model."""
    configs = _full_configs()
    configs["text_encoder"] = dict(configs["text_encoder"], intermediate_size=1024)
    return configs


PRESETS = {"tiny": _tiny_configs, "full": _full_configs, "bench": _bench_configs}


def _tokenizer(max_length: int):
    from transformers import GemmaTokenizer

    vocab = {token: i for i, token in enumerate(TINY_VOCAB)}
    return GemmaTokenizer(vocab=vocab, merges=[], model_max_length=max_length, padding_side="left")


# Gemma's chat turns, as the real Gemma 3 template writes them (which folds the system prompt into the first turn).
TINY_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<start_of_turn>"
    "{{ 'model' if message['role'] == 'assistant' else 'user' }}\n{{ message['content'] }}<end_of_turn>\n"
    "{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}")


def _processor(max_length: int):
    """What `LTX2Pipeline.enhance_prompt` needs besides the text encoder: a Gemma 3 processor with a chat template.
    Its tokenizer is the model's plus the image markers Gemma3Processor requires (never in a text-only prompt, so
    the tiny text encoder's vocabulary stays as it is)."""
    from transformers import Gemma3ImageProcessorPil, Gemma3Processor, GemmaTokenizer

    markers = {"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>", "image_token": "<image_soft_token>"}
    vocab = {token: i for i, token in enumerate(TINY_VOCAB + list(markers.values()))}
    tokenizer = GemmaTokenizer(vocab=vocab, merges=[], model_max_length=max_length, padding_side="left",
                               extra_special_tokens=markers)
    return Gemma3Processor(image_processor=Gemma3ImageProcessorPil(), tokenizer=tokenizer,
                           chat_template=TINY_CHAT_TEMPLATE, image_seq_length=4)


def _text_encoder(config: dict):
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    text_config = dict(config, rope_parameters={
        "full_attention": {"rope_type": "default", "rope_theta": 1_000_000.0},
        "sliding_attention": {"rope_type": "default", "rope_theta": 10_000.0},
    })
    vision_config = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                         image_size=28, patch_size=14)
    gemma = Gemma3Config(text_config=text_config, vision_config=vision_config, mm_tokens_per_image=4,
                         boi_token_index=1, eoi_token_index=1, image_token_index=1)
    return Gemma3ForConditionalGeneration(gemma)


@contextmanager
def _building(seed: int, dtype: torch.dtype, device: str | torch.device):
    """Seeded modules created directly on `device` in `dtype`: a full-size fp32 copy would not fit."""
    torch.manual_seed(seed)
    previous_dtype = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            yield
    finally:
        torch.set_default_dtype(previous_dtype)


def build_transformer(preset: str = "full", seed: int = 0, dtype: torch.dtype = torch.bfloat16,
                      device: str | torch.device = "cpu"):
    """The preset's transformer alone, with seeded random weights, built directly on `device`."""
    from diffusers import LTX2VideoTransformer3DModel

    with _building(seed, dtype, device):
        return LTX2VideoTransformer3DModel(**PRESETS[preset]()["transformer"]).to(dtype=dtype).eval()


def build_text_encoder(preset: str = "full", seed: int = 0, dtype: torch.dtype = torch.bfloat16,
                       device: str | torch.device = "cpu"):
    """The preset's Gemma text encoder alone, with seeded random weights, built directly on `device`."""
    with _building(seed, dtype, device):
        return _text_encoder(PRESETS[preset]()["text_encoder"]).to(dtype=dtype).eval()


def build_video_vae(preset: str = "full", seed: int = 0, dtype: torch.dtype = torch.bfloat16,
                    device: str | torch.device = "cpu"):
    """The preset's video VAE alone, with seeded random weights, built directly on `device`."""
    from diffusers import AutoencoderKLLTX2Video

    with _building(seed, dtype, device):
        return AutoencoderKLLTX2Video(**PRESETS[preset]()["vae"]).to(dtype=dtype).eval()


def build_pipeline(preset: str = "tiny", seed: int = 0, dtype: torch.dtype = torch.float32,
                   device: str | torch.device = "cpu"):
    """An `LTX2Pipeline` with seeded random weights, built directly on `device`."""
    from diffusers import (AutoencoderKLLTX2Audio, AutoencoderKLLTX2Video, FlowMatchEulerDiscreteScheduler,
                           LTX2Pipeline, LTX2VideoTransformer3DModel)
    from diffusers.pipelines.ltx2 import LTX2TextConnectors, LTX2Vocoder

    configs = PRESETS[preset]()
    with _building(seed, dtype, device):
        components = dict(
            transformer=LTX2VideoTransformer3DModel(**configs["transformer"]),
            connectors=LTX2TextConnectors(**configs["connectors"]),
            vae=AutoencoderKLLTX2Video(**configs["vae"]),
            audio_vae=AutoencoderKLLTX2Audio(**configs["audio_vae"]),
            vocoder=LTX2Vocoder(**configs["vocoder"]),
            text_encoder=_text_encoder(configs["text_encoder"]),
        )
    _randomize_latent_statistics(components["vae"], components["audio_vae"])
    for module in components.values():
        module.to(dtype=dtype).eval()
    return LTX2Pipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True, base_shift=0.95, max_shift=2.05,
                                                  base_image_seq_len=1024, max_image_seq_len=4096,
                                                  shift_terminal=0.1),
        tokenizer=_tokenizer(configs["max_sequence_length"]),
        processor=_processor(configs["max_sequence_length"]),
        **components,
    )


def build_latent_upsampler(preset: str = "tiny", seed: int = 0, dtype: torch.dtype = torch.float32,
                           device: str | torch.device = "cpu"):
    """The 2x spatial latent upsampler of two-stage runs, seeded, as the real repos ship it (latent_upsampler/)."""
    from diffusers.pipelines.ltx2.latent_upsampler import LTX2LatentUpsamplerModel

    with _building(seed, dtype, device):
        return LTX2LatentUpsamplerModel(**PRESETS[preset]()["latent_upsampler"]).to(dtype=dtype).eval()


def _randomize_latent_statistics(vae, audio_vae) -> None:
    # Real checkpoints carry non-trivial normalisation statistics; zeros/ones would hide a missing denormalisation.
    generator = torch.Generator().manual_seed(1234)
    for model in (vae, audio_vae):
        mean, std = model.latents_mean, model.latents_std
        mean.copy_(torch.randn(mean.shape, generator=generator) * 0.1)
        std.copy_(torch.rand(std.shape, generator=generator) * 0.5 + 0.75)


def write_model(preset: str, out: Path, seed: int = 0, device: str = "cpu", built_at_load: tuple = ()) -> Path:
    """Write a complete diffusers-format LTX-2 model directory and return it.

    Components named in `built_at_load` are written as their configuration alone: whoever loads them gets them
    built with seeded random weights where they are loaded (`build_at_load`). The full-size text encoder's 24 GB
    do not fit a 64 GB disk beside the transformer; this keeps its size real without writing it."""
    dtype = torch.float32 if preset == "tiny" else torch.bfloat16
    pipe = build_pipeline(preset, seed=seed, dtype=dtype, device=device)
    out.mkdir(parents=True, exist_ok=True)
    unwritten = {name: getattr(pipe, name) for name in built_at_load}
    for name in unwritten:
        setattr(pipe, name, None)
    pipe.save_pretrained(out, safe_serialization=True)
    # Not an LTX2Pipeline component: beside them, where the real repos keep it (not in model_index.json). Built on
    # the CPU: its constructor multiplies integer tensors, which CUDA does not implement ("addmm_cuda" for 'Long').
    build_latent_upsampler(preset, seed, dtype).save_pretrained(out / "latent_upsampler",
                                                                        safe_serialization=True)
    index = json.loads((out / "model_index.json").read_text())
    for name, module in unwritten.items():
        module.config.save_pretrained(out / name)
        index[name] = [module.__module__.split(".")[0], type(module).__name__]
    (out / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    marker = {"preset": preset, "seed": seed, "pipeline": "distilled", "built_at_load": sorted(unwritten)}
    (out / SYNTHETIC_MARKER).write_text(json.dumps(marker) + "\n")
    return out


def build_at_load(model_dir: Path, name: str, device: torch.device, dtype: torch.dtype,
                  quantize: Callable[[torch.nn.Module], object] | None = None):
    """The component `name` of a synthetic model directory that holds only its configuration, built with the
    directory's seed directly on `device`; None for every component whose weights are on disk.

    Layers are built one at a time, as loading fills them: with `quantize`, each linear layer except the output head
    is quantized as soon as it exists, so the unquantized encoder is never whole in memory, as when real files load
    with quantization. Its random values are the same either way."""
    marker_path = Path(model_dir) / SYNTHETIC_MARKER
    marker = json.loads(marker_path.read_text()) if marker_path.is_file() else {}
    if name not in marker.get("built_at_load", []):
        return None
    if name != "text_encoder":
        raise ValueError(f"{model_dir}: only the text encoder can be built at load, not {name}")
    from accelerate import init_empty_weights
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    from ltx2gen.quant import is_text_encoder_fp8_layer

    config = Gemma3Config.from_pretrained(Path(model_dir) / name)
    with _building(marker["seed"], dtype, device):
        with init_empty_weights(include_buffers=False):  # parameters on the meta device, constructor buffers real
            model = Gemma3ForConditionalGeneration(config)
        model.tie_weights()  # on the meta device too, so the head is built once, as the input embedding
        uses = Counter(id(empty) for _, empty in model.named_parameters(remove_duplicate=False))
        shared: dict[int, torch.nn.Parameter] = {}  # tied parameters (the output head) stay one tensor
        for module_name, module in model.named_modules():
            for attribute, empty in list(module.named_parameters(recurse=False, remove_duplicate=False)):
                parameter = shared.get(id(empty))
                if parameter is None:
                    value = torch.empty(empty.shape, device=device, dtype=dtype)
                    parameter = torch.nn.Parameter(value.normal_(0, 0.02) if value.ndim > 1 else value.zero_(),
                                                   requires_grad=False)
                    if uses[id(empty)] > 1:  # only these are held here: quantizing must free the rest
                        shared[id(empty)] = parameter
                module._parameters[attribute] = parameter
                del parameter
            if quantize is not None and is_text_encoder_fp8_layer(module_name, module):
                quantize(module)
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ltx2gen.synthetic", description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    parser.add_argument("--out", type=Path, required=True, help="model directory to write")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="where to build the weights (cuda is much faster for full)")
    parser.add_argument("--text-encoder-at-load", action="store_true",
                        help="write only the text encoder's configuration; it is built seeded wherever it is loaded")
    args = parser.parse_args(argv)
    path = write_model(args.preset, args.out, args.seed, args.device,
                       ("text_encoder",) if args.text_encoder_at_load else ())
    print(f"wrote {args.preset} LTX-2 model to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
