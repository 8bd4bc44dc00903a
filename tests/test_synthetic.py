"""The synthetic models follow the published LTX-2.0 repos: their configuration (ltx2gen/published/, changed only in
sizes), their file layout (shard names and counts, tensor names, on-disk dtypes) and their tokenizer settings."""

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from ltx2gen import synthetic
from ltx2gen.checkpoint import SYNTHETIC_MARKER
from ltx2gen.synthetic import PRESETS, REPOS, main, write_model

GEMMA_NO_LIMIT = 1000000000000000019884624838656  # transformers' default model_max_length, int(1e30)
CONFIG_FILES = ["model_index.json", "scheduler/scheduler_config.json", "transformer/config.json",
                "connectors/config.json", "vae/config.json", "audio_vae/config.json", "vocoder/config.json",
                "text_encoder/config.json", "latent_upsampler/config.json", "tokenizer/tokenizer_config.json",
                "tokenizer/special_tokens_map.json", "layout.json"]
# Every key the tiny preset may change (sizes, and the token ids that follow the tiny vocabulary); any other
# difference from the published file is a bug.
TINY_SIZE_KEYS = {
    "transformer/config.json": {
        "in_channels", "out_channels", "num_attention_heads", "attention_head_dim", "cross_attention_dim",
        "audio_in_channels", "audio_out_channels", "audio_num_attention_heads", "audio_attention_head_dim",
        "audio_cross_attention_dim", "num_layers", "caption_channels"},
    "connectors/config.json": {
        "caption_channels", "text_proj_in_factor", "video_connector_num_attention_heads",
        "video_connector_attention_head_dim", "video_connector_num_layers", "audio_connector_num_attention_heads",
        "audio_connector_attention_head_dim", "audio_connector_num_layers"},
    "vae/config.json": {"latent_channels", "block_out_channels", "decoder_block_out_channels", "layers_per_block",
                        "decoder_layers_per_block"},
    "audio_vae/config.json": {"base_channels", "num_res_blocks", "resolution", "latent_channels", "mel_bins"},
    "vocoder/config.json": {"in_channels", "hidden_channels"},
    "latent_upsampler/config.json": {"in_channels", "mid_channels", "num_blocks_per_stage"},
    "text_encoder/config.json": {
        "text_config.hidden_size", "text_config.intermediate_size", "text_config.num_hidden_layers",
        "text_config.num_attention_heads", "text_config.num_key_value_heads", "text_config.head_dim",
        "text_config.vocab_size", "text_config.layer_types", "vision_config.hidden_size",
        "vision_config.intermediate_size", "vision_config.num_hidden_layers", "vision_config.num_attention_heads",
        "vision_config.image_size", "mm_tokens_per_image", "boi_token_index", "eoi_token_index",
        "image_token_index", "eos_token_id"},
    "scheduler/scheduler_config.json": set(),
    "model_index.json": set(),
    "tokenizer/special_tokens_map.json": set(),
    "tokenizer/tokenizer_config.json": {"added_tokens_decoder"},  # the same special tokens, at their tiny ids
}


