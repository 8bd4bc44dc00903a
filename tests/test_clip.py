"""The library entry point, `ltx2gen.generate`: one clip from a config in Python, as generate.py runs it."""

import json

import pytest
import torch

import ltx2gen
from conftest import CLIP
from ltx2gen.latents import load_latents
from ltx2gen.video import probe


def configure(model, out, *flags: str):
    return ltx2gen.GenerateConfig.from_args(ltx2gen.build_parser().parse_args(
        ["--prompt", "w1 w2 w3", "--model", str(model), "--no-timestamp", "--keep-latents", "--output", str(out),
         *CLIP, *flags]))


def render(model, out, *flags: str):
    return ltx2gen.generate(configure(model, out, *flags))


def test_generate_from_python_writes_the_clip_its_sidecar_and_the_latents(tiny_model, tmp_path):
    config = configure(tiny_model, tmp_path / "fox.mp4", "--device", "cpu")
    clip = ltx2gen.generate(config)
    assert clip.output == tmp_path / "fox.mp4" and clip.sidecar == tmp_path / "fox.json"
    info = probe(clip.output)
    assert (info.frames, info.width, info.height) == (17, 96, 64)
    sidecar = json.loads(clip.sidecar.read_text())
    assert sidecar["prompt_token_count"] > 0 and sidecar["prompt_tokens_dropped"] == 0
    assert [report["name"] for report in sidecar["stages"]] == ["text", "diffusion", "audio", "video"]
    assert load_latents(clip.latents).video.shape[2] == 3  # 17 frames are 3 latent frames
    assert clip.summary(config).startswith(f"done: {clip.output} (17 frames 96x64 at 24 fps")


def test_a_failing_stage_raises_clip_failed_with_advice(tiny_model, tmp_path, monkeypatch):
    from ltx2gen import diffusion

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(diffusion, "run_denoiser", broken)
    with pytest.raises(ltx2gen.ClipFailed) as failure:
        render(tiny_model, tmp_path / "fox.mp4", "--device", "cpu")
    assert str(failure.value) == "RuntimeError: out of memory" and not failure.value.interrupted
    assert failure.value.advice == "nothing was saved; fix the cause and run the same command again"


@pytest.mark.gpu
@pytest.mark.parametrize("flags", [["--fp8", "off"], ["--fp8", "weight", "--text-fp8", "on"],
                                   ["--fp8", "dynamic"], ["--fp8", "off", "--offload", "group"],
                                   ["--fp8", "weight", "--offload", "sequential"]],
                         ids=["bf16", "fp8-weight", "fp8-dynamic", "group-offload", "sequential-offload"])
def test_every_precision_and_offload_mode_renders_on_the_gpu(tiny_model, tmp_path, flags):
    clip = render(tiny_model, tmp_path / "fox.mp4", "--device", "cuda", *flags)
    assert probe(clip.output).frames == 17
    latents = load_latents(clip.latents)
    assert torch.isfinite(latents.video).all() and torch.isfinite(latents.audio).all()
    reference = load_latents(render(tiny_model, tmp_path / "bf16.mp4", "--device", "cuda", "--fp8", "off").latents)
    difference = (latents.video.float() - reference.video.float()).norm() / reference.video.float().norm()
    assert difference < (0.1 if "weight" in flags or "dynamic" in flags else 0.02)
