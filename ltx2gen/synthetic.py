"""Seeded random-weight LTX-2 models in diffusers format, so the whole product runs without the real weights.

Every preset starts from a published repo's own configuration (`ltx2gen/published/<owner>--<name>/`, see SOURCES.md
there) and changes only sizes: `tiny` (CPU tests) narrows layers, widths, channels and the vocabulary; `full` is the
published configuration unchanged (benchmarks); `bench` is `full` with a narrower text-encoder MLP. The directory is
written in the published file layout (`layout.json`): the same file names, shard counts, tensor names and on-disk
dtypes, including the text encoder's stale second shard set. Components come from their real constructors, so
loading one exercises exactly the code that loads the real model.

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
REPOS = (DEFAULT_REPO, "Lightricks/LTX-2")
# The diffusers components, in the order they are written; the latent upsampler sits beside them (not in
# model_index.json), as in the published repos.
DIFFUSERS_COMPONENTS = ("transformer", "connectors", "vae", "audio_vae", "vocoder", "latent_upsampler")

TINY_GEMMA_HIDDEN = 32
# Gemma's special tokens, first and in Gemma's order where it has one (pad 0, eos 1, bos 2, unk 3, mask 4), then the
# chat and image markers of Gemma 3's tokenizer; then a character-level vocabulary, so any prompt tokenizes offline
# and different prompts condition differently.
SPECIAL_TOKENS = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start_of_turn>", "<end_of_turn>",
                  "<start_of_image>", "<end_of_image>", "<image_soft_token>"]
TINY_VOCAB = SPECIAL_TOKENS + ["\u2581"] + list(string.ascii_letters + string.digits + ".,;:!?'\"-()")


def fixture_dir(repo: str = DEFAULT_REPO) -> Path:
    """The folder of `repo`'s published configuration files."""
    if repo not in REPOS:
        raise ValueError(f"unknown repo {repo!r}: use one of {', '.join(REPOS)}")
    return PUBLISHED / repo.replace("/", "--")


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def published_layout(repo: str = DEFAULT_REPO) -> dict:
    """`layout.json` of `repo`: per folder its weight files, shard counts, tensor names and on-disk dtypes."""
    return _read_json(fixture_dir(repo) / "layout.json")


def published_configs(repo: str = DEFAULT_REPO) -> dict[str, dict]:
    """Every configuration file of `repo`, by component (`tokenizer` is tokenizer_config.json)."""
    root = fixture_dir(repo)
    configs = {name: _read_json(root / name / "config.json") for name in (*DIFFUSERS_COMPONENTS, "text_encoder")}
    configs["scheduler"] = _read_json(root / "scheduler" / "scheduler_config.json")
    configs["tokenizer"] = _read_json(root / "tokenizer" / "tokenizer_config.json")
    configs["special_tokens_map"] = _read_json(root / "tokenizer" / "special_tokens_map.json")
    configs["model_index"] = _read_json(root / "model_index.json")
    return configs


# Gemma 3's chat template, as the published tokenizer folders hold it (chat_template.jinja).
TINY_CHAT_TEMPLATE = (fixture_dir() / "tokenizer" / "chat_template.jinja").read_text()


def _tiny_text_encoder_sizes(published: dict) -> dict:
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


