"""How the transformer's work runs on the device: the video feed-forward and the rotary position embedding in token
chunks (memory) and the cuDNN attention kernel for the unmasked video self-attention (speed). None of them changes
what is computed: each acts on every token independently."""

from __future__ import annotations

import torch

# 8,192 tokens keep each chunk's GEMMs large enough to run at full speed, while the 4x-wide hidden activation of
# the feed-forward drops from 1.3 GiB to 0.25 GiB at 1920x1088x161 (42,840 tokens).
FEED_FORWARD_CHUNK_TOKENS = 8192
# diffusers rotates queries and keys in float32 over all tokens at once: 1.4 GiB of temporaries per projection at
# 42,840 tokens, the largest transient of an offloaded step once the feed-forward is chunked.
ROTARY_CHUNK_TOKENS = 8192
ATTENTION_BACKENDS = {"native": "native", "cudnn": "_native_cudnn"}


def chunk_feed_forward(transformer: torch.nn.Module, chunk_tokens: int = FEED_FORWARD_CHUNK_TOKENS) -> None:
    """Run every video feed-forward over at most `chunk_tokens` tokens at a time. The feed-forward acts on each
    token independently, so the result is the same; only the largest activation shrinks."""
    for block in transformer.transformer_blocks:
        block.ff.forward = _over_token_chunks(block.ff.forward, chunk_tokens)


def _over_token_chunks(forward, chunk_tokens: int):
    def chunked(hidden_states: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        if hidden_states.shape[1] <= chunk_tokens:
            return forward(hidden_states, *args, **kwargs)
        output = torch.empty_like(hidden_states)
        for start in range(0, hidden_states.shape[1], chunk_tokens):
            end = start + chunk_tokens
            output[:, start:end] = forward(hidden_states[:, start:end], *args, **kwargs)
        return output

    return chunked


def chunk_rotary_embedding() -> None:
    """Make LTX-2's split rotary embedding run over at most ROTARY_CHUNK_TOKENS tokens at a time, in this process.

    The rotation is a module-level function that every LTX-2 attention processor calls, so it is wrapped where the
    processors look it up; the wrapper is installed once."""
    from diffusers.models.transformers import transformer_ltx2

    rotate = transformer_ltx2.apply_split_rotary_emb
    if getattr(rotate, "chunked", False):
        return

    def rotate_in_chunks(x: torch.Tensor, freqs: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        cos, sin = freqs
        if x.ndim != 3 or cos.ndim != 4 or x.shape[1] <= ROTARY_CHUNK_TOKENS:  # (batch, tokens, heads * dim)
            return rotate(x, freqs)
        output = torch.empty_like(x)
        for start in range(0, x.shape[1], ROTARY_CHUNK_TOKENS):
            end = start + ROTARY_CHUNK_TOKENS
            output[:, start:end] = rotate(x[:, start:end], (cos[:, :, start:end], sin[:, :, start:end]))
        return output

    rotate_in_chunks.chunked = True
    transformer_ltx2.apply_split_rotary_emb = rotate_in_chunks


def choose_attention(requested: str, device: torch.device) -> str:
    """auto: cuDNN on CUDA GPUs of compute capability 9.0+ (Hopper and newer), where it is the fastest kernel for
    the 32x128-head self-attention; PyTorch's own choice elsewhere."""
    if requested != "auto":
        return requested
    hopper = device.type == "cuda" and torch.cuda.get_device_capability(device) >= (9, 0)
    return "cudnn" if hopper else "native"


def set_self_attention_backend(transformer: torch.nn.Module, backend: str) -> None:
    """Only the video self-attention (`attn1`) changes kernel: it never takes a mask and holds nearly all of the
    attention work. The text cross-attention and the connectors pass masks and stay on the native kernel."""
    for block in transformer.transformer_blocks:
        block.attn1.set_attention_backend(ATTENTION_BACKENDS[backend])
