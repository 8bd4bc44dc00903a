#!/usr/bin/env python3
"""Generate a video with synchronized audio from a text prompt with LTX-2, one model in memory at a time.

    python generate.py --prompt "A red fox runs through fresh snow at dawn" --width 1920 --height 1088 --num-frames 161

Every flag is validated before torch loads; then `ltx2gen.generate` runs the clip's stages (ltx2gen/clip.py, the
table of contents of a run). Peak memory is the largest single stage, never the sum of the models: each stage loads
its models, uses them and frees them before the next one starts.
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

from ltx2gen import outputs
from ltx2gen.config import GenerateConfig, build_parser
from ltx2gen.errors import ClipFailed, ConfigError
from ltx2gen.files import write_text
from ltx2gen.report import command_line
from ltx2gen.run_options import PlanOnlyOptions
from ltx2gen.signals import stop_like_ctrl_c
from ltx2gen.streams import stderr_lost, survive_readers_leaving


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    stop_like_ctrl_c()  # `docker stop` then ends like Ctrl-C, with the recovery advice
    survive_readers_leaving()  # `generate.py ... | head -1`: a closed pipe never ends the run
    if "list_lora_files" in vars(args):
        return list_lora_files(parser, args.list_lora_files)
    if args.batch and (args.plan_only or args.plan_for_gpu is not None or args.plan_for_host is not None):
        parser.error("--plan-only plans one clip: give that clip's flags instead of --batch (a batch renders what "
                     "each line's plan allows)")
    if args.batch:
        return render_batch(parser, args)
    command_argv = sys.argv[1:] if argv is None else argv
    reservation = outputs.Reservation()  # none yet
    try:
        config = GenerateConfig.from_args(args)
        plan_options = PlanOnlyOptions(args.plan_only, args.plan_for_gpu, args.plan_for_host)
        machine = plan_options.machine()
        if plan_options.plan_only:
            return plan_only(config, machine)
        from ltx2gen.ranks import Ranks

        ranks = Ranks.from_env()
        if ranks.distributed:  # under torchrun: this one clip over every rank's GPU
            config = one_clip_over_ranks(config, ranks)
        if ranks.rank == 0:  # the output name is this run's alone until it exits (rank 0 writes the clip)
            config, reservation = outputs.reserve(config)
        from ltx2gen.plan import RunPlan  # torch is imported only once the flags are known to be valid

        plan = RunPlan.choose(config)  # device, model location (no weights read yet), FP8 and decode plan
    except ConfigError as err:
        reservation.release()
        parser.error(str(err))
    except KeyboardInterrupt as err:  # while planning or importing torch: nothing computed yet
        reservation.release()
        return fail(ClipFailed.stopped_early(err), argv=command_argv)
    with reservation:
        return run(config, plan, ranks, command_argv)


def run(config: GenerateConfig, plan, ranks, argv: list[str] = ()) -> int:
    """The clip's stages, in order, are `ltx2gen.clip.generate`'s; this turns its failures into advice."""
    from ltx2gen import generate

    try:
        clip = generate(config, plan, ranks)
    except ClipFailed as failure:
        return fail(failure, ranks, argv, config.output)
    except KeyboardInterrupt as err:  # before its first stage began
        return fail(ClipFailed.stopped_early(err), ranks, argv, config.output)
    if clip is None:  # a rank other than 0: rank 0 writes the clip
        return 0
    print(f"sidecar: {clip.sidecar}")
    if plan.memory_fit:
        print(plan.memory_fit.against(clip.tracker.reports))
    print(clip.summary(config), flush=True)
    return 0


def plan_only(config: GenerateConfig, machine) -> int:
    """--plan-only: the plan lines of a run, then each stage's estimated peaks; no weight is read. ConfigError
    (status 2) where nothing fits."""
    from ltx2gen.plan import RunPlan

    plan = RunPlan.choose(config, machine, weights_needed=False)
    print(plan.estimate_line(), flush=True)
    return 0


def render_batch(parser, args) -> int:
    from dataclasses import fields

    from ltx2gen.batch import default_out_dir
    from ltx2gen.batch_in_process import run_in_process

    given = [f"--{f.name.replace('_', '-')}" for f in fields(GenerateConfig) if f.name in vars(args)]
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


def one_clip_over_ranks(config: GenerateConfig, ranks) -> GenerateConfig:
    """Check that the clip splits over the ranks; rank 0 alone prints progress and writes files."""
    import dataclasses
    import os

    from ltx2gen import context_parallel

    if config.num_frames is None:
        raise ConfigError(f"--num-frames auto: one clip over {ranks.world_size} processes splits its video tokens by "
                          "a frame count known before the prompt is encoded; give --num-frames N (8n+1), or render "
                          "on one GPU")
    context_parallel.check_split(ranks.world_size, config.width, config.height, config.num_frames)
    if config.offload not in ("auto", "none"):
        raise ConfigError(f"--offload {config.offload}: one clip over several GPUs keeps the whole transformer on "
                          "each GPU; drop --offload, or render on one GPU")
    if config.pipeline == "dfr":
        raise ConfigError("--pipeline dfr renders on one GPU (its passes and tiles are not split over processes); "
                          "drop torchrun, or use --pipeline distilled")
    if config.windows:
        raise ConfigError(f"a clip in windows ({len(config.windows)} of up to {config.window_frames} frames) or "
                          "continued with --extend renders on one GPU; drop torchrun, or render at most "
                          f"{config.window_frames} frames")
    for flag, path in config.conditioning_inputs:
        raise ConfigError(f"{flag} {path}: one clip over several GPUs does not take {flag} yet (per-token "
                          "timesteps are not split and were not measured); render it on one GPU")
    if config.compile == "on" or config.fp8 == "dynamic":
        raise ConfigError("one clip over several GPUs runs the transformer uncompiled (compiled and split, it hung "
                          "in testing); drop --compile on / --fp8 dynamic, or render on one GPU")
    if config.fp8_attention == "on":
        raise ConfigError("--fp8-attention on: one clip over several GPUs splits the attention across them, which "
                          "the FP8 kernel does not do; drop the flag, or render on one GPU")
    if ranks.rank:
        sys.stdout = open(os.devnull, "w")
        os.environ["TQDM_DISABLE"] = "1"
    return dataclasses.replace(config, offload="none", compile="off")


def fail(failure, ranks=None, argv: list[str] = (), output: Path | None = None) -> int:
    """A failed or interrupted run: the traceback of an unexpected error, then one line and what was kept. Where
    stderr's reader has gone, the line and the advice are left beside the output, in NAME.error.txt."""
    if not failure.interrupted and not failure.foreseen:
        traceback.print_exception(failure.cause)
    reason = "interrupted" if failure.interrupted else str(failure)
    rank = f" on rank {ranks.rank} of {ranks.world_size}" if ranks and ranks.distributed else ""
    again = f"\n  {command_line('generate.py', 'generate', argv)}" if failure.rerun else ""
    print(f"error{rank}: {reason}\n{failure.advice}{again}", file=sys.stderr, flush=True)
    if stderr_lost() and output is not None:
        write_text(output.with_suffix(".error.txt"), f"error{rank}: {reason}\n{failure.advice}{again}\n")
    return 130 if failure.interrupted else 1


if __name__ == "__main__":
    sys.exit(main())
