"""Every place this product reaches into diffusers beyond calling its pipelines and models, in one module.

Each patch keeps the stock numerics (or changes them exactly as its feature says) while changing what diffusers
holds in memory or which inputs a stock call sees. They were written against diffusers 0.42.1; for each,
`ltx2gen.patch_dependencies.DEPENDS_ON` lists the diffusers functions whose parameters it relies on, as they are in
that release, and tests/test_patches.py fails when any of them changes: a diffusers upgrade must not silently change
this product's numbers.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from dataclasses import dataclass

import torch

from ltx2gen import attention
from ltx2gen.kernels import CHUNK_TOKENS, fill_in_chunks
from ltx2gen.stand_ins import ConnectorOutputs

# diffusers rotates queries and keys in float32 over all tokens at once: 1.4 GiB of temporaries per projection at
# 42,840 tokens (measured: not at the peak of an offloaded step today, but it would be once the rest shrinks).
ROTARY_CHUNK_TOKENS = CHUNK_TOKENS


@contextlib.contextmanager
def given_text_conditioning(pipe, conditioning, sigmas_as_given: bool):
    """Within this scope the stock `pipe`'s connectors call returns the text stage's outputs (`conditioning`, a
    `text.TextConditioning`), so the diffusion stage holds no connectors; with `sigmas_as_given`, its scheduler
    steps through the sigmas the call gives, unchanged (`taking_sigmas_as_given`). Yields the scheduler the call
    runs with; the checkpoint's own is back afterwards."""
    checkpoint_scheduler = pipe.scheduler
    pipe.connectors = ConnectorOutputs(conditioning.video, conditioning.audio, conditioning.mask)
    if sigmas_as_given:
        pipe.scheduler = taking_sigmas_as_given(checkpoint_scheduler)
    try:
        yield pipe.scheduler
    finally:
        pipe.connectors, pipe.scheduler = None, checkpoint_scheduler


def taking_sigmas_as_given(scheduler):
    """The checkpoint's scheduler made to step through the sigmas it is given, unchanged, as Lightricks' own
    pipelines step through the distilled lists: with dynamic shifting (the full model's configuration, and distilled
    repos converted before March 2026) diffusers would shift them for the clip size and stretch them to
    `shift_terminal`."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler.from_config(
        scheduler.config, use_dynamic_shifting=False, shift_terminal=None, shift=1.0, use_karras_sigmas=False,
        use_exponential_sigmas=False, use_beta_sigmas=False, invert_sigmas=False)


def token_wise_layers_in_chunks(transformer: torch.nn.Module, chunk_tokens: int = CHUNK_TOKENS) -> None:
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


def rotary_embedding_in_chunks() -> None:
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


def self_attention_perturbable(transformer: torch.nn.Module) -> None:
    """Spatio-temporal guidance (STG) compares each step's prediction with one from a pass that skips the
    self-attention of chosen blocks. diffusers 0.42.1 skips it only in blocks built with `perturbed_attn`, which its
    LTX-2.3 and later conversions set and its LTX-2.0 one does not: STG on LTX-2.0 would run its pass unperturbed, a
    whole transformer call for a guidance term of zero. Lightricks' own pipelines perturb LTX-2.0 (at block 29), so
    LTX-2.0 blocks get the perturbable processor, which computes the same attention wherever nothing is perturbed."""
    from diffusers.models.transformers.transformer_ltx2 import LTX2PerturbedAttnProcessor

    for block in transformer.transformer_blocks:
        if not block.perturbed_attn:
            block.perturbed_attn = True
            block.attn1.set_processor(LTX2PerturbedAttnProcessor())
            block.audio_attn1.set_processor(LTX2PerturbedAttnProcessor())


@dataclass(frozen=True, eq=False)
class TokenRuns:
    """The video tokens of one transformer call as runs that share one timestep in every batch row: `count` runs
    (the last ones may be empty: see `token_runs`), `first`, the first token of each (the last token for an empty
    run), and `index`, each token's run."""

    batch: int
    tokens: int
    count: int
    first: torch.Tensor
    index: torch.Tensor


# The runs of the transformer call in progress (set by `timestep_modulation_per_run`'s hooks, None outside a call).
# The same layout gives the same object, so compiled blocks see an unchanged global from step to step.
_video_runs: TokenRuns | None = None
_known_runs: dict[tuple, TokenRuns] = {}


