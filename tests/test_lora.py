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
from ltx2gen.lora import LoraSpec, ResolvedLora, camera_lora, fuse_loras, parse_lora_args

ADAPTED = [f"transformer_blocks.{block}.attn1.{proj}" for block in (0, 1) for proj in ("to_q", "to_k", "to_v")]


def write_lora(path, tiny_model, seed: int, original_format: bool = True, modules=ADAPTED):
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
    save_file(tensors, str(path))
    return path


def tiny_parts(tiny_model):
    cpu = torch.device("cpu")
    return (load_component(tiny_model, "transformer", cpu, torch.float32),
            load_component(tiny_model, "connectors", cpu, torch.float32))


def forward(transformer):
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        return transformer(hidden_states=torch.randn(1, 6, 4, generator=generator),
                           audio_hidden_states=torch.randn(1, 5, 4, generator=generator),
                           encoder_hidden_states=torch.randn(1, 7, 32, generator=generator),
                           audio_encoder_hidden_states=torch.randn(1, 7, 32, generator=generator),
                           timestep=torch.tensor([500.0]), num_frames=1, height=2, width=3, audio_num_frames=5,
                           return_dict=False)[0]


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


def test_original_format_lora_changes_the_output_and_scale_zero_does_not(tiny_model, lora_files):
    base = forward(tiny_parts(tiny_model)[0])
    assert (fused_output(tiny_model, [(lora_files[0], 1.0)]) - base).abs().max() > 1e-3
    assert torch.equal(fused_output(tiny_model, [(lora_files[0], 0.0)]), base)


def test_fused_equals_unfused_and_two_loras_stack(tiny_model, lora_files):
    pair = [(lora_files[0], 0.7), (lora_files[1], -1.2)]
    fused = fused_output(tiny_model, pair)
    assert torch.allclose(fused, unfused_output(tiny_model, pair), atol=1e-5)
    assert (fused - fused_output(tiny_model, pair[:1])).abs().max() > 1e-3


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


def test_bad_loras_exit_2_before_the_base_model_loads(tiny_model, tmp_path, capsys, monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))  # an empty cache
    save_file({"some.weight": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    write_lora(tmp_path / "foreign.safetensors", tiny_model, seed=3, modules=["transformer_blocks.9.attn1.to_q"])
    (tmp_path / "broken.safetensors").write_bytes(b"\x00" * 10)
    (tmp_path / "lora.bin").write_bytes(b"")
    cases = [
        (["--lora", str(tmp_path / "missing.safetensors")], "no such file"),
        (["--lora", str(tmp_path / "lora.bin")], "from .safetensors files only"),
        (["--lora", str(tmp_path / "plain.safetensors")], "holds no LoRA weights"),
        (["--lora", str(tmp_path / "broken.safetensors")], "cannot be read as safetensors"),
        (["--lora", str(tmp_path / "foreign.safetensors")], "do not exist in this model"),
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
    assert sidecar["loras"] == [{"lora": str(lora_files[0]), "file": str(lora_files[0]), "scale": 1.5, "modules": 6}]


def test_list_lora_files_of_an_unknown_repo_offline_is_a_clear_error(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "generate.py"), "--list-lora-files", "owner/none"],
                            capture_output=True, text=True,
                            env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 2 and "not reachable and not in the Hugging Face cache" in result.stderr
