"""Seeded random-weight LTX-2 models in diffusers format, so the whole product runs without the real weights.

Every preset starts from a published repo's own configuration (`ltx2gen/published/<owner>--<name>/`, see SOURCES.md
there) and changes only sizes: `tiny` (CPU tests) narrows layers, widths, channels and the vocabulary; `full` is the
published configuration unchanged (benchmarks); `bench` is `full` with a narrower text-encoder MLP. The directory is
written in the published file layout (`layout.json`): the same folders, file names, shard counts, tensor names and
on-disk dtypes, including the LTX-2.0 text encoder's stale second shard set. Components come from their real
constructors, so loading one exercises exactly the code that loads the real model.

Repos: the LTX-2.0 ones (`REPOS`), LTX-2.3 dev and distilled (`LTX23_REPOS`: Gemma 3, the bandwidth-extension vocoder,
a processor), LTX-2.5 (`LTX25_REPO`: Gemma 4, distilled `transformer/` and full `transformer_full/`, duration head,
latent upsampler, diffusion decoder) and the LTX-2.3 x2 latent upsampler (`UPSAMPLER_REPO`: vae + latent_upsampler).

    python -m ltx2gen.synthetic --preset tiny --out models/ltx2-tiny [--repo Lightricks/LTX-2]
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import string
import sys
import tempfile
from collections import Counter
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Callable

import torch

from ltx2gen.checkpoint import SYNTHETIC_MARKER

PUBLISHED = Path(__file__).resolve().parent / "published"
DEFAULT_REPO = "rootonchair/LTX-2-19b-distilled"
REPOS = (DEFAULT_REPO, "Lightricks/LTX-2")  # LTX-2.0
LTX23_REPOS = ("diffusers/LTX-2.3-Diffusers", "diffusers/LTX-2.3-Distilled-Diffusers")
LTX25_REPO = "Lightricks/LTX-2.5-Diffusers"
UPSAMPLER_REPO = "rootonchair/LTX-2.3-spatial-upscaler-x2-v1.1-Diffusers"  # an LTX2LatentUpsamplePipeline only
ALL_REPOS = (*REPOS, *LTX23_REPOS, LTX25_REPO, UPSAMPLER_REPO)
# The diffusers components of the LTX-2.0 repos, in the order they are written; the latent upsampler sits beside them
# (not in model_index.json), as in the published repos.
DIFFUSERS_COMPONENTS = ("transformer", "connectors", "vae", "audio_vae", "vocoder", "latent_upsampler")
# Every diffusers component folder any repo has, in writing order (`diffusers_components` picks a repo's own).
ALL_DIFFUSERS_COMPONENTS = ("transformer", "transformer_full", "connectors", "vae", "audio_vae", "vocoder",
                            "latent_upsampler", "duration_head", "diffusion_decoder")
# Where layout.json leaves a shard count unknown (null), the count written: Lightricks/LTX-2.5-Diffusers'
# text_encoder has an index (so more than one shard) of a count nobody listed. 3 is what transformers'
# `split_torch_state_dict_into_shards` makes of the full 23,919,460,448 bytes of bfloat16 at the 10 GB shard size that
# gives the repo's transformer its 4 published shards (5 GB, the conversion script's, would give 5).
UNKNOWN_SHARDS = {(LTX25_REPO, "text_encoder"): 3}
# Components whose weights come from another seed than the model's: the 2.5 repo's full transformer is another
# checkpoint than its distilled one, so the two must differ.
SEED_OFFSETS = {"transformer_full": 1}
# What no run reads yet (LTX-2.5's full transformer and diffusion decoder): the `bench` preset leaves them out, so the
# full-size LTX-2.5 model fits a 64 GB disk (with them it ran out at 62 GB on one H100 machine).
NOT_READ_BY_A_RUN = ("transformer_full", "diffusion_decoder")
# Repos without tokenizer files of their own (see SOURCES.md: the LTX-2.5 Gemma 4 tokenizer files were not seen): their
# tiny tokenizer takes the Gemma 3 tokenizer settings and chat template of this repo's (the LTX-2.0/2.3 one).
TOKENIZER_SETTINGS_REPO = "diffusers/LTX-2.3-Diffusers"

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


def fixture_dir(repo: str = DEFAULT_REPO) -> Path:
    """The folder of `repo`'s published configuration files."""
    if repo not in ALL_REPOS:
        raise ValueError(f"unknown repo {repo!r}: use one of {', '.join(ALL_REPOS)}")
    return PUBLISHED / repo.replace("/", "--")


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def published_layout(repo: str = DEFAULT_REPO) -> dict:
    """`layout.json` of `repo`: per folder its weight files, shard counts, tensor names and on-disk dtypes."""
    return _read_json(fixture_dir(repo) / "layout.json")


