"""Run by tests/test_context_parallel.py under torchrun (processes on CPUs, over gloo): the tiny transformer of each
repo named on the command line, prepared as the diffusion stage prepares it, makes every kind of pass the pipeline
makes (plain, STG with every row perturbed, STG with one row perturbed, modality isolation) whole, then split over the
ranks with `ltx2gen.context_parallel`. Rank 0 writes to the JSON file named last, per repo, the largest difference of
each pass's video and audio outputs, and the video tokens the rank's blocks saw out of all of them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from ltx2gen import context_parallel
from ltx2gen.checkpoint import model_version
from ltx2gen.patches import self_attention_perturbable
from ltx2gen.testing import build, published

CPU = torch.device("cpu")
FRAMES, HEIGHT, WIDTH, AUDIO_FRAMES, PROMPT_TOKENS = 3, 2, 2, 5, 6
# Batch rows as classifier-free guidance stacks them; STG's pass of one perturbed row takes the mixed path (attention
# of the unperturbed row blended with the value projection of the perturbed one).
PASSES = {
    "plain": {},
    "stg, every row perturbed": dict(spatio_temporal_guidance_blocks=[0]),
    "stg, one row perturbed": dict(spatio_temporal_guidance_blocks=[1], perturbation_mask=torch.tensor([1.0, 0.0])),
    "modality isolation": dict(isolate_modalities=True),
}


def step_inputs(config, version: str) -> dict:
    """A guided step's inputs for a transformer of `config`: two rows, the first prompt padded as the text stage
    pads it, the prompt widths the version's connectors give (LTX-2.0 projects the caption in the transformer)."""
    generator = torch.Generator().manual_seed(1)
    video_text, audio_text = ((config.caption_channels,) * 2 if config.use_prompt_embeddings
                              else (config.cross_attention_dim, config.audio_cross_attention_dim))
    prompt_mask = torch.tensor([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]])
    timestep = torch.tensor([700.0, 700.0])
    return dict(hidden_states=torch.randn(2, FRAMES * HEIGHT * WIDTH, config.in_channels, generator=generator),
                audio_hidden_states=torch.randn(2, AUDIO_FRAMES, config.audio_in_channels, generator=generator),
                encoder_hidden_states=torch.randn(2, PROMPT_TOKENS, video_text, generator=generator),
                audio_encoder_hidden_states=torch.randn(2, PROMPT_TOKENS, audio_text, generator=generator),
                encoder_attention_mask=prompt_mask, audio_encoder_attention_mask=prompt_mask,
                timestep=timestep, sigma=timestep, num_frames=FRAMES, height=HEIGHT, width=WIDTH,
                audio_num_frames=AUDIO_FRAMES, use_cross_timestep=version != "2.0", return_dict=False)


def differences(repo: str, world_size: int) -> dict:
    transformer = build.build_transformer("tiny", seed=0, dtype=torch.float32, repo=repo).eval()
    self_attention_perturbable(transformer)
    inputs = step_inputs(transformer.config, model_version(published.fixture_dir(repo)))
    seen_tokens = []
    transformer.proj_in.register_forward_pre_hook(lambda module, args: seen_tokens.append(args[0].shape[1]))
    with torch.no_grad():
        whole = {name: transformer(**inputs, **extra) for name, extra in PASSES.items()}
        context_parallel.enable(transformer, world_size, CPU)
        split = {name: transformer(**inputs, **extra) for name, extra in PASSES.items()}
    return {"passes": {name: [float((a - b).abs().max()) for a, b in zip(whole[name], split[name])]
                       for name in PASSES},
            "video_tokens_seen_split": seen_tokens[-1], "video_tokens": FRAMES * HEIGHT * WIDTH}


def main() -> None:
    *repos, out = sys.argv[1:]
    dist.init_process_group("gloo")
    results = {repo: differences(repo, dist.get_world_size()) for repo in repos}
    if dist.get_rank() == 0:
        Path(out).write_text(json.dumps(results))
    context_parallel.leave()


if __name__ == "__main__":
    main()
