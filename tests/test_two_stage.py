"""--pipeline two-stage end to end on the tiny real model: half-size diffusion, the real latent upsampler, the refine
at full size, the stage-one latents file and the resumed refine."""

import contextlib
import io
import json
import re
import shlex
import weakref

import numpy as np
import pytest

import decode_latents
import generate
from conftest import run_generate
from ltx2gen import memory
from ltx2gen.video import probe, read_frames

# 128x128 so that stage one (64x64) is two latents wide: the tiny VAE's reflect padding needs more than one.
TWO_STAGE = ["--pipeline", "two-stage", "--width", "128", "--height", "128", "--num-frames", "17", "--seed", "5"]


@pytest.fixture(scope="module")
def clip(tiny_model, tmp_path_factory):
    """One uninterrupted two-stage run with --keep-latents, its printed output and its lifecycle events."""
    out = tmp_path_factory.mktemp("two_stage") / "clip.mp4"
    events, models = [], {}

    def observe(event, name, obj):
        if event in ("load", "freed", "stage-end"):
            events.append((event, name))
        if event == "loaded":
            models[name] = weakref.ref(obj)
        if event == "load" and name == "latent_upsampler":
            events.append(("transformer resident", models["transformer"]() is not None))

    memory.add_listener(observe)
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            assert run_generate(tiny_model, out, "--keep-latents", clip=TWO_STAGE) == 0
    finally:
        memory.remove_listener(observe)
    return out, printed.getvalue(), events


def test_output_has_the_requested_frames_and_size(clip):
    out, _, _ = clip
    info = probe(out)
    assert (info.frames, info.width, info.height) == (17, 128, 128)


def test_sidecar_and_plan_line_record_both_stages(clip):
    out, printed, _ = clip
    sidecar = json.loads(out.with_suffix(".json").read_text())
    first, upsample, refine = sidecar["diffusion_stages"]
    assert sidecar["pipeline"] == "two-stage" and (sidecar["width"], sidecar["height"]) == (128, 128)
    assert (first["width"], first["height"], first["steps"], first["transformer_calls"]) == (64, 64, 8, 8)
    assert first["pipeline_call"]["sigmas"] == [1.0, 0.99375, 0.9875, 0.98125, 0.975, 0.909375, 0.725, 0.421875]
    assert (upsample["width"], upsample["height"]) == (128, 128)
    assert upsample["upsampler"].endswith("latent_upsampler")
    # The official refine sigmas reach the scheduler unshifted (the tiny scheduler shifts by resolution otherwise).
    assert refine["scheduler_sigmas"] == pytest.approx([0.909375, 0.725, 0.421875, 0.0], abs=1e-7)
    assert (refine["steps"], refine["noise_scale"], refine["transformer_calls"]) == (3, 0.909375, 3)
    assert sidecar["transformer_calls"] == 11
    assert re.search(r"plan: LTX-2.0 two-stage \(64x64, 8 distilled steps -> 2x latent upsample -> 128x128, "
                     r"3 refine", printed)


def test_transformer_loads_once_and_stays_while_the_upsampler_loads_and_frees(clip):
    _, _, events = clip
    diffusion = events[events.index(("load", "transformer")):events.index(("stage-end", "diffusion"))]
    assert diffusion.count(("load", "transformer")) == 1
    assert ("transformer resident", True) in diffusion
    freed_upsampler = diffusion.index(("freed", "latent_upsampler"))
    assert diffusion.index(("load", "latent_upsampler")) < freed_upsampler
    assert ("freed", "transformer") not in diffusion[:freed_upsampler]


def test_stage_one_latents_decode_to_a_half_size_preview(clip, tmp_path):
    out, _, _ = clip
    preview = tmp_path / "stage1.mp4"
    assert decode_latents.main(["--input", str(out.with_suffix(".stage1.latents.safetensors")),
                                "--output", str(preview)]) == 0
    info = probe(preview)
    assert (info.frames, info.width, info.height) == (17, 64, 64)


def test_a_failed_refine_keeps_stage_one_and_its_resume_command_gives_the_uninterrupted_clip(clip, tiny_model,
                                                                                            tmp_path, capsys):
    out, _, _ = clip
    failed = tmp_path / "failed.mp4"
    transformer_calls = []

    def fail_in_the_refine(event, name, obj):
        if event == "loaded" and name == "transformer":
            def explode(*_):
                transformer_calls.append(1)
                if len(transformer_calls) > 8:  # the refine's first step
                    raise RuntimeError("injected refine fault")
            obj.register_forward_pre_hook(explode)

    memory.add_listener(fail_in_the_refine)
    try:
        assert run_generate(tiny_model, failed, clip=TWO_STAGE) == 1
    finally:
        memory.remove_listener(fail_in_the_refine)
    err = capsys.readouterr().err
    assert "injected refine fault" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["failed.stage1.latents.safetensors"]
    command = shlex.split(re.search(r"resume the refine with:\n\s+(.*)", err).group(1))
    assert command[2:4] == ["--refine-from", str(tmp_path / "failed.stage1.latents.safetensors")]
    assert generate.main(command[2:]) == 0
    assert np.array_equal(read_frames(failed), read_frames(out))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["failed.json", "failed.mp4"]  # stage one discarded


def test_a_resumed_refine_refuses_settings_that_differ_from_its_stage_one(clip, capsys):
    out, _, _ = clip
    with pytest.raises(SystemExit) as exit_info:
        generate.main(["--refine-from", str(out.with_suffix(".stage1.latents.safetensors")), "--seed", "9"])
    assert exit_info.value.code == 2
    assert "--seed 9: the stage-one latents were made with 5; drop the flag" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--image", "--audio"])
def test_conditioning_inputs_are_refused_with_two_stage(flag, tiny_model, tmp_path, capsys):
    from PIL import Image

    from tests.test_audio_input import write_tone

    path = tmp_path / ("still.png" if flag == "--image" else "tone.wav")
    if flag == "--image":
        Image.new("RGB", (128, 128)).save(path)
    else:
        write_tone(path, 1.0)
    with pytest.raises(SystemExit) as exit_info:
        generate.main(["--prompt", "a fox", "--model", str(tiny_model), "--pipeline", "two-stage", "--width", "128",
                       "--height", "128", flag, str(path), "--output", str(tmp_path / "clip.mp4")])
    assert exit_info.value.code == 2
    assert f"{flag} {path}: conditioning is not built into --pipeline two-stage yet" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_resume_advice_in_the_container_is_the_images_generate_command(monkeypatch, tmp_path):
    from types import SimpleNamespace

    from ltx2gen.config import GenerateConfig, build_parser
    from ltx2gen.two_stage import resume_command

    config = GenerateConfig.from_args(build_parser().parse_args([
        "--prompt", "a fox", "--pipeline", "two-stage", "--camera", "jib-up", "--no-timestamp",
        "--output", str(tmp_path / "a b.mp4")]))
    monkeypatch.setenv("LTX2GEN_IN_CONTAINER", "1")
    assert resume_command(config, SimpleNamespace(fp8="weight")) == (
        f"docker run <the same options and image> generate --refine-from '{tmp_path}/a b.stage1.latents.safetensors' "
        "--fp8 weight --lora Lightricks/LTX-2-19b-LoRA-Camera-Control-Jib-Up::"
        "ltx-2-19b-lora-camera-control-jib-up.safetensors 1")