def diffusers_components(repo: str = DEFAULT_REPO) -> tuple[str, ...]:
    """The diffusers component folders `repo` publishes (every layout folder with weights but the text encoder), in
    writing order."""
    folders = published_layout(repo)["folders"]
    return tuple(name for name in ALL_DIFFUSERS_COMPONENTS if "weights" in folders.get(name, {}))


def published_configs(repo: str = DEFAULT_REPO) -> dict[str, dict]:
    """Every configuration file of `repo`, by component (`tokenizer` is tokenizer_config.json, `processor`
    processor/processor_config.json); only those the repo has."""
    root = fixture_dir(repo)
    names = [*diffusers_components(repo), *(["text_encoder"] if (root / "text_encoder").is_dir() else [])]
    configs = {name: _read_json(root / name / "config.json") for name in names}
    files = {"scheduler": "scheduler/scheduler_config.json", "tokenizer": "tokenizer/tokenizer_config.json",
             "special_tokens_map": "tokenizer/special_tokens_map.json", "processor": "processor/processor_config.json",
             "model_index": "model_index.json"}
    configs.update({name: _read_json(root / file) for name, file in files.items() if (root / file).is_file()})
    return configs


# Gemma 3's chat template, as the published tokenizer folders hold it (chat_template.jinja).
TINY_CHAT_TEMPLATE = (fixture_dir() / "tokenizer" / "chat_template.jinja").read_text()


def _tiny_vocab(text_encoder: dict | None) -> list[str]:
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


def _diffusers_class(name: str, repo: str = DEFAULT_REPO):
    """The diffusers class of component `name` of `repo` (its published configuration's `_class_name`)."""
    import diffusers
    from diffusers.pipelines import ltx2

    class_name = published_configs(repo)[name]["_class_name"]
    return getattr(diffusers, class_name, None) or getattr(ltx2, class_name)


def _build(name: str, preset: str, seed: int, dtype: torch.dtype, device: str | torch.device,
           repo: str = DEFAULT_REPO) -> torch.nn.Module:
    """One component of `preset` with seeded random weights, built directly on `device` in `dtype`."""
    arguments = PRESETS[preset](repo)[name]
    if name == "latent_upsampler":
        # Built on the CPU: its constructor multiplies integer tensors, which CUDA does not implement.
        device = "cpu"
    with _building(seed + SEED_OFFSETS.get(name, 0), dtype, device):
        if name == "text_encoder":
            module = _text_encoder(arguments)
        else:
            module = _diffusers_class(name, repo)(**arguments)
    if name in ("vae", "audio_vae", "diffusion_decoder"):
        _randomize_latent_statistics(module)
    if getattr(module, "keyframes_abs_pos_embedding", None) is not None:
        _randomize_keyframes_embedding(module)
    # nn.Module's own cast: diffusers' override warns about fp32-kept modules, which these classes have none of.
    return torch.nn.Module.to(module, dtype=dtype).eval()


def _text_encoder_classes(model_type: str):
    """The configuration and model classes of a text encoder `model_type`: Gemma 3 (LTX-2.0/2.3) or Gemma 4 (2.5)."""
    import transformers

    prefix = {"gemma3": "Gemma3", "gemma4_unified": "Gemma4Unified"}[model_type]
    return getattr(transformers, f"{prefix}Config"), getattr(transformers, f"{prefix}ForConditionalGeneration")


def _text_encoder(config: dict):
    config_class, model_class = _text_encoder_classes(config["model_type"])
    return model_class(config_class.from_dict(copy.deepcopy(config)))