def token_runs(timestep: torch.Tensor, audio_tokens: int) -> TokenRuns:
    """The runs of equal timesteps along the tokens of `timestep` (batch, tokens). The blocks tell a per-run
    modulation from the audio's (one row, or one per audio token) and the prompt's (one row) by its row count, so
    empty runs are added until the count is neither."""
    batch, tokens = timestep.shape
    starts = [0, *(timestep[:, 1:] != timestep[:, :-1]).any(dim=0).nonzero().flatten().add(1).tolist()]
    lengths = [end - start for start, end in zip(starts, [*starts[1:], tokens])]
    while len(lengths) in (1, audio_tokens):
        lengths.append(0)
        starts.append(tokens - 1)
    key = (batch, tuple(lengths), str(timestep.device))
    if key not in _known_runs:
        if len(_known_runs) >= 16:  # a handful of layouts per clip (first window, later windows, keyframes)
            _known_runs.clear()
        device = timestep.device
        _known_runs[key] = TokenRuns(
            batch, tokens, len(lengths), torch.tensor(starts, device=device),
            torch.repeat_interleave(torch.arange(len(lengths), device=device), torch.tensor(lengths, device=device)))
    return _known_runs[key]


def timestep_modulation_per_run(transformer: torch.nn.Module) -> None:
    """Image, keyframe and tail conditioning give every video token its own timestep, t * (1 - strength), and
    diffusers computes the video's modulation for every token, then keeps it for the whole call: at 1920x1088x161
    (42,840 tokens) 11 x 4,096 values a token on LTX-2.0 (3.6 GiB in bf16, per batch row), 9 x 4,096 on LTX-2.3
    and later. The timesteps are equal over runs of whole latent frames, so here each modulation is kept as one row
    per run, taken from the stock per-token rows as soon as they are made, and each block widens it to the tokens
    where it adds its own table, which makes that per-token sum anyway: the same numbers, while nothing per token
    outlives a block. A call with one timestep per batch row, or split over several GPUs, runs as before."""
    from diffusers.models.transformers.transformer_ltx2 import LTX2VideoTransformerBlock

    stock = LTX2VideoTransformerBlock.get_mod_params
    if not getattr(stock, "per_run", False):
        def get_mod_params(scale_shift_table: torch.Tensor, temb: torch.Tensor, batch_size: int):
            runs = _video_runs
            if runs is None or temb.shape[1] != runs.count:
                return stock(scale_shift_table, temb, batch_size)
            table = scale_shift_table[None, None].to(temb.device)
            per_token = temb.reshape(batch_size, runs.count, table.shape[2], -1).index_select(1, runs.index)
            if per_token.dtype == table.dtype:
                per_token += table  # the stock sum (addition commutes exactly), made in place
            else:
                per_token = table + per_token
            return per_token.unbind(dim=2)

        get_mod_params.per_run = True
        LTX2VideoTransformerBlock.get_mod_params = staticmethod(get_mod_params)

    def find_runs(module, args, kwargs):
        global _video_runs
        timestep, audio = kwargs.get("timestep"), kwargs.get("audio_hidden_states")
        per_token = timestep is not None and timestep.ndim == 2 and audio is not None
        split = getattr(module, "_parallel_config", None) is not None
        _video_runs = token_runs(timestep, audio.shape[1]) if per_token and not split else None

    def one_row_per_run(module, args, output):
        runs = _video_runs
        modulation, embedded = output
        if runs is None or modulation.shape[0] != runs.batch * runs.tokens:  # LTX-2.3 on: a cross-attention
            return output  # modulation from the other modality's sigma, one row per batch row
        per_token = modulation.view(runs.batch, runs.tokens, -1)
        return per_token.index_select(1, runs.first).flatten(0, 1), embedded  # the output layer's stays per token

    def call_over(module, args, kwargs, output):
        global _video_runs
        _video_runs = None

    transformer.register_forward_pre_hook(find_runs, with_kwargs=True)
    # The video's timestep embedding and, on LTX-2.0, its audio-video cross-attention modulations.
    for name in ("time_embed", "av_cross_attn_video_scale_shift", "av_cross_attn_video_a2v_gate"):
        transformer.get_submodule(name).register_forward_hook(one_row_per_run)
    transformer.register_forward_hook(call_over, with_kwargs=True, always_call=True)


