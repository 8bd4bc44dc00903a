"""The transformer's token-wise work in token chunks: the feed-forwards, the RMS norms and the rotary position
embedding. Each acts on every token independently, so the result is the same, but their float32 and 4x-wide
temporaries no longer scale with the clip: at 1920x1088x161 (42,840 tokens) they are what bounds an offloaded step."""

from __future__ import annotations

import torch

# 8,192 tokens keep each chunk's GEMMs large enough to run at full speed, while the 4x-wide hidden activation of
# the feed-forward drops from 1.3 GiB to 0.25 GiB, and each float32 norm temporary from 0.65 GiB to 0.13 GiB.
CHUNK_TOKENS = 8192
# diffusers rotates queries and keys in float32 over all tokens at once: 1.4 GiB of temporaries per projection at
# 42,840 tokens (measured: not at the peak of an offloaded step today, but it would be once the rest shrinks).
ROTARY_CHUNK_TOKENS = CHUNK_TOKENS


def chunk_token_wise_layers(transformer: torch.nn.Module, chunk_tokens: int = CHUNK_TOKENS) -> None:
    """Run every block's feed-forwards and RMS norms over at most `chunk_tokens` tokens at a time (layers over fewer
    tokens, such as the audio stream's, run as before). The block norms compute in float32: unchunked, two of
    them are the largest temporaries of an offloaded 1080p step."""
    from diffusers.models.normalization import RMSNorm

    for block in transformer.transformer_blocks:
        layers = [block.ff, block.audio_ff]
        layers += [module for module in block.modules() if isinstance(module, (RMSNorm, torch.nn.RMSNorm))]
        for layer in layers:
            layer.forward = _over_token_chunks(layer.forward, chunk_tokens)


def _over_token_chunks(forward, chunk_tokens: int):
    def chunked(hidden_states: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        if hidden_states.shape[1] <= chunk_tokens:
            return forward(hidden_states, *args, **kwargs)
        return fill_in_chunks(hidden_states, chunk_tokens,
                               lambda tokens: forward(hidden_states[:, tokens], *args, **kwargs))

    return chunked


def fill_in_chunks(like: torch.Tensor, chunk_tokens: int, compute) -> torch.Tensor:
    """A tensor shaped like `like` (batch, tokens, ...), filled by `compute(token_slice)` one chunk at a time."""
    output = torch.empty_like(like)
    for start in range(0, like.shape[1], chunk_tokens):
        tokens = slice(start, start + chunk_tokens)
        output[:, tokens] = compute(tokens)
    return output


def compile_blocks(transformer: torch.nn.Module, **options) -> None:
    """Compile each transformer block's forward with `torch.compile(**options)`; the 48 identical blocks share one
    graph. The forward is compiled rather than the module call, so hooks that later wrap the forward (group offload)
    stay outside the graph: transfers run eagerly and only the block's own computation is compiled."""
    for block in transformer.transformer_blocks:
        block.forward = torch.compile(block.forward, **options)


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
        return fill_in_chunks(x, ROTARY_CHUNK_TOKENS,
                               lambda tokens: rotate(x[:, tokens], (cos[:, :, tokens], sin[:, :, tokens])))

    rotate_in_chunks.chunked = True
    transformer_ltx2.apply_split_rotary_emb = rotate_in_chunks
