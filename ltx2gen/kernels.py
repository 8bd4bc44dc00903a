"""How the transformer's blocks run: compiled, and token-wise work in token chunks. The feed-forwards, the RMS
norms and the rotary position embedding act on every token independently, so computing them a chunk at a time
(`patches.token_wise_layers_in_chunks`, `patches.rotary_embedding_in_chunks`) gives the same result, while their
float32 and 4x-wide temporaries no longer scale with the clip: at 1920x1088x161 (42,840 tokens) they are what
bounds an offloaded step."""

from __future__ import annotations

import torch

# 8,192 tokens keep each chunk's GEMMs large enough to run at full speed, while the 4x-wide hidden activation of
# the feed-forward drops from 1.3 GiB to 0.25 GiB, and each float32 norm temporary from 0.65 GiB to 0.13 GiB.
CHUNK_TOKENS = 8192


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
