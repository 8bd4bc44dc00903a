"""LTX-2's multi-pass recipes made two ways on the same random-weight model, inputs and noise, measured side by side.

`--recipe two-stage` (LTX-2.0 or LTX-2.5, `--repo`):
- `ours`: generate.py with its defaults (`--pipeline auto`: two-stage for a distilled model); `ours_distilled`: the
  same clip in one stage (`--pipeline distilled`), the baseline the two-stage target is set against;
- `stock`: diffusers' documented two-stage recipe with `enable_model_cpu_offload()`: `LTX2Pipeline` at half the size
  through the distilled sigmas, `LTX2LatentUpsamplePipeline`, then `LTX2Pipeline` at the full size through the
  three refine sigmas from the upsampled latents, tiled VAE decode, then encoding.

`--recipe dfr` (LTX-2.5):
- `ours`: generate.py --pipeline dfr (`ours_diffusion_decoder`: with --decoder diffusion, where the model has it);
- `stock`: diffusers' documented composition: `LTX2DFRPipeline` with `enable_model_cpu_offload()` at half the size,
  `LTX2LatentUpsamplePipeline` on the video and the slots, `LTX2DFRPipeline` at the full size with stage one as
  reference, `LTX2DFRTemporalRefinePipeline` for each round (eta 0.5, its temporal upsampler on the GPU: model
  offload would never bring it there), the canvas trimmed, the tiled VAE decode, the audio decode, then encoding.

    python3 bench/recipes_gpu.py --recipe two-stage --out OUT       # LTX-2.0, 1920x1088x161 and 768x512x97 (GPU)
    python3 bench/recipes_gpu.py --recipe dfr --out OUT             # 1920x1088x121, 0 and 1 temporal rounds (GPU)
    python3 bench/recipes_gpu.py --recipe dfr --smoke --out OUT     # the same code on a tiny model (CPU)

The machinery is compare_gpu.py's: each contender in its own process with the model's files evicted from the page
cache, a sampler of GPU memory and RSS every 10 ms (their sum: the unified peak), the same model writer. For dfr the
temporal upsampler is not in the published repo: a seeded random one at the size third-party conversions give
Lightricks' file (mid_channels 512, four blocks a stage; unconfirmed) is written beside the model. Writes
RECIPE.json and prints one row per contender.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from compare_gpu import (
    DEFAULT_REPO,
    LTX25_REPO,
    PROMPT,
    SEED,
    Sampler,
    _encode,
    _pipeline_call,
    _stock_pipeline,
    device_name,
    run_child,
    run_ours,
    stage_seconds,
    write_model,
)

SIZES = {"two-stage": ("1920x1088x161", "768x512x97"), "dfr": ("1920x1088x121",)}
SMOKE_SIZE = "128x128x17"
CONTENDERS = {"two-stage": ("ours", "ours_distilled", "stock"), "dfr": ("ours", "ours_diffusion_decoder", "stock")}
OUR_FLAGS = {"ours_distilled": ["--pipeline", "distilled"], "ours_diffusion_decoder": ["--decoder", "diffusion"]}


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


def run_stock_two_stage(sampler: Sampler, model: Path, size: tuple[int, int, int], work: Path, device,
                        dtype) -> dict:
    import torch
    from diffusers.pipelines.ltx2 import LTX2LatentUpsamplePipeline
    from diffusers.pipelines.ltx2.latent_upsampler import LTX2LatentUpsamplerModel
    from diffusers.pipelines.ltx2.utils import STAGE_2_DISTILLED_SIGMA_VALUES

    width, height, frames = size
    with sampler.stage("load"):
        pipe = _stock_pipeline(model, device, dtype, "cpu")
        pipe.enable_model_cpu_offload(device=device)
        pipe.vae.enable_tiling()
        spatial = LTX2LatentUpsamplePipeline(vae=pipe.vae, latent_upsampler=LTX2LatentUpsamplerModel.from_pretrained(
            model / "latent_upsampler", torch_dtype=dtype).to(device))
    call, calls = _pipeline_call(pipe, model, (width // 2, height // 2, frames), "latent")
    with sampler.stage("stage one"):
        video, audio = pipe(**call)
    with sampler.stage("upsample"):
        video = spatial(latents=video, latents_normalized=False, output_type="latent", return_dict=False)[0]
    with sampler.stage("refine and decode"):
        video, audio = pipe(**dict(call, width=width, height=height, latents=video, audio_latents=audio,
                                   sigmas=STAGE_2_DISTILLED_SIGMA_VALUES, noise_scale=STAGE_2_DISTILLED_SIGMA_VALUES[0],
                                   generator=torch.Generator("cpu").manual_seed(SEED + 1), output_type="np"))
    with sampler.stage("encode"):
        encoder = _encode(work / "stock.mp4", video[0], audio[0], pipe.vocoder.config.output_sampling_rate)
    return {"transformer_calls": len(calls), "output": str(work / "stock.mp4"), "encoder": encoder}


def run_stock_dfr(sampler: Sampler, model: Path, size: tuple[int, int, int], rounds: int, upsampler: Path,
                  work: Path, device, dtype) -> dict:
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
    dtype = components.default_dtype(device)
    if args.child == "stock" and args.recipe == "dfr":
        result = run_stock_dfr(sampler, args.model, size, args.rounds, args.temporal_upsampler, work, device, dtype)
    elif args.child == "stock":
        result = run_stock_two_stage(sampler, args.model, size, work, device, dtype)
    else:
        recipe = ["--pipeline", "dfr", "--temporal-rounds", str(args.rounds)] + (
            ["--temporal-upsampler", str(args.temporal_upsampler)] if args.rounds else []) \
            if args.recipe == "dfr" else []
        output = work / f"{args.child}.mp4"
        result = run_ours(sampler, args.model, size, output,
                          ["--device", args.device, *recipe, *OUR_FLAGS.get(args.child, [])])
        sidecar = json.loads(output.with_suffix(".json").read_text())
        result["pipeline"] = sidecar["pipeline"]
        result["passes"] = [(stage["stage"], stage.get("seconds")) for stage in sidecar["diffusion_stages"] or []]
    result["end_to_end_s"] = round(time.perf_counter() - started, 2)
    result.update(sampler.finish())
    result["stage_seconds"] = stage_seconds(result["marks"])
    result.update(contender=args.child, size=args.size, rounds=args.rounds, torch=torch.__version__)
    args.result.write_text(json.dumps(result) + "\n")
    return 0


def run_contender(recipe: str, name: str, size: str, rounds: int, model: Path, upsampler: Path, work: Path,
                  device: str, timeout: float) -> dict:
    from ltx2gen.components import model_weight_files
    from ltx2gen.memory import evict_from_page_cache

    result_path = work / (f"{size}-r{rounds}" if recipe == "dfr" else size) / f"{name}.result.json"
    result_path.parent.mkdir(parents=True, exist_ok=True)
    evict_from_page_cache(model_weight_files(model))
    command = [sys.executable, __file__, "--recipe", recipe, "--child", name, "--size", size, "--rounds", str(rounds),
               "--model", str(model), "--temporal-upsampler", str(upsampler), "--device", device, "--result",
               str(result_path)]
    result = {"contender": name, "size": size, "rounds": rounds, **run_child(command, result_path, timeout)}
    if "error" not in result:
        print(f"{recipe} {size} rounds {rounds} {name}: {result['end_to_end_s']} s end to end, GPU "
              f"{result['peak_gpu_gib']} GiB, RSS {result['peak_rss_gib']} GiB, unified "
              f"{result['peak_unified_gib']} GiB, {result['transformer_calls']} transformer calls, stages "
              f"{result['stage_seconds']}", flush=True)
    else:
        print(f"{recipe} {size} rounds {rounds} {name}: failed: {result['error']}", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", choices=tuple(CONTENDERS), required=True)
    parser.add_argument("--out", type=Path, help="folder for RECIPE.json, the model and the clips")
    parser.add_argument("--smoke", action="store_true", help="a tiny model on the CPU")
    parser.add_argument("--repo", help=f"two-stage: the published repo the model follows (default {DEFAULT_REPO}; "
                                       f"dfr: {LTX25_REPO})")
    parser.add_argument("--sizes", nargs="+", help="WIDTHxHEIGHTxFRAMES (default: the recipe's; smoke: "
                                                   f"{SMOKE_SIZE})")
    parser.add_argument("--rounds", type=int, nargs="+", default=[0, 1], help="dfr: temporal rounds (default 0 1)")
    parser.add_argument("--contenders", nargs="+", help="default: all of the recipe's")
    parser.add_argument("--model", type=Path, help="model directory (written there when missing)")
    parser.add_argument("--temporal-upsampler", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--device", default=None)
    parser.add_argument("--timeout", type=float, default=600, help="seconds allowed per contender")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--size", help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        args.rounds = args.rounds[0]
        return child(args)
    if args.out is None:
        parser.error("--out is required")
    contenders = args.contenders or CONTENDERS[args.recipe]
    unknown = set(contenders) - set(CONTENDERS[args.recipe])
    if unknown:
        parser.error(f"--contenders {' '.join(sorted(unknown))}: {args.recipe} has "
                     f"{', '.join(CONTENDERS[args.recipe])}")
    if args.recipe == "dfr" and args.repo not in (None, LTX25_REPO):
        parser.error("--recipe dfr is LTX-2.5's: drop --repo")
    repo = LTX25_REPO if args.recipe == "dfr" else args.repo or DEFAULT_REPO
    device = args.device or ("cpu" if args.smoke else "cuda")
    sizes = args.sizes or ([SMOKE_SIZE] if args.smoke else SIZES[args.recipe])
    args.out.mkdir(parents=True, exist_ok=True)
    model = write_model(repo, args.smoke, args.model or args.out / "model", device)
    upsampler = write_temporal_upsampler(args.out / "temporal_upsampler", args.smoke) if args.recipe == "dfr" \
        else args.out / "no-temporal-upsampler"
    record = {"date": time.strftime("%Y-%m-%d"), "command": " ".join(sys.argv), "device": device_name(device),
              "recipe": args.recipe, "repo": repo, "prompt": PROMPT, "seed": SEED, "results": []}
    for size in sizes:
        for rounds in args.rounds if args.recipe == "dfr" else [0]:
            for name in contenders:
                if name == "ours_diffusion_decoder" and not (model / "diffusion_decoder" / "config.json").is_file():
                    continue  # the bench preset leaves it out for the disk; bench/diffusion_decoder_gpu.py measures it
                record["results"].append(run_contender(args.recipe, name, size, rounds, model, upsampler, args.out,
                                                       device, args.timeout))
                (args.out / f"{args.recipe}.json").write_text(json.dumps(record, indent=1) + "\n")
    return 1 if any("error" in result for result in record["results"]) else 0


if __name__ == "__main__":
    sys.exit(main())
