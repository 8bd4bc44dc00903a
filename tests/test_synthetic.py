"""The synthetic models follow the published LTX-2.0, LTX-2.3 and LTX-2.5 repos: their configuration
(ltx2gen/published/, changed only in sizes), their file layout (shard names and counts, tensor names, on-disk dtypes)
and their tokenizer settings; diffusers' stock pipelines load and run them."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from conftest import ROOT
from ltx2gen.built_at_load import MARKER
from ltx2gen.testing.build import build_component, diffusers_class
from ltx2gen.testing.layout_files import published_names, stored_dtype
from ltx2gen.testing.presets import PRESETS, TINY_CHAT_TEMPLATE, component_configs
from ltx2gen.testing.published import (
    DIFFUSERS_COMPONENTS,
    LTX23_REPOS,
    LTX25_REPO,
    REPOS,
    UNKNOWN_SHARDS,
    UPSAMPLER_REPO,
    fixture_dir,
    published_configs,
    published_layout,
)
from ltx2gen.testing.synthetic import main, write_model

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

    root = fixture_dir(repo)
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
    for name in DIFFUSERS_COMPONENTS:
        with torch.device("meta"):
            diffusers_class(name).from_config(configs[f"{name}/config.json"])
    assert configs["transformer/config.json"]["rope_type"] == "split"
    assert configs["vae/config.json"]["timestep_conditioning"] is False
    assert configs["tokenizer/tokenizer_config.json"]["model_max_length"] == GEMMA_NO_LIMIT
    assert (root / "tokenizer" / "chat_template.jinja").read_text().startswith("{{ bos_token }}")


def test_the_two_repos_differ_only_in_the_distilled_scheduler():
    dev, distilled = (fixture_dir(repo) for repo in ("Lightricks/LTX-2", "rootonchair/LTX-2-19b-distilled"))
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
    root = fixture_dir(repo)
    for name, allowed in TINY_SIZE_KEYS.items():
        published, ours = (flat(json.loads((folder / name).read_text())) for folder in (root, model))
        assert ours.keys() == published.keys(), name
        assert {key for key in ours if ours[key] != published[key]} == allowed, name
    assert (model / "tokenizer" / "chat_template.jinja").read_text() == (
        root / "tokenizer" / "chat_template.jinja").read_text()


def test_full_and_bench_are_the_published_configuration_but_for_the_bench_text_encoder_mlp():
    full, bench = component_configs("full"), component_configs("bench")
    assert full == published_configs()
    assert {name for name in full if full[name] != bench[name]} == {"text_encoder"}
    assert bench["text_encoder"]["text_config"] == dict(full["text_encoder"]["text_config"], intermediate_size=1024)


def test_full_preset_stores_the_published_tensor_counts_and_bytes_of_every_component():
    # From the safetensors headers of the published files (FastVideo's LTX-2 port notes, section g): a wrong size,
    # a missing or extra tensor, a wrong on-disk dtype or a wrong tensor name filter changes these.
    published = {"transformer": (3510, 37_758_861_824), "connectors": (59, 2_862_950_400),
                 "vae": (184, 2_444_959_714), "audio_vae": (102, 106_496_804), "vocoder": (194, 111_185_604),
                 "latent_upsampler": (73, 995_735_858), "text_encoder": (1065, 48_749_300_160)}
    layout = published_layout()["folders"]
    for name, (count, size) in published.items():
        spec = layout[name]["weights"]
        tensors = published_names(
            build_component(name, "full", 0, torch.bfloat16, "meta").state_dict(), spec)
        assert (len(tensors), sum(t.numel() * stored_dtype(spec, n).itemsize for n, t in tensors.items())) == (
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
    assert json.loads((model / MARKER).read_text()) == {
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
    assert processor.tokenizer.padding_side == "left" and processor.chat_template == TINY_CHAT_TEMPLATE
    assert not list((model / "text_encoder").glob("diffusion_pytorch_model*"))  # stale_set=False


# --- LTX-2.3 and LTX-2.5 (and the LTX-2.3 x2 upsampler repo) -------------------------------------------------------

LATER_REPOS = (*LTX23_REPOS, LTX25_REPO)
# Per published file, every key the tiny preset may change in the later repos (the LTX-2.0 sets where alike).
LATER_SIZE_KEYS = {
    "transformer/config.json": TINY_SIZE_KEYS["transformer/config.json"],
    "transformer_full/config.json": TINY_SIZE_KEYS["transformer/config.json"],
    # One projection per modality, straight to the transformer's cross-attention widths.
    "connectors/config.json": TINY_SIZE_KEYS["connectors/config.json"] | {"video_hidden_dim", "audio_hidden_dim"},
    "vae/config.json": TINY_SIZE_KEYS["vae/config.json"],
    "audio_vae/config.json": TINY_SIZE_KEYS["audio_vae/config.json"],
    "vocoder/config.json": {"in_channels", "hidden_channels", "bwe_hidden_channels"},
    "latent_upsampler/config.json": TINY_SIZE_KEYS["latent_upsampler/config.json"],
    "duration_head/config.json": {"video_cross_attention_dim", "audio_cross_attention_dim", "pooler_hidden_dim",
                                  "num_pooler_heads", "mlp_hidden_dim"},
    "diffusion_decoder/config.json": {"latent_channels", "decoder_head_dim", "decoder_stage_channels",
                                      "decoder_stage_depths", "decoder_stage_kernels", "decoder_stage5_kernel",
                                      "decoder_t_emb_dim"},
    "processor/processor_config.json": {"image_seq_length"},
    "scheduler/scheduler_config.json": set(),
    "model_index.json": set(),
    "tokenizer/special_tokens_map.json": set(),
    "tokenizer/tokenizer_config.json": {"added_tokens_decoder"},
}
GEMMA3_SIZE_KEYS = TINY_SIZE_KEYS["text_encoder/config.json"]
GEMMA4_SIZE_KEYS = {
    "text_config.hidden_size", "text_config.intermediate_size", "text_config.num_hidden_layers",
    "text_config.num_attention_heads", "text_config.num_key_value_heads", "text_config.head_dim",
    "text_config.global_head_dim", "text_config.vocab_size", "text_config.layer_types", "vision_config.mm_embed_dim",
    "vision_config.output_proj_dims", "vision_config.mm_posemb_size", "boi_token_id", "eoi_token_id",
    "image_token_id", "video_token_id", "boa_token_id", "eoa_token_index", "audio_token_id"}
NEUTRAL_GUIDANCE = dict(guidance_scale=1.0, stg_scale=0.0, modality_scale=1.0, guidance_rescale=0.0,
                        audio_guidance_scale=1.0, audio_stg_scale=0.0, audio_modality_scale=1.0,
                        audio_guidance_rescale=0.0)


@pytest.fixture(scope="module")
def later_model(tmp_path_factory):
    """The tiny model of a LTX-2.3 / LTX-2.5 repo (or of the upsampler-only repo), written once by the command line."""
    models = {}

    def model(repo: str) -> Path:
        if repo not in models:
            models[repo] = tmp_path_factory.mktemp("later") / "tiny"
            assert main(["--preset", "tiny", "--out", str(models[repo]), "--repo", repo]) == 0
        return models[repo]

    return model


def expected_dtype(spec: dict, name: str) -> str:
    return next((dtype for dtype, patterns in spec.get("dtype_overrides", {}).items()
                 if any(pattern in name for pattern in patterns)), spec["dtype"])


@pytest.mark.parametrize("repo", (*LATER_REPOS, UPSAMPLER_REPO))
def test_later_tiny_configs_equal_the_published_ones_except_the_listed_size_keys(later_model, repo):
    model = later_model(repo)
    root = fixture_dir(repo)
    published_files = sorted(str(path.relative_to(root)) for path in root.rglob("*.json") if path.name != "layout.json")
    assert published_files  # every published configuration file is written, changed only in sizes
    for name in published_files:
        if name == "text_encoder/config.json":
            gemma4 = json.loads((root / name).read_text())["model_type"] == "gemma4_unified"
            allowed = GEMMA4_SIZE_KEYS if gemma4 else GEMMA3_SIZE_KEYS
        else:
            allowed = LATER_SIZE_KEYS[name]
        published, ours = (flat(json.loads((folder / name).read_text())) for folder in (root, model))
        assert ours.keys() == published.keys(), name
        assert {key for key in ours if ours[key] != published[key]} == allowed, name
    for name in ("tokenizer/chat_template.jinja", "tokenizer/special_tokens_map.json"):
        if (root / name).is_file():
            assert (model / name).read_text() == (root / name).read_text(), name


@pytest.mark.parametrize("repo", (*LATER_REPOS, UPSAMPLER_REPO))
def test_later_models_are_written_in_the_published_layout(later_model, repo):
    model = later_model(repo)
    layout = published_layout(repo)
    assert layout["repo"] == repo
    folders = layout["folders"]
    assert sorted(path.name for path in model.iterdir() if path.is_dir()) == sorted(folders)
    assert sorted(path.name for path in model.iterdir() if path.is_file()) == sorted(
        ["model_index.json", MARKER])
    for folder, entry in folders.items():
        files = {path.name for path in (model / folder).iterdir()}
        if "files" in entry:  # tokenizer/ and processor/: the published files, and the unlisted ones loading needs
            assert set(entry["files"]) <= files <= set(entry["files"]) | set(entry.get("published_only", [])), folder
            continue
        spec = entry["weights"]
        shards = spec["shards"] or UNKNOWN_SHARDS[(repo, folder)]
        stem = spec["stem"]
        names = ([f"{stem}.safetensors"] if shards == 1 else
                 [f"{stem}-{i:05d}-of-{shards:05d}.safetensors" for i in range(1, shards + 1)])
        assert files == {"config.json", *names, *([spec["index"]] if spec["index"] else [])}, folder
        tensors = stored(model / folder, "*.safetensors")
        if spec["index"]:
            weight_map = json.loads((model / folder / spec["index"]).read_text())["weight_map"]
            assert weight_map == {name: file for name, (file, _) in tensors.items()}, folder
        assert all(dtype == expected_dtype(spec, name) for name, (_, dtype) in tensors.items()), folder
        assert not set(spec.get("omitted", ())) & set(tensors), folder
        if spec.get("name_map"):  # transformers 4 names
            assert all(name.startswith(tuple(spec["name_map"].values())) for name in tensors), folder
    index = json.loads((model / "model_index.json").read_text())
    assert index == json.loads((fixture_dir(repo) / "model_index.json").read_text())


@pytest.mark.parametrize("repo", LATER_REPOS)
def test_the_later_repos_store_what_their_layouts_say_they_do(later_model, repo):
    model = later_model(repo)
    transformer = stored(model / "transformer", "*.safetensors")
    tables = {name for name in transformer if "scale_shift_table" in name}
    f32 = {name for name, (_, dtype) in transformer.items() if dtype == "F32"}
    text_encoder = stored(model / "text_encoder", "model*.safetensors")
    if repo in LTX23_REPOS:  # float32 modulation tables, Gemma 3 in float32 under transformers 4 names
        assert f32 == tables and "transformer_blocks.0.audio_prompt_scale_shift_table" in tables
        assert {dtype for _, dtype in text_encoder.values()} == {"F32"}
        assert {name.split(".")[0] for name in text_encoder} == {
            "language_model", "vision_tower", "multi_modal_projector"}
        assert not list((model / "text_encoder").glob("diffusion_pytorch_model*"))  # no stale set
    else:  # all bfloat16; Gemma 4 under its transformers 5 module names, the head tied to the embedding
        assert not f32 and "keyframes_abs_pos_embedding" in transformer
        assert not any(name.endswith(".ff.net.0.proj.bias") for name in transformer)  # ff_bias false
        assert "transformer_blocks.0.audio_ff.net.0.proj.bias" in transformer  # audio_ff_bias true
        assert {dtype for _, dtype in text_encoder.values()} == {"BF16"}
        assert {".".join(name.split(".")[:2]) for name in text_encoder} == {
            "model.language_model", "model.embed_vision", "model.embed_audio"}
        assert stored(model / "transformer_full", "*.safetensors") == transformer


@pytest.mark.parametrize("repo", LATER_REPOS)
def test_the_stock_pipeline_loads_each_later_model_and_generates(later_model, repo):
    from diffusers import LTX2Pipeline

    model = later_model(repo)
    pipe = LTX2Pipeline.from_pretrained(model, torch_dtype=torch.float32, local_files_only=True)
    assert type(pipe.vocoder).__name__ == "LTX2VocoderWithBWE" and pipe.vocoder.config.output_sampling_rate == 48000
    assert pipe.scheduler.config.use_dynamic_shifting is (repo == "diffusers/LTX-2.3-Diffusers")
    assert pipe.text_encoder.lm_head.weight is pipe.text_encoder.model.language_model.embed_tokens.weight
    if repo == LTX25_REPO:
        assert type(pipe.text_encoder).__name__ == "Gemma4UnifiedForConditionalGeneration"
        assert type(pipe.duration_head).__name__ == "LTX2DurationHead" and pipe.processor is None
    else:
        assert type(pipe.text_encoder).__name__ == "Gemma3ForConditionalGeneration" and pipe.duration_head is None
        assert type(pipe.processor).__name__ == "Gemma3Processor" and pipe.processor.image_seq_length == 4
    # Every stored tensor reached the loaded model (a wrong tensor name would leave a freshly initialized one).
    for name in ("transformer", "connectors", "vocoder", "text_encoder"):
        spec = published_layout(repo)["folders"][name]["weights"]
        loaded = published_names(getattr(pipe, name).state_dict(), spec)
        for path in sorted((model / name).glob("*.safetensors")):
            with safe_open(path, "pt") as handle:
                for key in handle.keys():
                    assert torch.equal(handle.get_tensor(key).float(), loaded[key]), (name, key)
    clip = dict(prompt="a fox in snow", width=64, height=64, num_inference_steps=2, **NEUTRAL_GUIDANCE)
    latents = pipe(num_frames=9, output_type="latent", generator=torch.Generator().manual_seed(0), **clip)
    assert latents.frames.shape == (1, 4, 2, 2, 2) and latents.audio.shape[:2] == (1, 2)
    assert torch.isfinite(latents.frames).all() and torch.isfinite(latents.audio).all()
    video, audio = pipe(num_frames=9, output_type="np", generator=torch.Generator().manual_seed(0), return_dict=False,
                        **clip)
    assert video.shape == (1, 9, 64, 64, 3) and audio.shape[:2] == (1, 2)
    assert np.isfinite(video).all() and torch.isfinite(audio).all()
    if repo == LTX25_REPO:  # num_frames from the duration head: a frame count on the VAE's grid
        auto = pipe(num_frames=None, output_type="latent", generator=torch.Generator().manual_seed(0), **clip)
        assert auto.frames.shape[2] >= 4 and torch.isfinite(auto.frames).all()  # at least 1 s at 24 fps


@pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile")  # the decoder's attention on CPU
def test_the_25_repo_has_a_full_transformer_an_upsampler_and_a_diffusion_decoder(later_model):
    from diffusers import (
        FlowMatchEulerDiscreteScheduler,
        LTX2VideoDiffusionDecodePipeline,
        LTX2VideoDiffusionDecoderModel,
        LTX2VideoTransformer3DModel,
    )
    from diffusers.pipelines.ltx2 import LTX2LatentUpsamplerModel

    tiny_25 = later_model(LTX25_REPO)

    distilled, full = (LTX2VideoTransformer3DModel.from_pretrained(tiny_25, subfolder=name)
                       for name in ("transformer", "transformer_full"))
    assert full.config == distilled.config and not torch.equal(full.proj_in.weight, distilled.proj_in.weight)
    assert distilled.keyframes_abs_pos_embedding.abs().sum() > 0  # not the constructor's zeros
    latents = torch.randn(1, 4, 2, 2, 2, generator=torch.Generator().manual_seed(1))
    upsampler = LTX2LatentUpsamplerModel.from_pretrained(tiny_25, subfolder="latent_upsampler")
    with torch.no_grad():
        assert upsampler(latents).shape == (1, 4, 2, 4, 4)
    decoder = LTX2VideoDiffusionDecoderModel.from_pretrained(tiny_25, subfolder="diffusion_decoder")
    decode = LTX2VideoDiffusionDecodePipeline(diffusion_decoder=decoder, scheduler=FlowMatchEulerDiscreteScheduler())
    frames = decode(latents, generator=torch.Generator().manual_seed(0), output_type="pt").frames
    assert frames.shape == (1, 9, 3, 64, 64) and torch.isfinite(frames).all()


def test_the_upsampler_repo_upsamples_with_the_stock_pipeline(later_model):
    from diffusers import LTX2LatentUpsamplePipeline

    model = later_model(UPSAMPLER_REPO)
    pipe = LTX2LatentUpsamplePipeline.from_pretrained(model, torch_dtype=torch.float32, local_files_only=True)
    latents = torch.randn(1, 4, 2, 2, 2, generator=torch.Generator().manual_seed(1))
    upsampled = pipe(latents=latents, height=64, width=64, num_frames=9, output_type="latent", return_dict=False)[0]
    assert upsampled.shape == (1, 4, 2, 4, 4) and torch.isfinite(upsampled).all()


def test_the_25_tokenizer_is_a_tiny_gemma_with_the_text_encoders_media_markers(later_model):
    from transformers import AutoTokenizer

    tiny_25 = later_model(LTX25_REPO)

    tokenizer = AutoTokenizer.from_pretrained(tiny_25 / "tokenizer")
    assert type(tokenizer).__name__ == "GemmaTokenizer" and tokenizer.padding_side == "left"
    assert tokenizer("a fox").input_ids[0] == tokenizer.bos_token_id
    config = json.loads((tiny_25 / "text_encoder" / "config.json").read_text())
    markers = {"boi_token_id": "<start_of_image>", "eoi_token_id": "<end_of_image>",
               "image_token_id": "<image_soft_token>", "video_token_id": "<video_soft_token>",
               "boa_token_id": "<start_of_audio>", "eoa_token_index": "<end_of_audio>",
               "audio_token_id": "<audio_soft_token>"}
    assert {key: tokenizer.convert_tokens_to_ids(token) for key, token in markers.items()} == {
        key: config[key] for key in markers}
    assert config["text_config"]["vocab_size"] == len(tokenizer)
    assert config["text_config"]["layer_types"] == ["sliding_attention", "full_attention"]


def test_options_a_later_repo_does_not_have_are_refused(tmp_path):
    with pytest.raises(ValueError, match="prompt_enhancer"):
        write_model("tiny", tmp_path / "a", repo=LTX25_REPO, with_processor=True)
    with pytest.raises(ValueError, match="stale"):
        write_model("tiny", tmp_path / "b", repo=LATER_REPOS[0], stale_set=True)
    with pytest.raises(ValueError, match="unknown repo"):
        write_model("tiny", tmp_path / "c", repo="Lightricks/LTX-2.3")
    with pytest.raises(ValueError, match="no text encoder"):
        write_model("tiny", tmp_path / "d", repo=UPSAMPLER_REPO, built_at_load=("text_encoder",))
    assert not any(tmp_path.iterdir())  # refused before writing anything


def test_full_preset_of_the_later_repos_has_the_published_sizes():
    # SOURCES.md: tensor counts of the original LTX-2.3 checkpoint (FV23M) and byte sizes from the published files
    # (SIZES, LIST25); a wrong size, a missing or extra tensor or a wrong on-disk dtype changes these.
    published = {("diffusers/LTX-2.3-Diffusers", "transformer"): (4186, 37_987_138_048),
                 ("diffusers/LTX-2.3-Diffusers", "connectors"): (262, 6_344_455_168),
                 ("diffusers/LTX-2.3-Diffusers", "vocoder"): (1227, None),
                 (LTX25_REPO, "transformer_full"): (4091, 37_975_718_400),
                 (LTX25_REPO, "diffusion_decoder"): (None, 834_267_744),
                 (LTX25_REPO, "text_encoder"): (None, 23_919_460_448)}
    for (repo, name), (count, size) in published.items():
        spec = dict(published_layout(repo)["folders"][name]["weights"])
        tensors = published_names(
            build_component(name, "full", 0, torch.bfloat16, "meta", repo).state_dict(), spec)
        assert count in (None, len(tensors)), name
        assert size in (None, sum(t.numel() * stored_dtype(spec, n).itemsize for n, t in tensors.items())), name
    head = build_component("duration_head", "full", 0, torch.bfloat16, "meta", LTX25_REPO)
    assert sum(p.numel() for p in head.parameters()) == 1_903_361  # "~1.9M params"
    for repo in (*LATER_REPOS, UPSAMPLER_REPO):
        assert component_configs("full", repo) == published_configs(repo)


def test_the_command_line_writes_a_model(tmp_path):
    """`python -m ltx2gen.testing.synthetic` (make tiny-model, entrypoint.sh, the benchmarks) writes the model."""
    out = tmp_path / "upsampler"
    result = subprocess.run([sys.executable, "-m", "ltx2gen.testing.synthetic", "--preset", "tiny", "--out", str(out),
                             "--repo", UPSAMPLER_REPO], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(f"to {out}")
    assert json.loads((out / MARKER).read_text())["repo"] == UPSAMPLER_REPO
