#!/usr/bin/env python3
"""Generate a video with synchronized audio from a text prompt with LTX-2, one model in memory at a time.

    python generate.py --prompt "A red fox runs through fresh snow at dawn" --width 1920 --height 1088 --num-frames 161

Peak memory is the largest single stage, never the sum of the models: each stage below loads its models,
uses them and frees them before the next one starts.
"""

from __future__ import annotations

import signal
import sys
import time
import traceback

from ltx2gen.config import ConfigError, GenerateConfig, build_parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, interrupt)  # `docker stop` then ends like Ctrl-C, with the recovery advice
    if args.list_lora_files:
        return list_lora_files(parser, args.list_lora_files)
    if args.batch:
        return render_batch(parser, args)
    try:
        config = GenerateConfig.from_args(args)
        from ltx2gen.ranks import Ranks

        ranks = Ranks.from_env()
        if ranks.distributed:  # under torchrun: this one clip over every rank's GPU
            config = one_clip_over_ranks(config, ranks)
        from ltx2gen.plan import RunPlan  # torch is imported only once the flags are known to be valid

        plan = RunPlan.choose(config)  # device, model location (no weights read yet), FP8 and decode plan
    except ConfigError as err:
        parser.error(str(err))
    return run(config, plan, ranks)


def run(config: GenerateConfig, plan, ranks) -> int:
    from ltx2gen import audio_input, context_parallel, latents, memory, report, stages, two_stage
    from ltx2gen.image import encode_image

    started = time.perf_counter()
    tracker = memory.MemoryTracker(plan.device)
    try:
        if ranks.distributed:  # rank 0's seed and output name for all
            context_parallel.join(plan.device)
            config = context_parallel.from_rank_zero(config if ranks.rank == 0 else None, plan.device)
        # 1. Text: the transformer's conditioning (on rank 0 only). The Gemma text encoder and the connectors are freed.
        conditioning = tracker.run("text", stages.encode_prompt, plan.model_dir, stages.PromptRequest.for_clip(config),
                                   plan.device, plan.dtype, plan.loras, plan.text_encoder) if ranks.rank == 0 else None
        encoded_prompt = conditioning.prompt if conditioning else None  # the enhanced prompt with --enhance-prompt
        # 1b. With --image: the first frame's latents. The video VAE is freed.
        image = tracker.run("image", encode_image, plan.model_dir, plan.image, config.width, config.height,
                            config.image_strength, plan.device, plan.dtype) if plan.image else None
        # 1c. With --audio: the input audio's latents, which the video will follow. The audio VAE is freed.
        audio = tracker.run("audio input", audio_input.encode, plan.model_dir, [plan.audio_input], plan.device,
                            plan.dtype)[0] if plan.audio_input else None
        # 2. Diffusion: denoised video and audio latents (each rank computes its share of the video tokens).
        # The transformer is freed.
        if config.pipeline == "two-stage":  # half size (its latents saved), upsampled 2x, refined at full size
            diffusion = tracker.run("diffusion", two_stage.diffuse, config, plan, conditioning)
        else:
            diffusion = tracker.run("diffusion", stages.denoise, plan.model_dir, conditioning, plan.call,
                                    config.seed, plan.device, plan.dtype, plan.fp8, plan.offload, plan.loras,
                                    plan.compiled, ranks.world_size, nag_settings=plan.nag, image=image,
                                    audio=audio)
        del conditioning, image, audio
    except (Exception, KeyboardInterrupt) as err:
        return fail(err, two_stage.failure_advice(config, plan)
                    or "nothing was saved; fix the cause and run the same command again", ranks)
    finally:
        if ranks.distributed:
            context_parallel.leave()
    if ranks.rank != 0:  # rank 0 alone writes the clip
        return 0
    # 3. Latents on disk, atomically: from here on no failure loses the diffusion work.
    latents_path = latents.save_latents(config.latents_path, diffusion.video_latents, diffusion.audio_latents,
                                        plan.latents_metadata(config))
    print(f"saved latents: {latents_path}", flush=True)
    try:
        # 4-5. Audio (audio VAE + vocoder, or the --audio input), then the video decode streamed into the MP4.
        # Each model is freed.
        sample_rate = stages.decode_to_mp4(
            tracker, plan.model_dir, diffusion.video_latents, diffusion.audio_latents, config.output,
            width=config.width, height=config.height, num_frames=config.num_frames, fps=config.fps,
            plan=plan.decode_plan, device=plan.device, dtype=plan.dtype,
            soundtrack=plan.soundtrack())
        # 6. Cleanup: every model is gone and the video is on disk; evict the weights from the page cache.
        stages.release_page_cache(plan.model_dir, config.drop_page_cache)
        sidecar = plan.write_sidecar(config, diffusion, tracker, sample_rate, latents_path, encoded_prompt)
    except (Exception, KeyboardInterrupt) as err:
        return fail(err, "the latents are kept; recover the clip with:\n  "
                    + report.recovery_command(latents_path, config.output))
    if not config.keep_latents:
        latents_path.unlink()
    two_stage.discard_stage_one(config)
    print(f"sidecar: {sidecar}")
    print(report.summary_line(config.output, config.num_frames, config.width, config.height, config.fps, tracker,
                              time.perf_counter() - started), flush=True)
    return 0