def _randomize_keyframes_embedding(transformer) -> None:
    # Registered as zeros; the trained one is not, and a zero marker would make keyframe conditioning invisible.
    generator = torch.Generator().manual_seed(1235)
    embedding = transformer.keyframes_abs_pos_embedding
    with torch.no_grad():
        embedding.copy_(torch.randn(embedding.shape, generator=generator) * 0.1)


def _randomize_latent_statistics(vae) -> None:
    # Real checkpoints carry non-trivial normalisation statistics; zeros/ones would hide a missing denormalisation.
    generator = torch.Generator().manual_seed(1234)
    mean, std = vae.latents_mean, vae.latents_std
    mean.copy_(torch.randn(mean.shape, generator=generator) * 0.1)
    std.copy_(torch.rand(std.shape, generator=generator) * 0.5 + 0.75)


def build_transformer(preset: str = "full", seed: int = 0, dtype: torch.dtype = torch.bfloat16,
                      device: str | torch.device = "cpu", repo: str = DEFAULT_REPO):
    """The preset's transformer alone, with seeded random weights, built directly on `device`."""
    return _build("transformer", preset, seed, dtype, device, repo)


def build_text_encoder(preset: str = "full", seed: int = 0, dtype: torch.dtype = torch.bfloat16,
                       device: str | torch.device = "cpu", repo: str = DEFAULT_REPO):
    """The preset's Gemma text encoder alone, with seeded random weights, built directly on `device`."""
    return _build("text_encoder", preset, seed, dtype, device, repo)


def build_video_vae(preset: str = "full", seed: int = 0, dtype: torch.dtype = torch.bfloat16,
                    device: str | torch.device = "cpu", repo: str = DEFAULT_REPO):
    """The preset's video VAE alone, with seeded random weights, built directly on `device`."""
    return _build("vae", preset, seed, dtype, device, repo)


def build_latent_upsampler(preset: str = "tiny", seed: int = 0, dtype: torch.dtype = torch.float32,
                           device: str | torch.device = "cpu", repo: str = DEFAULT_REPO):
    """The 2x spatial latent upsampler of two-stage runs, seeded, as the published repos ship it (latent_upsampler/)."""
    return _build("latent_upsampler", preset, seed, dtype, device, repo)


def _has_tokenizer_files(repo: str) -> bool:
    return (fixture_dir(repo) / "tokenizer" / "tokenizer_config.json").is_file()


def _tokenizer(repo: str = DEFAULT_REPO):
    """The tiny character-level vocabulary with the published tokenizer settings (Gemma 3's own: left padding,
    `<bos>` first, transformers' "no limit" model_max_length, the image markers, the chat template).

    The LTX-2.5 repo's Gemma 4 tokenizer files are unknown (SOURCES.md): its tiny tokenizer takes the Gemma 3 settings
    and chat template (TOKENIZER_SETTINGS_REPO's), with Gemma 4's audio and video markers added, so prompts encode
    as with LTX-2.0/2.3. It prepends `<bos>` as Gemma 3's does (LTX's own code says Gemma 4's assets do not)."""
    from transformers import AddedToken, GemmaTokenizer

    source = repo if _has_tokenizer_files(repo) else TOKENIZER_SETTINGS_REPO
    # Borrowed settings leave out the Gemma 3 processor they name.
    unused = ("added_tokens_decoder", "tokenizer_class") + (() if source == repo else ("processor_class",))
    settings = {key: value for key, value in published_configs(source)["tokenizer"].items() if key not in unused}
    vocab = _tiny_vocab(published_configs(repo).get("text_encoder"))
    tokenizer = GemmaTokenizer(vocab={token: i for i, token in enumerate(vocab)}, merges=[], **settings)
    # The chat markers are single special tokens, as in Gemma's vocabulary.
    specials = SPECIAL_TOKENS + (GEMMA4_MEDIA_TOKENS if vocab is TINY_GEMMA4_VOCAB else [])
    tokenizer.add_tokens([AddedToken(token, special=True, normalized=False) for token in specials],
                         special_tokens=True)
    tokenizer.chat_template = (fixture_dir(source) / "tokenizer" / "chat_template.jinja").read_text()
    return tokenizer