def _tiny_sizes(published: dict) -> dict:
    """What `tiny` changes: sizes only (diffusers' own test sizes), everything else is the published value."""
    return {
        "transformer": dict(
            in_channels=4, out_channels=4, num_attention_heads=2, attention_head_dim=8, cross_attention_dim=16,
            audio_in_channels=4, audio_out_channels=4, audio_num_attention_heads=2, audio_attention_head_dim=4,
            audio_cross_attention_dim=8, num_layers=2, caption_channels=TINY_GEMMA_HIDDEN,
        ),
        "connectors": dict(
            caption_channels=TINY_GEMMA_HIDDEN, text_proj_in_factor=3,  # the tiny Gemma's 2 layers + embeddings
            video_connector_num_attention_heads=4, video_connector_attention_head_dim=8, video_connector_num_layers=1,
            audio_connector_num_attention_heads=4, audio_connector_attention_head_dim=8, audio_connector_num_layers=1,
        ),
        "vae": dict(latent_channels=4, block_out_channels=[8, 16, 32, 64], decoder_block_out_channels=[8, 16, 32],
                    layers_per_block=[1, 1, 1, 1, 1], decoder_layers_per_block=[1, 1, 1, 1]),
        # The published two downsamplings stay: the encoder's output has the pipeline's audio latent shape (4x fewer
        # frames and mel bins), so --audio can be encoded.
        "audio_vae": dict(base_channels=4, num_res_blocks=1, resolution=32, latent_channels=2, mel_bins=8),
        # The published upsampling (x240, 24 kHz) stays; in_channels is the tiny VAE's 2 channels x 8 mel bins.
        "vocoder": dict(in_channels=16, hidden_channels=32),
        # GroupNorm(32, ...) needs at least 32 channels.
        "latent_upsampler": dict(in_channels=4, mid_channels=32, num_blocks_per_stage=1),
        "text_encoder": _tiny_text_encoder_sizes(published["text_encoder"]),
    }


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
    whole Gemma3Config dictionary."""
    configs = component_configs(preset, repo)
    arguments = {name: {key: value for key, value in configs[name].items() if not key.startswith("_")}
                 for name in (*DIFFUSERS_COMPONENTS, "scheduler")}
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


def _diffusers_class(name: str):
    from diffusers import AutoencoderKLLTX2Audio, AutoencoderKLLTX2Video, LTX2VideoTransformer3DModel
    from diffusers.pipelines.ltx2 import LTX2LatentUpsamplerModel, LTX2TextConnectors, LTX2Vocoder

    return {"transformer": LTX2VideoTransformer3DModel, "connectors": LTX2TextConnectors,
            "vae": AutoencoderKLLTX2Video, "audio_vae": AutoencoderKLLTX2Audio, "vocoder": LTX2Vocoder,
            "latent_upsampler": LTX2LatentUpsamplerModel}[name]


def _build(name: str, preset: str, seed: int, dtype: torch.dtype, device: str | torch.device,
           repo: str = DEFAULT_REPO) -> torch.nn.Module:
    """One component of `preset` with seeded random weights, built directly on `device` in `dtype`."""
    arguments = PRESETS[preset](repo)[name]
    if name == "latent_upsampler":
        # Built on the CPU: its constructor multiplies integer tensors, which CUDA does not implement.
        device = "cpu"
    with _building(seed, dtype, device):
        if name == "text_encoder":
            module = _text_encoder(arguments)
        else:
            module = _diffusers_class(name)(**arguments)
    if name in ("vae", "audio_vae"):
        _randomize_latent_statistics(module)
    # nn.Module's own cast: diffusers' override warns about fp32-kept modules, which these classes have none of.
    return torch.nn.Module.to(module, dtype=dtype).eval()


def _text_encoder(config: dict):
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    return Gemma3ForConditionalGeneration(Gemma3Config.from_dict(copy.deepcopy(config)))


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


def _tokenizer(repo: str = DEFAULT_REPO):
    """The tiny character-level vocabulary with the published tokenizer settings (Gemma 3's own: left padding,
    `<bos>` first, transformers' "no limit" model_max_length, the image markers, the chat template)."""
    from transformers import AddedToken, GemmaTokenizer

    settings = {key: value for key, value in published_configs(repo)["tokenizer"].items()
                if key not in ("added_tokens_decoder", "tokenizer_class")}
    tokenizer = GemmaTokenizer(vocab={token: i for i, token in enumerate(TINY_VOCAB)}, merges=[], **settings)
    # The chat markers are single special tokens, as in Gemma's vocabulary.
    tokenizer.add_tokens([AddedToken(token, special=True, normalized=False) for token in SPECIAL_TOKENS],
                         special_tokens=True)
    tokenizer.chat_template = (fixture_dir(repo) / "tokenizer" / "chat_template.jinja").read_text()
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
    """An `LTX2Pipeline` with seeded random weights, built directly on `device` (no processor, as published)."""
    from diffusers import LTX2Pipeline

    components = {name: _build(name, preset, seed, dtype, device, repo)
                  for name in ("transformer", "connectors", "vae", "audio_vae", "vocoder", "text_encoder")}
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
    holding the tiny ids of the same special tokens), special_tokens_map.json and chat_template.jinja."""
    published = fixture_dir(repo) / "tokenizer"
    with tempfile.TemporaryDirectory() as scratch:
        _tokenizer(repo).save_pretrained(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(scratch) / "tokenizer.json", folder / "tokenizer.json")
    config = _read_json(published / "tokenizer_config.json")
    ids = {token: i for i, token in enumerate(TINY_VOCAB)}
    config["added_tokens_decoder"] = {str(ids[entry["content"]]): entry
                                      for entry in config["added_tokens_decoder"].values()}
    _write_json(folder / "tokenizer_config.json", config)
    for name in ("special_tokens_map.json", "chat_template.jinja"):
        shutil.copyfile(published / name, folder / name)


def write_model(preset: str, out: Path, *, seed: int = 0, device: str = "cpu", built_at_load: tuple = (),
                repo: str = DEFAULT_REPO, with_processor: bool = False, stale_set: bool | None = None) -> Path:
    """Write a complete diffusers-format LTX-2 model directory in `repo`'s published layout and return it.

    Each component is built, written and freed in turn (a full-size one is never beside another), in the published
    on-disk dtypes: bfloat16 with float32 modulation tables for the diffusers components, float32 for the text
    encoder. `stale_set` (default: tiny only) also writes the text encoder's stale 12-shard set, as published; at
    full size it would add 52 GB. `with_processor` adds a Gemma 3 `processor` component (for --enhance-prompt),
    which the published repos lack.

    Components named in `built_at_load` (the text encoder only) are written as their configuration alone: whoever
    loads them gets them built with seeded random weights where they are loaded (`build_at_load`). The full-size
    text encoder's 49 GB do not fit a 64 GB disk beside the transformer; this keeps its size real without writing
    it."""
    if set(built_at_load) - {"text_encoder"}:
        raise ValueError(f"only the text encoder can be built at load, not {sorted(set(built_at_load))}")
    out = Path(out)
    configs, layout = component_configs(preset, repo), published_layout(repo)["folders"]
    stale_set = preset == "tiny" if stale_set is None else stale_set
    build_dtype = torch.float32 if preset == "tiny" else torch.bfloat16
    out.mkdir(parents=True, exist_ok=True)
    for name in DIFFUSERS_COMPONENTS:
        module = _build(name, preset, seed, build_dtype, device, repo)
        spec = layout[name]["weights"]
        _write_weights(out / name, [(module.state_dict(), spec)], spec)
        _write_json(out / name / "config.json", configs[name])
        del module
    _write_json(out / "text_encoder" / "config.json", configs["text_encoder"])
    if "text_encoder" not in built_at_load:
        write_text_encoder(out / "text_encoder", preset, seed=seed, device=device, repo=repo, stale_set=stale_set)
    _write_json(out / "scheduler" / "scheduler_config.json", configs["scheduler"])
    _write_tokenizer(out / "tokenizer", repo)
    index = configs["model_index"]
    if with_processor:
        _processor(repo, configs["text_encoder"]["mm_tokens_per_image"]).save_pretrained(out / "processor")
        index["processor"] = ["transformers", "Gemma3Processor"]
    _write_json(out / "model_index.json", index)
    marker = {"preset": preset, "seed": seed, "repo": repo, "built_at_load": sorted(built_at_load)}
    (out / SYNTHETIC_MARKER).write_text(json.dumps(marker) + "\n")
    return out


def write_text_encoder(folder: Path, preset: str, *, seed: int = 0, device: str = "cpu", repo: str = DEFAULT_REPO,
                       stale_set: bool = False) -> None:
    """The text encoder as `repo` publishes it: its configuration and index-listed float32 shards and, with
    `stale_set`, the stale set beside them (the same Gemma under `base_text_encoder.` names plus an old copy of the
    connectors)."""
    layout = published_layout(repo)["folders"]["text_encoder"]
    _write_json(Path(folder) / "config.json", component_configs(preset, repo)["text_encoder"])
    spec = layout["weights"]
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


def build_at_load(model_dir: Path, name: str, device: torch.device, dtype: torch.dtype,
                  *, quantize: Callable[[torch.nn.Module], object] | None = None):
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
    parser.add_argument("--repo", choices=REPOS, default=DEFAULT_REPO,
                        help="the published repo whose configuration and file layout the model follows")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="where to build the weights (cuda is much faster for full)")
    parser.add_argument("--text-encoder-at-load", action="store_true",
                        help="write only the text encoder's configuration; it is built seeded wherever it is loaded")
    parser.add_argument("--stale-set", action=argparse.BooleanOptionalAction, default=None,
                        help="also write the text encoder's stale 12-shard set, as published (default: tiny only)")
    parser.add_argument("--with-processor", action="store_true",
                        help="add a Gemma 3 processor component for --enhance-prompt (the published repos have none)")
    args = parser.parse_args(argv)
    path = write_model(args.preset, args.out, seed=args.seed, device=args.device,
                       built_at_load=("text_encoder",) if args.text_encoder_at_load else (), repo=args.repo,
                       with_processor=args.with_processor, stale_set=args.stale_set)
    print(f"wrote {args.preset} LTX-2 model ({args.repo} layout) to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
