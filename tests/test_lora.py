import json
import subprocess
import sys
import weakref

import pytest
import torch
from safetensors.torch import save_file

import generate
from conftest import CLIP, ROOT, run_generate
from ltx2gen import memory
from ltx2gen.components import load_component
from ltx2gen.errors import ConfigError
from ltx2gen.latents import load_latents
from ltx2gen.lora import LoraSpec, MadeFor, ResolvedLora, camera_lora, fuse_loras, lora_made_for, parse_lora_args

# What the default of Lightricks' trainer adapts (ltx-trainer `LoraConfig.target_modules`): the same modules at the same
# sizes in every version.
ADAPTED = [f"transformer_blocks.{block}.attn1.{proj}" for block in (0, 1) for proj in ("to_q", "to_k", "to_v")]
# A LoRA that also adapts the gated attention LTX-2.3 added (as LoRAs of every linear layer do).
GATED = [*ADAPTED, "transformer_blocks.0.attn1.to_gate_logits"]
VERSIONED_MODELS = ["tiny_model", "tiny_23_model", "tiny_25_model"]


def write_lora(path, tiny_model, seed: int, original_format: bool = True, modules=ADAPTED, metadata=None):
    """A rank-4 LoRA for the tiny transformer, in the Lightricks/ComfyUI (`diffusion_model.`) or diffusers format."""
    transformer = load_component(tiny_model, "transformer", torch.device("cpu"), torch.float32)
    generator = torch.Generator().manual_seed(seed)
    prefix = "diffusion_model." if original_format else "transformer."
    existing = dict(transformer.named_modules())
    tensors = {}
    for name in modules:
        layer = existing.get(name, torch.nn.Linear(16, 16))  # a module the model lacks still gets a LoRA
        tensors[f"{prefix}{name}.lora_A.weight"] = torch.randn(4, layer.in_features, generator=generator)
        tensors[f"{prefix}{name}.lora_B.weight"] = torch.randn(layer.out_features, 4, generator=generator) * 0.5
    save_file(tensors, str(path), metadata=metadata)
    return path


def adapted_by_version(model_fixture: str) -> list[str]:
    return ADAPTED if model_fixture == "tiny_model" else GATED


def tiny_parts(tiny_model):
    cpu = torch.device("cpu")
    return (load_component(tiny_model, "transformer", cpu, torch.float32),
            load_component(tiny_model, "connectors", cpu, torch.float32))


def forward(transformer):
    """One transformer call on fixed inputs. LTX-2.0's transformer projects the captions itself; from LTX-2.3 the
    connectors do, and the prompt modulation takes the sigma."""
    config = transformer.config
    projects = getattr(transformer, "caption_projection", None) is not None
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        return transformer(hidden_states=torch.randn(1, 6, 4, generator=generator),
                           audio_hidden_states=torch.randn(1, 5, 4, generator=generator),
                           encoder_hidden_states=torch.randn(
                               1, 7, config.caption_channels if projects else config.cross_attention_dim,
                               generator=generator),
                           audio_encoder_hidden_states=torch.randn(
                               1, 7, config.caption_channels if projects else config.audio_cross_attention_dim,
                               generator=generator),
                           timestep=torch.tensor([500.0]), sigma=torch.tensor([0.5]), audio_sigma=torch.tensor([0.5]),
                           num_frames=1, height=2, width=3, audio_num_frames=5, return_dict=False)[0]


def resolved(loras):
    return tuple(ResolvedLora(LoraSpec(str(path), None, scale), path, 6) for path, scale in loras)


def fused_output(tiny_model, loras):
    transformer, _ = tiny_parts(tiny_model)
    assert fuse_loras("transformer", transformer, resolved(loras)) == len(loras)
    assert not any("lora" in name for name, _ in transformer.named_modules())  # adapters unloaded
    return forward(transformer)


def unfused_output(tiny_model, loras):
    from diffusers import LTX2Pipeline

    transformer, connectors = tiny_parts(tiny_model)
    host = LTX2Pipeline(scheduler=None, vae=None, audio_vae=None, text_encoder=None, tokenizer=None,
                        connectors=connectors, transformer=transformer, vocoder=None)
    names = [f"a{i}" for i in range(len(loras))]
    for name, (path, _) in zip(names, loras):
        host.load_lora_weights(str(path), adapter_name=name)
    host.set_adapters(names, adapter_weights=[scale for _, scale in loras])
    return forward(transformer)


