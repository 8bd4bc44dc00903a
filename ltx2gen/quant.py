"""FP8 weight storage for the transformer with torchao (about half the bf16 memory)."""

from __future__ import annotations

import torch

# Only the linear layers of the 48 transformer blocks are quantized: the input/output projections, time and
# caption embeddings and all norms stay in bf16 because the whole output depends on them.
QUANTIZED_PREFIX = "transformer_blocks."


def fp8_supported(device: torch.device) -> bool:
    """Float8 matmul kernels need an NVIDIA GPU of compute capability 8.9 (Ada) or newer."""
    return device.type == "cuda" and torch.cuda.get_device_capability(device) >= (8, 9)


def quantize_fp8_weights(transformer: torch.nn.Module, device: torch.device | None = None) -> int:
    """Store the block linear weights in float8 (e4m3, per-channel scales). Returns how many layers changed.

    With `device`, the transformer (loaded on the CPU) moves there one block at a time and each block is quantized
    as it arrives, so the device never holds the whole bf16 transformer: its peak is the FP8 model plus one block.
    """
    from torchao.quantization import Float8WeightOnlyConfig, quantize_

    def in_blocks(module: torch.nn.Module, name: str) -> bool:
        return isinstance(module, torch.nn.Linear) and name.startswith(QUANTIZED_PREFIX)

    count = sum(1 for name, module in transformer.named_modules() if in_blocks(module, name))
    if device is None:
        quantize_(transformer, Float8WeightOnlyConfig(), filter_fn=in_blocks)
        return count
    for block in getattr(transformer, QUANTIZED_PREFIX.rstrip(".")):
        block.to(device)
        quantize_(block, Float8WeightOnlyConfig(), filter_fn=lambda module, _: isinstance(module, torch.nn.Linear))
    transformer.to(device)  # everything outside the blocks, in bf16
    return count
