"""Offloading to the weight files: blocks read from the safetensors files as they run give the resident model's
numbers exactly, hold no block between calls and stop their reader when the stage frees them."""

import pytest
import torch

from ltx2gen import memory
from ltx2gen.components import TEXT_ENCODER_LAYERS, TEXT_ENCODER_UNUSED, component_class
from ltx2gen.diffusion import load_transformer
from ltx2gen.streaming import from_files
from tests.test_quant import tiny_inputs

CPU = torch.device("cpu")


def test_a_transformer_read_from_its_files_block_by_block_computes_exactly_the_resident_ones(tiny_model):
    resident = load_transformer(tiny_model, CPU, torch.bfloat16)
    streamed = from_files(component_class(tiny_model, "transformer"), tiny_model / "transformer", CPU,
                          torch.bfloat16, blocks="transformer_blocks")
    blocks = streamed.transformer_blocks
    assert all(parameter.device.type == "meta" for parameter in blocks.parameters())  # no block until it runs
    assert streamed.proj_in.weight.device == CPU  # everything outside the blocks stays
    inputs = tiny_inputs()
    with torch.no_grad():
        expected = resident(**inputs)[0]
        for _ in range(2):  # a second step reads every block again, the first one read ahead
            assert torch.equal(streamed(**inputs)[0], expected)
            assert all(parameter.device.type == "meta" for parameter in blocks.parameters())
    streamed.blocks_from_files.close()


def test_fp8_blocks_from_the_files_are_quantized_as_they_arrive(tiny_model):
    from ltx2gen.quant import quantize_block

    quantized = []
    streamed = from_files(component_class(tiny_model, "transformer"), tiny_model / "transformer", CPU,
                          torch.bfloat16, blocks="transformer_blocks",
                          on_block=lambda block: quantized.append(quantize_block(block, "weight")))
    with torch.no_grad():
        streamed(**tiny_inputs())
    assert len(quantized) == len(streamed.transformer_blocks) and all(quantized)
    streamed.blocks_from_files.close()


def test_the_text_encoder_read_from_its_files_encodes_as_the_resident_one(tiny_model):
    from ltx2gen.text import PromptRequest, encode_prompt

    tracker = memory.MemoryTracker(CPU)
    request = PromptRequest("a fox in the snow", "blur", True)
    resident, streamed = (tracker.run("text", encode_prompt, tiny_model, request, CPU, torch.float32, loras=(),
                                      text_encoder=mode) for mode in ("resident", "files"))
    assert torch.equal(resident.video, streamed.video) and torch.equal(resident.audio, streamed.audio)


def test_freeing_a_model_read_from_its_files_stops_its_reader(tiny_model):
    import threading

    with memory.MemoryTracker(CPU).stage("text") as stage:
        stage.load("text_encoder", lambda: from_files(
            component_class(tiny_model, "text_encoder"), tiny_model / "text_encoder", CPU, torch.float32,
            blocks=TEXT_ENCODER_LAYERS, without=TEXT_ENCODER_UNUSED))
        with torch.no_grad():
            stage.models["text_encoder"](input_ids=torch.tensor([[2, 5, 6]]))
        assert any(thread.name.startswith("block-reader") for thread in threading.enumerate())
    assert not any(thread.name.startswith("block-reader") for thread in threading.enumerate())


@pytest.mark.gpu
def test_on_a_gpu_the_blocks_read_from_files_leave_the_transformer_off_the_gpu_and_match_it(tiny_model):
    cuda = torch.device("cuda")
    resident = load_transformer(tiny_model, cuda, torch.bfloat16)
    inputs = {name: value.to(cuda) if isinstance(value, torch.Tensor) else value
              for name, value in tiny_inputs("cuda").items()}
    with torch.no_grad():
        expected = resident(**inputs)[0]
    del resident
    torch.cuda.empty_cache()
    streamed = from_files(component_class(tiny_model, "transformer"), tiny_model / "transformer", cuda,
                          torch.bfloat16, blocks="transformer_blocks")
    with torch.no_grad():
        assert torch.equal(streamed(**inputs)[0], expected)
    assert all(parameter.device.type == "meta" for parameter in streamed.transformer_blocks.parameters())
    assert all(buffer.is_pinned() for _, buffer in streamed.blocks_from_files.ahead.popitem()[1].result())
    streamed.blocks_from_files.close()
