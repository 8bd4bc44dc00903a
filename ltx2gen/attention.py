"""FP8 self-attention for the video stream: cuDNN's fused FP8 attention, through NVIDIA's cuDNN frontend (the `cudnn`
module of the `nvidia-cudnn-frontend` package), on GPUs of compute capability 9.0 (Hopper) and newer.

At 1920x1088x161 the 48 video self-attentions (32 heads x 128 over 42,840 tokens, no mask) are most of a step, and
PyTorch's fastest bf16 kernel for them (cuDNN's) runs far below the GPU's bf16 peak. The FP8 kernel takes the query,
key and value in float8 e4m3 with one scale each (their largest magnitude maps to e4m3's largest value, 448), and
on Hopper writes its output in e4m3 too, scaled so that it cannot overflow: an attention output is a weighted mean
of the values, so it is never larger than the largest value. That output rounding is most of the error this adds,
which is why FP8 attention is a choice the user makes (`--fp8-attention`).

Only the video self-attention (`attn1` of each block) runs in FP8: the text cross-attention needs its mask, and the
audio attentions are too short to gain. The quantization is plain PyTorch, so a compiled block fuses it into the
norm and rotary embedding before it; the cuDNN call itself is a custom operator the compiler leaves whole.

Also here: FlexAttention compiled once per process for LTX-2.5's diffusion decoder (`compiled_flex_attention`, put in
place by `patches.neighborhood_attention_fused`).
"""

from __future__ import annotations

import functools
import math
import types

import torch

E4M3_MAX = 448.0
# Where FP8 attention starts to pay, for `--fp8-attention auto` (H100, one video self-attention, quantization
# included, measured at ten lengths: 0.93x of bf16's time at 8,160 tokens, 1.03x at 10,710, 1.31x at 42,840; at
# 4,992 the quantization passes and the call's fixed cost outweigh the faster kernel, 0.61x; docs/BENCHMARKS.md).
# Break-even, interpolated between 8,160 and 10,710: about 10,200 tokens.
FP8_MIN_TOKENS = 10_240
# The marker set on the processors whose attention runs in FP8; `patches.video_self_attention_in_fp8` routes them.
FP8_BACKEND = "ltx2gen-cudnn-fp8"


def unavailable_reason(device: torch.device, head_dim: int = 128) -> str | None:
    """None where FP8 attention of heads `head_dim` wide runs on `device` (the kernel was built and checked on a
    small attention), else why it does not, as a sentence."""
    if head_dim % 16:
        return f"cuDNN's FP8 attention takes heads a multiple of 16 wide, and this model's are {head_dim}"
    if device.type != "cuda":
        return "FP8 attention needs an NVIDIA GPU"
    capability = torch.cuda.get_device_capability(device)
    if capability < (9, 0):
        return (f"FP8 attention needs compute capability 9.0 (Hopper) or newer, and this GPU has "
                f"{capability[0]}.{capability[1]}")
    try:
        import cudnn  # noqa: F401
    except ImportError:
        return "FP8 attention needs NVIDIA's cuDNN frontend, which is not installed (pip install nvidia-cudnn-frontend)"
    try:
        error = check_on_random_inputs(device, batch=1, tokens=256, heads=2, head_dim=head_dim)
    except Exception as err:  # the cuDNN build in use does not support this graph on this GPU
        return f"cuDNN could not run FP8 attention here ({type(err).__name__}: {str(err).splitlines()[0][:160]})"
    if not error < 0.2:
        return f"FP8 attention differs from bf16 attention by {error:.3f} on random inputs here"
    return None


def fp8_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """Attention over [batch, tokens, heads, head_dim] tensors (the layout diffusers' attention processors pass),
    computed in FP8 by cuDNN; the output in the query's dtype and layout."""
    # Scales in the inputs' dtype, so each is multiplied in without a float32 copy of the tensor; the descales
    # given to cuDNN are their exact inverses. The largest magnitude is one reduction (the infinity norm), with no
    # tensor of absolute values written first.
    scale_q, scale_k, scale_v = ((E4M3_MAX / largest_magnitude(tensor).float().clamp_min(1e-12)).to(query.dtype)
                                 for tensor in (query, key, value))
    output = cudnn_fp8_attention(*((tensor * scale).to(torch.float8_e4m3fn) for tensor, scale in
                                   ((query, scale_q), (key, scale_k), (value, scale_v))),
                                 *(as_scale(1 / scale.float()) for scale in (scale_q, scale_k, scale_v)),
                                 as_scale(scale_v.float()))
    return output.to(query.dtype) * (1 / scale_v.float()).to(query.dtype)


def largest_magnitude(tensor: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(tensor, ord=float("inf"))


def as_scale(value: torch.Tensor) -> torch.Tensor:
    """A scale as cuDNN takes it: a (1, 1, 1, 1) float32 tensor."""
    return value.reshape(1, 1, 1, 1).to(torch.float32)


@torch.library.custom_op("ltx2gen::cudnn_fp8_attention", mutates_args=())
def cudnn_fp8_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, descale_q: torch.Tensor,
                        descale_k: torch.Tensor, descale_v: torch.Tensor, scale_o: torch.Tensor) -> torch.Tensor:
    """cuDNN's FP8 attention of e4m3 [batch, tokens, heads, head_dim] tensors (per-tensor scales as (1,1,1,1)
    float32 tensors): the e4m3 output, `scale_o` times the attention."""
    graph, handles, workspace = _graph(tuple(query.shape), tuple(key.shape), query.device)
    import cudnn

    handle = _handle(query.device)
    cudnn.set_stream(handle=handle, stream=torch.cuda.current_stream(query.device).cuda_stream)
    output = torch.empty_like(query)
    amax = torch.empty(2, 1, 1, 1, dtype=torch.float32, device=query.device)
    one = torch.ones(1, 1, 1, 1, dtype=torch.float32, device=query.device)
    tensors = {"q": query, "k": key, "v": value, "descale_q": descale_q, "descale_k": descale_k,
               "descale_v": descale_v, "descale_s": one / E4M3_MAX, "scale_s": one * E4M3_MAX, "scale_o": scale_o,
               "o": output, "amax_s": amax[0:1], "amax_o": amax[1:2]}
    graph.execute({handles[name]: tensor for name, tensor in tensors.items()}, workspace, handle=handle)
    return output