@pytest.fixture(scope="module")
def lora_files(tiny_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("loras")
    return (write_lora(folder / "a.safetensors", tiny_model, seed=1),
            write_lora(folder / "b.safetensors", tiny_model, seed=2, original_format=False))


@pytest.fixture(params=VERSIONED_MODELS, ids=["2.0", "2.3", "2.5"])
def versioned_loras(request, tmp_path):
    """A tiny model of each version and two LoRAs made for it (one per key format)."""
    model = request.getfixturevalue(request.param)
    modules = adapted_by_version(request.param)
    return model, (write_lora(tmp_path / "a.safetensors", model, seed=1, modules=modules),
                   write_lora(tmp_path / "b.safetensors", model, seed=2, original_format=False, modules=modules))


def test_original_format_lora_changes_the_output_and_scale_zero_does_not(versioned_loras):
    model, loras = versioned_loras
    base = forward(tiny_parts(model)[0])
    assert (fused_output(model, [(loras[0], 1.0)]) - base).abs().max() > 1e-3
    assert torch.equal(fused_output(model, [(loras[0], 0.0)]), base)


def test_fused_equals_the_stock_pipelines_unfused_adapters_and_two_loras_stack(versioned_loras):
    model, loras = versioned_loras
    pair = [(loras[0], 0.7), (loras[1], -1.2)]
    fused = fused_output(model, pair)
    assert torch.allclose(fused, unfused_output(model, pair), atol=1e-5)
    assert (fused - fused_output(model, pair[:1])).abs().max() > 1e-3


def test_connector_part_of_a_lora_is_fused_into_the_connectors(tiny_model, tmp_path):
    _, connectors = tiny_parts(tiny_model)
    projection = connectors.text_proj_in
    generator = torch.Generator().manual_seed(5)
    save_file({"text_embedding_projection.aggregate_embed.lora_A.weight": torch.randn(2, projection.in_features,
                                                                                      generator=generator),
               "text_embedding_projection.aggregate_embed.lora_B.weight": torch.randn(projection.out_features, 2,
                                                                                      generator=generator)},
              str(tmp_path / "text.safetensors"))
    loras = resolved([(tmp_path / "text.safetensors", 1.0)])
    before = projection.weight.clone()
    transformer, _ = tiny_parts(tiny_model)
    assert fuse_loras("transformer", transformer, loras) == 0  # nothing in it for the transformer
    assert fuse_loras("connectors", connectors, loras) == 1
    assert not torch.equal(connectors.text_proj_in.weight, before)
    assert not any("lora" in name for name, _ in connectors.named_modules())


def write_connector_lora(path, tiny_model, seed: int):
    """A rank-2 LoRA of the text connectors' input projection: it changes the prompt's conditioning."""
    projection = tiny_parts(tiny_model)[1].text_proj_in
    generator = torch.Generator().manual_seed(seed)
    save_file({"text_embedding_projection.aggregate_embed.lora_A.weight": torch.randn(2, projection.in_features,
                                                                                      generator=generator),
               "text_embedding_projection.aggregate_embed.lora_B.weight": torch.randn(projection.out_features, 2,
                                                                                      generator=generator)},
              str(path))
    return path


def test_the_embedding_cache_never_answers_for_a_lora_file_changed_under_the_same_name(tiny_model, tmp_path):
    from ltx2gen.memory import MemoryTracker
    from ltx2gen.text import EmbeddingCache, PromptRequest, encode_prompts

    cpu = torch.device("cpu")
    cache, lora = EmbeddingCache(tmp_path / "cache"), tmp_path / "style.safetensors"
    encoded = []
    for seed in (1, 2, 2):  # the file rewritten with other weights, then encoded again unchanged
        write_connector_lora(lora, tiny_model, seed)
        with MemoryTracker(cpu).stage("text") as stage:
            encoded.append(encode_prompts(stage, tiny_model, [PromptRequest("a fox", None, False)], cpu,
                                          torch.float32, loras=resolved([(lora, 1.0)]), cache=cache)[0].video)
    assert not torch.equal(encoded[0], encoded[1]) and torch.equal(encoded[1], encoded[2])
    assert len(list(cache.folder.iterdir())) == 2  # one entry for each version of the file


def test_lora_flags_parse_every_form(tmp_path):
    local = tmp_path / "x.safetensors"
    local.write_bytes(b"")
    specs = parse_lora_args([[str(local), "0.5"], ["owner/repo::f.safetensors"]], None, None, "jib-up")
    assert specs == (LoraSpec(str(local), None, 0.5), LoraSpec("owner/repo", "f.safetensors", 1.0),
                     LoraSpec("Lightricks/LTX-2-19b-LoRA-Camera-Control-Jib-Up",
                              "ltx-2-19b-lora-camera-control-jib-up.safetensors", 1.0))
    assert parse_lora_args([["owner/repo"]], "w.safetensors", 1.5, None) == (
        LoraSpec("owner/repo", "w.safetensors", 1.5),)
    assert camera_lora("dolly-in").source.endswith("Camera-Control-Dolly-In")
    with pytest.raises(ConfigError, match="apply to exactly one --lora"):
        parse_lora_args([["a/b"], ["c/d"]], "w.safetensors", None, None)


def test_the_version_a_lora_was_made_for_is_read_from_its_metadata_modules_and_lightricks_name():
    attention = {f"transformer.transformer_blocks.0.attn1.{proj}": (16, 16) for proj in ("to_q", "to_k")}
    gated = {**attention, "transformer.transformer_blocks.0.attn1.to_gate_logits": (16, 2)}
    unnamed = ("style.safetensors",)
    cases = [
        ({"model_version": "2.3.rc1"}, attention, unnamed, ("2.3",), "its model_version metadata says 2.3.rc1"),
        ({"model_version": "2.5"}, gated, ("ltx-2-19b-x.safetensors",), ("2.5",), "metadata says 2.5"),
        ({}, gated, unnamed, ("2.3", "2.5"), "to_gate_logits, which LTX-2.3 added"),
        ({}, {"transformer.prompt_adaln.linear": (16, 32)}, unnamed, ("2.3", "2.5"), "which LTX-2.3 added"),
        ({}, gated, ("Lightricks/LTX-2.5-22b-IC-LoRA-X", "x.safetensors"), ("2.5",),
         "its name Lightricks/LTX-2.5-22b-IC-LoRA-X says LTX-2.5"),
        ({}, {"transformer.time_embed.linear": (16, 144)}, unnamed, ("2.3", "2.5"), "LTX-2.3's 9 modulation rows"),
        ({}, {"transformer.audio_time_embed.linear": (8, 48)}, unnamed, ("2.0",), "LTX-2.0's 6 modulation rows"),
        ({}, {"transformer.caption_projection.linear_1": (32, 16)}, ("ltx-2.3-22b-x.safetensors",), ("2.0",),
         "caption_projection.linear_1, which only LTX-2.0 has"),
        ({}, attention, ("ltx-2-19b-lora-camera-control-static.safetensors",), ("2.0",),
         "its name ltx-2-19b-lora-camera-control-static.safetensors is Lightricks' for LTX-2.0"),
        ({}, attention, ("ltx-2.3-22b-distilled-lora-384-1.1.safetensors",), ("2.3",), "Lightricks' for LTX-2.3"),
        ({}, attention, unnamed, (), "no model_version metadata"),
    ]
    for metadata, modules, names, versions, reason in cases:
        made_for = lora_made_for(metadata, modules, names)
        assert made_for.versions == versions and reason in made_for.reason, (names, made_for)
    assert MadeFor(("2.3", "2.5"), "").describe() == "LTX-2.3 or LTX-2.5"


@pytest.mark.parametrize("model_fixture, lora, message", [
    ("tiny_23_model", "camera", "made for LTX-2.0 (its name ltx-2-19b-lora-camera-control-dolly-in.safetensors is "
                                "Lightricks' for LTX-2.0); this model is LTX-2.3; use a LoRA made for LTX-2.3"),
    ("tiny_25_model", "2.3", "made for LTX-2.3 (it adapts transformer.transformer_blocks.0.attn1.to_gate_logits, which "
                             "LTX-2.3 added, and its name ltx-2.3-22b-style.safetensors says LTX-2.3); this model is "
                             "LTX-2.5"),
    ("tiny_model", "2.3", "made for LTX-2.3 (it adapts transformer.transformer_blocks.0.attn1.to_gate_logits"),
    ("tiny_23_model", "declared", "made for LTX-2.5 (its model_version metadata says 2.5); this model is LTX-2.3"),
    ("tiny_23_model", "--camera", "--camera jib-up: Lightricks has published camera-control LoRAs for LTX-2.0 only "
                                  "(Lightricks/LTX-2-19b-LoRA-Camera-Control-*), none for LTX-2.3"),
], ids=["2.0-on-2.3", "2.3-on-2.5", "2.3-on-2.0", "metadata", "camera-on-2.3"])
def test_a_lora_made_for_another_version_exits_2_naming_both_before_the_base_model_loads(
        request, tiny_model, tiny_23_model, tmp_path, capsys, model_fixture, lora, message):
    loras = {
        "camera": lambda: write_lora(tmp_path / "ltx-2-19b-lora-camera-control-dolly-in.safetensors", tiny_model, 3),
        "2.3": lambda: write_lora(tmp_path / "ltx-2.3-22b-style.safetensors", tiny_23_model, 4, modules=GATED),
        "declared": lambda: write_lora(tmp_path / "style.safetensors", tiny_23_model, 5,
                                       metadata={"model_version": "2.5"}),
    }
    flags = ["--camera", "jib-up"] if lora == "--camera" else ["--lora", str(loras[lora]())]
    capsys.readouterr()  # what writing the LoRA printed
    with pytest.raises(SystemExit) as exit_info:
        generate.main(["--prompt", "a fox", "--model", str(request.getfixturevalue(model_fixture)), "--output",
                       str(tmp_path / "out" / "c.mp4"), *CLIP, *flags])
    captured = capsys.readouterr()
    assert exit_info.value.code == 2 and captured.err.count("\n") == 1, captured.err
    assert message in captured.err
    assert "[memory]" not in captured.out and not (tmp_path / "out").exists()


def test_bad_loras_exit_2_before_the_base_model_loads(tiny_model, tmp_path, capsys, monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))  # an empty cache
    save_file({"some.weight": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    write_lora(tmp_path / "foreign.safetensors", tiny_model, seed=3, modules=["transformer_blocks.9.attn1.to_q"])
    save_file({"diffusion_model.transformer_blocks.0.attn1.to_q.lora_A.weight": torch.zeros(1, 4096),
               "diffusion_model.transformer_blocks.0.attn1.to_q.lora_B.weight": torch.zeros(4096, 1)},
              str(tmp_path / "full-size.safetensors"))  # made for the full-size transformer
    (tmp_path / "broken.safetensors").write_bytes(b"\x00" * 10)
    save_file({"diffusion_model.transformer_blocks.0.attn1.to_q.lora_A.weight": torch.zeros(4, 16),
               "diffusion_model.transformer_blocks.0.attn1.to_q.lora_B.weight": torch.zeros(16, 2)},
              str(tmp_path / "ranks.safetensors"))  # the right sizes, but down rank 4 against up rank 2
    whole = write_lora(tmp_path / "whole.safetensors", tiny_model, seed=3).read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(whole[:len(whole) - 64])  # an interrupted download
    (tmp_path / "lora.bin").write_bytes(b"")
    cases = [
        (["--lora", str(tmp_path / "missing.safetensors")], "no such file"),
        (["--lora", str(tmp_path / "lora.bin")], "from .safetensors files only"),
        (["--lora", str(tmp_path / "plain.safetensors")], "holds no LoRA weights"),
        (["--lora", str(tmp_path / "broken.safetensors")], "cannot be read as safetensors"),
        (["--lora", str(tmp_path / "ranks.safetensors")], "1 adapted modules have down and up matrices of different "
         "ranks (first: transformer.transformer_blocks.0.attn1.to_q, ranks 4 and 2)"),
        (["--lora", str(tmp_path / "cut.safetensors")], f"{tmp_path / 'cut.safetensors'} is cut short"),
        (["--lora", str(tmp_path / "foreign.safetensors")], "do not exist in this model"),
        (["--lora", str(tmp_path / "full-size.safetensors")], "1 of 1 adapted modules have other sizes in this model "
         "(first: transformer.transformer_blocks.0.attn1.to_q, 4096 -> 4096 features in the LoRA, 16 -> 16 features "
         "here)"),
        (["--lora", str(tmp_path / "plain.safetensors"), "2.5"], "must be between -2 and 2"),
        (["--camera", "zoom-in"], "unknown camera move"),
        (["--camera", "dolly-in"], "not in the Hugging Face cache"),
    ]
    for args, message in cases:
        with pytest.raises(SystemExit) as exit_info:
            generate.main(["--prompt", "a fox", "--model", str(tiny_model), "--output", str(tmp_path / "out" / "c.mp4"),
                           *CLIP, *args])
        captured = capsys.readouterr()
        assert exit_info.value.code == 2, (args, captured.err)
        assert message in captured.err.splitlines()[-1], (args, captured.err)
        assert "[memory]" not in captured.out and not (tmp_path / "out").exists()


def test_generate_with_a_lora_records_it_and_frees_the_transformer(tiny_model, lora_files, tmp_path):
    refs, freed_before_decode = {}, []

    def observe(event, name, obj):
        if event == "loaded" and name == "transformer":
            refs["transformer"] = weakref.ref(obj)
        if event == "decode":
            freed_before_decode.append(refs["transformer"]() is None)

    memory.add_listener(observe)
    try:
        out = tmp_path / "lora.mp4"
        assert run_generate(tiny_model, out, "--lora", str(lora_files[0]), "1.5", prompt="w1") == 0
    finally:
        memory.remove_listener(observe)
    assert freed_before_decode == [True]
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["loras"] == [{"lora": str(lora_files[0]), "file": str(lora_files[0]), "scale": 1.5, "modules": 6,
                                 "made_for": "an unknown LTX-2 version", "made_for_reason": (
                                     "it has no model_version metadata, adapts no module only some versions have, and "
                                     "is not named as Lightricks names its LoRAs")}]


def test_loras_render_on_ltx_2_3_and_2_5_and_change_the_clip(tiny_23_model, tiny_25_model, tmp_path, capsys):
    """LTX-2.3 in bf16 with a LoRA whose version cannot be read (a note says so); LTX-2.5 with a Lightricks-named
    LoRA fused before the FP8 weight quantization, whose clip differs from the same run without it."""
    unnamed = write_lora(tmp_path / "style.safetensors", tiny_23_model, seed=6)
    assert run_generate(tiny_23_model, tmp_path / "23.mp4", "--lora", str(unnamed), "--device", "cpu") == 0
    assert f"note: --lora {unnamed}: the LTX-2 version it was made for cannot be read" in capsys.readouterr().out
    assert json.loads((tmp_path / "23.json").read_text())["loras"][0]["made_for"] == "an unknown LTX-2 version"
    named = write_lora(tmp_path / "ltx-2.5-22b-style.safetensors", tiny_25_model, seed=7, modules=GATED)
    for name, flags in (("plain", ()), ("lora", ("--lora", str(named)))):
        assert run_generate(tiny_25_model, tmp_path / f"{name}.mp4", "--fp8", "weight", "--keep-latents", "--device",
                            "cpu", *flags) == 0
    sidecar = json.loads((tmp_path / "lora.json").read_text())
    assert (sidecar["loras"][0]["made_for"], sidecar["loras"][0]["modules"], sidecar["fp8"]) == ("LTX-2.5", 7, "weight")
    plain, fused = (load_latents(tmp_path / f"{name}.latents.safetensors").video for name in ("plain", "lora"))
    assert (plain - fused).abs().max() > 1e-3


def test_list_lora_files_of_an_unknown_repo_offline_is_a_clear_error(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "generate.py"), "--list-lora-files", "owner/none"],
                            capture_output=True, text=True,
                            env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 2 and "not reachable and not in the Hugging Face cache" in result.stderr
