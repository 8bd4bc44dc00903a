import json


from ltx2gen.synthetic import PRESETS, main


def test_cli_writes_a_model_the_stock_pipeline_loads(tmp_path):
    from diffusers import LTX2Pipeline

    assert main(["--preset", "tiny", "--out", str(tmp_path / "m")]) == 0
    index = json.loads((tmp_path / "m" / "model_index.json").read_text())
    assert index["_class_name"] == "LTX2Pipeline"
    pipe = LTX2Pipeline.from_pretrained(tmp_path / "m", local_files_only=True)
    assert pipe.vae.spatial_compression_ratio == 32 and pipe.vae.temporal_compression_ratio == 8
    assert pipe.tokenizer("w1 w2").input_ids


def test_full_preset_has_the_real_transformer_size():
    from accelerate import init_empty_weights
    from diffusers import LTX2VideoTransformer3DModel

    with init_empty_weights():
        transformer = LTX2VideoTransformer3DModel(**PRESETS["full"]()["transformer"])
    params = sum(p.numel() for p in transformer.parameters())
    assert 18.8e9 < params < 19.0e9
    assert transformer.config.num_layers == 48 and transformer.config.rope_type == "split"


def test_a_component_built_at_load_is_only_configuration_on_disk_and_the_same_each_load(tmp_path):
    import torch

    from ltx2gen.stages import load_component
    from ltx2gen.synthetic import write_model

    model = write_model("tiny", tmp_path / "model", built_at_load=("text_encoder",))
    assert sorted(path.name for path in (model / "text_encoder").iterdir()) == ["config.json"]
    first, second = (load_component(model, "text_encoder", torch.device("cpu"), torch.float32) for _ in range(2))
    assert type(first).__name__ == "Gemma3ForConditionalGeneration"
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))


def test_a_text_encoder_built_in_fp8_quantizes_the_layers_loading_quantizes_and_keeps_the_values(tmp_path):
    import torch
    from torchao.quantization import Float8Tensor

    from ltx2gen.stages import load_component
    from ltx2gen.synthetic import write_model

    cpu = torch.device("cpu")
    written = write_model("tiny", tmp_path / "written")
    at_load = write_model("tiny", tmp_path / "at_load", built_at_load=("text_encoder",))
    loaded = load_component(written, "text_encoder", cpu, torch.float32, fp8=True)  # transformers + torchao
    built, built_fp8 = (load_component(at_load, "text_encoder", cpu, torch.float32, fp8=fp8) for fp8 in (False, True))

    def float8_layers(model):
        return sorted(name for name, module in model.named_modules() if isinstance(getattr(module, "weight", None),
                                                                                     Float8Tensor))

    assert float8_layers(built_fp8) == float8_layers(loaded) and float8_layers(built) == []
    assert built_fp8.lm_head.weight is built_fp8.model.language_model.embed_tokens.weight
    layer, layer_fp8 = (model.model.language_model.layers[0].mlp.up_proj.weight for model in (built, built_fp8))
    assert torch.allclose(layer_fp8.dequantize(), layer, rtol=0.07, atol=1e-3)  # e4m3: 3 mantissa bits


def test_building_in_fp8_frees_each_unquantized_weight_once_quantized(tmp_path):
    import gc
    import weakref

    import torch

    from ltx2gen.quant import quantize_block
    from ltx2gen.synthetic import build_at_load, write_model

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