def flat(config: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in config.items():
        if isinstance(value, dict) and key in ("text_config", "vision_config"):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def stored(folder: Path, pattern: str) -> dict[str, tuple[str, str]]:
    """{tensor name: (file, dtype)} of the files matching `pattern`."""
    tensors = {}
    for path in sorted(folder.glob(pattern)):
        with safe_open(path, "pt") as handle:
            for name in handle.keys():
                tensors[name] = (path.name, str(handle.get_slice(name).get_dtype()))
    return tensors


@pytest.fixture(scope="module", params=REPOS)
def written(request, tmp_path_factory):
    """A tiny model per published repo, written by the command line."""
    out = tmp_path_factory.mktemp("synthetic") / "tiny"
    assert main(["--preset", "tiny", "--out", str(out), "--repo", request.param]) == 0
    return request.param, out


@pytest.mark.parametrize("repo", REPOS)
def test_every_published_configuration_file_parses_and_loads_in_its_class(repo):
    from diffusers import FlowMatchEulerDiscreteScheduler
    from transformers import Gemma3Config

    root = synthetic.fixture_dir(repo)
    configs = {name: json.loads((root / name).read_text()) for name in CONFIG_FILES}
    assert configs["layout.json"]["repo"] == repo
    index = configs["model_index.json"]
    assert index["_class_name"] == "LTX2Pipeline" and "processor" not in index
    assert sorted(key for key in index if not key.startswith("_")) == [
        "audio_vae", "connectors", "scheduler", "text_encoder", "tokenizer", "transformer", "vae", "vocoder"]
    assert FlowMatchEulerDiscreteScheduler.from_config(configs["scheduler/scheduler_config.json"]).config.shift == 1.0
    gemma = Gemma3Config.from_pretrained(root / "text_encoder")
    assert (gemma.text_config.hidden_size, gemma.text_config.num_hidden_layers) == (3840, 48)
    # Every diffusers component builds from its published file (on the meta device: the real sizes).
    for name in synthetic.DIFFUSERS_COMPONENTS:
        with torch.device("meta"):
            synthetic._diffusers_class(name).from_config(configs[f"{name}/config.json"])
    assert configs["transformer/config.json"]["rope_type"] == "split"
    assert configs["vae/config.json"]["timestep_conditioning"] is False
    assert configs["tokenizer/tokenizer_config.json"]["model_max_length"] == GEMMA_NO_LIMIT
    assert (root / "tokenizer" / "chat_template.jinja").read_text().startswith("{{ bos_token }}")


def test_the_two_repos_differ_only_in_the_distilled_scheduler():
    dev, distilled = (synthetic.fixture_dir(repo) for repo in ("Lightricks/LTX-2", "rootonchair/LTX-2-19b-distilled"))
    for name in CONFIG_FILES + ["tokenizer/chat_template.jinja"]:
        if name not in ("scheduler/scheduler_config.json", "layout.json"):
            assert (dev / name).read_text() == (distilled / name).read_text(), name
    schedulers = [json.loads((root / "scheduler" / "scheduler_config.json").read_text()) for root in (dev, distilled)]
    assert {key for key in schedulers[0] if schedulers[0][key] != schedulers[1][key]} == {
        "use_dynamic_shifting", "shift_terminal"}
    assert (schedulers[0]["use_dynamic_shifting"], schedulers[0]["shift_terminal"]) == (True, 0.1)
    assert (schedulers[1]["use_dynamic_shifting"], schedulers[1]["shift_terminal"]) == (False, None)


def test_tiny_configs_equal_the_published_ones_except_the_listed_size_keys(written):
    repo, model = written
    root = synthetic.fixture_dir(repo)
    for name, allowed in TINY_SIZE_KEYS.items():
        published, ours = (flat(json.loads((folder / name).read_text())) for folder in (root, model))
        assert ours.keys() == published.keys(), name
        assert {key for key in ours if ours[key] != published[key]} == allowed, name
    assert (model / "tokenizer" / "chat_template.jinja").read_text() == (
        root / "tokenizer" / "chat_template.jinja").read_text()


def test_full_and_bench_are_the_published_configuration_but_for_the_bench_text_encoder_mlp():
    full, bench = synthetic.component_configs("full"), synthetic.component_configs("bench")
    assert full == synthetic.published_configs()
    assert {name for name in full if full[name] != bench[name]} == {"text_encoder"}
    assert bench["text_encoder"]["text_config"] == dict(full["text_encoder"]["text_config"], intermediate_size=1024)


def test_full_preset_stores_the_published_tensor_counts_and_bytes_of_every_component():
    # From the safetensors headers of the published files (FastVideo's LTX-2 port notes, section g): a wrong size,
    # a missing or extra tensor, a wrong on-disk dtype or a wrong tensor name filter changes these.
    published = {"transformer": (3510, 37_758_861_824), "connectors": (59, 2_862_950_400),
                 "vae": (184, 2_444_959_714), "audio_vae": (102, 106_496_804), "vocoder": (194, 111_185_604),
                 "latent_upsampler": (73, 995_735_858), "text_encoder": (1065, 48_749_300_160)}
    layout = synthetic.published_layout()["folders"]
    for name, (count, size) in published.items():
        spec = layout[name]["weights"]
        tensors = synthetic._published_names(
            synthetic._build(name, "full", 0, torch.bfloat16, "meta").state_dict(), spec)
        assert (len(tensors), sum(t.numel() * synthetic._dtype(spec, n).itemsize for n, t in tensors.items())) == (
            count, size), name


def test_full_preset_has_the_real_transformer_size():
    from accelerate import init_empty_weights
    from diffusers import LTX2VideoTransformer3DModel

    with init_empty_weights():
        transformer = LTX2VideoTransformer3DModel(**PRESETS["full"]()["transformer"])
    params = sum(p.numel() for p in transformer.parameters())
    assert 18.8e9 < params < 19.0e9
    assert transformer.config.num_layers == 48 and transformer.config.rope_type == "split"


def test_the_text_encoder_is_11_float32_shards_listed_by_its_index_beside_the_stale_12_shard_set(written):
    _, model = written
    folder = model / "text_encoder"
    index = json.loads((folder / "model.safetensors.index.json").read_text())["weight_map"]
    live = stored(folder, "model-*.safetensors")
    assert sorted(set(index.values())) == [f"model-{i:05d}-of-00011.safetensors" for i in range(1, 12)]
    assert {name: file for name, (file, _) in live.items()} == index
    assert {dtype for _, dtype in live.values()} == {"F32"}
    assert {name.split(".")[0] for name in live} == {"language_model", "vision_tower", "multi_modal_projector"}
    assert all(name.startswith(("language_model.model.", "vision_tower.vision_model.", "multi_modal_projector."))
               for name in live)
    assert not any("lm_head" in name for name in live)
    stale = stored(folder, "diffusion_pytorch_model-*.safetensors")
    assert sorted({file for file, _ in stale.values()}) == [
        f"diffusion_pytorch_model-{i:05d}-of-00012.safetensors" for i in range(1, 13)]
    gemma = {name for name in stale if name.startswith("base_text_encoder.")}
    assert gemma == {"base_text_encoder." + name for name in live}
    connectors = stored(model / "connectors", "*.safetensors")
    assert {name: dtype for name, (_, dtype) in stale.items() if name not in gemma} == {
        name: dtype for name, (_, dtype) in connectors.items()}  # an old copy of the connectors, bfloat16
    # Its index lists only the stale set; the live index none of it.
    stale_index = json.loads((folder / "diffusion_pytorch_model.safetensors.index.json").read_text())["weight_map"]
    assert set(stale_index) == set(stale) and not set(index.values()) & set(stale_index.values())


def test_the_diffusers_components_are_stored_as_published(written):
    _, model = written
    transformer = stored(model / "transformer", "*.safetensors")
    index = json.loads((model / "transformer" / "diffusion_pytorch_model.safetensors.index.json").read_text())
    assert sorted(set(index["weight_map"].values())) == [
        f"diffusion_pytorch_model-{i:05d}-of-00008.safetensors" for i in range(1, 9)]
    assert {name: file for name, (file, _) in transformer.items()} == index["weight_map"]
    tables = {name for name in transformer if "scale_shift_table" in name}
    assert {"scale_shift_table", "audio_scale_shift_table", "transformer_blocks.0.scale_shift_table",
            "transformer_blocks.0.video_a2v_cross_attn_scale_shift_table"} <= tables
    assert {name for name, (_, dtype) in transformer.items() if dtype == "F32"} == tables
    assert {dtype for name, (_, dtype) in transformer.items() if name not in tables} == {"BF16"}
    for name in ("connectors", "vae", "audio_vae", "vocoder", "latent_upsampler"):
        files = sorted(path.name for path in (model / name).iterdir())
        assert files == ["config.json", "diffusion_pytorch_model.safetensors"], name
        assert {dtype for _, dtype in stored(model / name, "*.safetensors").values()} == {"BF16"}, name


def test_the_tokenizer_loads_with_gemmas_settings_and_pads_left(written):
    from transformers import AutoTokenizer

    _, model = written
    tokenizer = AutoTokenizer.from_pretrained(model / "tokenizer")
    assert type(tokenizer).__name__ in ("GemmaTokenizer", "GemmaTokenizerFast")
    assert tokenizer.model_max_length == GEMMA_NO_LIMIT and tokenizer.padding_side == "left"
    encoded = tokenizer(["a fox", "a fox in the snow"], padding="max_length", max_length=16)
    short = encoded.input_ids[0]
    assert short[:-6] == [tokenizer.pad_token_id] * 10 and short[-6] == tokenizer.bos_token_id
    assert encoded.attention_mask[0] == [0] * 10 + [1] * 6
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.bos_token_id) == (0, 1, 2)
    assert tokenizer.image_token == "<image_soft_token>" and tokenizer.boi_token == "<start_of_image>"
    chat = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                         add_generation_prompt=True)
    assert chat == "<bos><start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n"


