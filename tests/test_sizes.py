"""Components' loaded sizes from their configurations alone: the published repos' configurations (no weights) give
the sizes the real checkpoints load at."""

from importlib.resources import files

import pytest
import torch

from ltx2gen import sizes

GIB = 1024**3
PUBLISHED = files("ltx2gen") / "published"


@pytest.mark.parametrize("repo,name,bf16,fp8", [
    ("rootonchair--LTX-2-19b-distilled", "transformer", 35.16, 17.93),  # 18.88B parameters, measured 35.2 GiB
    ("rootonchair--LTX-2-19b-distilled", "text_encoder", 21.92, 11.90),  # Gemma 3 12B without its image path
    ("rootonchair--LTX-2-19b-distilled", "connectors", 2.67, 2.67),  # nothing of theirs goes to float8
    ("diffusers--LTX-2.3-Distilled-Diffusers", "transformer", 35.37, 18.11),
    ("Lightricks--LTX-2.5-Diffusers", "text_encoder", 22.28, 12.09),  # the LTX-tuned Gemma 4 12B
])
def test_published_components_are_sized_from_their_configurations(repo, name, bf16, fp8):
    folder = PUBLISHED / repo
    assert not list((folder / name).glob("*.safetensors"))  # configurations only
    assert sizes.loaded_bytes(folder, name) / GIB == pytest.approx(bf16, abs=0.01)
    assert sizes.loaded_bytes(folder, name, fp8=True) / GIB == pytest.approx(fp8, abs=0.01)


def test_a_component_the_model_lacks_takes_nothing():
    assert sizes.loaded_bytes(PUBLISHED / "rootonchair--LTX-2-19b-distilled", "transformer_full") == 0


def test_fp8_counts_a_byte_a_weight_and_a_scale_a_row_for_exactly_the_layers_quantized(tiny_model):
    from ltx2gen.components import load_component
    from ltx2gen.quant import quantize_fp8

    transformer = load_component(tiny_model, "transformer", torch.device("cpu"), torch.bfloat16)
    before = sizes.module_bytes(transformer)
    assert before == sizes.loaded_bytes(tiny_model, "transformer")
    quantize_fp8(transformer, "weight")
    linears = [module for block in transformer.transformer_blocks for module in block.modules()
               if type(module.weight if hasattr(module, "weight") else None).__name__ == "Float8Tensor"]
    saved = sum(linear.weight.numel() - 4 * linear.weight.shape[0] for linear in linears)
    assert sizes.loaded_bytes(tiny_model, "transformer", fp8=True) == before - saved