def video_self_attention_in_fp8(transformer: torch.nn.Module) -> None:
    """The video self-attention of every block (`attn1`) computed by `attention.fp8_attention`: its processor is
    marked with `attention.FP8_BACKEND`, and the attention function LTX-2's processors call sends marked, unmasked
    calls there. Every other attention, and any transformer without the mark, runs as before."""
    from diffusers.models.transformers import transformer_ltx2

    for block in transformer.transformer_blocks:
        processor = type(block.attn1.processor)()  # its own instance: the mark must reach no other attention
        processor._attention_backend = attention.FP8_BACKEND
        block.attn1.set_processor(processor)
    dispatch = transformer_ltx2.dispatch_attention_fn
    if getattr(dispatch, "routes_fp8", False):
        return

    @functools.wraps(dispatch)  # the signature the dependency check reads stays diffusers' own
    def dispatch_marked_to_fp8(query, key, value, *args, backend=None, **kwargs):
        if backend != attention.FP8_BACKEND:
            return dispatch(query, key, value, *args, backend=backend, **kwargs)
        plain = not args and kwargs.get("attn_mask") is None and not kwargs.get("is_causal") \
            and kwargs.get("scale") is None and kwargs.get("parallel_config") is None
        # a masked self-attention (keyframe conditioning) keeps the bf16 kernel
        return attention.fp8_attention(query, key, value) if plain else dispatch(query, key, value, **kwargs)

    dispatch_marked_to_fp8.routes_fp8 = True
    transformer_ltx2.dispatch_attention_fn = dispatch_marked_to_fp8


def parallel_config_on(transformer: torch.nn.Module, device: torch.device) -> None:
    """Context parallelism: `enable_parallelism` records `device` as this rank's and builds the device mesh for its
    type. diffusers would take the device of the global rank modulo the accelerator count, which divides by zero on
    a CPU (no accelerator), so ranks on CPUs could not split a clip; on GPUs of one host the two are the same."""
    import torch.distributed as dist
    from diffusers.models._modeling_parallel import ParallelConfig
    from torch.distributed.device_mesh import init_device_mesh

    def resolve(config) -> ParallelConfig:
        config = ParallelConfig(context_parallel_config=config)
        context = config.context_parallel_config
        mesh = init_device_mesh(device.type, mesh_shape=context.mesh_shape, mesh_dim_names=context.mesh_dim_names)
        config.setup(dist.get_rank(), dist.get_world_size(), device, mesh=mesh)
        transformer._parallel_config = config
        return config

    transformer._resolve_parallel_config = resolve


def attentions_kept_local(transformer: torch.nn.Module, names: tuple[str, ...]) -> None:
    """Context parallelism: the named attentions of every block attend over keys and values that are whole on every
    rank, so their processors run without the parallel configuration `enable_parallelism` gave them."""
    for block in transformer.transformer_blocks:
        for name in names:
            getattr(block, name).processor._parallel_config = None


