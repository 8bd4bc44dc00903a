import pytest
import torch

from ltx2gen.components import load_component
from ltx2gen.kernels import compile_blocks
from ltx2gen.patches import token_wise_layers_in_chunks
from tests.test_quant import tiny_inputs


def run(transformer):
    with torch.no_grad():
        return transformer(**tiny_inputs())[0].float()


@pytest.mark.parametrize("offload", ["none", "group"])
def test_compiled_blocks_share_one_graph_and_offload_hooks_stay_outside_it(tiny_model, offload):
    from torch._dynamo.testing import CompileCounter

    from ltx2gen.diffusion import stream_blocks

    transformer = load_component(tiny_model, "transformer", torch.device("cpu"), torch.bfloat16)
    reference = run(transformer)
    token_wise_layers_in_chunks(transformer, chunk_tokens=4)
    compiler = CompileCounter()  # records each graph dynamo captures, then runs it eagerly
    compile_blocks(transformer, backend=compiler)
    if offload == "group":
        stream_blocks(transformer, torch.device("cpu"))
    assert torch.equal(run(transformer), reference)
    # one graph for both blocks, with no break: the offload hooks run outside it
    assert len(transformer.transformer_blocks) == 2 and compiler.frame_count == 1
    torch._dynamo.reset()
