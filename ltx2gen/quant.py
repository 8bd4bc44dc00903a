"""FP8 for the transformer and the text encoder with torchao.

- `weight`: float8 weight storage (e4m3, per-channel scales), about half the bf16 memory; matmuls still run in
  bf16 after dequantization, so it saves memory, not time.
- `dynamic`: the large video-token GEMMs also quantize their activations per row and run float8 tensor-core
  matmuls. The caller must compile the blocks (`kernels.compile_blocks`) so the activation quantization fuses
  into neighbouring kernels: unfused, it costs more than the FP8 matmul saves. Every other block linear is stored
  as in `weight`.

Only linear layers inside the 48 transformer blocks change: the input/output projections, time and caption
embeddings, the AdaLN tables and all norms stay in bf16 because the whole output depends on them.
"""

from __future__ import annotations

import torch

BLOCKS = "transformer_blocks"
# The GEMMs whose rows are video tokens (42,840 at 1920x1088x161) and hold nearly all the linear-layer FLOPs:
# video self-attention, the query/output of the video text-attention, the video-side projections of the two
# audio-video cross-attentions and the video feed-forward. The audio stream (about 126 tokens per 5 s) and the
# text keys/values (1,024 tokens) are too small for activation quantization to pay for itself.
DYNAMIC_LAYERS = ("attn1.", "attn2.to_q", "attn2.to_out.", "audio_to_video_attn.to_q", "audio_to_video_attn.to_out.",
                  "video_to_audio_attn.to_k", "video_to_audio_attn.to_v", "ff.")


def fp8_supported(device: torch.device) -> bool:
    """Float8 matmul kernels need an NVIDIA GPU of compute capability 8.9 (Ada) or newer."""
    return device.type == "cuda" and torch.cuda.get_device_capability(device) >= (8, 9)


def is_dynamic_layer(name: str) -> bool:
    return name.startswith(DYNAMIC_LAYERS)


def quantize_fp8(transformer: torch.nn.Module, mode: str, device: torch.device | None = None) -> int:
    """Quantize the block linears in place for `mode` ("weight" or "dynamic"); returns how many layers changed.

    With `device`, the transformer (loaded on the CPU) moves there one block at a time and each block is quantized
    as it arrives, so the device never holds the whole bf16 transformer: its peak is the FP8 model plus one block.
    """
    count = 0
    for block in getattr(transformer, BLOCKS):
        if device is not None:
            block.to(device)
        count += quantize_block(block, mode)
    if device is not None:
        transformer.to(device)  # everything outside the blocks, in bf16
    return count


def quantize_block(block: torch.nn.Module, mode: str) -> int:
    """Quantize one transformer block's linears in place for `mode`; returns how many layers changed."""
    from torchao.quantization import (
        Float8DynamicActivationFloat8WeightConfig,
        Float8WeightOnlyConfig,
        PerRow,
        quantize_,
    )

    if mode not in ("weight", "dynamic"):
        raise ValueError(f"unknown FP8 mode {mode!r}; expected weight or dynamic")

    def linear(module: torch.nn.Module) -> bool:
        return isinstance(module, torch.nn.Linear)

    if mode == "dynamic":
        quantize_(block, Float8DynamicActivationFloat8WeightConfig(granularity=PerRow()),
                  filter_fn=lambda module, name: linear(module) and is_dynamic_layer(name))
        quantize_(block, Float8WeightOnlyConfig(),
                  filter_fn=lambda module, name: linear(module) and not is_dynamic_layer(name))
    else:
        quantize_(block, Float8WeightOnlyConfig(), filter_fn=lambda module, _: linear(module))
    return sum(1 for module in block.modules() if linear(module))


def is_text_encoder_fp8_layer(name: str, module: torch.nn.Module) -> bool:
    """The text encoder layers that transformers' quantization while loading (`text_encoder_quantization`) stores
    in float8: plain linear layers, but not the output head (tied to the bf16 input embedding), nor
    MultiheadAttention's projection (a Linear subclass)."""
    return type(module) is torch.nn.Linear and name != "lm_head"


def quantize_text_encoder_linears(module: torch.nn.Module) -> int:
    """Store the `is_text_encoder_fp8_layer` layers of the text encoder (or of one of its layers) that are not in
    float8 yet as `weight` does. Returns how many layers changed."""
    from torchao.quantization import Float8Tensor

    count = 0
    for name, layer in module.named_modules():
        if is_text_encoder_fp8_layer(name, layer) and not isinstance(layer.weight, Float8Tensor):
            count += quantize_block(layer, "weight")
    return count


def text_encoder_quantization():
    """transformers' loading option for the Gemma text encoder: its linear layers stored in float8 (per-row scales,
    as `weight` above) as each loads, so the bf16 encoder (22 GiB at full size) is never whole in memory.
    transformers keeps the output head, tied to the input embedding, in bf16; the embedding and norms stay bf16."""
    from torchao.quantization import Float8WeightOnlyConfig
    from transformers import TorchAoConfig

    return TorchAoConfig(Float8WeightOnlyConfig())
