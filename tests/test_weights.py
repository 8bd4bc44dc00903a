import pytest
import torch

from ltx2gen.stages import _component_class, load_component
from ltx2gen.weights import load_streamed, stored_tensors


def streamed(folder, model_dir, **kwargs):
    return load_streamed(_component_class(model_dir, "transformer"), folder, torch.device("cpu"), torch.bfloat16,
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