def test_the_stock_pipeline_loads_the_written_model_and_runs(written):
    from diffusers import LTX2Pipeline

    repo, model = written
    assert json.loads((model / SYNTHETIC_MARKER).read_text()) == {
        "preset": "tiny", "seed": 0, "repo": repo, "built_at_load": []}
    pipe = LTX2Pipeline.from_pretrained(model, torch_dtype=torch.float32, local_files_only=True)
    assert pipe.processor is None and pipe.vae.spatial_compression_ratio == 32
    assert pipe.vae.temporal_compression_ratio == 8
    assert pipe.scheduler.config.use_dynamic_shifting is (repo == "Lightricks/LTX-2")
    assert pipe.text_encoder.lm_head.weight is pipe.text_encoder.model.language_model.embed_tokens.weight
    neutral = dict(guidance_scale=1.0, stg_scale=0.0, modality_scale=1.0, guidance_rescale=0.0,
                   audio_guidance_scale=1.0, audio_stg_scale=0.0, audio_modality_scale=1.0, audio_guidance_rescale=0.0)
    video, audio = pipe(prompt="a fox in snow", width=96, height=64, num_frames=9, num_inference_steps=2,
                        output_type="np", generator=torch.Generator().manual_seed(0), return_dict=False, **neutral)
    assert video.shape == (1, 9, 64, 96, 3)
    assert audio.shape[:2] == (1, 2) and pipe.vocoder.config.output_sampling_rate == 24000


def test_a_model_with_a_processor_for_prompt_enhancement_is_an_option(tmp_path):
    from transformers import AutoProcessor

    model = write_model("tiny", tmp_path / "model", with_processor=True, stale_set=False)
    assert json.loads((model / "model_index.json").read_text())["processor"] == ["transformers", "Gemma3Processor"]
    processor = AutoProcessor.from_pretrained(model / "processor")
    assert processor.tokenizer.padding_side == "left" and processor.chat_template == synthetic.TINY_CHAT_TEMPLATE
    assert not list((model / "text_encoder").glob("diffusion_pytorch_model*"))  # stale_set=False


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
    from ltx2gen.synthetic import build_at_load

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
