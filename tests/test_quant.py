import pytest
import torch

from ltx2gen.components import load_component
from ltx2gen.kernels import compile_blocks
from ltx2gen.quant import fp8_supported, is_dynamic_layer, quantize_fp8


def test_fp8_is_not_offered_on_cpu():
    assert not fp8_supported(torch.device("cpu"))


def tiny_inputs(device: str = "cpu"):
    generator = torch.Generator().manual_seed(0)

    def noise(*shape):
        return torch.randn(*shape, generator=generator).to(device, torch.bfloat16)

    return dict(hidden_states=noise(1, 6, 4), audio_hidden_states=noise(1, 5, 4),
                encoder_hidden_states=noise(1, 7, 32), audio_encoder_hidden_states=noise(1, 7, 32),
                timestep=torch.tensor([500.0], device=device), num_frames=1, height=2, width=3, audio_num_frames=5,
                return_dict=False)


def test_fp8_weights_replace_only_block_linears_and_stay_close(tiny_model):
    transformer = load_component(tiny_model, "transformer", torch.device("cpu"), torch.bfloat16)
    inputs = tiny_inputs()
    with torch.no_grad():
        reference = transformer(**inputs)[0].float()
        changed = quantize_fp8(transformer, "weight")
        quantized = transformer(**inputs)[0].float()
    assert changed > 0
    assert "float8" in str(transformer.transformer_blocks[0].attn1.to_q.weight.dtype) or \
        "Float8" in type(transformer.transformer_blocks[0].attn1.to_q.weight).__name__
    assert transformer.proj_in.weight.dtype == torch.bfloat16  # input projection stays in bf16
    relative_error = (quantized - reference).norm() / reference.norm()
    assert 0 < relative_error < 0.1


def test_block_by_block_quantization_equals_whole_model_quantization(tiny_model):
    outputs = []
    for device in (None, torch.device("cpu")):
        transformer = load_component(tiny_model, "transformer", torch.device("cpu"), torch.bfloat16)
        quantize_fp8(transformer, "weight", device)
        with torch.no_grad():
            outputs.append(transformer(**tiny_inputs())[0])
    assert torch.equal(*outputs)


def test_dynamic_layers_are_the_video_token_gemms_only():
    video_rows = ("attn1.to_q", "attn1.to_out.0", "attn2.to_q", "attn2.to_out.0", "ff.net.0.proj", "ff.net.2",
                  "audio_to_video_attn.to_q", "audio_to_video_attn.to_out.0", "video_to_audio_attn.to_k",
                  "video_to_audio_attn.to_v")
    audio_or_text_rows = ("attn2.to_k", "attn2.to_v", "audio_attn1.to_q", "audio_ff.net.2",
                          "audio_to_video_attn.to_k", "audio_to_video_attn.to_v", "video_to_audio_attn.to_q",
                          "video_to_audio_attn.to_out.0")
    assert all(is_dynamic_layer(name) for name in video_rows)
    assert not any(is_dynamic_layer(name) for name in audio_or_text_rows)


@pytest.mark.gpu
def test_dynamic_fp8_runs_compiled_and_stays_close_to_bf16(tiny_model):
    device = torch.device("cuda")
    transformer = load_component(tiny_model, "transformer", device, torch.bfloat16)
    inputs = tiny_inputs("cuda")
    with torch.no_grad():
        reference = transformer(**inputs)[0].float()
        quantize_fp8(transformer, "dynamic")
        compile_blocks(transformer)
        quantized = transformer(**inputs)[0].float()
    assert "Float8" in type(transformer.transformer_blocks[0].ff.net[2].weight).__name__
    relative_error = (quantized - reference).norm() / reference.norm()
    assert 0 < relative_error < 0.1


def test_fp8_text_encoder_stores_its_linears_in_float8_as_it_loads_and_conditions_closely(tiny_model, tmp_path):
    from torchao.quantization import Float8Tensor

    from ltx2gen.memory import MemoryTracker
    from ltx2gen.text import EmbeddingCache, PromptRequest, encode_prompts, load_text_encoder

    cpu = torch.device("cpu")
    with MemoryTracker(cpu).stage("text") as stage:
        gemma = load_text_encoder(stage, tiny_model, cpu, torch.float32, mode="fp8")  # read from its files
        linears = {name: module for name, module in gemma.named_modules() if isinstance(module, torch.nn.Linear)}
        assert all(isinstance(module.weight, Float8Tensor) for name, module in linears.items()
                   if name.startswith("model.language_model."))  # every layer the prompt passes through
        assert not isinstance(linears["lm_head"].weight, Float8Tensor)  # tied to the bf16 input embedding
        del gemma, linears
    requests = [PromptRequest("a red fox in snow", "blur", True)]
    cache = EmbeddingCache(tmp_path / "cache")
    encoded = {}
    for mode in ("resident", "fp8"):
        with MemoryTracker(cpu).stage("text") as stage:
            encoded[mode] = encode_prompts(stage, tiny_model, requests, cpu, torch.float32, cache=cache,
                                           text_encoder=mode)[0]
    assert len(list(cache.folder.iterdir())) == 2  # an FP8 encoding never answers for a bf16 one
    exact = encoded["resident"].video
    error = (encoded["fp8"].video - exact).norm() / exact.norm()
    assert 0 < error < 0.1, error
