"""The memory of a conditioned transformer call, stock against the product's per-run timestep modulation
(`patches.timestep_modulation_per_run`): the published transformer's configuration (its full width) with only
`--blocks` of its blocks, every video token at t * (1 - strength) with the first latent frame clean, as --image makes
it. Each mode runs in its own process, and reports how far the call raised the peak: process RSS on the CPU, memory
allocated on a GPU. Also the largest output difference between the two (0: the same numbers).

    python3 bench/modulation_memory.py --device cpu --dtype float32 --latent-frames 2 --out memory.json
    python3 bench/modulation_memory.py --device cuda --latent-frames 21 --blocks 4 --out memory.json   # 1080p tokens
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

MIB = 1024**2
MODES = ("stock", "per_run")
# 1920x1088 in latent tokens (height x width); 161 frames are 21 latent frames.
LATENT_HEIGHT, LATENT_WIDTH = 34, 60


def build(repo: str, blocks: int, preset: str, dtype: torch.dtype, device: torch.device):
    from diffusers import LTX2VideoTransformer3DModel

    from ltx2gen.testing import presets

    config = dict(presets.component_configs(preset, repo)["transformer"], num_layers=blocks)
    config = {key: value for key, value in config.items() if not key.startswith("_")}
    torch.manual_seed(0)
    with torch.device(device):
        return torch.nn.Module.to(LTX2VideoTransformer3DModel(**config), dtype=dtype).eval()


def conditioned_inputs(config, version: str, latent_frames: int, height: int, width: int, dtype, device) -> dict:
    """What an image-conditioned step hands the transformer, for a prompt of 128 tokens (LTX-2.0 projects the
    caption in the transformer; later versions take their connectors' widths)."""
    generator = torch.Generator().manual_seed(0)
    tokens, frame = latent_frames * height * width, height * width
    audio_tokens = round(((latent_frames - 1) * 8 + 1) / 24 * 25)

    def noise(*shape):
        return torch.randn(*shape, generator=generator).to(device, dtype)

    strength = torch.zeros(tokens, device=device)
    strength[:frame] = 1.0
    step = torch.tensor([900.0], device=device)
    video_text, audio_text = ((config.caption_channels,) * 2 if version == "2.0"
                              else (config.cross_attention_dim, config.audio_cross_attention_dim))
    return dict(hidden_states=noise(1, tokens, config.in_channels),
                audio_hidden_states=noise(1, audio_tokens, config.audio_in_channels),
                encoder_hidden_states=noise(1, 128, video_text), audio_encoder_hidden_states=noise(1, 128, audio_text),
                timestep=step.view(1, 1) * (1 - strength), audio_timestep=step, sigma=step, num_frames=latent_frames,
                height=height, width=width, audio_num_frames=audio_tokens, use_cross_timestep=version != "2.0",
                return_dict=False)


def child(args) -> int:
    from ltx2gen import patches
    from ltx2gen.checkpoint import model_version
    from ltx2gen.memory import peak_rss_bytes, process_rss_bytes
    from ltx2gen.testing import published

    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    transformer = build(args.repo, args.blocks, args.preset, dtype, device)
    if args.child == "per_run":
        patches.timestep_modulation_per_run(transformer)
    version = model_version(published.fixture_dir(args.repo))
    inputs = conditioned_inputs(transformer.config, version, args.latent_frames, args.latent_height,
                                args.latent_width, dtype, device)
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
    else:
        before = process_rss_bytes()
    started = time.perf_counter()
    with torch.no_grad():
        video, audio = transformer(**inputs)
    if cuda:
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated(device) if cuda else peak_rss_bytes()
    torch.save({"video": video.float().cpu(), "audio": audio.float().cpu()}, args.result.with_suffix(".pt"))
    args.result.write_text(json.dumps({"mode": args.child, "peak_rise_mib": round((peak - before) / MIB),
                                       "call_s": round(seconds, 2), "video_tokens": inputs["hidden_states"].shape[1]}))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", default="rootonchair/LTX-2-19b-distilled")
    parser.add_argument("--preset", default="full", help="ltx2gen.testing.synthetic preset whose sizes the blocks take")
    parser.add_argument("--blocks", type=int, default=1)
    parser.add_argument("--latent-frames", type=int, default=21)
    parser.add_argument("--latent-height", type=int, default=LATENT_HEIGHT)
    parser.add_argument("--latent-width", type=int, default=LATENT_WIDTH)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.child:
        return child(args)
    options = list(argv if argv is not None else sys.argv[1:])
    results = []
    for mode in MODES:
        result = args.out.with_name(f"{args.out.stem}.{mode}.json")
        subprocess.run([sys.executable, __file__, *options, "--child", mode, "--result", str(result)], check=True)
        results.append(json.loads(result.read_text()))
        print(json.dumps(results[-1]), flush=True)
    stock, per_run = (torch.load(args.out.with_name(f"{args.out.stem}.{mode}.pt")) for mode in MODES)
    record = {"date": time.strftime("%Y-%m-%d"), "command": " ".join(["bench/modulation_memory.py", *options]),
              "device": args.device, "results": results,
              "max_difference": {kind: float((stock[kind] - per_run[kind]).abs().max()) for kind in stock}}
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record["max_difference"]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
