import pytest
import torch

from ltx2gen.components import component_class, load_component
from ltx2gen.weights import load_streamed, stored_tensors


def streamed(folder, model_dir, **kwargs):
    return load_streamed(component_class(model_dir, "transformer"), folder, torch.device("cpu"), torch.bfloat16,
                         **kwargs)


@pytest.fixture
def sharded_transformer(tiny_model, tmp_path):
    """The tiny transformer saved in many small shards, as large checkpoints are."""
    folder = tmp_path / "transformer"
    load_component(tiny_model, "transformer", torch.device("cpu"), torch.float32).save_pretrained(
        folder, max_shard_size="20KB")
    assert len(list(folder.glob("*.safetensors"))) > 3
    return folder


def test_streamed_weights_equal_the_diffusers_loaded_ones(tiny_model, sharded_transformer):
    reference = load_component(tiny_model, "transformer", torch.device("cpu"), torch.bfloat16).state_dict()
    loaded = streamed(sharded_transformer, tiny_model).state_dict()
    assert loaded.keys() == reference.keys()
    assert all(torch.equal(loaded[name], reference[name]) and loaded[name].dtype == reference[name].dtype
               for name in reference)


def test_each_block_is_handed_over_once_its_weights_have_all_arrived(tiny_model, sharded_transformer):
    handed = []

    def on_block(block):
        assert all(parameter.device.type == "cpu" for parameter in block.parameters())  # none left on meta
        handed.append(block)

    transformer = streamed(sharded_transformer, tiny_model, on_block=on_block)
    assert handed == list(transformer.transformer_blocks)


def test_weights_that_do_not_match_the_model_are_refused(tiny_model, tmp_path):
    from safetensors.torch import save_file

    folder = tmp_path / "transformer"
    folder.mkdir()
    (folder / "config.json").write_text((tiny_model / "transformer" / "config.json").read_text())
    save_file({"proj_in.weight": torch.zeros(2, 2), "not_a_layer.weight": torch.zeros(1)},
              str(folder / "model.safetensors"))
    with pytest.raises(ValueError, match="missing .* 1 unexpected .*not_a_layer"):
        streamed(folder, tiny_model)
    assert [tensor.name for tensor in stored_tensors(folder)] == ["not_a_layer.weight", "proj_in.weight"]


def gemma_states(model):
    ids = torch.tensor([[2, 10, 11, 12, 40, 41]])
    with torch.no_grad():
        return torch.stack(model(input_ids=ids, output_hidden_states=True).hidden_states)


@pytest.mark.parametrize("fp8", [False, True])
def test_streamed_text_encoder_equals_from_pretrained_with_its_files_read_one_tensor_at_a_time(tiny_model, fp8):
    from transformers import Gemma3ForConditionalGeneration

    from ltx2gen.quant import text_encoder_quantization

    reference = Gemma3ForConditionalGeneration.from_pretrained(
        tiny_model / "text_encoder", dtype=torch.bfloat16, device_map="cpu",
        quantization_config=text_encoder_quantization() if fp8 else None)
    ours = load_component(tiny_model, "text_encoder", torch.device("cpu"), torch.bfloat16, fp8=fp8)
    assert ours.lm_head.weight is ours.model.language_model.embed_tokens.weight  # still tied
    assert torch.equal(gemma_states(ours), gemma_states(reference))


def test_published_gemma_names_pair_with_the_built_model_by_transformers_own_mapping():
    from ltx2gen.testing.build import build_text_encoder
    from ltx2gen.weights import checkpoint_names

    stored = ["language_model.model.layers.0.mlp.up_proj.weight", "language_model.model.embed_tokens.weight",
              "vision_tower.vision_model.post_layernorm.weight", "multi_modal_projector.mm_soft_emb_norm.weight",
              "model.language_model.norm.weight"]  # the last as transformers 5 saves it
    assert checkpoint_names(build_text_encoder("tiny", dtype=torch.float32), stored) == dict(zip(stored, [
        "model.language_model.layers.0.mlp.up_proj.weight", "model.language_model.embed_tokens.weight",
        "model.vision_tower.post_layernorm.weight", "model.multi_modal_projector.mm_soft_emb_norm.weight",
        "model.language_model.norm.weight"]))


