"""One clip over several GPUs: under `torchrun` without `--batch`, every rank holds the transformer and computes its
share of the video tokens. The video self-attention and the video-to-audio cross-attention, whose keys are the split
video tokens, use diffusers' Ulysses context parallelism (each trades its token split for a head split with an
all-to-all, so every rank attends over all tokens for 1/N of the heads). Every other attention has keys that are
whole on every rank (the prompt, the audio), so it runs locally with no exchange: the text cross-attention and the
audio-to-video cross-attention over the rank's own video queries, and the audio stream (1-2% of the tokens) whole on
every rank.

LTX-2.3 and LTX-2.5 split the same way: what they add works token by token or per batch row, never across tokens.
The gated attention's per-head gates come from each query token's own hidden state and scale the attention output
once the exchange has given the rank its own tokens back with all heads. The prompt AdaLN and the cross-attention
modulation (`use_cross_timestep`) come from the step's timestep and sigmas, one per batch row, and modulate the whole
prompt on every rank; the per-modality text projections run in the connectors, before the transformer.
Spatio-temporal guidance replaces a chosen block's self-attention by its value projection, token by token, and
modality isolation skips the audio-video cross-attentions; both are decided per call, alike on every rank, so all
ranks skip or join each exchange together. LTX-2.5's one new per-token input, `video_keyframes_mask` (tokens that
get the keyframe position embedding), is left whole: only diffusers' keyframe pipelines pass it, not `LTX2Pipeline`,
and diffusers' split hook fails on a planned input that a call leaves out. Given whole to a split transformer, it
would not match the rank's share of the tokens and the call would fail rather than compute something else.

The plan is ours, not the one diffusers ships for LTX-2, because that one fails on the LTX-2.0 checkpoint (run on
two H200s: "The size of tensor a (2) must match the size of tensor b (4)"):
- LTX-2.0 uses the "split" rotary embedding, which is 4-D ([batch, heads, tokens, dim/2]); diffusers' plan expects
  3-D rotary tensors, so it leaves them whole ("split will not be applied") while the video tokens are split.
- The audio-to-video cross-attention rotates the video queries with a second rotary embedding (`cross_attn_rope`),
  which that plan does not split at all.
- It splits the prompt too, and the masked text attentions then hand Ulysses a mask repeated per head, which no
  longer matches the rank's share of the heads.
"""

from __future__ import annotations

import math

import torch

from ltx2gen.checkpoint import latent_frame_count
from ltx2gen.errors import ConfigError
from ltx2gen.patches import attentions_kept_local, parallel_config_on

# Attentions of each block whose keys and values are whole on every rank: they need no exchange between ranks.
LOCAL_ATTENTIONS = ("attn2", "audio_attn1", "audio_attn2", "audio_to_video_attn")


def plan(rope_type: str) -> dict:
    """diffusers' context-parallel plan for `LTX2VideoTransformer3DModel`: which inputs are split along the tokens
    and where the video output is gathered back."""
    from diffusers.models._modeling_parallel import ContextParallelInput, ContextParallelOutput

    # "split" rotary embeddings are [batch, heads, tokens, dim/2]; "interleaved" ones [batch, tokens, dim].
    rotary = (ContextParallelInput(split_dim=2, expected_dims=4, split_output=True) if rope_type == "split"
              else ContextParallelInput(split_dim=1, expected_dims=3, split_output=True))
    return {
        "": {"hidden_states": ContextParallelInput(split_dim=1, expected_dims=3, split_output=False)},
        "rope": {0: rotary, 1: rotary},
        "cross_attn_rope": {0: rotary, 1: rotary},
        "proj_out": ContextParallelOutput(gather_dim=1, expected_dims=3),
    }


def check_split(world_size: int, width: int, height: int, num_frames: int, *, heads: int = 32) -> None:
    """The split must be even: video tokens and attention heads divisible by the number of GPUs.
    Raises ConfigError with sizes that would work."""
    if world_size == 1:
        return
    if heads % world_size:
        divisors = [n for n in range(2, heads + 1) if heads % n == 0]
        raise ConfigError(f"one clip over {world_size} GPUs: the transformer's {heads} attention heads must divide "
                          f"evenly; use --nproc-per-node {' or '.join(map(str, divisors[:4]))}")
    latent_frames = latent_frame_count(num_frames)
    tokens = latent_frames * (height // 32) * (width // 32)
    if tokens % world_size:
        step = world_size // math.gcd(world_size, latent_frames * (height // 32)) * 32
        raise ConfigError(f"one clip over {world_size} GPUs: {width}x{height}x{num_frames} has {tokens} video "
                          f"tokens, which do not split evenly; use a --width that is a multiple of {step}")


def join(device: torch.device) -> None:
    """Meet the other ranks: over NCCL between CUDA GPUs, over gloo between CPU processes (no faster than one
    process, which has the host's cores to itself; it is how the tests check the split without GPUs)."""
    import torch.distributed as dist

    if device.type == "cuda":
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
    else:
        dist.init_process_group("gloo")


def enable(transformer: torch.nn.Module, world_size: int, device: torch.device) -> None:
    """Split the transformer's video tokens over all ranks of the (already joined) process group; `device` is this
    rank's."""
    from diffusers import ContextParallelConfig

    parallel_config_on(transformer, device)
    transformer.enable_parallelism(config=ContextParallelConfig(ulysses_degree=world_size),
                                   cp_plan=plan(transformer.config.rope_type))
    attentions_kept_local(transformer, LOCAL_ATTENTIONS)


def from_rank_zero(value, device: torch.device):
    """Rank 0's `value` (any picklable object, tensors included) on every rank; other ranks pass None."""
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=0, device=device)
    return box[0]


def leave(finished: bool = True) -> None:
    """Leave the process group. Ranks that `finished` meet once more first, so that none tears down its connections
    while another still exchanges over them (a rank torn down mid-exchange aborts); a failed rank leaves at once,
    since the others may never come."""
    import torch.distributed as dist

    if dist.is_initialized():
        if finished:
            dist.barrier()
        dist.destroy_process_group()

