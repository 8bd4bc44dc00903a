"""One full-size transformer step of one clip over every GPU of this host (the product's context parallelism),
against the same step on one GPU: step time, speed-up, peak memory per GPU and the relative error of the output.

    torchrun --nproc-per-node 2 bench/context_parallel_gpu.py --size 1920x1088x161 --modes bf16 fp8_weight --out cp.json

Every rank builds the same seeded random transformer (real LTX-2 19B shapes) on its own GPU and prepares it with the
product's functions (bench/transformer_gpu.py's modes), times the step alone on its GPU, then splits it over all
ranks with `ltx2gen.context_parallel` and times it again. Rank 0 writes the result.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path

import torch

from bench.transformer_gpu import GIB, prepare, step_inputs, synchronize
from ltx2gen import context_parallel
from ltx2gen.ranks import Ranks


def timed_steps(transformer, inputs: dict, device: torch.device, repeats: int) -> tuple[list[float], torch.Tensor]:
    torch.cuda.reset_peak_memory_stats(device)
    times = []
    with torch.no_grad():
        for _ in range(repeats + 1):  # the first call warms kernels (and compiles, in compiled modes)
            synchronize(device)
            torch.distributed.barrier()
            started = time.perf_counter()
            output = transformer(**inputs)[0]
            synchronize(device)
            times.append(time.perf_counter() - started)
    return times, output.float().cpu()


def measure(mode: str, size: tuple[int, int, int], device: torch.device, world_size: int, repeats: int) -> dict:
    transformer = prepare(mode, "full", device)
    inputs = step_inputs(transformer.config, *size, device)
    alone_times, alone = timed_steps(transformer, inputs, device, repeats)
    alone_peak = torch.cuda.max_memory_allocated(device) / GIB
    context_parallel.enable(transformer, world_size, device)
    split_times, split = timed_steps(transformer, inputs, device, repeats)
    split_peak = torch.cuda.max_memory_allocated(device) / GIB
    error = float((split - alone).norm() / alone.norm())
    del transformer, inputs
    gc.collect()
    torch.cuda.empty_cache()
    torch._dynamo.reset()
    alone_step, split_step = min(alone_times[1:]), min(split_times[1:])
    return {"mode": mode, "gpus": world_size, "one_gpu_step_s": round(alone_step, 3),
            "split_step_s": round(split_step, 3), "split_first_step_s": round(split_times[0], 3),
            "speedup": round(alone_step / split_step, 2), "one_gpu_peak_gib": round(alone_peak, 2),
            "split_peak_gib": round(split_peak, 2), "relative_error": round(error, 5)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1920x1088x161", help="WIDTHxHEIGHTxFRAMES")
    parser.add_argument("--modes", nargs="+", default=["bf16"], help="bench/transformer_gpu.py modes")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    ranks = Ranks.from_env()
    device = torch.device("cuda", ranks.local_rank)
    size = tuple(int(value) for value in args.size.split("x"))
    context_parallel.check_split(ranks.world_size, *size)
    context_parallel.join(device)
    results = []
    for mode in args.modes:
        results.append(measure(mode, size, device, ranks.world_size, args.repeats))
        if ranks.rank == 0:
            print(json.dumps(results[-1]), flush=True)
    if ranks.rank == 0:
        record = {"date": time.strftime("%Y-%m-%d"), "command": "torchrun " + " ".join(sys.argv),
                  "device": f"{ranks.world_size} x {torch.cuda.get_device_name(device)}", "size": args.size,
                  "results": results}
        args.out.write_text(json.dumps(record, indent=1))
    context_parallel.leave()
    return 0


if __name__ == "__main__":
    sys.exit(main())
