import pytest
import torch

from ltx2gen import kernels
from ltx2gen.kernels import chunk_token_wise_layers, compile_blocks
from ltx2gen.stages import load_component
from tests.test_quant import tiny_inputs


def run(transformer):
    with torch.no_grad():
        return transformer(**tiny_inputs())[0].float()


def recording_tokens(forward, token_counts: list):
    def recorded(x, *args, **kwargs):
        token_counts.append(x.shape[1])
        return forward(x, *args, **kwargs)

    return recorded


def test_feed_forward_and_norms_in_token_chunks_give_the_same_output(tiny_model):
    transformer = load_component(tiny_model, "transformer", torch.device("cpu"), torch.bfloat16)
    reference = run(transformer)
    block = transformer.transformer_blocks[0]
    seen = {name: [] for name in ("ff", "audio_ff", "norm1", "attn1.norm_q", "attn2.norm_k")}
    for name in seen:  # record what the original forward receives, under the chunking wrapper
        layer = block.get_submodule(name)
        layer.forward = recording_tokens(layer.forward, seen[name])
    chunk_token_wise_layers(transformer, chunk_tokens=4)
    chunked = run(transformer)
    # 6 video tokens as 4 + 2, 5 audio tokens as 4 + 1; the text keys (7 tokens) too: every token-wise layer
    assert seen == {"ff": [4, 2], "audio_ff": [4, 1], "norm1": [4, 2], "attn1.norm_q": [4, 2], "attn2.norm_k": [4, 3]}
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


@pytest.mark.parametrize("offload", ["none", "group"])
def test_compiled_blocks_share_one_graph_and_offload_hooks_stay_outside_it(tiny_model, offload):
    from torch._dynamo.testing import CompileCounter

    from ltx2gen.stages import stream_blocks

    transformer = load_component(tiny_model, "transformer", torch.device("cpu"), torch.bfloat16)
    reference = run(transformer)
    chunk_token_wise_layers(transformer, chunk_tokens=4)
    compiler = CompileCounter()  # records each graph dynamo captures, then runs it eagerly
    compile_blocks(transformer, backend=compiler)
    if offload == "group":
        stream_blocks(transformer, torch.device("cpu"))
    assert torch.equal(run(transformer), reference)
    # one graph for both blocks, with no break: the offload hooks run outside it
    assert len(transformer.transformer_blocks) == 2 and compiler.frame_count == 1
    torch._dynamo.reset()