def _processor(repo: str = DEFAULT_REPO, image_seq_length: int = 4):
    """What `LTX2Pipeline.enhance_prompt` needs besides the text encoder: a Gemma 3 processor with the chat template.
    The published LTX-2.0 repos ship none; `write_model(..., with_processor=True)` adds one."""
    from transformers import Gemma3ImageProcessorPil, Gemma3Processor

    tokenizer = _tokenizer(repo)
    return Gemma3Processor(image_processor=Gemma3ImageProcessorPil(), tokenizer=tokenizer,
                           chat_template=tokenizer.chat_template, image_seq_length=image_seq_length)


def _scheduler(repo: str = DEFAULT_REPO):
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler.from_config(published_configs(repo)["scheduler"])


def build_pipeline(preset: str = "tiny", seed: int = 0, dtype: torch.dtype = torch.float32,
                   device: str | torch.device = "cpu", repo: str = DEFAULT_REPO):
    """An `LTX2Pipeline` with seeded random weights, built directly on `device` (no processor, as the LTX-2.0 repos
    publish it; LTX-2.5's with its duration head)."""
    from diffusers import LTX2Pipeline

    index = published_configs(repo)["model_index"]
    if index["_class_name"] != "LTX2Pipeline":
        raise ValueError(f"{repo} is an {index['_class_name']}, not an LTX2Pipeline")
    names = ["transformer", "connectors", "vae", "audio_vae", "vocoder", "text_encoder"]
    names += [name for name in ("duration_head",) if name in index]
    components = {name: _build(name, preset, seed, dtype, device, repo) for name in names}
    return LTX2Pipeline(scheduler=_scheduler(repo), tokenizer=_tokenizer(repo), **components)


def _dtype(spec: dict, name: str) -> torch.dtype:
    """The on-disk dtype of tensor `name` under a layout weight specification."""
    by_name = {"BF16": torch.bfloat16, "F32": torch.float32, "F16": torch.float16}
    for dtype, patterns in spec.get("dtype_overrides", {}).items():
        if any(pattern in name for pattern in patterns):
            return by_name[dtype]
    return by_name[spec["dtype"]]


def _published_names(tensors: dict[str, torch.Tensor], spec: dict, prefix: str = "") -> dict[str, torch.Tensor]:
    """Module tensor names as the published files store them (`name_map` prefixes, `omitted` tensors dropped)."""
    renamed = {}
    for name, tensor in tensors.items():
        if name in spec.get("omitted", ()):
            continue
        for module_prefix, stored_prefix in spec.get("name_map", {}).items():
            if name.startswith(module_prefix):
                name = stored_prefix + name[len(module_prefix):]
                break
        renamed[prefix + name] = tensor
    return renamed


