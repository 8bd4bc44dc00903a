"""Normalized Attention Guidance (NAG; Chen et al. 2025, arXiv 2505.21179): negative prompts at guidance 1.

The distilled model samples without classifier-free guidance, which is the only place the stock pipeline uses a
negative prompt. NAG guides inside the text cross-attention instead, in both streams (`attn2` of the video,
`audio_attn2` of the audio), so the transformer still runs once per step: each of those layers attends to the
positive and to the negative prompt with the same queries, extrapolates away from the negative output, clips the
result per token by its L1 norm and blends it with the positive output, before the output projection.

The negative context travels with the positive one, appended along the tokens (`with_negative_context`): the
caption projections and per-block modulations before the cross-attention act on each token alone, so the
negative tokens reach the cross-attention exactly as they would as a prompt of their own. Both prompts are padded
to the same tokenizer length, so the context splits in two halves.
"""

from __future__ import annotations

import dataclasses
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from diffusers.models.attention_dispatch import dispatch_attention_fn
from diffusers.models.transformers.transformer_ltx2 import LTX2AudioVideoAttnProcessor

from ltx2gen.kernels import CHUNK_TOKENS, fill_in_chunks

CROSS_ATTENTION_LAYERS = ("attn2", "audio_attn2")


@dataclass(frozen=True)
class NagSettings:
    scale: float
    tau: float
    alpha: float

    def record(self) -> dict:
        return dataclasses.asdict(self)


def guide(positive: torch.Tensor, negative: torch.Tensor, settings: NagSettings) -> torch.Tensor:
    """NAG on cross-attention outputs [..., tokens, channels]: z = z+ + scale (z+ - z-); where a token's
    ||z||_1 / ||z+||_1 exceeds tau, z is scaled so the ratio is tau; the result is alpha z + (1 - alpha) z+."""
    guided = positive + settings.scale * (positive - negative)
    positive_norm = torch.linalg.vector_norm(positive, ord=1, dim=-1, keepdim=True, dtype=torch.float32)
    guided_norm = torch.linalg.vector_norm(guided, ord=1, dim=-1, keepdim=True, dtype=torch.float32)
    limit = settings.tau * positive_norm
    # Written without a division by ||z+||_1, so an all-zero positive output clips the guidance to zero, not NaN.
    shrink = torch.where(guided_norm > limit, limit / guided_norm, torch.ones_like(guided_norm))
    return settings.alpha * (guided * shrink.to(guided.dtype)) + (1 - settings.alpha) * positive


class NagCrossAttention(LTX2AudioVideoAttnProcessor):
    """The stock LTX-2 attention processor's computation for a text cross-attention whose context is the positive
    prompt followed by the negative one: the keys and values of both are projected together, each query attends to
    each half, and `guide` combines the two outputs. Queries are processed in chunks of CHUNK_TOKENS (the result is
    per query token), so the extra outputs add chunk-sized temporaries, not clip-sized ones."""

    def __init__(self, settings: NagSettings):
        super().__init__()
        self.settings = settings

    def __call__(self, attn, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor,
                 attention_mask: torch.Tensor | None = None, query_rotary_emb=None, key_rotary_emb=None):
        if query_rotary_emb is not None or key_rotary_emb is not None:
            raise ValueError("NAG guides the text cross-attention, which has no rotary position embedding")
        batch, context_tokens, _ = encoder_hidden_states.shape
        if context_tokens % 2:
            raise ValueError(f"NAG needs the positive and negative context of equal length, got {context_tokens} "
                             "tokens in all")
        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, context_tokens, batch)
            attention_mask = attention_mask.view(batch, attn.heads, -1, context_tokens)
        key = attn.norm_k(attn.to_k(encoder_hidden_states)).unflatten(2, (attn.heads, -1))
        value = attn.to_v(encoder_hidden_states).unflatten(2, (attn.heads, -1))
        half = context_tokens // 2
        positive, negative = slice(None, half), slice(half, None)
        contexts = [(key[:, part], value[:, part], None if attention_mask is None else attention_mask[..., part])
                    for part in (positive, negative)]
        return fill_in_chunks(hidden_states, CHUNK_TOKENS,
                               lambda tokens: self._guided(attn, hidden_states[:, tokens], contexts))

    def _guided(self, attn, hidden_states: torch.Tensor, contexts: list) -> torch.Tensor:
        query = attn.norm_q(attn.to_q(hidden_states)).unflatten(2, (attn.heads, -1))
        outputs = [dispatch_attention_fn(query, key, value, attn_mask=mask, dropout_p=0.0, is_causal=False,
                                         backend=self._attention_backend, parallel_config=self._parallel_config)
                   .flatten(2, 3).to(query.dtype) for key, value, mask in contexts]
        output = guide(*outputs, self.settings)
        if attn.to_gate_logits is not None:  # LTX-2.3's per-head gates, applied after attention as in the stock code
            gates = 2.0 * torch.sigmoid(attn.to_gate_logits(hidden_states))
            output = (output.unflatten(2, (attn.heads, -1)) * gates.unsqueeze(-1)).flatten(2, 3)
        return attn.to_out[1](attn.to_out[0](output))


def has_negative_context(conditioning) -> bool:
    """Whether a `text.TextConditioning` carries the NAG negative context (twice the tokenizer's length)."""
    return conditioning.video.shape[1] == 2 * conditioning.prompt_mask.shape[1]


def with_negative_context(conditioning, with_guidance: bool):
    """A `text.TextConditioning` encoded as the batch [negative, positive] with the negative context appended to
    each row's tokens. With classifier-free guidance both rows stay (the negative row then attends to the negative
    twice, where NAG changes nothing); without it only the positive row does."""
    rows = slice(None) if with_guidance else slice(1, None)

    def appended(values: torch.Tensor) -> torch.Tensor:
        kept = values[rows]
        return torch.cat([kept, values[:1].expand_as(kept)], dim=1)

    return dataclasses.replace(conditioning, video=appended(conditioning.video), audio=appended(conditioning.audio),
                               mask=appended(conditioning.mask), prompt_mask=conditioning.prompt_mask[rows])


@contextmanager
def guidance(transformer: torch.nn.Module, settings: NagSettings | None, conditioning):
    """NAG in the transformer while the context is open (`guided_cross_attention`) when `settings` are given, after
    checking that `conditioning` (a `text.TextConditioning`) carries the negative context exactly then."""
    if has_negative_context(conditioning) != (settings is not None):
        raise ValueError("NAG settings and the text conditioning disagree: the negative context is encoded exactly "
                         "when NAG is on")
    if settings is None:
        yield
        return
    with guided_cross_attention(transformer, settings):
        yield


@contextmanager
def guided_cross_attention(transformer: torch.nn.Module, settings: NagSettings):
    """NAG in every block's text cross-attention of both streams while the context is open, the stock processors
    after it (a batch's transformer serves clips with and without NAG). One processor object serves every layer, so
    the compiled blocks (`kernels.compile_blocks`) still share one graph."""
    layers = [getattr(block, name) for block in transformer.transformer_blocks for name in CROSS_ATTENTION_LAYERS]
    stock = [layer.processor for layer in layers]
    processor = NagCrossAttention(settings)
    for layer in layers:
        layer.set_processor(processor)
    try:
        yield
    finally:
        for layer, original in zip(layers, stock):
            layer.set_processor(original)
