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

    python -m ltx2gen.testing.synthetic --preset tiny --out models/ltx2-tiny [--repo Lightricks/LTX-2]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from ltx2gen.built_at_load import MARKER, seeded_construction
from ltx2gen.testing.build import build_component
from ltx2gen.testing.layout_files import published_names, write_json, write_weights
from ltx2gen.testing.presets import PRESETS, component_configs, tiny_prompt_enhancer_config
from ltx2gen.testing.published import (
    ALL_REPOS,
    DEFAULT_REPO,
    LTX25_REPO,
    REPOS,
    UNKNOWN_SHARDS,
    diffusers_components,
    published_layout,
)
from ltx2gen.testing.tokenizers import tiny_processor, tiny_tokenizer, write_published_processor, write_tokenizer

# What the `bench` preset leaves out so that the full-size LTX-2.5 model fits a 64 GB disk (with them it ran out at
# 62 GB on one H100 machine): the full transformer (`--pipeline full` on LTX-2.5) and the diffusion decoder (`--decoder
# diffusion`, measured apart by bench/diffusion_decoder_gpu.py, which builds it in memory).
NOT_READ_BY_A_RUN = ("transformer_full", "diffusion_decoder")


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
        module = build_component(name, preset, seed, build_dtype, device, repo)
        spec = layout[name]["weights"]
        write_weights(out / name, [(module.state_dict(), spec)], spec)
        write_json(out / name / "config.json", configs[name])
        del module
    if "text_encoder" in configs:
        write_json(out / "text_encoder" / "config.json", configs["text_encoder"])
        if "text_encoder" not in built_at_load:
            write_text_encoder(out / "text_encoder", preset, seed=seed, device=device, repo=repo,
                               stale_set=stale_set)
    if "scheduler" in configs:
        write_json(out / "scheduler" / "scheduler_config.json", configs["scheduler"])
    if "tokenizer" in layout:
        write_tokenizer(out / "tokenizer", repo)
    if "processor" in layout:
        write_published_processor(out / "processor", repo, configs)
    index = configs["model_index"]
    if with_processor and repo in REPOS:
        tiny_processor(repo, configs["text_encoder"]["mm_tokens_per_image"]).save_pretrained(out / "processor")
        index["processor"] = ["transformers", "Gemma3Processor"]
    write_json(out / "model_index.json", index)
    marker = {"preset": preset, "seed": seed, "repo": repo, "built_at_load": sorted(built_at_load)}
    (out / MARKER).write_text(json.dumps(marker) + "\n")
    return out


def write_text_encoder(folder: Path, preset: str, *, seed: int = 0, device: str = "cpu", repo: str = DEFAULT_REPO,
                       stale_set: bool = False) -> None:
    """The text encoder as `repo` publishes it: its configuration and index-listed shards (Gemma 3 in float32 under
    transformers 4 names, LTX-2.5's Gemma 4 in bfloat16 under its module names) and, with `stale_set`, the stale set
    beside them (the same Gemma under `base_text_encoder.` names plus an old copy of the connectors)."""
    layout = published_layout(repo)["folders"]["text_encoder"]
    write_json(Path(folder) / "config.json", component_configs(preset, repo)["text_encoder"])
    spec = dict(layout["weights"])
    if spec["shards"] is None:
        spec["shards"] = UNKNOWN_SHARDS[(repo, "text_encoder")]
    module = build_component("text_encoder", preset, seed, torch.float32, device, repo)
    gemma = published_names(module.state_dict(), spec)
    write_weights(folder, [(gemma, spec)], spec)
    if stale_set:
        stale = layout["stale_weights"]
        parts = []
        for part in stale["parts"]:
            if part["component"] == "text_encoder":
                parts.append((published_names(module.state_dict(), part, part["prefix"]), part))
            else:
                other = build_component(part["component"], preset, seed, torch.float32, device, repo)
                parts.append((published_names(other.state_dict(), part, part["prefix"]), part))
        write_weights(folder, parts, stale)


def write_prompt_enhancer(out: Path, *, seed: int = 0) -> Path:
    """A tiny seeded `Gemma4ForConditionalGeneration` shaped like google/gemma-4-E2B-it (LTX-2.5's prompt enhancer)
    with the tiny Gemma 4 tokenizer (Gemma 3's chat template: Gemma 4's was not seen), as transformers saves them:
    config.json, generation_config.json, model.safetensors, the tokenizer files."""
    from transformers import Gemma4Config, Gemma4ForConditionalGeneration

    out = Path(out)
    with seeded_construction(seed, torch.float32, "cpu"):
        model = Gemma4ForConditionalGeneration(Gemma4Config.from_dict(tiny_prompt_enhancer_config()))
    model.save_pretrained(out)
    tiny_tokenizer(LTX25_REPO).save_pretrained(out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ltx2gen.testing.synthetic", description=__doc__.splitlines()[0])
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