@cudnn_fp8_attention.register_fake
def _(query, key, value, descale_q, descale_k, descale_v, scale_o):
    return torch.empty_like(query)


_handles: dict[int, object] = {}
_graphs: dict[tuple, tuple] = {}


def _handle(device: torch.device):
    index = device.index if device.index is not None else torch.cuda.current_device()
    if index not in _handles:
        import cudnn

        _handles[index] = cudnn.create_handle()
    return _handles[index]


def _graph(query_shape: tuple, key_shape: tuple, device: torch.device) -> tuple:
    """The cuDNN graph for these shapes, built once per process (a build takes a fraction of a second)."""
    cache_key = (query_shape, key_shape, str(device))
    if cache_key in _graphs:
        return _graphs[cache_key]
    import cudnn

    e4m3, fp32 = cudnn.data_type.FP8_E4M3, cudnn.data_type.FLOAT
    graph = cudnn.pygraph(io_data_type=e4m3, intermediate_data_type=fp32, compute_data_type=fp32,
                          handle=_handle(device))

    def bshd(name: str, shape: tuple):
        """A [batch, tokens, heads, dim] tensor, which cuDNN takes as [batch, heads, tokens, dim] with strides."""
        batch, tokens, heads, dim = shape
        return graph.tensor(name=name, dim=[batch, heads, tokens, dim],
                            stride=[tokens * heads * dim, dim, heads * dim, 1], data_type=e4m3)

    handles = {"q": bshd("q", query_shape), "k": bshd("k", key_shape), "v": bshd("v", key_shape)}
    for name in ("descale_q", "descale_k", "descale_v", "descale_s", "scale_s", "scale_o"):
        handles[name] = graph.tensor(name=name, dim=[1, 1, 1, 1], stride=[1, 1, 1, 1], data_type=fp32)
    output, _, amax_s, amax_o = graph.sdpa_fp8(
        q=handles["q"], k=handles["k"], v=handles["v"], descale_q=handles["descale_q"],
        descale_k=handles["descale_k"], descale_v=handles["descale_v"], descale_s=handles["descale_s"],
        scale_s=handles["scale_s"], scale_o=handles["scale_o"], is_inference=True,
        attn_scale=1.0 / math.sqrt(query_shape[-1]), use_causal_mask=False, name="video_self_attention")
    batch, tokens, heads, dim = query_shape
    output.set_output(True).set_dim([batch, heads, tokens, dim]).set_stride(
        [tokens * heads * dim, dim, heads * dim, 1]).set_data_type(e4m3)
    for amax in (amax_s, amax_o):
        amax.set_output(True).set_dim([1, 1, 1, 1]).set_stride([1, 1, 1, 1]).set_data_type(fp32)
    handles.update(o=output, amax_s=amax_s, amax_o=amax_o)
    graph.validate()
    graph.build_operation_graph()
    graph.create_execution_plans([cudnn.heur_mode.A, cudnn.heur_mode.FALLBACK])
    graph.check_support()
    graph.build_plans()
    workspace = torch.empty(graph.get_workspace_size(), dtype=torch.uint8, device=device)
    _graphs[cache_key] = graph, handles, workspace
    return _graphs[cache_key]


def relative_errors(output: torch.Tensor, reference: torch.Tensor) -> dict[str, float]:
    """How far `output` is from `reference`: the norm of the difference over the reference's, the mean absolute
    difference over the mean absolute reference, and the largest absolute difference over the largest reference."""
    output, reference = output.float(), reference.float()
    difference = (output - reference).abs()
    return {"norm": float(difference.norm() / reference.norm()),
            "mean": float(difference.mean() / reference.abs().mean()),
            "max": float(difference.max() / reference.abs().max())}


def check_on_random_inputs(device: torch.device, *, batch: int, tokens: int, heads: int, head_dim: int,
                           seed: int = 0) -> float:
    """FP8 attention against PyTorch's bf16 attention on seeded random inputs: the relative error (norm)."""
    generator = torch.Generator().manual_seed(seed)
    query, key, value = (torch.randn(batch, tokens, heads, head_dim, generator=generator).to(device, torch.bfloat16)
                         for _ in range(3))
    reference = torch.nn.functional.scaled_dot_product_attention(
        *(tensor.transpose(1, 2) for tensor in (query, key, value))).transpose(1, 2)
    return relative_errors(fp8_attention(query, key, value), reference)["norm"]


@functools.cache
def compiled_flex_attention() -> types.SimpleNamespace:
    """torch's flex_attention module as diffusers' attention dispatcher reads it, its kernel compiled once per process
    (with dynamic shapes after the first: the diffusion decoder's stages and edge tiles each have their own)."""
    from torch.nn.attention import flex_attention

    return types.SimpleNamespace(**{name: getattr(flex_attention, name) for name in dir(flex_attention)},
                                 flex_attention=torch.compile(flex_attention.flex_attention))