@contextlib.contextmanager
def following_audio(pipe, condition):
    """Within this scope, calls of the stock `pipe` follow the audio `condition` (an `audio_input.AudioCondition`:
    clean latents and a strength; `ltx2gen.audio_input` gives the method); without a condition it is a plain run.

    For one pipeline call, `prepare_audio_latents` is wrapped on the pipeline instance (the stock method still draws
    the noise), a forward pre-hook on the transformer adds the audio timestep, and a forward hook rewrites the audio
    velocity to v' = (1 - s)^2 * v + s * (x - c) / sigma, the velocity whose x0 under the stock loop's own
    conversion (x - v' * sigma) is x0'. A `prefix` condition has strength s on its own tokens and 0 on the rest,
    and a condition whose strength is a tensor has one strength per audio latent frame (a token each), token by
    token, as image-to-video conditions video tokens: each token's timestep is t * (1 - s). The sigma that
    LTX-2.3 and later modulate the video's cross-attention with stays one per clip, the generated audio's."""
    if condition is None:
        yield
        return
    train_steps = pipe.scheduler.config.num_train_timesteps
    clean, current = {}, {}

    def start_from_the_audio(*args, **kwargs):
        noise = stock_prepare(*args, **kwargs)
        packed = pipe._pack_audio_latents(condition.latents.to(noise.device, noise.dtype))
        given = pipe._normalize_audio_latents(packed, pipe.audio_vae.latents_mean, pipe.audio_vae.latents_std)
        shorter = condition.prefix and given.shape[1] <= noise.shape[1]
        if given.shape[0::2] != noise.shape[0::2] or not (shorter or given.shape[1] == noise.shape[1]):
            raise ValueError(f"the audio latents pack to {tuple(given.shape)}, the pipeline's audio is "
                             f"{tuple(noise.shape)}")
        clean["latents"] = torch.zeros_like(noise)
        clean["latents"][:, :given.shape[1]] = given
        clean["strength"] = torch.zeros(1, noise.shape[1], 1, device=noise.device)
        # one strength (a number) or one per audio latent frame (a tensor: a retake's span)
        clean["strength"][:, :given.shape[1]] = torch.as_tensor(condition.strength).view(1, -1, 1)
        clean["whole"] = given.shape[1] == noise.shape[1] and not torch.is_tensor(condition.strength)
        strength = token_strength()
        return strength * clean["latents"] + (1 - strength) * noise

    def token_strength():
        # A whole-clip condition keeps its strength a Python number: the arithmetic of --audio stays as it was.
        return condition.strength if clean["whole"] else clean["strength"]

    def audio_timestep(module, args, kwargs):
        # The step's own timestep: image-to-video passes it as `audio_timestep` beside per-token video timesteps.
        step = kwargs["audio_timestep"] if kwargs.get("audio_timestep") is not None else kwargs["timestep"]
        current["sigma"] = (step.float() / train_steps).view(-1, 1, 1)
        if clean["whole"]:
            kwargs["audio_timestep"] = kwargs["audio_sigma"] = step * (1 - condition.strength)
        else:
            kwargs["audio_timestep"] = step.view(-1, 1) * (1 - clean["strength"][..., 0].to(step.dtype))
            kwargs["audio_sigma"] = step
        return args, kwargs

    def blend_audio_velocity(module, args, kwargs, output):
        video, velocity = output
        return video, velocity_keeping(velocity, kwargs["audio_hidden_states"], clean["latents"], token_strength(),
                                       current["sigma"])

    stock_prepare = pipe.prepare_audio_latents
    pipe.prepare_audio_latents = start_from_the_audio
    hooks = [pipe.transformer.register_forward_pre_hook(audio_timestep, with_kwargs=True),
             pipe.transformer.register_forward_hook(blend_audio_velocity, with_kwargs=True)]
    try:
        yield
    finally:
        for hook in hooks:
            hook.remove()
        del pipe.prepare_audio_latents


def velocity_keeping(velocity, state, clean, strength, sigma):
    """v' = (1 - s)^2 * v + s * (x - c) / sigma for tokens at `state` x kept at `clean` c with strength s; c rounded as
    the state was for the transformer, so that at s = 1 (state == c) x - c is exactly 0."""
    offset = state.float() - clean.to(state.dtype).float()
    return (1 - strength) ** 2 * velocity.float() + strength * offset / sigma


