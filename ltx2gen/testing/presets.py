"""The presets' configurations: each the published one with only sizes changed. `tiny` (CPU tests) narrows layers,
widths, channels and the vocabulary; `full` is the published configuration unchanged (benchmarks); `bench` is `full`
with a narrower text-encoder MLP."""

from __future__ import annotations

import copy
import string
from functools import partial

from ltx2gen.testing.published import (
    DEFAULT_REPO,
    PROMPT_ENHANCER_REPO,
    PUBLISHED,
    diffusers_components,
    fixture_dir,
    published_configs,
    read_json,
)

TINY_GEMMA_HIDDEN = 32


# Gemma's special tokens, first and in Gemma's order where it has one (pad 0, eos 1, bos 2, unk 3, mask 4), then the
# chat and image markers of Gemma 3's tokenizer; then a character-level vocabulary, so any prompt tokenizes offline
# and different prompts condition differently.
SPECIAL_TOKENS = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start_of_turn>", "<end_of_turn>",
                  "<start_of_image>", "<end_of_image>", "<image_soft_token>"]


TINY_VOCAB = SPECIAL_TOKENS + ["\u2581"] + list(string.ascii_letters + string.digits + ".,;:!?'\"-()")


# Gemma 4 (LTX-2.5) also has audio and video markers (its config's boa/eoa/audio/video token ids); their names in the
# unpublished 2.5 tokenizer are unknown, so these are Gemma 3n's audio names and a video one alike, appended after the
# 2.0 vocabulary so every other token keeps its id.
GEMMA4_MEDIA_TOKENS = ["<start_of_audio>", "<end_of_audio>", "<audio_soft_token>", "<video_soft_token>"]


TINY_GEMMA4_VOCAB = TINY_VOCAB + GEMMA4_MEDIA_TOKENS


# Gemma 3's chat template, as the published tokenizer folders hold it (chat_template.jinja).
TINY_CHAT_TEMPLATE = (fixture_dir() / "tokenizer" / "chat_template.jinja").read_text()


def tiny_vocab(text_encoder: dict | None) -> list[str]:
    """The tiny vocabulary of a text encoder configuration: Gemma 4's has the media markers too."""
    return TINY_GEMMA4_VOCAB if (text_encoder or {}).get("model_type") == "gemma4_unified" else TINY_VOCAB


def _tiny_text_encoder_sizes(published: dict) -> dict:
    if published.get("model_type") == "gemma4_unified":
        return _tiny_gemma4_sizes(published)
    ids = {token: i for i, token in enumerate(TINY_VOCAB)}
    layers = 2
    return {
        "text_config": dict(hidden_size=TINY_GEMMA_HIDDEN, intermediate_size=64, num_hidden_layers=layers,
                            num_attention_heads=2, num_key_value_heads=1, head_dim=16, vocab_size=len(TINY_VOCAB),
                            # the published model's first layers (sliding window; every 6th is global)
                            layer_types=published["text_config"]["layer_types"][:layers]),
        "vision_config": dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                              image_size=28),
        # 28 / 14 = 2 x 2 patches, one token each.
        "mm_tokens_per_image": 4,
        # Token ids follow the vocabulary: the tiny one's markers.
        "boi_token_index": ids["<start_of_image>"], "eoi_token_index": ids["<end_of_image>"],
        "image_token_index": ids["<image_soft_token>"], "eos_token_id": [ids["<eos>"], ids["<end_of_turn>"]],
    }


def _tiny_gemma4_sizes(published: dict) -> dict:
    """Gemma 4 (LTX-2.5): the Gemma 3 tiny sizes, the global layers' twice wider heads alike, and the vision embedder
    projecting to the tiny width from a 16-position table (the patch size and the audio embedder's frame stay)."""
    ids = {token: i for i, token in enumerate(TINY_GEMMA4_VOCAB)}
    layers = 2
    return {
        "text_config": dict(hidden_size=TINY_GEMMA_HIDDEN, intermediate_size=64, num_hidden_layers=layers,
                            num_attention_heads=2, num_key_value_heads=1, head_dim=16, global_head_dim=32,
                            vocab_size=len(TINY_GEMMA4_VOCAB),
                            # The per-layer list cut to the layer count: the published model's last layers (sliding
                            # window, then global), as Gemma 4's last layer must be global.
                            layer_types=published["text_config"]["layer_types"][-layers:]),
        "vision_config": dict(mm_embed_dim=TINY_GEMMA_HIDDEN, output_proj_dims=TINY_GEMMA_HIDDEN, mm_posemb_size=16),
        # Token ids follow the vocabulary: the tiny one's markers.
        "boi_token_id": ids["<start_of_image>"], "eoi_token_id": ids["<end_of_image>"],
        "image_token_id": ids["<image_soft_token>"], "video_token_id": ids["<video_soft_token>"],
        "boa_token_id": ids["<start_of_audio>"], "eoa_token_index": ids["<end_of_audio>"],
        "audio_token_id": ids["<audio_soft_token>"],
    }


