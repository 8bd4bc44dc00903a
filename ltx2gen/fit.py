"""Fitting a run into the GPU: estimate each stage's peak from the weight files and the clip's token count, and
choose offloading so the largest stage fits. The constants were measured on an H200 with full-size weights
(docs/BENCHMARKS.md); the estimates are slightly conservative against those measurements.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ltx2gen.checkpoint import latent_frame_count

GIB = 1024**3
ACTIVATION_GIB_PER_1K_TOKENS = 0.14  # diffusion peak above the weights: 6.0 GiB at 42,840 tokens (1920x1088x161)
ACTIVATION_BASE_GIB = 0.5
FP8_WEIGHT_FRACTION = 0.53  # block linears in float8 with scales, everything else bf16
TRANSFORMER_BLOCKS = 48
GROUP_OVERHEAD_GIB = 0.6  # two blocks in flight (current + prefetched) plus stream buffers, above activations
TEXT_OVERHEAD_GIB = 3.0  # Gemma's stacked hidden states and attention work on top of the text stage's weights
# Gemma 12B with its linear layers in float8: the 1B-parameter embedding (tied to the output head) and the norms
# stay bf16, so the encoder keeps about 0.55 of its bf16 bytes.
TEXT_FP8_FRACTION = 0.55
HEADROOM = 0.95
MEMORY_LIMIT_ENV = "LTX2GEN_GPU_MEMORY_GIB"
# host memory left free beside a read-ahead transformer: the text stage's reader buffers and Gemma's outputs (2.5-3.9
# GiB of RSS measured at full size) and the system's own
READ_AHEAD_MARGIN_GIB = 8.0
# A virtual machine whose memory grows as it is used reports a MemAvailable far below what it may use: this gives
# the host memory to plan with instead.
HOST_MEMORY_ENV = "LTX2GEN_HOST_MEMORY_GIB"


def weight_bytes(model_dir: Path) -> tuple[int, int, int]:
    """Bytes the transformer, the text encoder (without its image path) and the connectors take loaded in bf16,
    from the files a load reads: not their size on disk (the published text encoder is float32 and its folder holds
    a stale second copy, four times what it loads)."""
    from ltx2gen.weights import GEMMA_IMAGE_MODULES, loaded_bytes

    model_dir = Path(model_dir)
    return (loaded_bytes(model_dir / "transformer"), loaded_bytes(model_dir / "text_encoder", GEMMA_IMAGE_MODULES),
            loaded_bytes(model_dir / "connectors"))


def clip_tokens(width: int, height: int, num_frames: int) -> int:
    return latent_frame_count(num_frames) * (height // 32) * (width // 32)


def diffusion_peak_gib(transformer_bytes: int, tokens: int, fp8: bool, offload: str) -> float:
    weights = transformer_bytes / GIB * (FP8_WEIGHT_FRACTION if fp8 else 1.0)
    activations = ACTIVATION_BASE_GIB + ACTIVATION_GIB_PER_1K_TOKENS * tokens / 1000
    if offload in ("none", "model"):  # model offload moves the whole transformer in for the steps
        return weights + activations
    if offload == "group":
        return activations + 2 * weights / TRANSFORMER_BLOCKS + GROUP_OVERHEAD_GIB
    return activations + 0.1


def text_peak_gib(encoder_bytes: int, connector_bytes: int, mode: str) -> float:
    """The text stage's peak with Gemma held as `mode` (`text.TEXT_ENCODER_MODES`); the connectors are resident."""
    encoder = encoder_bytes / GIB * {"resident": 1.0, "fp8": TEXT_FP8_FRACTION, "offloaded": 1 / 12}[mode]
    return TEXT_OVERHEAD_GIB + encoder + connector_bytes / GIB


@dataclass(frozen=True)
class Fit:
    offload: str
    text_encoder: str  # resident, fp8 or offloaded
    diffusion_gib: float
    text_gib: float
    budget_gib: float

    def describe(self) -> str:
        return (f"memory plan for {self.budget_gib:.0f} GiB: diffusion ~{self.diffusion_gib:.1f} GiB "
                f"({self.offload} offload), text ~{self.text_gib:.1f} GiB "
                f"({self.text_encoder} text encoder)")


def choose(model_dir: Path, tokens: int, fp8: bool, *, budget_gib: float, offload: str = "auto",
           text_fp8: bool = False) -> Fit:
    """The fastest offload that fits `budget_gib` (or the one asked for), and whether the text encoder (in float8
    with `text_fp8`) must be offloaded too."""
    transformer, encoder, connectors = weight_bytes(model_dir)
    limit = budget_gib * HEADROOM
    if offload == "auto":
        offload = next((mode for mode in ("none", "group") if diffusion_peak_gib(transformer, tokens, fp8, mode) <=
                        limit), "sequential")
    text_encoder = "fp8" if text_fp8 else "resident"
    if text_peak_gib(encoder, connectors, text_encoder) > limit:
        text_encoder = "offloaded"
    return Fit(offload, text_encoder, diffusion_peak_gib(transformer, tokens, fp8, offload),
               text_peak_gib(encoder, connectors, text_encoder), budget_gib)


def bf16_fits(model_dir: Path, tokens: int, budget_gib: float) -> bool:
    """Whether every stage fits `budget_gib` in bf16 with nothing offloaded. `--fp8 auto` then keeps bf16: it is
    exact, and faster than float8 weight storage, whose matmuls dequantize the weights first (measured)."""
    transformer, encoder, connectors = weight_bytes(model_dir)
    return max(diffusion_peak_gib(transformer, tokens, False, "none"),
               text_peak_gib(encoder, connectors, "resident")) <= budget_gib * HEADROOM


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


def read_ahead_fits(transformer_folder: Path, available_bytes: int, offloaded: bool = False) -> bool:
    """Whether the transformer's weight files fit the page cache beside what the text stage holds in host memory,
    with `READ_AHEAD_MARGIN_GIB` to spare, and beside the transformer itself where it is `offloaded` to host memory:
    then they are read from disk while the text stage runs, and the diffusion stage loads them from memory. The page
    cache gives pages back under pressure, so a wrong guess costs a second read, never a failure."""
    from ltx2gen.weights import weight_files

    files = sum(file.stat().st_size for file in weight_files(transformer_folder))
    return files * (2 if offloaded else 1) + READ_AHEAD_MARGIN_GIB * GIB <= available_bytes


def host_memory_available_bytes() -> int:
    """Host memory free for the page cache: MemAvailable, or LTX2GEN_HOST_MEMORY_GIB where it is set."""
    from ltx2gen.memory import mem_available_bytes

    limit = os.environ.get(HOST_MEMORY_ENV)
    return int(float(limit) * GIB) if limit else mem_available_bytes()