@contextlib.contextmanager
def following_latent_frames(pipe, condition):
    """Within this scope, calls of the stock `pipe` (text-to-video) keep the video latent frames of `condition` (a
    `retake.RetakeCondition`: the clip's latents [1, C, F, H, W] as the VAE gives them, and `frame_strengths`, one
    strength s per latent frame) in place; without a condition it is a plain run.

    The method is `following_audio`'s, for the video tokens of each latent frame: they start at s * c + (1 - s) * n
    (c the clip's normalized latents, n the noise the stock method draws), the transformer sees them at timestep
    t * (1 - s), and their velocity is rewritten to v' = (1 - s)^2 * v + s * (x - c) / sigma, so that the stock
    loop's x0 (x - v' * sigma) is (1 - s) * x0_model + s * c. At s = 1 a token is c at every step, seen clean; at
    s = 0 it is denoised as in the plain run. Diffusers' own keyframe pipelines would append the frames as extra
    tokens instead of keeping the clip's own in place.

    Guidance combines the x0s of every token, and its rescale scales them all by one factor: the x0 of the tokens
    kept whole (s = 1) is set to c once more after guidance (the stock loop's `convert_x0_to_velocity`, wrapped), as
    Lightricks' retake blends its clean latents into each step's guided prediction; so is the audio's, where the
    condition has audio kept (`audio`, `audio_kept`: the audio's strengths are `following_audio`'s)."""
    if condition is None:
        yield
        return
    train_steps = pipe.scheduler.config.num_train_timesteps
    clean, current = {}, {}

    def start_from_the_clip(*args, **kwargs):
        noise = stock_prepare(*args, **kwargs)
        vae = pipe.vae
        normalized = pipe._normalize_latents(condition.video.to(noise.device, noise.dtype), vae.latents_mean,
                                             vae.latents_std, vae.config.scaling_factor)
        given = pipe._pack_latents(normalized, pipe.transformer_spatial_patch_size,
                                   pipe.transformer_temporal_patch_size)
        if given.shape[1:] != noise.shape[1:]:
            raise ValueError(f"the clip's latents pack to {tuple(given.shape)}, the pipeline's video is "
                             f"{tuple(noise.shape)}")
        strengths = condition.frame_strengths.to(noise.device)
        clean["latents"] = given
        clean["strength"] = strengths.repeat_interleave(given.shape[1] // len(strengths)).view(1, -1, 1)
        return clean["strength"] * given + (1 - clean["strength"]) * noise

    def video_timestep(module, args, kwargs):
        step = kwargs["timestep"]  # one per batch row: the stock text-to-video loop's
        current["sigma"] = (step.float() / train_steps).view(-1, 1, 1)
        if kwargs.get("audio_timestep") is None:
            kwargs["audio_timestep"] = step
        kwargs["timestep"] = step.view(-1, 1) * (1 - clean["strength"][..., 0].to(step.dtype))
        return args, kwargs

    def blend_video_velocity(module, args, kwargs, output):
        velocity, audio = output
        return velocity_keeping(velocity, kwargs["hidden_states"], clean["latents"], clean["strength"],
                                current["sigma"]), audio

    def kept_after_guidance(sample, denoised, step_idx, scheduler=None):
        if scheduler is None or scheduler is pipe.scheduler:  # the video's (the audio steps with a copy)
            denoised = torch.where(clean["strength"] == 1, clean["latents"], denoised)
        elif condition.audio is not None:
            if "audio" not in clean:
                packed = pipe._pack_audio_latents(condition.audio.to(denoised.device, denoised.dtype))
                clean["audio"] = pipe._normalize_audio_latents(packed, pipe.audio_vae.latents_mean,
                                                               pipe.audio_vae.latents_std)
                clean["audio_kept"] = torch.tensor(condition.audio_kept, device=denoised.device).view(1, -1, 1)
            denoised = torch.where(clean["audio_kept"], clean["audio"], denoised)
        return stock_convert(sample, denoised, step_idx, scheduler)

    stock_prepare, stock_convert = pipe.prepare_latents, pipe.convert_x0_to_velocity
    pipe.prepare_latents, pipe.convert_x0_to_velocity = start_from_the_clip, kept_after_guidance
    # First among the pre-hooks: `timestep_modulation_per_run` then sees the per-token timesteps.
    hooks = [pipe.transformer.register_forward_pre_hook(video_timestep, with_kwargs=True, prepend=True),
             pipe.transformer.register_forward_hook(blend_video_velocity, with_kwargs=True)]
    try:
        yield
    finally:
        for hook in hooks:
            hook.remove()
        del pipe.prepare_latents, pipe.convert_x0_to_velocity


def host_copies_apart_from_weights(model: torch.nn.Module) -> None:
    """After group offloading is enabled on `model`: each host copy that is the weight itself, a separate tensor over
    the same pinned memory. diffusers' group offloading takes `tensor.cpu().pin_memory()` of a TorchAO (FP8) weight as
    its host copy, which is the weight itself when it is already in pinned host memory (loaded there, so host memory
    holds the model once), and onloading, which swaps the weight's data for the GPU's, would leave every block there."""
    for module in model.modules():
        registry = getattr(module, "_diffusers_hook", None)
        hook = registry.get_hook("group_offloading") if registry is not None else None
        if hook is None:
            continue
        host_copies = hook.group.cpu_param_dict
        for tensor, host in host_copies.items():
            if host is tensor:
                host_copies[tensor] = tensor.detach()


@contextlib.contextmanager
def neighborhood_attention_fused(device: torch.device):
    """On a GPU, the diffusion decoder's FlexAttention compiled and its block mask built block by block within this
    scope: eagerly both hold every query-key pair (trillions for a 768-pixel tile). A CPU decode stays eager, exact."""
    if device.type != "cuda":
        with warnings.catch_warnings():  # torch's advice to compile, which a CPU decode does not take
            warnings.filterwarnings("ignore", message="flex_attention called without torch.compile")
            yield
        return
    from diffusers.models import attention_dispatch
    from torch.nn.attention import flex_attention

    stock_module, stock_mask = attention_dispatch.flex_attention, flex_attention.create_block_mask
    attention_dispatch.flex_attention = attention.compiled_flex_attention()
    flex_attention.create_block_mask = functools.partial(stock_mask, _compile=True)  # the decoder reads it per call
    try:
        yield
    finally:
        attention_dispatch.flex_attention, flex_attention.create_block_mask = stock_module, stock_mask
