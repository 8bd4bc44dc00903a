"""One clip made three ways, measured side by side on the same random-weight model and inputs:

- `ours`: generate.py with its default flags (`ours_fp8`: the same with --fp8 weight, float8 weight storage;
  `ours_fp8attn`: with --fp8-attention on, the video self-attention in FP8);
- `seed`: the whole `LTX2Pipeline` moved to the GPU, diffusion with output_type="latent", a tiled decode of the whole
  video (`vae.enable_tiling()`), the audio decode, then encoding;
- `stock`: `LTX2Pipeline` with `enable_model_cpu_offload()`, `vae.enable_tiling()` and output_type="np", then
  `diffusers.utils.encode_video`.
Then `decode`: decode_latents.py on random latents of each --decode-sizes clip, to show whether the decode peak
grows with clip length.

    python3 bench/compare_gpu.py --out OUT_DIR                       # full size, both clip sizes (GPU)
    python3 bench/compare_gpu.py --repo Lightricks/LTX-2.5-Diffusers --out OUT_DIR   # another published repo's model
    python3 bench/compare_gpu.py --smoke --out OUT_DIR               # the same code on the tiny model (CPU)
    python3 bench/compare_gpu.py --report A/compare.json B/compare.json --out DIR   # one table and plot from runs

Each contender runs in its own process, so its memory starts from nothing, and with the model's files evicted from
the page cache, so each reads its weights from disk. A sampler thread reads GPU memory
allocated and the process RSS together every 10 ms: their sum is the unified-memory figure, what a Jetson user
(one memory pool for CPU and GPU) runs out of. Peaks of GPU memory and RSS are the exact high-water marks. Writes
compare.json, compare.md (the table) and compare.png (memory over time, stage boundaries marked).
The model is written once with `ltx2gen.testing.synthetic` in the configuration and file layout of `--repo` (default the
LTX-2.0 distilled repo), random weights at full size. For the repos whose text encoder is Gemma 3 12B (LTX-2.0 and
2.3: `--preset full --text-encoder-at-load`) the text encoder is built seeded wherever a contender loads it, because
its files (49 GB in float32, as published) do not fit the GPU machine's disk beside the rest; every contender gets it
from the same loader. For LTX-2.5 (`--preset bench`) the text encoder is on disk, a Gemma 4 with a narrower MLP
(the bench preset's), and every contender reads those same files: stock through `LTX2Pipeline.from_pretrained`.
Each transformer call is timed (the GPU synchronized before and after it): `transformer_call_seconds`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent

GIB = 1024**3
PROMPT = "A red fox runs through fresh snow at dawn, breath steaming, birds calling in the pines"
SEED = 1
CONTENDERS = ("ours", "seed", "stock", "ours_fp8", "ours_fp8attn")
OUR_FLAGS = {"ours": [], "ours_fp8": ["--fp8", "weight"], "ours_fp8attn": ["--fp8-attention", "on"]}
DEFAULT_REPO = "rootonchair/LTX-2-19b-distilled"
LTX25_REPO = "Lightricks/LTX-2.5-Diffusers"
FULL_SIZES = ("768x512x97", "1920x1088x161")
FULL_DECODE_SIZES = ("1920x1088x161", "1920x1088x321")
SMOKE_SIZES = ("96x64x17",)
SMOKE_DECODE_SIZES = ("96x64x17", "96x64x33")


class Sampler(threading.Thread):
    """GPU memory allocated and process RSS, read together every `interval` seconds, with labelled marks."""

    def __init__(self, device, interval: float = 0.01):
        super().__init__(daemon=True)
        self.device, self.interval, self.started = device, interval, time.perf_counter()
        self.samples: list[tuple[float, float, float]] = []
        self.marks: list[tuple[float, str]] = []
        self.stage_gpu_peaks: list[float] = []  # ours resets the CUDA peak at each stage start: keep each one
        self._stopping = threading.Event()
        import torch  # imported once here, not on every 10 ms sample

        from ltx2gen.memory import process_rss_bytes

        self._gpu_allocated, self._rss = torch.cuda.memory_allocated, process_rss_bytes

    def now(self) -> float:
        return time.perf_counter() - self.started

    def mark(self, label: str) -> None:
        self.marks.append((round(self.now(), 3), label))

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self.mark(f"start {name}")
        yield
        self.mark(f"end {name}")

    def read(self) -> tuple[float, float, float]:
        gpu = self._gpu_allocated(self.device) if self.device.type == "cuda" else 0
        return round(self.now(), 3), gpu / GIB, self._rss() / GIB

    def run(self) -> None:
        while not self._stopping.is_set():
            self.samples.append(self.read())
            time.sleep(self.interval)

    def finish(self) -> dict:
        self._stopping.set()
        self.join()
        self.samples.append(self.read())
        import torch

        from ltx2gen.memory import peak_rss_bytes

        cuda = self.device.type == "cuda"
        return {
            "peak_gpu_gib": round(max([torch.cuda.max_memory_allocated(self.device) / GIB] + self.stage_gpu_peaks), 2)
            if cuda else 0.0,
            "peak_rss_gib": round(peak_rss_bytes() / GIB, 2),
            "peak_unified_gib": round(max(gpu + rss for _, gpu, rss in self.samples), 2),
            "marks": self.marks, "samples": self.samples[::max(1, len(self.samples) // 2000)],
        }


def time_transformer_calls(device) -> list[float]:
    """Seconds of every call of any LTX-2 transformer in this process from now on, the device synchronized before and
    after each (the pipelines wait on each step's output anyway): the class's `__call__`, so it holds for a
    transformer loaded anywhere, behind any hook."""
    import torch
    from diffusers import LTX2VideoTransformer3DModel

    seconds: list[float] = []
    call = torch.nn.Module.__call__
    synchronize = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def timed(module, *args, **kwargs):
        synchronize()
        started = time.perf_counter()
        output = call(module, *args, **kwargs)
        synchronize()
        seconds.append(round(time.perf_counter() - started, 4))
        return output

    LTX2VideoTransformer3DModel.__call__ = timed
    return seconds


def stage_seconds(marks: list[tuple[float, str]]) -> dict:
    """{stage: seconds} from "start NAME"/"end NAME" marks."""
    starts = {label[6:]: t for t, label in marks if label.startswith("start ")}
    return {name: round(t - starts[name], 2) for t, label in marks if label.startswith("end ")
            for name in [label[4:]] if name in starts}


# ---- contenders (each runs in its own process) ----

def mark_our_stages(sampler: Sampler) -> None:
    from ltx2gen import memory

    def on_event(event: str, name: str, report) -> None:
        if event == "stage-start":
            sampler.mark(f"start {name}")
        elif event == "stage-end":
            sampler.mark(f"end {name}")
            sampler.stage_gpu_peaks.append(report.cuda_peak_gib)
        elif event in ("prefetch", "prefetch-stopped"):  # the page-cache read-ahead, shown on the memory plot
            folders = "+".join(sorted({Path(path).parent.name for path, _, _ in report}))
            sampler.mark(f"{'start' if event == 'prefetch' else 'end'} read-ahead {folders}")

    memory.add_listener(on_event)


def run_ours(sampler: Sampler, model_dir: Path, size: tuple[int, int, int], output: Path, extra: list[str]) -> dict:
    import generate

    mark_our_stages(sampler)
    width, height, frames = size
    status = generate.main(["--model", str(model_dir), "--prompt", PROMPT, "--seed", str(SEED), "--width",
                            str(width), "--height", str(height), "--num-frames", str(frames), "--output",
                            str(output), "--no-timestamp", "--keep-latents", *extra])
    if status != 0:
        raise RuntimeError(f"generate.py exited with {status}")
    sidecar = json.loads(output.with_suffix(".json").read_text())
    return {"transformer_calls": sidecar["transformer_calls"], "output": str(output), "latents": sidecar["latents"],
            "load_seconds": {stage["name"]: round(sum(stage["load_seconds"].values()), 2)
                             for stage in sidecar["stages"] if stage["load_seconds"]},
            "plan": f"fp8 {sidecar['fp8']}, offload {sidecar['offload']}, compiled {sidecar['compiled']}"}


def run_decode(sampler: Sampler, model_dir: Path, size: tuple[int, int, int], work: Path, device: str) -> dict:
    """decode_latents.py, the standalone decoder, on seeded random latents of this clip size."""
    import torch

    import decode_latents
    from ltx2gen.checkpoint import latent_frame_count
    from ltx2gen.latents import save_latents

    width, height, frames = size
    video_vae = json.loads((model_dir / "vae" / "config.json").read_text())
    audio_vae = json.loads((model_dir / "audio_vae" / "config.json").read_text())
    generator = torch.Generator().manual_seed(SEED)
    video = torch.randn(1, video_vae["latent_channels"], latent_frame_count(frames), height // 32, width // 32,
                        generator=generator)
    audio = torch.randn(1, audio_vae["latent_channels"], round(frames / 24 * 25), audio_vae["mel_bins"] // 4,
                        generator=generator)
    latents = save_latents(work / "decode.latents.safetensors", video, audio,
                           {"model": str(model_dir), "width": width, "height": height, "num_frames": frames,
                            "fps": "24"})
    mark_our_stages(sampler)
    output = work / "decode.mp4"
    status = decode_latents.main(["--input", str(latents), "--output", str(output), "--device", device])
    if status != 0:
        raise RuntimeError(f"decode_latents.py exited with {status}")
    return {"transformer_calls": 0, "output": str(output)}


def _stock_pipeline(model_dir: Path, device, dtype, text_encoder_device):
    """`LTX2Pipeline.from_pretrained` as users call it. A text encoder built at load (see the module docstring) comes
    from the same loader as ours, already on `text_encoder_device`; one on disk loads with the rest, stock."""
    from diffusers import LTX2Pipeline

    from ltx2gen import components
    from ltx2gen.built_at_load import built_at_load_names

    if "text_encoder" not in built_at_load_names(model_dir):
        return LTX2Pipeline.from_pretrained(model_dir, torch_dtype=dtype)
    text_encoder = components.load_component(model_dir, "text_encoder", device, dtype).to(text_encoder_device)
    return LTX2Pipeline.from_pretrained(model_dir, text_encoder=text_encoder, torch_dtype=dtype)


def _pipeline_call(pipe, model_dir: Path, size: tuple[int, int, int], output_type: str) -> tuple[dict, list]:
    """The arguments ours passes for this model's version (every guidance knob neutral, the distilled schedule,
    cross-timestep modulation from LTX-2.3 on, the seed's CPU generator), and a transformer call counter."""
    import torch

    from ltx2gen import diffusion
    from ltx2gen.checkpoint import PROMPT_TOKENS, Guidance, model_version

    width, height, frames = size
    calls: list[int] = []
    pipe.transformer.register_forward_pre_hook(lambda module, args: calls.append(1))
    call = diffusion.pipeline_call_arguments(width=width, height=height, num_frames=frames, fps=24.0, steps=8,
                                          guidance=Guidance(), distilled=True, version=model_version(model_dir))
    return dict(call, prompt=PROMPT, output_type=output_type, return_dict=False,
                max_sequence_length=PROMPT_TOKENS,  # the stock default; the tokenizer file says "no limit"
                generator=torch.Generator("cpu").manual_seed(SEED)), calls


def _encode(path: Path, video, audio, sample_rate: int, fps: int = 24) -> str:
    """diffusers' `encode_video` (what stock users call) when PyAV is installed; otherwise the same libx264/AAC
    encode through imageio-ffmpeg. Returns which one ran."""
    import importlib.util

    import numpy as np

    if importlib.util.find_spec("av") is None:
        from fractions import Fraction

        from ltx2gen.video import write_mp4

        frames = (np.clip(video, 0, 1) * 255).round().astype(np.uint8)
        write_mp4(path, iter(frames), width=frames.shape[2], height=frames.shape[1], num_frames=len(frames),
                  fps=Fraction(fps), audio=audio.float().cpu().numpy(), sample_rate=sample_rate)
        return "imageio-ffmpeg (PyAV not installed)"
    from diffusers.utils import encode_video

    encode_video(video, fps=fps, output_path=str(path), audio=audio.float().cpu(), audio_sample_rate=sample_rate)
    return "diffusers.utils.encode_video"


def run_seed(sampler: Sampler, model_dir: Path, size: tuple[int, int, int], work: Path, device, dtype) -> dict:
    import torch

    from ltx2gen.latents import save_latents

    with sampler.stage("load"):
        pipe = _stock_pipeline(model_dir, device, dtype, device).to(device)
    call, calls = _pipeline_call(pipe, model_dir, size, "latent")
    with sampler.stage("text+diffusion"):
        video_latents, audio_latents = pipe(**call)
    width, height, frames = size
    latents = save_latents(work / "seed.latents.safetensors", video_latents, audio_latents,
                           {"model": str(model_dir), "fps": 24, "width": width, "height": height, "num_frames": frames})
    with sampler.stage("decode"), torch.no_grad():
        pipe.vae.enable_tiling()
        video = pipe.vae.decode(video_latents.to(pipe.vae.dtype), None, return_dict=False)[0]
        video = pipe.video_processor.postprocess_video(video, output_type="np")[0]
        mel = pipe.audio_vae.decode(audio_latents.to(pipe.audio_vae.dtype), return_dict=False)[0]
        audio = pipe.vocoder(mel)[0]
    with sampler.stage("encode"):
        encoder = _encode(work / "seed.mp4", video, audio, pipe.vocoder.config.output_sampling_rate)
    return {"transformer_calls": len(calls), "output": str(work / "seed.mp4"), "encoder": encoder,
            "latents": str(latents)}


def run_stock(sampler: Sampler, model_dir: Path, size: tuple[int, int, int], work: Path, device, dtype) -> dict:
    import torch

    with sampler.stage("load"):
        pipe = _stock_pipeline(model_dir, device, dtype, "cpu")
        if device.type == "cuda":
            torch.cuda.empty_cache()  # the text encoder was built on the GPU and moved to host memory
        pipe.enable_model_cpu_offload(device=device)
        pipe.vae.enable_tiling()
    call, calls = _pipeline_call(pipe, model_dir, size, "np")
    with sampler.stage("pipeline"):
        video, audio = pipe(**call)
    with sampler.stage("encode"):
        encoder = _encode(work / "stock.mp4", video[0], audio[0], pipe.vocoder.config.output_sampling_rate)
    return {"transformer_calls": len(calls), "output": str(work / "stock.mp4"), "encoder": encoder,
            "untiled_decode": _untiled_decode(pipe, size, device)}


def _untiled_decode(pipe, size: tuple[int, int, int], device) -> str:
    """What the stock decode does at this size without `enable_tiling()` (its default): "ok" or the error."""
    import torch

    from ltx2gen.checkpoint import latent_frame_count

    width, height, frames = size
    vae = pipe.vae.to(device)
    vae.disable_tiling()
    latents = torch.randn(1, vae.config.latent_channels, latent_frame_count(frames), height // 32, width // 32,
                          device=device, dtype=vae.dtype)
    try:
        with torch.no_grad():
            vae.decode(latents, None, return_dict=False)
        return "ok"
    except RuntimeError as err:
        return str(err).splitlines()[0]


def child(args) -> int:
    import torch

    from ltx2gen import components

    device = components.resolve_device(args.device)
    dtype = components.default_dtype(device)
    size = tuple(int(value) for value in args.size.split("x"))
    work = args.result.parent
    sampler = Sampler(device)
    call_seconds = time_transformer_calls(device)
    sampler.start()
    started = time.perf_counter()
    if args.child == "decode":
        result = run_decode(sampler, args.model, size, work, args.device)
    elif args.child in OUR_FLAGS:
        extra = ["--device", args.device, *OUR_FLAGS[args.child]]
        result = run_ours(sampler, args.model, size, work / f"{args.child}.mp4", extra)
    else:
        run = run_seed if args.child == "seed" else run_stock
        result = run(sampler, args.model, size, work, device, dtype)
    result["end_to_end_s"] = round(time.perf_counter() - started, 2)
    result.update(sampler.finish())
    result["stage_seconds"] = stage_seconds(result["marks"])
    result["transformer_call_seconds"] = call_seconds
    result.update(contender=args.child, size=args.size, torch=torch.__version__)
    args.result.write_text(json.dumps(result) + "\n")
    return 0


# ---- the parent: model, contenders, report ----

def model_recipe(repo: str, smoke: bool) -> tuple[str, list[str]]:
    """The `ltx2gen.testing.synthetic` preset and options of the benchmark model of `repo` (see the module
    docstring)."""
    if repo == LTX25_REPO:
        return ("tiny" if smoke else "bench"), []
    return ("tiny" if smoke else "full"), ["--text-encoder-at-load"]


def write_model(repo: str, smoke: bool, out: Path, device: str) -> Path:
    """Written by a child process, so this one never holds GPU memory (the caching allocator would keep the 66 GiB
    the writer used from the contenders) nor the writer's peak RSS, which Linux hands down to every child."""
    if not (out / "model_index.json").is_file():
        started = time.perf_counter()
        preset, options = model_recipe(repo, smoke)
        subprocess.run([sys.executable, "-m", "ltx2gen.testing.synthetic", "--preset", preset, "--repo", repo, "--out",
                        str(out), "--device", device, *options], check=True, cwd=ROOT)
        os.sync()  # else the first contender reads while 60 GB of written pages still go to the disk
        print(f"wrote the {preset} model of {repo} in {time.perf_counter() - started:.0f} s", flush=True)
    return out


def run_child(command: list[str], result_path: Path, timeout: float | None = None) -> dict:
    """The result JSON that the child process `command` wrote to `result_path`, or {"error": why not} (its last
    line of stderr, or the timeout)."""
    try:
        process = subprocess.run(command, timeout=timeout, capture_output=True, text=True)
    except subprocess.TimeoutExpired:
        return {"error": f"did not finish in {timeout:.0f} s"}
    if process.returncode != 0 or not result_path.is_file():
        lines = [line for line in process.stderr.splitlines() if line.strip()]
        return {"error": (lines or ["no output"])[-1][:300]}
    return json.loads(result_path.read_text())


def run_contender(name: str, size: str, model: Path, work: Path, device: str, timeout: float) -> dict:
    from ltx2gen.components import model_weight_files
    from ltx2gen.memory import evict_from_page_cache

    result_path = work / size / f"{name}.result.json"  # not {name}.json: that is the sidecar of ours' clip
    result_path.parent.mkdir(parents=True, exist_ok=True)
    # Every contender reads the weights from disk, as the first clip after a boot does: otherwise whoever runs
    # right after the model is written finds it in the page cache.
    evict_from_page_cache(model_weight_files(model))
    started = time.perf_counter()
    command = [sys.executable, __file__, "--child", name, "--size", size, "--model", str(model), "--device", device,
               "--result", str(result_path)]
    result = run_child(command, result_path, timeout)
    if "error" in result:
        return {"contender": name, "size": size, **result}
    print(f"{size} {name}: {result['end_to_end_s']} s end to end (process {time.perf_counter() - started:.0f} s), "
          f"GPU {result['peak_gpu_gib']} GiB, RSS {result['peak_rss_gib']} GiB, unified "
          f"{result['peak_unified_gib']} GiB, {result['transformer_calls']} transformer calls", flush=True)
    return result


def compare_latents(results: list[dict]) -> None:
    """Give each of ours' results the relative difference |ours - seed| / |seed| of its video and audio latents
    from the seed approach's at the same size: the same pipeline on the same noise, so 0 is an exact match."""
    from ltx2gen.latents import load_latents

    seeds = {result["size"]: result["latents"] for result in results
             if result["contender"] == "seed" and "latents" in result}
    for result in results:
        if result["contender"] in OUR_FLAGS and "latents" in result and result["size"] in seeds:
            ours, seed = load_latents(result["latents"]), load_latents(seeds[result["size"]])
            result["latents_vs_seed"] = {
                kind: round(float((getattr(ours, kind).float() - getattr(seed, kind).float()).norm()
                                  / getattr(seed, kind).float().norm()), 5) for kind in ("video", "audio")}


def step_time(result: dict) -> str:
    """The median transformer call after the first (which may move or warm the model), and the first's."""
    seconds = result.get("transformer_call_seconds") or []
    if not seconds:
        return ""
    later = sorted(seconds[1:]) or seconds
    return f"{later[len(later) // 2]:.2f} s (first {seconds[0]:.2f} s)"


def table(record: dict) -> str:
    lines = ["| size | contender | end to end | stages | transformer calls | step | peak GPU | peak RSS | "
             "unified peak | latents vs seed (video, audio) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for result in record["results"]:
        if "error" in result:
            lines.append(f"| {result['size']} | {result['contender']} | failed: {result['error']} | | | | | | | |")
            continue
        loading = result.get("load_seconds", {})
        stages = ", ".join(f"{name} {seconds:.1f} s" + (f" (loading {loading[name]:.1f} s)" if name in loading else "")
                           for name, seconds in result["stage_seconds"].items())
        difference = result.get("latents_vs_seed")
        latents = "" if difference is None else f"{difference['video']}, {difference['audio']}"
        lines.append(f"| {result['size']} | {result['contender']} | {result['end_to_end_s']:.1f} s | {stages} | "
                     f"{result['transformer_calls']} | {step_time(result)} | {result['peak_gpu_gib']:.2f} GiB | "
                     f"{result['peak_rss_gib']:.2f} GiB | {result['peak_unified_gib']:.2f} GiB | {latents} |")
    return "\n".join(lines) + "\n"


def plot(record: dict, path: Path) -> None:
    """Unified memory (solid) and GPU memory (dashed) over time, one panel per clip size, stage starts marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = list(dict.fromkeys(result["size"] for result in record["results"]))
    figure, axes = plt.subplots(len(sizes), 1, figsize=(11, 4 * len(sizes)), squeeze=False)
    for axis, size in zip(axes[:, 0], sizes):
        for index, result in enumerate(r for r in record["results"] if r["size"] == size and "samples" in r):
            color = f"C{index}"
            times = [t for t, _, _ in result["samples"]]
            axis.plot(times, [gpu + rss for _, gpu, rss in result["samples"]], color=color,
                      label=f"{result['contender']}: unified (GPU + RSS)")
            axis.plot(times, [gpu for _, gpu, _ in result["samples"]], color=color, linestyle="--", linewidth=0.8)
            for t, label in result["marks"]:
                if label.startswith("start "):
                    axis.axvline(t, color=color, alpha=0.3, linewidth=0.8)
                    axis.text(t, axis.get_ylim()[1] * 0.02, label[6:], rotation=90, fontsize=6, color=color)
        axis.set_title(f"{size}: memory over time (dashed: GPU allocated; lines: stage starts)")
        axis.set_xlabel("seconds")
        axis.set_ylabel("GiB")
        axis.legend(fontsize=7, loc="upper right")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def report(record: dict, out: Path) -> None:
    (out / "compare.json").write_text(json.dumps(record) + "\n")
    (out / "compare.md").write_text(table(record))
    try:
        plot(record, out / "compare.png")
    except ImportError:
        print("matplotlib is not installed: no plot (run --report on compare.json where it is)", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="folder for compare.json/.md/.png, the model and the clips")
    parser.add_argument("--smoke", action="store_true", help="the tiny model on the CPU")
    parser.add_argument("--sizes", nargs="*",
                        help="WIDTHxHEIGHTxFRAMES (default: both full sizes; none: only the decode runs)")
    parser.add_argument("--contenders", nargs="+", choices=CONTENDERS, default=list(CONTENDERS[:4]),
                        help="default: all but ours_fp8attn, which needs a Hopper GPU")
    parser.add_argument("--decode-sizes", nargs="*", help="clip sizes for the decode-only runs (default: 161 and "
                                                          "321 frames at 1920x1088; none: skip)")
    parser.add_argument("--repo", default=DEFAULT_REPO,
                        help="the published repo whose configuration and layout the model follows (any of "
                             "ltx2gen.testing.synthetic's; default: LTX-2.0 distilled)")
    parser.add_argument("--model", type=Path, help="model directory (written there when missing)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--timeout", type=float, default=600, help="seconds allowed per contender")
    parser.add_argument("--report", type=Path, nargs="+", metavar="JSON",
                        help="only write the table and plot of these results (one or more runs) into --out")
    parser.add_argument("--child", choices=CONTENDERS + ("decode",), help=argparse.SUPPRESS)
    parser.add_argument("--size", help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)
    if args.out is None:
        parser.error("--out is required")
    if args.report:
        records = [json.loads(path.read_text()) for path in args.report]
        merged = dict(records[0], command=[record["command"] for record in records],
                      results=[result for record in records for result in record["results"]])
        args.out.mkdir(parents=True, exist_ok=True)
        report(merged, args.out)
        return 0
    device = args.device or ("cpu" if args.smoke else "cuda")
    sizes = args.sizes if args.sizes is not None else (SMOKE_SIZES if args.smoke else FULL_SIZES)
    decode_sizes = args.decode_sizes if args.decode_sizes is not None else (
        SMOKE_DECODE_SIZES if args.smoke else FULL_DECODE_SIZES)
    args.out.mkdir(parents=True, exist_ok=True)
    model = write_model(args.repo, args.smoke, args.model or args.out / "model", device)
    record = {"date": time.strftime("%Y-%m-%d"), "command": " ".join(sys.argv), "device": device_name(device),
              "repo": args.repo, "model_version": model_version(model), "prompt": PROMPT, "seed": SEED,
              "results": []}
    runs = [(name, size) for size in sizes for name in args.contenders] + [("decode", size) for size in decode_sizes]
    for name, size in runs:
        record["results"].append(run_contender(name, size, model, args.out, device, args.timeout))
        compare_latents(record["results"])
        report(record, args.out)  # after each contender, so a cut-off run keeps what it measured
    print(table(record), flush=True)
    return 1 if any("error" in result for result in record["results"]) else 0


def model_version(model: Path) -> str:
    from ltx2gen.checkpoint import model_version as version

    return version(model)


def device_name(device: str) -> str:
    import torch

    return torch.cuda.get_device_name(device) if device.startswith("cuda") else "cpu"


if __name__ == "__main__":
    sys.exit(main())