# The tiny transformer's widths (diffusers' test sizes): video 2 heads x 8, audio 2 heads x 4.
TINY_VIDEO_WIDTH, TINY_AUDIO_WIDTH = 16, 8


def _tiny_connectors_sizes(published: dict) -> dict:
    if not published.get("per_modality_projections"):  # LTX-2.0: one projection, 3840 wide, to caption_channels
        return dict(
            caption_channels=TINY_GEMMA_HIDDEN, text_proj_in_factor=3,  # the tiny Gemma's 2 layers + embeddings
            video_connector_num_attention_heads=4, video_connector_attention_head_dim=8, video_connector_num_layers=1,
            audio_connector_num_attention_heads=4, audio_connector_attention_head_dim=8, audio_connector_num_layers=1,
        )
    # LTX-2.3 and later: a projection per modality straight to the transformer's cross-attention widths (the published
    # 32 x 128 = 4096 and 32 x 64 = 2048), which the transformer no longer projects.
    return dict(
        caption_channels=TINY_GEMMA_HIDDEN, text_proj_in_factor=3,  # the tiny Gemma's 2 layers + embeddings
        video_connector_num_attention_heads=2, video_connector_attention_head_dim=8, video_connector_num_layers=1,
        audio_connector_num_attention_heads=2, audio_connector_attention_head_dim=4, audio_connector_num_layers=1,
        video_hidden_dim=TINY_VIDEO_WIDTH, audio_hidden_dim=TINY_AUDIO_WIDTH,
    )