def test_the_published_text_encoder_streams_from_its_indexed_float32_shards_alone(tiny_model, capsys):
    from ltx2gen.weights import weight_files

    folder = tiny_model / "text_encoder"
    assert len(list(folder.glob("diffusion_pytorch_model-*-of-00012.safetensors"))) == 12  # the stale set is there
    assert [file.name for file in weight_files(folder)] == [f"model-{i:05d}-of-00011.safetensors" for i in
                                                            range(1, 12)]
    model = load_component(tiny_model, "text_encoder", torch.device("cpu"), torch.bfloat16)
    assert "from_pretrained" not in capsys.readouterr().out  # streamed, not the fallback
    assert model.model.vision_tower is None and model.model.multi_modal_projector is None  # never read
    assert {parameter.dtype for parameter in model.parameters()} == {torch.bfloat16}  # cast from float32


def test_a_text_encoder_whose_names_do_not_match_loads_with_from_pretrained_and_says_so(tiny_model, tmp_path,
                                                                                      capsys):
    import json
    import shutil

    from safetensors.torch import load_file, save_file

    folder = tmp_path / "model"
    shutil.copytree(tiny_model, folder)
    index_file = folder / "text_encoder" / "model.safetensors.index.json"
    index = json.loads(index_file.read_text())
    shard = folder / "text_encoder" / index["weight_map"]["language_model.model.norm.weight"]
    save_file({**load_file(shard), "language_model.model.unused_extra": torch.zeros(2)}, shard,
              metadata={"format": "pt"})
    index["weight_map"]["language_model.model.unused_extra"] = shard.name
    index_file.write_text(json.dumps(index))
    model = load_component(folder, "text_encoder", torch.device("cpu"), torch.float32)
    assert "1 unexpected (e.g. ['model.language_model.unused_extra']); loading it with from_pretrained" in \
        capsys.readouterr().out
    reference = load_component(tiny_model, "text_encoder", torch.device("cpu"), torch.float32)
    assert torch.equal(gemma_states(model), gemma_states(reference))


def test_a_read_error_in_the_reader_thread_reaches_the_caller(sharded_transformer):
    from ltx2gen.weights import read_tensors

    tensors = stored_tensors(sharded_transformer)
    last = max(sharded_transformer.glob("*.safetensors"))
    with open(last, "r+b") as handle:
        handle.truncate(last.stat().st_size - 8)
    with pytest.raises(ValueError, match="truncated"):
        for _ in read_tensors(tensors, torch.device("cpu"), torch.float32, evict=False):
            pass


def test_stopping_early_ends_the_reader_thread(sharded_transformer):
    import threading

    from ltx2gen.weights import read_tensors

    before = threading.active_count()
    reading = read_tensors(stored_tensors(sharded_transformer), torch.device("cpu"), torch.float32, evict=False)
    name, value = next(reading)
    reading.close()
    assert threading.active_count() == before and value.numel() > 0


def test_tensors_read_in_pieces_equal_the_stored_ones(sharded_transformer):
    from safetensors.torch import load_file

    from ltx2gen.weights import read_tensors

    stored = {}
    for file in sharded_transformer.glob("*.safetensors"):
        stored.update(load_file(file))
    tensors = stored_tensors(sharded_transformer)
    assert max(tensor.nbytes for tensor in tensors) > 3 * 1000  # several pieces, the last one short
    read = dict(read_tensors(tensors, torch.device("cpu"), torch.bfloat16, evict=False, chunk_bytes=1000))
    assert read.keys() == stored.keys()
    for name, value in stored.items():
        assert read[name].dtype == (torch.bfloat16 if value.is_floating_point() else value.dtype)
        assert torch.equal(read[name], value.to(read[name].dtype)), name
