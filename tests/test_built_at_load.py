"""A model folder's components built at load: only their configuration on disk, built with the folder's seed where
they load (the text encoder: Gemma 3, or LTX-2.5's Gemma 4), quantized layer by layer with FP8."""

import json

import pytest
import torch

from ltx2gen.built_at_load import MARKER, build_at_load, built_at_load_names
from ltx2gen.testing.published import LTX25_REPO
from ltx2gen.testing.synthetic import write_model


def test_a_folder_without_the_marker_loads_every_component_from_its_files(tiny_model):
    assert built_at_load_names(tiny_model) == []
    assert build_at_load(tiny_model, "text_encoder", torch.device("cpu"), torch.float32) is None


def test_a_marker_naming_a_component_that_cannot_be_built_is_refused(tmp_path):
    (tmp_path / MARKER).write_text(json.dumps({"seed": 0, "built_at_load": ["transformer"]}))
    assert built_at_load_names(tmp_path) == ["transformer"]
    with pytest.raises(ValueError, match="only the text encoder can be built at load, not transformer"):
        build_at_load(tmp_path, "transformer", torch.device("cpu"), torch.float32)


def test_a_component_built_at_load_is_only_configuration_on_disk_and_the_same_each_load(tmp_path):
    from ltx2gen.components import load_component

    model = write_model("tiny", tmp_path / "model", built_at_load=("text_encoder",))
    assert sorted(path.name for path in (model / "text_encoder").iterdir()) == ["config.json"]
    first, second = (load_component(model, "text_encoder", torch.device("cpu"), torch.float32) for _ in range(2))
    assert type(first).__name__ == "Gemma3ForConditionalGeneration"
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))


def test_a_text_encoder_built_in_fp8_quantizes_the_layers_loading_quantizes_and_keeps_the_values(tmp_path):
    from torchao.quantization import Float8Tensor

    from ltx2gen.components import load_component

    cpu = torch.device("cpu")
    written = write_model("tiny", tmp_path / "written")
    at_load = write_model("tiny", tmp_path / "at_load", built_at_load=("text_encoder",))
    loaded = load_component(written, "text_encoder", cpu, torch.float32, fp8=True)  # transformers + torchao
    built, built_fp8 = (load_component(at_load, "text_encoder", cpu, torch.float32, fp8=fp8) for fp8 in (False, True))

    def float8_layers(model):  # of the decoder: which unused submodules a loader leaves out is its own choice
        return sorted(name for name, module in model.named_modules() if name.startswith("model.language_model.")
                      and isinstance(getattr(module, "weight", None), Float8Tensor))

    assert float8_layers(loaded) and float8_layers(built_fp8) == float8_layers(loaded) and float8_layers(built) == []
    assert built_fp8.lm_head.weight is built_fp8.model.language_model.embed_tokens.weight
    layer, layer_fp8 = (model.model.language_model.layers[0].mlp.up_proj.weight for model in (built, built_fp8))
    assert torch.allclose(layer_fp8.dequantize(), layer, rtol=0.07, atol=1e-3)  # e4m3: 3 mantissa bits


def test_building_in_fp8_frees_each_unquantized_weight_once_quantized(tmp_path):
    import gc
    import weakref

    from ltx2gen.quant import quantize_block

    model_dir = write_model("tiny", tmp_path / "model", built_at_load=("text_encoder",))
    originals, alive_while_building = [], []

    def quantize(layer):
        gc.collect()
        alive_while_building.append(sum(ref() is not None for ref in originals))  # the layers quantized before
        originals.append(weakref.ref(layer.weight))
        quantize_block(layer, "weight")

    model = build_at_load(model_dir, "text_encoder", torch.device("cpu"), torch.float32, quantize=quantize)
    assert len(originals) > 10 and set(alive_while_building) == {0}  # never a second copy of the encoder
    del model


def test_a_25_text_encoder_built_at_load_is_gemma_4(tmp_path):
    model = write_model("tiny", tmp_path / "model", repo=LTX25_REPO, built_at_load=("text_encoder",))
    assert sorted(path.name for path in (model / "text_encoder").iterdir()) == ["config.json"]
    encoder = build_at_load(model, "text_encoder", torch.device("cpu"), torch.float32)
    assert type(encoder).__name__ == "Gemma4UnifiedForConditionalGeneration"
    assert encoder.lm_head.weight is encoder.model.language_model.embed_tokens.weight
