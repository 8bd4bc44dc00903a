"""LTX-2.5's diffusion decoder on one GPU, at its published size with seeded random weights: the product's decode
(fused neighborhood attention, the reference tiling) against diffusers' stock pipeline as its docstring runs it, and
the VAE decode of the same clip. Prints one JSON line per case (for docs/BENCHMARKS.md) and writes them to OUT.

    python bench/diffusion_decoder_gpu.py OUT.json [--width 1920 --height 1088 --num-frames 121]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

PUBLISHED = Path(__file__).resolve().parents[1] / "ltx2gen" / "published" / "Lightricks--LTX-2.5-Diffusers"


def built(cls, folder: str, device: torch.device):
    """`cls` at the published configuration, seeded random weights, bf16, on `device`."""
    torch.manual_seed(0)
    with device:
        model = cls.from_config(cls.load_config(PUBLISHED / folder))
    return model.to(torch.bfloat16).eval().requires_grad_(False)


def measured(name: str, run, **facts) -> dict:
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    try:
        frames = run()
        error = None
    except torch.OutOfMemoryError as err:
        frames, error = None, f"out of memory: {str(err).splitlines()[0][:160]}"
    torch.cuda.synchronize()
    row = {"case": name, "seconds": round(time.perf_counter() - started, 2), "frames": frames,
           "gpu_peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2), "error": error, **facts}
    print(json.dumps(row), flush=True)
    torch.cuda.empty_cache()
    return row


def main() -> None:
    from diffusers import AutoencoderKLLTX2Video, LTX2VideoDiffusionDecodePipeline, LTX2VideoDiffusionDecoderModel

    from ltx2gen import patches
    from ltx2gen.checkpoint import latent_frame_count
    from ltx2gen.video_decode import DecodePlan, decode_video_frames

    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1088)
    parser.add_argument("--num-frames", type=int, default=121)
    parser.add_argument("--skip", nargs="*", default=[], help="cases to leave out: small, ours, vae, stock")
    args = parser.parse_args()
    device = torch.device("cuda")
    rows = []
    decoder = built(LTX2VideoDiffusionDecoderModel, "diffusion_decoder", device)
    size = dict(width=args.width, height=args.height, num_frames=args.num_frames)
    latents = torch.randn(1, 128, latent_frame_count(args.num_frames), args.height // 32, args.width // 32,
                          generator=torch.Generator().manual_seed(1)).to(device, torch.bfloat16)

    def ours(video_latents, frames):
        plan = DecodePlan.choose(frames, 0, 32, decoder="diffusion", seed=7)
        return sum(1 for _ in decode_video_frames(decoder, video_latents, plan))

    if "small" not in args.skip:  # fused against eager where eager's dense mask still fits: the same pixels?
        small = torch.randn(1, 128, 3, 7, 7, generator=torch.Generator().manual_seed(2)).to(device, torch.bfloat16)
        with torch.no_grad():
            eager = decoder.decode(small, generator=torch.Generator("cpu").manual_seed(7), return_dict=False)[0]
            with patches.neighborhood_attention_fused(device):
                fused = decoder.decode(small, generator=torch.Generator("cpu").manual_seed(7), return_dict=False)[0]
        difference = (fused - eager).abs().float()
        rows.append({"case": "fused against eager, 224x224x17", "max_abs_difference": difference.max().item(),
                     "mean_abs_difference": difference.mean().item()})
        print(json.dumps(rows[-1]), flush=True)
    if "ours" not in args.skip:
        rows.append(measured("ours, first use (compiles)", lambda: ours(latents, args.num_frames), **size))
        rows.append(measured("ours, warm", lambda: ours(latents, args.num_frames), **size))
    if "vae" not in args.skip:
        vae = built(AutoencoderKLLTX2Video, "vae", device)
        plan = DecodePlan.choose(args.num_frames, 0, 32)
        rows.append(measured("VAE decode (ours)", lambda: sum(1 for _ in decode_video_frames(vae, latents, plan)),
                             **size))
        del vae
    if "stock" not in args.skip:  # LTX2VideoDiffusionDecodePipeline as documented: eager flex attention, untiled
        pipe = LTX2VideoDiffusionDecodePipeline(diffusion_decoder=decoder, scheduler=None)
        rows.append(measured("stock LTX2VideoDiffusionDecodePipeline", lambda: len(pipe(
            latents, generator=torch.Generator("cpu").manual_seed(7), output_type="pt",
            denormalize=False).frames[0]), **size))
    args.out.write_text(json.dumps({"device": torch.cuda.get_device_name(), "torch": torch.__version__,
                                    "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
