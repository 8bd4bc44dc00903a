"""FLOPs of one LTX-2 transformer call (one distilled step) at a clip size, counted from a repo's published
transformer configuration: the model is built on PyTorch's meta device (shapes only, no weights, no GPU) and called
with the inputs the pipeline gives it for one prompt of 1,024 tokens, under `torch.utils.flop_counter.FlopCounterMode`,
which counts 2 FLOPs per multiply-add of every matrix multiply and attention (QK^T and AV) the call runs.
Elementwise work (norms, modulation, RoPE, activations) is not counted: it is not matrix work.

    python3 bench/transformer_flops.py --repo Lightricks/LTX-2.5-Diffusers --size 1920x1088x161
"""

from __future__ import annotations

import argparse
import json
import sys

import torch
from torch.utils.flop_counter import FlopCounterMode

from ltx2gen.checkpoint import latent_frame_count, model_version
from ltx2gen.testing import presets, published


def count(repo: str, width: int, height: int, frames: int) -> dict:
    from diffusers import LTX2VideoTransformer3DModel

    config = presets.component_configs("full", repo)["transformer"]
    with torch.device("meta"):
        transformer = LTX2VideoTransformer3DModel.from_config(config).to(torch.bfloat16)
    meta = torch.device("meta")
    latent_frames, latent_h, latent_w = latent_frame_count(frames), height // 32, width // 32
    audio_frames = round(frames / 24.0 * 16000 / 160 / 4)
    video_tokens = latent_frames * latent_h * latent_w
    c = transformer.config

    # LTX-2.0 projects the captions inside the transformer; from LTX-2.3 on the connectors hand it projected ones
    projected = getattr(transformer, "caption_projection", None) is None
    video_context = c.cross_attention_dim if projected else c.caption_channels
    audio_context = c.audio_cross_attention_dim if projected else c.caption_channels

    def empty(*shape):
        return torch.empty(*shape, device=meta, dtype=torch.bfloat16)

    inputs = dict(hidden_states=empty(1, video_tokens, c.in_channels),
                  audio_hidden_states=empty(1, audio_frames, c.audio_in_channels),
                  encoder_hidden_states=empty(1, 1024, video_context),
                  audio_encoder_hidden_states=empty(1, 1024, audio_context),
                  encoder_attention_mask=torch.ones(1, 1024, device=meta),
                  audio_encoder_attention_mask=torch.ones(1, 1024, device=meta),
                  timestep=torch.full((1,), 900.0, device=meta), sigma=torch.full((1,), 900.0, device=meta),
                  num_frames=latent_frames, height=latent_h,
                  width=latent_w, fps=24.0, audio_num_frames=audio_frames,
                  use_cross_timestep=model_version_of(config) != "2.0", return_dict=False)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        transformer(**inputs)
    by_op = {str(op): flops for op, flops in counter.get_flop_counts()["Global"].items()}
    parameters = sum(p.numel() for p in transformer.parameters())
    return {"repo": repo, "version": model_version_of(config), "size": f"{width}x{height}x{frames}",
            "video_tokens": video_tokens, "audio_tokens": audio_frames, "text_tokens": 1024,
            "parameters": parameters, "flops": counter.get_total_flops(), "flops_by_op": by_op}


def model_version_of(config: dict) -> str:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "transformer").mkdir()
        (Path(folder) / "transformer" / "config.json").write_text(json.dumps(config))
        return model_version(Path(folder))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", default=published.DEFAULT_REPO, choices=published.ALL_REPOS)
    parser.add_argument("--size", default="1920x1088x161", help="WIDTHxHEIGHTxFRAMES")
    args = parser.parse_args(argv)
    width, height, frames = (int(value) for value in args.size.split("x"))
    print(json.dumps(count(args.repo, width, height, frames)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
