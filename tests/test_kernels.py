import pytest
import torch

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
