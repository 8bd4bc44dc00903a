"""The memory plan of a run on a discrete GPU: each stage's peak in both pools, GPU memory and host memory, and the
fastest way of holding the models that fits both.

Component sizes come from their configurations (`sizes`), never from weight files alone. The constants were
measured with full-size weights on an H100 and an H200 (docs/BENCHMARKS.md, "Memory plan of both pools"); host
figures count what the process holds at its peak (RSS, pinned memory included) and the video encoder beside it. The
page cache is not counted: the kernel gives it back under pressure. On unified memory (Jetson Thor) the pools are
one and nothing is offloaded, so the plan there is the stages' own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from ltx2gen.checkpoint import latent_frame_count

GIB = 1024**3
PLAN_TOLERANCE = 1.1  # a measured peak this far above its estimate is reported
HEADROOM = 0.95  # of the GPU memory: the allocator's fragmentation and the CUDA libraries' workspaces
HOST_HEADROOM = 0.95
MEMORY_LIMIT_ENV = "LTX2GEN_GPU_MEMORY_GIB"
# A virtual machine whose memory grows as it is used reports a MemAvailable far below what it may use, and a
# container's limit is not in MemAvailable at all: this gives the host memory to plan with instead.
HOST_MEMORY_ENV = "LTX2GEN_HOST_MEMORY_GIB"

# Diffusion, above the weights: 4.4 GiB at 42,840 video tokens (1920x1088x161), 0.8 GiB at 4,992 (768x512x97).
ACTIVATION_BASE_GIB = 0.3
ACTIVATION_GIB_PER_1K_TOKENS = 0.096
COMPILED_SAVING_GIB_PER_1K_TOKENS = 0.03  # compiled blocks keep fewer temporaries: 1.3 GiB less at 1080p
# Conditioned runs (--image, --keyframe, --extend, windows, --retake) give each video token its own timestep: each
# block's per-token modulation sum, 3.6 GiB at 1080p on LTX-2.0, eager.
CONDITIONED_GIB_PER_1K_TOKENS = 0.084
# bf16 / FP8 (loaded into pinned host memory, measured 2026-12-07): two blocks in flight, stream buffers, FP8's
# dequantized weights
GROUP_OVERHEAD_GIB = {False: 2.0, True: 1.7}
SEQUENTIAL_OVERHEAD_GIB = 0.1
TRANSFORMER_BLOCKS = 48
FILES_HOST_BLOCKS = 3  # read from the files: the block running, the next one read ahead, and the one before freed
TEXT_OVERHEAD_GIB = 2.45  # Gemma's stacked hidden states, its logits and attention work on top of its weights
TEXT_OFFLOADED_FRACTION = 1 / 12  # layer by layer: the largest layers in flight
# The video decode above the VAE's weights: 4.48 GiB at 768x512x121 and 7.34 GiB at 1920x1088x161 in all (H100)
DECODE_BASE_GIB = 1.73
DECODE_GIB_PER_FRAME_MEGAPIXEL = 0.0099
# Host: the process's RSS at each stage's peak without offloaded weights (torch and CUDA included; measured at
# 1920x1088x161: the text stage holds Gemma's outputs and the loader's pinned buffers). The x264 encoder beside the
# video stage (about 0.5 GiB) is a process of its own, left to the headroom.
HOST_STAGE_GIB = {"text": 3.65, "diffusion": 2.1, "video": 2.5}
# Host memory left free beside a read-ahead transformer: the text stage's reader buffers and Gemma's outputs (2.5-3.9
# GiB of RSS measured at full size) and the system's own
READ_AHEAD_MARGIN_GIB = 8.0


@dataclass(frozen=True)
class Sizes:
    """GiB each component takes loaded, in bf16 and with FP8's float8 layers, from its configuration
    (`sizes.loaded_bytes`)."""

    transformer: float
    transformer_fp8: float
    text_encoder: float
    text_encoder_fp8: float
    connectors: float
    vae: float

    @classmethod
    def of(cls, model_dir: Path, transformer_folder: str = "transformer", video_decoder: str = "vae") -> "Sizes":
        """`video_decoder`: the folder the video decode loads (vae, or LTX-2.5's diffusion_decoder), whose size
        stands in `vae`."""
        from ltx2gen.sizes import loaded_bytes

        return cls(*(loaded_bytes(model_dir, name, fp8=fp8) / GIB for name, fp8 in (
            (transformer_folder, False), (transformer_folder, True), ("text_encoder", False), ("text_encoder", True),
            ("connectors", False), (video_decoder, False))))


@dataclass(frozen=True)
class Peak:
    gpu: float
    host: float

    def describe(self) -> str:
        return f"GPU {self.gpu:.1f} / host {self.host:.1f} GiB"


@dataclass(frozen=True)
class Machine:
    """The memory a plan may use: the GPU's and the host's (GiB), and where the figures come from."""

    gpu_gib: float
    host_gib: float
    source: str = "this machine"

    def fits(self, peak: Peak) -> bool:
        return peak.gpu <= self.gpu_gib * HEADROOM and peak.host <= self.host_gib * HOST_HEADROOM

    def describe(self) -> str:
        return f"{self.gpu_gib:.0f} GiB GPU, {self.host_gib:.0f} GiB host ({self.source})"


@dataclass(frozen=True)
class Work:
    """What the plan is for: the clip's video tokens (of one denoising run at its size), its frames, whether they are
    conditioned, the frames of one decode piece as asked (0: auto), a frame's megapixels and, for two-stage, the
    latent upsampler's GiB."""

    tokens: int
    frames: int
    conditioned: bool = False
    decode_chunk_frames: int = 0  # 0: auto (the whole clip where it fits, else the largest piece that does)
    megapixels: float = 0.39  # of a frame: 768x512
    upsampler_gib: float = 0.0


def clip_tokens(width: int, height: int, num_frames: int) -> int:
    return latent_frame_count(num_frames) * (height // 32) * (width // 32)


def activations_gib(tokens: int, compiled: bool, conditioned: bool) -> float:
    per_1k = ACTIVATION_GIB_PER_1K_TOKENS - (COMPILED_SAVING_GIB_PER_1K_TOKENS if compiled else 0.0)
    per_1k += CONDITIONED_GIB_PER_1K_TOKENS if conditioned else 0.0
    return ACTIVATION_BASE_GIB + per_1k * tokens / 1000


def diffusion_peak(sizes: Sizes, work: Work, fp8: bool, offload: str, compiled: bool = False) -> Peak:
    """The diffusion stage with the transformer held as `offload` (none, model, group, sequential or files)."""
    weights = sizes.transformer_fp8 if fp8 else sizes.transformer
    if offload in ("none", "model"):  # model offload moves the whole transformer in for the steps
        on_gpu = weights
    elif offload in ("group", "files"):  # files: one block on the GPU, the next read ahead into host memory
        on_gpu = GROUP_OVERHEAD_GIB[fp8]
    else:
        on_gpu = SEQUENTIAL_OVERHEAD_GIB
    # Two-stage: between its runs the latent upsampler loads beside the transformer, the run's activations freed.
    gpu = on_gpu + max(activations_gib(work.tokens, compiled, work.conditioned),
                       ACTIVATION_BASE_GIB + work.upsampler_gib)
    in_host = {"none": 0.0, "files": FILES_HOST_BLOCKS * sizes.transformer / TRANSFORMER_BLOCKS}.get(offload, weights)
    return Peak(gpu, HOST_STAGE_GIB["diffusion"] + in_host)


def text_peak(sizes: Sizes, mode: str) -> Peak:
    """The text stage with Gemma held as `mode` (`text.TEXT_ENCODER_MODES`); the connectors are resident. Offloaded,
    the bf16 encoder sits in host memory; read from its files, only the layers in flight do."""
    encoder = {"resident": sizes.text_encoder, "fp8": sizes.text_encoder_fp8,
               "offloaded": sizes.text_encoder * TEXT_OFFLOADED_FRACTION,
               "files": sizes.text_encoder * TEXT_OFFLOADED_FRACTION}[mode]
    host = HOST_STAGE_GIB["text"] + (sizes.text_encoder if mode == "offloaded" else 0.0)
    return Peak(TEXT_OVERHEAD_GIB + encoder + sizes.connectors, host)


def decode_peak(sizes: Sizes, piece_frames: int, megapixels: float) -> Peak:
    return Peak(sizes.vae + DECODE_BASE_GIB + DECODE_GIB_PER_FRAME_MEGAPIXEL * piece_frames * megapixels,
                HOST_STAGE_GIB["video"])


@dataclass(frozen=True)
class Fit:
    """The chosen modes and each stage's estimated peak."""

    fp8: str
    offload: str
    text_encoder: str  # resident, fp8 or offloaded
    compiled: bool
    decode_chunk_frames: int  # 0: the whole clip in one decode
    text: Peak
    diffusion: Peak
    decode: Peak
    machine: Machine
    sizes: Sizes
    work: Work

    def describe(self) -> str:
        decode = "whole clip" if not self.decode_chunk_frames else f"pieces of {self.decode_chunk_frames} frames"
        return (f"memory plan for {self.machine.describe()}: text {self.text.describe()} ({self.text_encoder} text "
                f"encoder), diffusion {self.diffusion.describe()} ({self.offload} offload), video decode "
                f"{self.decode.describe()} ({decode})")

    def against(self, reports) -> str:
        """One line setting the stages' measured peaks (`memory.StageReport`s) beside the plan's, saying which stage
        went more than a tenth over its estimate: the plan's constants are measured ones, and a run that exceeds
        them is worth knowing about before a larger clip is planned on the same figures."""
        planned = {"text": self.text, "diffusion": self.diffusion, "video": self.decode}
        over, largest = [], {"GPU": (0.0, ""), "host": (0.0, "")}
        for report in reports:
            peak = planned.get(report.name)
            if peak is None:
                continue
            for pool, measured, estimate in (("GPU", report.cuda_peak_gib, peak.gpu),
                                             ("host", report.peak_rss_gib, peak.host)):
                largest[pool] = max(largest[pool], (measured, report.name))
                if measured > estimate * PLAN_TOLERANCE:
                    over.append(f"{report.name} {pool} {measured:.1f} GiB against {estimate:.1f} planned")
        if over:
            return "note: the memory plan was short: " + "; ".join(over) + " (please report it with the sidecar)"
        return "memory: every stage within its plan; peaks GPU {:.1f} GiB ({}), host {:.1f} GiB ({})".format(
            *largest["GPU"], *largest["host"])

    def record(self) -> dict:
        """The sidecar's `memory_plan_estimates`: each stage's planned peaks, to set beside the measured ones."""
        return {"machine": {"gpu_gib": self.machine.gpu_gib, "host_gib": self.machine.host_gib,
                            "source": self.machine.source},
                **{stage: {"gpu_gib": round(peak.gpu, 2), "host_gib": round(peak.host, 2)}
                   for stage, peak in (("text", self.text), ("diffusion", self.diffusion), ("video", self.decode))}}


class DoesNotFit(ValueError):
    """No way of holding the models fits the machine: the message says which stage and pool, and what would fit."""


@dataclass(frozen=True)
class Requested:
    """The flags the plan honours: `fp8` (auto, off, weight, dynamic), `offload` (auto or a mode), `text_fp8`
    (whether Gemma is asked for in float8), `fp8_kernels` (whether auto may take FP8 weights), and whether the
    transformer and the text encoder may be read from their files as they run."""

    fp8: str = "auto"
    offload: str = "auto"
    text_fp8: str = "auto"
    fp8_kernels: bool = True
    files: bool = True  # the transformer may be read from its files at each step (no LoRA to fuse)
    text_files: bool = True  # the text encoder may be read from its files (it has weight files)


def text_encoder_asked(text_fp8: str, fp8: str) -> str:
    """How --text-fp8 (auto, on, off) holds Gemma beside a transformer in `fp8`: auto follows the transformer."""
    return "fp8" if text_fp8 == "on" or (text_fp8 == "auto" and fp8 != "off") else "resident"


def transformer_candidates(requested: Requested) -> list[tuple[str, str]]:
    """(fp8, offload) in the order they are tried, fastest first: bf16 resident, then (where FP8 kernels exist and
    nothing else is asked) FP8 weight storage resident, then in host memory block by block, then (bf16) read from
    the weight files block by block, then layer by layer from host memory."""
    offloads = ["none", "group"] + ["files"] * requested.files + ["sequential"] if requested.offload == "auto" \
        else [requested.offload]
    if requested.fp8 == "dynamic":  # dynamic needs the resident transformer; offloaded, it stores FP8 weights
        return [("dynamic" if offload == "none" else "weight", offload) for offload in offloads]
    if requested.fp8 != "auto":
        return [(requested.fp8, offload) for offload in offloads]
    if not requested.fp8_kernels:
        return [("off", offload) for offload in offloads]
    # FP8 weights from the files would be quantized again at every step, for no host memory saved
    return [("off", "none")] * (requested.offload in ("auto", "none")) + [
        ("off" if offload == "files" else "weight", offload) for offload in offloads]


def choose(sizes: Sizes, work: Work, machine: Machine, requested: Requested = Requested()) -> Fit:
    """The fastest plan that fits both pools of `machine`, eager; `compiling.choose` may then compile it. Raises
    DoesNotFit naming the stage, the pool and the flags that would fit."""
    candidates = transformer_candidates(requested)
    transformer = next(((fp8, offload) for fp8, offload in candidates
                        if machine.fits(diffusion_peak(sizes, work, fp8 != "off", offload))), None)
    if transformer is None:
        fp8, offload = candidates[-1]
        raise DoesNotFit(_refusal("the diffusion stage", diffusion_peak(sizes, work, fp8 != "off", offload), machine))
    fp8, offload = transformer
    modes = [text_encoder_asked(requested.text_fp8, fp8), "offloaded"] + ["files"] * requested.text_files
    text_encoder = next((mode for mode in modes if machine.fits(text_peak(sizes, mode))), None)
    if text_encoder is None:
        raise DoesNotFit(_refusal("the text stage", text_peak(sizes, modes[-1]), machine))
    chunk = decode_chunk(sizes, work, machine)
    decode = decode_peak(sizes, chunk or work.frames, work.megapixels)
    return Fit(fp8, offload, text_encoder, False, chunk, text_peak(sizes, text_encoder),
               diffusion_peak(sizes, work, fp8 != "off", offload), decode, machine, sizes, work)


def decode_chunk(sizes: Sizes, work: Work, machine: Machine) -> int:
    """Frames of each decode piece: as asked, else 0 (the whole clip) where it fits, else the largest multiple of
    8 frames that does."""
    if work.decode_chunk_frames or machine.fits(decode_peak(sizes, work.frames, work.megapixels)):
        return work.decode_chunk_frames
    chunk = next((frames for frames in range(8 * (work.frames // 8), 0, -8)
                  if machine.fits(decode_peak(sizes, frames, work.megapixels))), None)
    if chunk is None:
        raise DoesNotFit(_refusal("the video decode", decode_peak(sizes, 8, work.megapixels), machine))
    return chunk


def with_compile(chosen: Fit) -> Fit:
    """The plan with compiled blocks, whose activations are smaller."""
    return replace(chosen, compiled=True, diffusion=diffusion_peak(chosen.sizes, chosen.work, chosen.fp8 != "off",
                                                                   chosen.offload, compiled=True))


def _refusal(stage: str, smallest: Peak, machine: Machine) -> str:
    pools = [f"{pool} ({need:.1f} GiB planned, {have * headroom:.1f} usable)" for pool, need, have, headroom in (
        ("GPU", smallest.gpu, machine.gpu_gib, HEADROOM), ("host", smallest.host, machine.host_gib, HOST_HEADROOM))
        if need > have * headroom]
    return f"{stage} does not fit {machine.describe()} even at its smallest: {' and '.join(pools)}"


def gpu_budget_gib(device) -> float:
    """Free GPU memory now; LTX2GEN_GPU_MEMORY_GIB caps it, and the allocator is held to that cap, so a plan for a
    smaller card can be tried (and is enforced) on a larger one."""
    import torch

    free, total = torch.cuda.mem_get_info(device)
    limit = os.environ.get(MEMORY_LIMIT_ENV)
    if not limit:
        return free / GIB
    index = device.index if device.index is not None else torch.cuda.current_device()
    torch.cuda.set_per_process_memory_fraction(min(1.0, float(limit) * GIB / total), index)
    return min(free / GIB, float(limit))


def read_ahead_fits(transformer_folder: Path, available_bytes: int, host_weights_bytes: int = 0) -> bool:
    """Whether the transformer's weight files fit the page cache beside what the text stage holds in host memory,
    with `READ_AHEAD_MARGIN_GIB` to spare, and beside the weights the diffusion stage keeps in host memory
    (`host_weights_bytes`, offloaded): then they are read from disk while the text stage runs, and the diffusion
    stage loads them from memory. The page cache gives pages back under pressure, so a wrong guess costs a second
    read, never a failure."""
    from ltx2gen.weights import weight_files

    files = sum(file.stat().st_size for file in weight_files(transformer_folder))
    return files + host_weights_bytes + READ_AHEAD_MARGIN_GIB * GIB <= available_bytes


def host_memory_available_bytes() -> int:
    """Host memory this process may still take: MemAvailable, within the memory limit of its control group (a
    container's or a systemd slice's, which MemAvailable does not show), or LTX2GEN_HOST_MEMORY_GIB where set."""
    from ltx2gen.memory import cgroup_available_bytes, mem_available_bytes

    limit = os.environ.get(HOST_MEMORY_ENV)
    if limit:
        return int(float(limit) * GIB)
    in_group = cgroup_available_bytes()
    return min(mem_available_bytes(), in_group) if in_group is not None else mem_available_bytes()
