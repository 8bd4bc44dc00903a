"""Each component of a preset built from its real constructor with seeded random weights, directly on a device, and
the stock pipeline around them."""

from __future__ import annotations

import copy

import torch

from ltx2gen.built_at_load import seeded_construction, text_encoder_classes
from ltx2gen.testing.presets import PRESETS
from ltx2gen.testing.published import DEFAULT_REPO, published_configs
from ltx2gen.testing.tokenizers import tiny_tokenizer

# Components whose weights come from another seed than the model's: the 2.5 repo's full transformer is another
# checkpoint than its distilled one, so the two must differ.
SEED_OFFSETS = {"transformer_full": 1}


def diffusers_class(name: str, repo: str = DEFAULT_REPO):
    """The diffusers class of component `name` of `repo` (its published configuration's `_class_name`)."""
    import diffusers
    from diffusers.pipelines import ltx2

    class_name = published_configs(repo)[name]["_class_name"]
    return getattr(diffusers, class_name, None) or getattr(ltx2, class_name)


def build_component(name: str, preset: str, seed: int, dtype: torch.dtype, device: str | torch.device,
           repo: str = DEFAULT_REPO) -> torch.nn.Module:
    """One component of `preset` with seeded random weights, built directly on `device` in `dtype`."""
    arguments = PRESETS[preset](repo)[name]
    if name == "latent_upsampler":
        # Built on the CPU: its constructor multiplies integer tensors, which CUDA does not implement.
        device = "cpu"
    with seeded_construction(seed + SEED_OFFSETS.get(name, 0), dtype, device):
        if name == "text_encoder":
            module = _text_encoder(arguments)
        else:
            module = diffusers_class(name, repo)(**arguments)
    if name in ("vae", "audio_vae", "diffusion_decoder"):
        _randomize_latent_statistics(module)
    if getattr(module, "keyframes_abs_pos_embedding", None) is not None:
        _randomize_keyframes_embedding(module)
    # nn.Module's own cast: diffusers' override warns about fp32-kept modules, which these classes have none of.
    return torch.nn.Module.to(module, dtype=dtype).eval()


def _text_encoder(config: dict):
    config_class, model_class = text_encoder_classes(config["model_type"])
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
    return build_component("transformer", preset, seed, dtype, device, repo)


def build_text_encoder(preset: str = "full", seed: int = 0, dtype: torch.dtype = torch.bfloat16,
                       device: str | torch.device = "cpu", repo: str = DEFAULT_REPO):
    """The preset's Gemma text encoder alone, with seeded random weights, built directly on `device`."""
    return build_component("text_encoder", preset, seed, dtype, device, repo)


def build_video_vae(preset: str = "full", seed: int = 0, dtype: torch.dtype = torch.bfloat16,
                    device: str | torch.device = "cpu", repo: str = DEFAULT_REPO):
    """The preset's video VAE alone, with seeded random weights, built directly on `device`."""
    return build_component("vae", preset, seed, dtype, device, repo)


def build_latent_upsampler(preset: str = "tiny", seed: int = 0, dtype: torch.dtype = torch.float32,
                           device: str | torch.device = "cpu", repo: str = DEFAULT_REPO):
    """The 2x spatial latent upsampler of two-stage runs, seeded, as the published repos ship it (latent_upsampler/)."""
    return build_component("latent_upsampler", preset, seed, dtype, device, repo)


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
    components = {name: build_component(name, preset, seed, dtype, device, repo) for name in names}
    return LTX2Pipeline(scheduler=_scheduler(repo), tokenizer=tiny_tokenizer(repo), **components)