def render_batch(parser, args) -> int:
    from dataclasses import fields

    from ltx2gen.batch import default_out_dir, run_in_process

    given = [f"--{f.name.replace('_', '-')}" for f in fields(GenerateConfig) if getattr(args, f.name) != f.default]
    if given:
        parser.error(f"--batch takes every clip's settings from the batch file; put {', '.join(given)} on its "
                     "lines instead")
    try:
        return run_in_process(args.batch, args.out or default_out_dir(args.batch), args.embedding_cache)
    except ConfigError as err:
        parser.error(str(err))


def list_lora_files(parser, repo: str) -> int:
    from ltx2gen.lora import list_repo_safetensors

    try:
        files = list_repo_safetensors(repo)
    except ConfigError as err:
        parser.error(str(err))
    print("\n".join(files) if files else f"{repo}: no .safetensors files")
    return 0


def interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def one_clip_over_ranks(config: GenerateConfig, ranks) -> GenerateConfig:
    """Check that the clip splits over the ranks; rank 0 alone prints progress and writes files."""
    import dataclasses
    import os

    import torch

    from ltx2gen import context_parallel

    if config.device == "cpu" or not torch.cuda.is_available():
        raise ConfigError(f"one clip over {ranks.world_size} processes needs a CUDA GPU per process (context "
                          "parallelism over NCCL); on CPU, run one process, or render a batch with --batch")
    context_parallel.check_split(ranks.world_size, config.width, config.height, config.num_frames)
    if config.offload not in ("auto", "none"):
        raise ConfigError(f"--offload {config.offload}: one clip over several GPUs keeps the whole transformer on "
                          "each GPU; drop --offload, or render on one GPU")
    for flag, path in config.conditioning_inputs:
        raise ConfigError(f"{flag} {path}: one clip over several GPUs does not take {flag} yet (per-token "
                          "timesteps are not split and were not measured); render it on one GPU")
    if config.compile == "on" or config.fp8 == "dynamic":
        raise ConfigError("one clip over several GPUs runs the transformer uncompiled (compiled and split, it hung "
                          "in testing); drop --compile on / --fp8 dynamic, or render on one GPU")
    if ranks.rank:
        sys.stdout = open(os.devnull, "w")
        os.environ["TQDM_DISABLE"] = "1"
    return dataclasses.replace(config, offload="none", compile="off")


def fail(err: BaseException, advice: str, ranks=None) -> int:
    if not isinstance(err, KeyboardInterrupt):
        traceback.print_exc()
    reason = "interrupted" if isinstance(err, KeyboardInterrupt) else f"{type(err).__name__}: {err}"
    rank = f" on rank {ranks.rank} of {ranks.world_size}" if ranks and ranks.distributed else ""
    print(f"error{rank}: {reason}\n{advice}", file=sys.stderr, flush=True)
    return 130 if isinstance(err, KeyboardInterrupt) else 1


if __name__ == "__main__":
    sys.exit(main())