def _tiny_vae_sizes(published: dict) -> dict:
    """Every channel width / 32 (2.0's encoder (256, 512, 1024, 2048) to (8, 16, 32, 64)), one layer per block."""
    return dict(latent_channels=4, block_out_channels=[width // 32 for width in published["block_out_channels"]],
                decoder_block_out_channels=[width // 32 for width in published["decoder_block_out_channels"]],
                layers_per_block=[1] * len(published["layers_per_block"]),
                decoder_layers_per_block=[1] * len(published["decoder_layers_per_block"]))


def _tiny_vocoder_sizes(published: dict) -> dict:
    # The published upsampling stays; in_channels is the tiny audio VAE's 2 channels x 8 mel bins.
    if published["_class_name"] != "LTX2VocoderWithBWE":
        return dict(in_channels=16, hidden_channels=32)
    # The bandwidth extension's two generators halve their width at each upsampling (6, then 5, stages): 64 and 32
    # end at one channel (32 would reach zero in the first). The extender's own 64-bin mel input stays.
    return dict(in_channels=16, hidden_channels=64, bwe_hidden_channels=32)


def _tiny_sizes(published: dict) -> dict:
    """What `tiny` changes: sizes only (diffusers' own test sizes), everything else is the published value."""
    transformer = dict(
        in_channels=4, out_channels=4, num_attention_heads=2, attention_head_dim=8, cross_attention_dim=16,
        audio_in_channels=4, audio_out_channels=4, audio_num_attention_heads=2, audio_attention_head_dim=4,
        audio_cross_attention_dim=8, num_layers=2, caption_channels=TINY_GEMMA_HIDDEN,
    )
    sizes = {
        "transformer": transformer,
        "transformer_full": transformer,
        # GroupNorm(32, ...) needs at least 32 channels.
        "latent_upsampler": dict(in_channels=4, mid_channels=32, num_blocks_per_stage=1),
        # The published two downsamplings stay: the encoder's output has the pipeline's audio latent shape (4x fewer
        # frames and mel bins), so --audio can be encoded.
        "audio_vae": dict(base_channels=4, num_res_blocks=1, resolution=32, latent_channels=2, mel_bins=8),
        # diffusers' test sizes; the inputs are the tiny connectors' outputs.
        "duration_head": dict(video_cross_attention_dim=TINY_VIDEO_WIDTH, audio_cross_attention_dim=TINY_AUDIO_WIDTH,
                              pooler_hidden_dim=8, num_pooler_heads=2, mlp_hidden_dim=8),
        # diffusers' test head and timestep-embedding sizes, depths and 3-wide kernels; the widths from 128 down by the
        # published channel reductions (each stage's width follows from the last), and the published upsampling
        # strides and patch size, so the 8x / 32x compression stays. Neighborhood attention needs a grid at least its
        # kernel: the first stage, on the latent grid itself, attends along time only, so clips from 64 px (2 latent
        # pixels) decode (the published 7 x 7 kernel needs 224 px).
        "diffusion_decoder": dict(
            latent_channels=4, decoder_head_dim=16, decoder_stage_channels=[128, 64, 32, 32, 16],
            decoder_stage_depths=[1, 1, 1, 1, 2], decoder_stage_kernels=[[3, 1, 1]] + [[3, 3, 3]] * 3,
            decoder_stage5_kernel=[3, 3, 3], decoder_t_emb_dim=32),
    }
    for name, tiny in (("connectors", _tiny_connectors_sizes), ("vae", _tiny_vae_sizes),
                       ("vocoder", _tiny_vocoder_sizes), ("text_encoder", _tiny_text_encoder_sizes)):
        if name in published:
            sizes[name] = tiny(published[name])
    if "processor" in published:  # one image's tokens: the tiny vision tower's
        sizes["processor"] = dict(image_seq_length=sizes["text_encoder"]["mm_tokens_per_image"])
    return sizes


def _bench_sizes(published: dict) -> dict:
    """`full` with a narrow text-encoder MLP, so the text encoder's files are 17 GB instead of 49 GB (float32, as
    published) and the whole model 61 GB (written in 108 s on one H100 with --device cuda). Every shape the pipeline
    passes between stages is the real one, and the text stage is not the largest stage, so the diffusion and decode
    stages measure exactly as with the real model."""
    return {"text_encoder": {"text_config": {"intermediate_size": 1024}}}


SIZES = {"tiny": _tiny_sizes, "full": lambda published: {}, "bench": _bench_sizes}


def _resized(config: dict, sizes: dict, where: str) -> dict:
    """`config` with the keys of `sizes` replaced (nested dicts merged); a key the published file lacks is an error."""
    out = copy.deepcopy(config)
    for key, value in sizes.items():
        if key not in out:
            raise KeyError(f"{where}: {key!r} is not a key of the published configuration")
        if isinstance(value, dict) and isinstance(out[key], dict):
            out[key] = _resized(out[key], value, f"{where}.{key}")
        else:
            out[key] = copy.deepcopy(value)
    return out


def component_configs(preset: str, repo: str = DEFAULT_REPO) -> dict[str, dict]:
    """The configuration files `preset` writes for `repo`: the published ones with only the preset's sizes changed."""
    if preset not in SIZES:
        raise ValueError(f"unknown preset {preset!r}: use one of {', '.join(sorted(SIZES))}")
    published = published_configs(repo)
    sizes = SIZES[preset](published)
    return {name: _resized(config, sizes.get(name, {}), f"{preset} {name}") for name, config in published.items()}


def _constructor_arguments(preset: str, repo: str = DEFAULT_REPO) -> dict[str, dict]:
    """Per component, the arguments of its constructor (diffusers' bookkeeping keys left out); `text_encoder` is the
    whole Gemma3Config (Gemma4UnifiedConfig for LTX-2.5) dictionary."""
    configs = component_configs(preset, repo)
    names = [name for name in (*diffusers_components(repo), "scheduler") if name in configs]
    arguments = {name: {key: value for key, value in configs[name].items() if not key.startswith("_")}
                 for name in names}
    if "text_encoder" in configs:
        arguments["text_encoder"] = configs["text_encoder"]
    return arguments


PRESETS = {name: partial(_constructor_arguments, name) for name in SIZES}


def tiny_prompt_enhancer_config() -> dict:
    """The published Gemma 4 E2B configuration with tiny sizes: the text model 32 wide, two of its five-layer
    periods (four sliding-window layers, then a global one with twice wider heads), the last half reusing the
    first half's keys and values as E2B's last 20 of 35 layers do, per-layer input embeddings 8 wide; one-layer
    vision and audio towers; token ids those of the tiny Gemma 4 vocabulary."""
    published = read_json(PUBLISHED / PROMPT_ENHANCER_REPO.replace("/", "--") / "config.json")
    ids = {token: i for i, token in enumerate(TINY_GEMMA4_VOCAB)}
    layers = 10
    return _resized(published, {
        "text_config": dict(hidden_size=TINY_GEMMA_HIDDEN, intermediate_size=64, num_hidden_layers=layers,
                            num_attention_heads=2, num_key_value_heads=1, head_dim=16, global_head_dim=32,
                            vocab_size=len(TINY_GEMMA4_VOCAB), vocab_size_per_layer_input=len(TINY_GEMMA4_VOCAB),
                            hidden_size_per_layer_input=8, num_kv_shared_layers=layers // 2,
                            layer_types=published["text_config"]["layer_types"][:layers]),
        "vision_config": dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                              num_key_value_heads=2, head_dim=8, global_head_dim=8, position_embedding_size=64),
        "audio_config": dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                             subsampling_conv_channels=[4, 4], output_proj_dims=TINY_GEMMA_HIDDEN),
        "boi_token_id": ids["<start_of_image>"], "eoi_token_id": ids["<end_of_image>"],
        "image_token_id": ids["<image_soft_token>"], "video_token_id": ids["<video_soft_token>"],
        "boa_token_id": ids["<start_of_audio>"], "eoa_token_index": ids["<end_of_audio>"],
        "audio_token_id": ids["<audio_soft_token>"], "eos_token_id": [ids["<eos>"], ids["<end_of_turn>"]],
    }, "tiny prompt enhancer")