def _shard_groups(sizes: list[int], shards: int) -> list[list[int]]:
    """Consecutive tensors split into exactly `shards` non-empty groups of about equal bytes."""
    if len(sizes) < shards:
        raise ValueError(f"{len(sizes)} tensors cannot fill {shards} shards")
    total, done, shard = max(sum(sizes), 1), 0, 0
    groups: list[list[int]] = [[] for _ in range(shards)]
    for i, size in enumerate(sizes):
        by_bytes = min(done * shards // total, shards - 1)
        if groups[shard] and by_bytes > shard:
            shard += 1
        shard = max(shard, shards - (len(sizes) - i))  # enough tensors left for every later shard
        groups[shard].append(i)
        done += size
    return groups


def _write_weights(folder: Path, parts: list[tuple[dict[str, torch.Tensor], dict]], spec: dict) -> None:
    """Write named tensors as one weight file set of a layout (`stem`, `shards`, `index`): `parts` are (tensors, spec
    giving their dtype) in file order. Each shard is copied to the CPU in its stored dtype only while it is written."""
    from safetensors.torch import save_file

    names, dtypes, sources = [], [], []
    for tensors, part_spec in parts:
        for name, tensor in tensors.items():
            names.append(name)
            dtypes.append(_dtype(part_spec, name))
            sources.append(tensor)
    sizes = [source.numel() * dtype.itemsize for source, dtype in zip(sources, dtypes)]
    shards, weight_map = spec["shards"], {}
    folder.mkdir(parents=True, exist_ok=True)
    for number, group in enumerate(_shard_groups(sizes, shards), 1):
        stem = spec["stem"]
        file = f"{stem}.safetensors" if shards == 1 else f"{stem}-{number:05d}-of-{shards:05d}.safetensors"
        shard = {names[i]: sources[i].detach().to(device="cpu", dtype=dtypes[i]).contiguous() for i in group}
        save_file(shard, folder / file, metadata={"format": "pt"})
        weight_map.update({name: file for name in shard})
        del shard
    if spec.get("index"):
        index = {"metadata": {"total_size": sum(sizes)}, "weight_map": dict(sorted(weight_map.items()))}
        (folder / spec["index"]).write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")


def _write_json(path: Path, value: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n")


def _write_tokenizer(folder: Path, repo: str) -> None:
    """The tiny vocabulary in tokenizer.json beside the published tokenizer_config.json (its added_tokens_decoder
    holding the tiny ids of the same special tokens), special_tokens_map.json and chat_template.jinja.

    For a repo whose tokenizer files are unknown (LTX-2.5), the files transformers' save writes: tokenizer.json,
    tokenizer_config.json and chat_template.jinja, the names the repo is listed with."""
    folder.mkdir(parents=True, exist_ok=True)
    if not _has_tokenizer_files(repo):
        _tokenizer(repo).save_pretrained(folder)
        return
    published = fixture_dir(repo) / "tokenizer"
    with tempfile.TemporaryDirectory() as scratch:
        _tokenizer(repo).save_pretrained(scratch)
        shutil.copyfile(Path(scratch) / "tokenizer.json", folder / "tokenizer.json")
    config = _read_json(published / "tokenizer_config.json")
    ids = {token: i for i, token in enumerate(TINY_VOCAB)}
    config["added_tokens_decoder"] = {str(ids[entry["content"]]): entry
                                      for entry in config["added_tokens_decoder"].values()}
    _write_json(folder / "tokenizer_config.json", config)
    for name in ("special_tokens_map.json", "chat_template.jinja"):
        shutil.copyfile(published / name, folder / name)


def _write_published_processor(folder: Path, repo: str, configs: dict[str, dict]) -> None:
    """The Gemma 3 processor the LTX-2.3 repos publish (and list in model_index.json): the published
    processor_config.json (one image's token count the tiny vision tower's), the tokenizer files as in tokenizer/, and
    preprocessor_config.json for an image the tiny vision tower's size (transformers 4 wrote the image processor
    there; only processor_config.json of this folder was seen). tokenizer.model and added_tokens.json are left out, as
    in tokenizer/: a character-level vocabulary has no SentencePiece model."""
    from transformers import Gemma3ImageProcessorPil

    _write_tokenizer(folder, repo)
    size = configs["text_encoder"]["vision_config"]["image_size"]
    Gemma3ImageProcessorPil(size={"height": size, "width": size}).save_pretrained(folder)
    _write_json(folder / "processor_config.json", configs["processor"])


def write_model(preset: str, out: Path, *, seed: int = 0, device: str = "cpu", built_at_load: tuple = (),
                repo: str = DEFAULT_REPO, with_processor: bool = False, stale_set: bool | None = None) -> Path:
    """Write a complete diffusers-format LTX-2 model directory in `repo`'s published layout and return it.

    Each component is built, written and freed in turn (a full-size one is never beside another), in the published
    on-disk dtypes: bfloat16 with float32 modulation tables for the diffusers components (LTX-2.5: all bfloat16),
    float32 for the Gemma 3 text encoder, bfloat16 for LTX-2.5's Gemma 4. `stale_set` (default: tiny only, where the
    repo has one: LTX-2.0) also writes the text encoder's stale 12-shard set, as published; at full size it would add
    52 GB. `with_processor` adds a Gemma 3 `processor` component (for --enhance-prompt) to the LTX-2.0 repos, which
    lack it; the LTX-2.3 repos publish one, written always.

    Components named in `built_at_load` (the text encoder only) are written as their configuration alone: whoever
    loads them gets them built with seeded random weights where they are loaded (`build_at_load`). The full-size
    text encoder's 49 GB do not fit a 64 GB disk beside the transformer; this keeps its size real without writing
    it."""
    if set(built_at_load) - {"text_encoder"}:
        raise ValueError(f"only the text encoder can be built at load, not {sorted(set(built_at_load))}")
    out = Path(out)
    configs, layout = component_configs(preset, repo), published_layout(repo)["folders"]
    if with_processor and repo not in REPOS and "processor" not in layout:
        raise ValueError(f"with_processor: {repo} takes no Gemma 3 processor (LTX-2.5 enhances prompts with a "
                         "separate Gemma 4 prompt_enhancer, which is not synthesized)")
    if built_at_load and "text_encoder" not in configs:
        raise ValueError(f"{repo} has no text encoder to build at load")
    has_stale_set = "stale_weights" in layout.get("text_encoder", {})
    if stale_set and not has_stale_set:
        raise ValueError(f"stale_set: {repo}'s text encoder has no stale shard set")
    stale_set = preset == "tiny" and has_stale_set if stale_set is None else stale_set
    build_dtype = torch.float32 if preset == "tiny" else torch.bfloat16
    out.mkdir(parents=True, exist_ok=True)
    for name in diffusers_components(repo):
        if preset == "bench" and name in NOT_READ_BY_A_RUN:
            continue
        module = _build(name, preset, seed, build_dtype, device, repo)
        spec = layout[name]["weights"]
        _write_weights(out / name, [(module.state_dict(), spec)], spec)
        _write_json(out / name / "config.json", configs[name])
        del module
    if "text_encoder" in configs:
        _write_json(out / "text_encoder" / "config.json", configs["text_encoder"])
        if "text_encoder" not in built_at_load:
            write_text_encoder(out / "text_encoder", preset, seed=seed, device=device, repo=repo,
                               stale_set=stale_set)
    if "scheduler" in configs:
        _write_json(out / "scheduler" / "scheduler_config.json", configs["scheduler"])
    if "tokenizer" in layout:
        _write_tokenizer(out / "tokenizer", repo)
    if "processor" in layout:
        _write_published_processor(out / "processor", repo, configs)
    index = configs["model_index"]
    if with_processor and repo in REPOS:
        _processor(repo, configs["text_encoder"]["mm_tokens_per_image"]).save_pretrained(out / "processor")
        index["processor"] = ["transformers", "Gemma3Processor"]
    _write_json(out / "model_index.json", index)
    marker = {"preset": preset, "seed": seed, "repo": repo, "built_at_load": sorted(built_at_load)}
    (out / SYNTHETIC_MARKER).write_text(json.dumps(marker) + "\n")
    return out


def write_text_encoder(folder: Path, preset: str, *, seed: int = 0, device: str = "cpu", repo: str = DEFAULT_REPO,
                       stale_set: bool = False) -> None:
    """The text encoder as `repo` publishes it: its configuration and index-listed shards (Gemma 3 in float32 under
    transformers 4 names, LTX-2.5's Gemma 4 in bfloat16 under its module names) and, with `stale_set`, the stale set
    beside them (the same Gemma under `base_text_encoder.` names plus an old copy of the connectors)."""
    layout = published_layout(repo)["folders"]["text_encoder"]
    _write_json(Path(folder) / "config.json", component_configs(preset, repo)["text_encoder"])
    spec = dict(layout["weights"])
    if spec["shards"] is None:
        spec["shards"] = UNKNOWN_SHARDS[(repo, "text_encoder")]
    module = _build("text_encoder", preset, seed, torch.float32, device, repo)
    gemma = _published_names(module.state_dict(), spec)
    _write_weights(folder, [(gemma, spec)], spec)
    if stale_set:
        stale = layout["stale_weights"]
        parts = []
        for part in stale["parts"]:
            if part["component"] == "text_encoder":
                parts.append((_published_names(module.state_dict(), part, part["prefix"]), part))
            else:
                other = _build(part["component"], preset, seed, torch.float32, device, repo)
                parts.append((_published_names(other.state_dict(), part, part["prefix"]), part))
        _write_weights(folder, parts, stale)


# LTX-2.5's prompt enhancer: an off-the-shelf Gemma 4 instruct model, a transformers repo of its own (not an LTX-2
# one); its configuration in published/ is the structure third-party ports quote (SOURCES.md).
PROMPT_ENHANCER_REPO = "google/gemma-4-E2B-it"


def _tiny_prompt_enhancer_config() -> dict:
    """The published Gemma 4 E2B configuration with tiny sizes: the text model 32 wide, two of its five-layer
    periods (four sliding-window layers, then a global one with twice wider heads), the last half reusing the
    first half's keys and values as E2B's last 20 of 35 layers do, per-layer input embeddings 8 wide; one-layer
    vision and audio towers; token ids those of the tiny Gemma 4 vocabulary."""
    published = _read_json(PUBLISHED / PROMPT_ENHANCER_REPO.replace("/", "--") / "config.json")
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


def write_prompt_enhancer(out: Path, *, seed: int = 0) -> Path:
    """A tiny seeded `Gemma4ForConditionalGeneration` shaped like google/gemma-4-E2B-it (LTX-2.5's prompt enhancer)
    with the tiny Gemma 4 tokenizer (Gemma 3's chat template: Gemma 4's was not seen), as transformers saves them:
    config.json, generation_config.json, model.safetensors, the tokenizer files."""
    from transformers import Gemma4Config, Gemma4ForConditionalGeneration

    out = Path(out)
    with _building(seed, torch.float32, "cpu"):
        model = Gemma4ForConditionalGeneration(Gemma4Config.from_dict(_tiny_prompt_enhancer_config()))
    model.save_pretrained(out)
    _tokenizer(LTX25_REPO).save_pretrained(out)
    return out


def read_marker(model_dir: Path) -> dict:
    """What `write_model` recorded of a synthetic model directory (preset, seed, repo, the components built at
    load); empty for any other model."""
    marker_path = Path(model_dir) / SYNTHETIC_MARKER
    return json.loads(marker_path.read_text()) if marker_path.is_file() else {}


def build_at_load(model_dir: Path, name: str, device: torch.device, dtype: torch.dtype,
                  *, quantize: Callable[[torch.nn.Module], object] | None = None):
    """The component `name` of a synthetic model directory that holds only its configuration, built with the
    directory's seed directly on `device`; None for every component whose weights are on disk.

    Layers are built one at a time, as loading fills them: with `quantize`, each linear layer except the output head
    is quantized as soon as it exists, so the unquantized encoder is never whole in memory, as when real files load
    with quantization. Its random values are the same either way."""
    marker = read_marker(model_dir)
    if name not in marker.get("built_at_load", []):
        return None
    if name != "text_encoder":
        raise ValueError(f"{model_dir}: only the text encoder can be built at load, not {name}")
    from accelerate import init_empty_weights

    from ltx2gen.quant import is_text_encoder_fp8_layer

    model_type = _read_json(Path(model_dir) / name / "config.json")["model_type"]
    config_class, model_class = _text_encoder_classes(model_type)
    config = config_class.from_pretrained(Path(model_dir) / name)
    with _building(marker["seed"], dtype, device):
        with init_empty_weights(include_buffers=False):  # parameters on the meta device, constructor buffers real
            model = model_class(config)
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
    parser.add_argument("--repo", choices=ALL_REPOS, default=DEFAULT_REPO,
                        help="the published repo whose configuration and file layout the model follows")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="where to build the weights (cuda is much faster for full)")
    parser.add_argument("--text-encoder-at-load", action="store_true",
                        help="write only the text encoder's configuration; it is built seeded wherever it is loaded")
    parser.add_argument("--stale-set", action=argparse.BooleanOptionalAction, default=None,
                        help="also write the text encoder's stale 12-shard set, as the LTX-2.0 repos publish it "
                             "(default: tiny only)")
    parser.add_argument("--with-processor", action="store_true",
                        help="add a Gemma 3 processor component for --enhance-prompt to an LTX-2.0 repo (which has "
                             "none; the LTX-2.3 repos publish one)")
    args = parser.parse_args(argv)
    path = write_model(args.preset, args.out, seed=args.seed, device=args.device,
                       built_at_load=("text_encoder",) if args.text_encoder_at_load else (), repo=args.repo,
                       with_processor=args.with_processor, stale_set=args.stale_set)
    print(f"wrote {args.preset} LTX-2 model ({args.repo} layout) to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
