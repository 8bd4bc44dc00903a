"""LTX-2.5's DFR recipe made two ways on the same random-weight model, inputs and noise, measured side by side:

- `ours`: generate.py --pipeline dfr (the VAE decode, and with --decoder diffusion where the model has the decoder);
- `stock`: diffusers' documented composition as its docstrings run it: `LTX2DFRPipeline` with
  `enable_model_cpu_offload()` at half the size, `LTX2LatentUpsamplePipeline` on the video and the slots,
  `LTX2DFRPipeline` at the full size with stage one as reference, `LTX2DFRTemporalRefinePipeline` for each round
  (eta 0.5, its temporal upsampler on the GPU: model offload would never bring it there), the canvas trimmed, the
  tiled VAE decode, the audio decode, then encoding.

    python3 bench/dfr_gpu.py --out OUT_DIR                  # 1920x1088x121, 0 and 1 temporal rounds (GPU)
    python3 bench/dfr_gpu.py --smoke --out OUT_DIR          # the same code on the tiny LTX-2.5 model (CPU)

The machinery is compare_gpu.py's: each contender in its own process with the model's files evicted from the page
cache, a sampler of GPU memory and RSS every 10 ms (their sum: the unified peak), the same model writer (the `bench`
preset of Lightricks/LTX-2.5-Diffusers). The temporal upsampler is not in the published repo: a seeded random one at
the size third-party conversions give Lightricks' file (mid_channels 512, four blocks a stage; unconfirmed) is
written beside the model. Writes dfr.json and prints one row per contender.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from compare_gpu import (
    LTX25_REPO,
    PROMPT,
    SEED,
    Sampler,
    _encode,
    device_name,
    run_child,
    run_ours,
    stage_seconds,
    write_model,
)

FULL_SIZE, SMOKE_SIZE = "1920x1088x121", "128x128x17"
CONTENDERS = ("ours", "ours_diffusion_decoder", "stock")


def write_temporal_upsampler(folder: Path, smoke: bool) -> Path:
    """A seeded temporal x2 latent upsampler as diffusers' conversion writes one (the tiny model's latent width when
    `smoke`)."""
    if not (folder / "config.json").is_file():
        import torch
        from diffusers.pipelines.ltx2.latent_upsampler import LTX2LatentUpsamplerModel

        import ltx2gen  # noqa: F401  (first: makes torchvision importable beside a CPU-only torch, for diffusers)

        torch.manual_seed(SEED)
        sizes = dict(in_channels=4, mid_channels=32, num_blocks_per_stage=1) if smoke else \
            dict(in_channels=128, mid_channels=512, num_blocks_per_stage=4)
        LTX2LatentUpsamplerModel(dims=3, spatial_upsample=False, temporal_upsample=True, **sizes).save_pretrained(
            folder)
    return folder


def run_stock(sampler: Sampler, model: Path, size: tuple[int, int, int], rounds: int, upsampler: Path, work: Path,
              device, dtype) -> dict:
    import torch
    from diffusers import LTX2DFRPipeline, LTX2DFRTemporalRefinePipeline, LTXEulerAncestralRFScheduler
    from diffusers.pipelines.ltx2 import LTX2LatentUpsamplePipeline
    from diffusers.pipelines.ltx2.latent_upsampler import LTX2LatentUpsamplerModel
    from diffusers.pipelines.ltx2.utils import STAGE_2_DISTILLED_SIGMA_VALUES, trim_canvas

    from ltx2gen.checkpoint import PROMPT_TOKENS

    width, height, frames = size
    calls: list[int] = []
    with sampler.stage("load"):
        pipe = LTX2DFRPipeline.from_pretrained(model, torch_dtype=dtype)
        pipe.enable_model_cpu_offload(device=device)
        pipe.transformer.register_forward_pre_hook(lambda module, args: calls.append(1))
        spatial = LTX2LatentUpsamplePipeline(vae=pipe.vae, latent_upsampler=LTX2LatentUpsamplerModel.from_pretrained(
            model / "latent_upsampler", torch_dtype=dtype).to(device))
    common = dict(prompt=PROMPT, max_sequence_length=PROMPT_TOKENS, frame_rate=24.0, output_type="latent")
    with sampler.stage("stage one"):
        first = pipe(height=height // 2, width=width // 2, num_frames=frames,
                     generator=torch.Generator("cpu").manual_seed(SEED), **common)
    with sampler.stage("upsample"):
        video, keyframes = (spatial(latents=latents, output_type="latent", return_dict=False)[0]
                            for latents in (first.frames, first.keyframes))
    with sampler.stage("stage two"):
        last = pipe(height=height, width=width, num_frames=frames, latents=video, audio_latents=first.audio,
                    keyframes_latents=keyframes, keyframe_positions=first.keyframe_positions,
                    reference_latents=first.frames, sigmas=STAGE_2_DISTILLED_SIGMA_VALUES,
                    noise_scale=STAGE_2_DISTILLED_SIGMA_VALUES[0],
                    generator=torch.Generator("cpu").manual_seed(SEED + 1), **common)
    if rounds:
        temporal = LTX2DFRTemporalRefinePipeline(
            scheduler=LTXEulerAncestralRFScheduler(eta=0.5), temporal_latent_upsampler=LTX2LatentUpsamplerModel
            .from_pretrained(upsampler, torch_dtype=dtype).to(device),
            **{name: getattr(pipe, name) for name in ("vae", "audio_vae", "text_encoder", "tokenizer", "connectors",
                                                      "transformer", "vocoder")})
        for round_index in range(1, rounds + 1):
            with sampler.stage(f"temporal round {round_index}"):
                last = temporal(latents=last.frames, keyframes_latents=last.keyframes,
                                keyframe_positions=last.keyframe_positions, audio_latents=first.audio, height=height,
                                width=width, num_frames=(last.frames.shape[2] - 1) * 8 + 1,
                                source_seconds=((first.frames.shape[2] - 1) * 8 + 1) / 24.0,
                                condition_num_frames=frames, round_index=round_index,
                                generator=torch.Generator("cpu").manual_seed(SEED + 1 + round_index),
                                **dict(common, frame_rate=24.0 * 2 ** (round_index - 1)))
    output_frames = (frames - 1) * 2**rounds + 1
    with sampler.stage("decode"), torch.no_grad():
        pipe.vae.enable_tiling()
        latents = trim_canvas(last.frames, output_frames, 8).to(device, pipe.vae.dtype)
        decoded = pipe.vae.to(device).decode(latents, None, return_dict=False)[0]
        decoded = pipe.video_processor.postprocess_video(decoded, output_type="np")[0]
        audio = pipe.vocoder.to(device)(pipe.audio_vae.to(device).decode(
            first.audio.to(device, pipe.audio_vae.dtype), return_dict=False)[0])[0]
    with sampler.stage("encode"):
        encoder = _encode(work / "stock.mp4", decoded, audio, pipe.vocoder.config.output_sampling_rate,
                          fps=24 * 2**rounds)
    return {"transformer_calls": len(calls), "output": str(work / "stock.mp4"), "encoder": encoder}


def child(args) -> int:
    import torch

    from ltx2gen import components

    device = components.resolve_device(args.device)
    size = tuple(int(value) for value in args.size.split("x"))
    work = args.result.parent
    sampler = Sampler(device)
    sampler.start()
    started = time.perf_counter()
    rounds = ["--temporal-rounds", str(args.rounds)] + (
        ["--temporal-upsampler", str(args.temporal_upsampler)] if args.rounds else [])
    if args.child == "stock":
        result = run_stock(sampler, args.model, size, args.rounds, args.temporal_upsampler, work, device,
                           components.default_dtype(device))
    else:
        decoder = ["--decoder", "diffusion"] if args.child == "ours_diffusion_decoder" else []
        output = work / f"{args.child}.mp4"
        result = run_ours(sampler, args.model, size, output,
                          ["--device", args.device, "--pipeline", "dfr", *rounds, *decoder])
        sidecar = json.loads(output.with_suffix(".json").read_text())
        result["passes"] = [(stage["stage"], stage.get("seconds")) for stage in sidecar["diffusion_stages"]]
    result["end_to_end_s"] = round(time.perf_counter() - started, 2)
    result.update(sampler.finish())
    result["stage_seconds"] = stage_seconds(result["marks"])
    result.update(contender=args.child, size=args.size, rounds=args.rounds, torch=torch.__version__)
    args.result.write_text(json.dumps(result) + "\n")
    return 0


def run_contender(name: str, size: str, rounds: int, model: Path, upsampler: Path, work: Path, device: str,
                  timeout: float) -> dict:
    from ltx2gen.components import model_weight_files
    from ltx2gen.memory import evict_from_page_cache

    result_path = work / f"{size}-r{rounds}" / f"{name}.result.json"
    result_path.parent.mkdir(parents=True, exist_ok=True)
    evict_from_page_cache(model_weight_files(model))
    command = [sys.executable, __file__, "--child", name, "--size", size, "--rounds", str(rounds), "--model",
               str(model), "--temporal-upsampler", str(upsampler), "--device", device, "--result", str(result_path)]
    result = {"contender": name, "size": size, "rounds": rounds, **run_child(command, result_path, timeout)}
    if "error" not in result:
        print(f"{size} rounds {rounds} {name}: {result['end_to_end_s']} s end to end, GPU {result['peak_gpu_gib']} "
              f"GiB, RSS {result['peak_rss_gib']} GiB, unified {result['peak_unified_gib']} GiB, "
              f"{result['transformer_calls']} transformer calls, stages {result['stage_seconds']}", flush=True)
    else:
        print(f"{size} rounds {rounds} {name}: failed: {result['error']}", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="folder for dfr.json, the model and the clips")
    parser.add_argument("--smoke", action="store_true", help="the tiny LTX-2.5 model on the CPU")
    parser.add_argument("--size", help=f"WIDTHxHEIGHTxFRAMES (default {FULL_SIZE}; smoke: {SMOKE_SIZE})")
    parser.add_argument("--rounds", type=int, nargs="+", default=[0, 1], help="temporal rounds to run (default 0 1)")
    parser.add_argument("--contenders", nargs="+", choices=CONTENDERS, default=list(CONTENDERS))
    parser.add_argument("--model", type=Path, help="model directory (written there when missing)")
    parser.add_argument("--temporal-upsampler", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--device", default=None)
    parser.add_argument("--timeout", type=float, default=600, help="seconds allowed per contender")
    parser.add_argument("--child", choices=CONTENDERS, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        args.rounds = args.rounds[0]
        return child(args)
    if args.out is None:
        parser.error("--out is required")
    device = args.device or ("cpu" if args.smoke else "cuda")
    size = args.size or (SMOKE_SIZE if args.smoke else FULL_SIZE)
    args.out.mkdir(parents=True, exist_ok=True)
    model = write_model(LTX25_REPO, args.smoke, args.model or args.out / "model", device)
    upsampler = write_temporal_upsampler(args.out / "temporal_upsampler", args.smoke)
    record = {"date": time.strftime("%Y-%m-%d"), "command": " ".join(sys.argv), "device": device_name(device),
              "prompt": PROMPT, "seed": SEED, "results": []}
    for rounds in args.rounds:
        for name in args.contenders:
            if name == "ours_diffusion_decoder" and not (model / "diffusion_decoder" / "config.json").is_file():
                continue  # the bench preset leaves it out for the disk; bench/diffusion_decoder_gpu.py measures it
            record["results"].append(run_contender(name, size, rounds, model, upsampler, args.out, device,
                                                   args.timeout))
            (args.out / "dfr.json").write_text(json.dumps(record, indent=1) + "\n")
    return 1 if any("error" in result for result in record["results"]) else 0


if __name__ == "__main__":
    sys.exit(main())
