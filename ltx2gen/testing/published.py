"""The published LTX-2 repos a test model follows: their configuration files and file layout, as kept in
`ltx2gen/published/<owner>--<name>/` (see SOURCES.md there)."""

from __future__ import annotations

import json
from pathlib import Path

PUBLISHED = Path(__file__).resolve().parent.parent / "published"


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


# LTX-2.5's prompt enhancer: an off-the-shelf Gemma 4 instruct model, a transformers repo of its own (not an LTX-2
# one); its configuration in published/ is the structure third-party ports quote (SOURCES.md).
PROMPT_ENHANCER_REPO = "google/gemma-4-E2B-it"


def fixture_dir(repo: str = DEFAULT_REPO) -> Path:
    """The folder of `repo`'s published configuration files."""
    if repo not in ALL_REPOS:
        raise ValueError(f"unknown repo {repo!r}: use one of {', '.join(ALL_REPOS)}")
    return PUBLISHED / repo.replace("/", "--")


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def published_layout(repo: str = DEFAULT_REPO) -> dict:
    """`layout.json` of `repo`: per folder its weight files, shard counts, tensor names and on-disk dtypes."""
    return read_json(fixture_dir(repo) / "layout.json")


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
    configs = {name: read_json(root / name / "config.json") for name in names}
    files = {"scheduler": "scheduler/scheduler_config.json", "tokenizer": "tokenizer/tokenizer_config.json",
             "special_tokens_map": "tokenizer/special_tokens_map.json", "processor": "processor/processor_config.json",
             "model_index": "model_index.json"}
    configs.update({name: read_json(root / file) for name, file in files.items() if (root / file).is_file()})
    return configs

