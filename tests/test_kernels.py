import pytest
import torch

from ltx2gen import kernels
from ltx2gen.kernels import chunk_feed_forward, choose_attention, set_self_attention_backend
from ltx2gen.stages import load_component
from tests.test_quant import tiny_inputs


def run(transformer, device="cpu"):
    inputs = {name: value.to(device) if isinstance(value, torch.Tensor) else value
              for name, value in tiny_inputs().items()}
    with torch.no_grad():
        return transformer(**inputs)[0].float()


def test_feed_forward_in_token_chunks_gives_the_same_output(tiny_model):
    transformer = load_component(tiny_model, "transformer", torch.device("cpu"), torch.bfloat16)
    reference = run(transformer)
    seen = []
    handle = transformer.transformer_blocks[0].ff.net[0].register_forward_hook(
        lambda module, args, output: seen.append(args[0].shape[1]))
    chunk_feed_forward(transformer, chunk_tokens=4)  # the tiny clip has 6 video tokens: chunks of 4 and 2
    chunked = run(transformer)
    handle.remove()
    assert seen == [4, 2]
    torch.testing.assert_close(chunked, reference, rtol=0, atol=1e-2)


def test_rotary_embedding_in_token_chunks_gives_the_same_output(tiny_model, monkeypatch):
    from diffusers.models.transformers import transformer_ltx2

    transformer = load_component(tiny_model, "transformer", torch.device("cpu"), torch.bfloat16)
    reference = run(transformer)
    original, token_counts = transformer_ltx2.apply_split_rotary_emb, []

    def counted(x, freqs):
        token_counts.append(x.shape[1])
        return original(x, freqs)

    monkeypatch.setattr(transformer_ltx2, "apply_split_rotary_emb", counted)
    monkeypatch.setattr(kernels, "ROTARY_CHUNK_TOKENS", 4)
    kernels.chunk_rotary_embedding()
    kernels.chunk_rotary_embedding()  # installed once, not wrapped twice
    assert torch.equal(run(transformer), reference)
    assert token_counts and max(token_counts) == 4  # 6 video tokens as 4 + 2, 5 audio tokens as 4 + 1


def test_cudnn_attention_is_chosen_on_hopper_only():
    assert choose_attention("auto", torch.device("cpu")) == "native"
    assert choose_attention("cudnn", torch.device("cpu")) == "cudnn"


def test_only_the_unmasked_video_self_attention_changes_kernel(tiny_model):
    transformer = load_component(tiny_model, "transformer", torch.device("cpu"), torch.bfloat16)
    set_self_attention_backend(transformer, "cudnn")
    block = transformer.transformer_blocks[0]
    assert block.attn1.processor._attention_backend.value == "_native_cudnn"
    for masked in (block.attn2, block.audio_attn1, block.audio_attn2, block.audio_to_video_attn):
        assert masked.processor._attention_backend is None


@pytest.mark.gpu
def test_cudnn_self_attention_stays_close_to_native(tiny_model):
    transformer = load_component(tiny_model, "transformer", torch.device("cuda"), torch.bfloat16)
    reference = run(transformer, "cuda")
    set_self_attention_backend(transformer, "cudnn")
    torch.testing.assert_close(run(transformer, "cuda"), reference, rtol=0, atol=2e-2)
