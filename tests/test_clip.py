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
@pytest.mark.parametrize("model_fixture", ["tiny_model", "tiny_25_model"])
@pytest.mark.parametrize("flags", [["--fp8", "off"], ["--fp8", "weight", "--text-fp8", "on"],
                                   ["--fp8", "dynamic"], ["--fp8", "off", "--offload", "group"],
                                   ["--fp8", "weight", "--offload", "sequential"]],
                         ids=["bf16", "fp8-weight", "fp8-dynamic", "group-offload", "sequential-offload"])
def test_every_precision_and_offload_mode_renders_on_the_gpu(request, tmp_path, model_fixture, flags):
    model = request.getfixturevalue(model_fixture)
    clip = render(model, tmp_path / "fox.mp4", "--device", "cuda", *flags)
    assert probe(clip.output).frames == 17
    latents = load_latents(clip.latents)
    assert torch.isfinite(latents.video).all() and torch.isfinite(latents.audio).all()
    reference = load_latents(render(model, tmp_path / "bf16.mp4", "--device", "cuda", "--fp8", "off").latents)
    difference = (latents.video.float() - reference.video.float()).norm() / reference.video.float().norm()
    assert difference < (0.1 if "weight" in flags or "dynamic" in flags else 0.02)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A still image and a tone for --image and --audio."""
    import wave

    import numpy as np
    from PIL import Image

    folder = tmp_path_factory.mktemp("inputs")
    Image.fromarray((np.random.RandomState(0).rand(64, 96, 3) * 255).astype(np.uint8)).save(folder / "still.png")
    tone = (np.sin(np.arange(16000) * 2 * np.pi * 440 / 16000) * 20000).astype(np.int16)
    with wave.open(str(folder / "tone.wav"), "wb") as handle:
        handle.setnchannels(1), handle.setsampwidth(2), handle.setframerate(16000), handle.writeframes(tone.tobytes())
    return folder


@pytest.mark.parametrize("model_fixture, flags", [
    ("tiny_25_model", ["--nag-scale", "8"]), ("tiny_25_model", ["--image", "{inputs}/still.png"]),
    ("tiny_25_model", ["--audio", "{inputs}/tone.wav", "--audio-strength", "0.5"]),
    ("tiny_25_model", ["--fp8", "weight", "--text-fp8", "on"]),
    ("tiny_23_model", ["--image", "{inputs}/still.png", "--image-strength", "0.7"])],
    ids=["2.5-nag", "2.5-image", "2.5-audio", "2.5-fp8", "2.3-image"])
def test_the_newer_versions_render_with_each_conditioning_and_precision(request, tmp_path, inputs, model_fixture,
                                                                        flags):
    model = request.getfixturevalue(model_fixture)
    clip = render(model, tmp_path / "clip.mp4", "--device", "cpu", *(flag.format(inputs=inputs) for flag in flags))
    info = probe(clip.output)
    assert (info.frames, info.audio_sample_rate) == (17, 48000)
    sidecar = json.loads(clip.sidecar.read_text())
    assert sidecar["model_version"] == model_fixture[5] + "." + model_fixture[6]
    if "--image" in flags:  # the H.264 CRF each version's conditioning images were trained with
        assert sidecar["image_crf"] == {"tiny_25_model": 18, "tiny_23_model": 33}[model_fixture]
    assert torch.isfinite(load_latents(clip.latents).video).all()


@pytest.mark.parametrize("flags, message", [
    (["--camera", "dolly-in"], "--camera dolly-in: Lightricks has published camera-control LoRAs for LTX-2.0 only "
                              "(Lightricks/LTX-2-19b-LoRA-Camera-Control-*), none for LTX-2.5")])
def test_what_is_verified_on_ltx_2_0_only_is_refused_on_later_versions_before_any_weight(tiny_25_model, tmp_path,
                                                                                        capsys, flags, message):
    import generate

    with pytest.raises(SystemExit) as exit_status:
        generate.main(["--prompt", "a fox", "--model", str(tiny_25_model), "--output", str(tmp_path / "c.mp4"),
                       "--device", "cpu", *flags])
    assert exit_status.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith(f"generate.py: error: {message}") and error.count("\n") == 1


def test_an_ltx_2_5_clip_recovers_from_its_latents_with_its_vocoder_rate(tiny_25_model, tmp_path):
    import decode_latents
    from ltx2gen.video import read_frames

    clip = render(tiny_25_model, tmp_path / "clip.mp4", "--device", "cpu")
    recovered = tmp_path / "recovered.mp4"
    assert decode_latents.main(["--input", str(clip.latents), "--output", str(recovered), "--device", "cpu"]) == 0
    assert probe(recovered).audio_sample_rate == 48000
    assert (read_frames(recovered) == read_frames(clip.output)).all()


def test_a_transformer_read_ahead_during_the_text_stage_changes_no_number(tiny_model, tmp_path):
    """The plan's read-ahead (chosen on discrete GPUs with the host memory for it) starts before the text stage and
    is stopped by the transformer's own load; the clip is the same bit for bit."""
    import dataclasses

    from ltx2gen import memory
    from ltx2gen.plan import RunPlan

    events = []

    def record(event, name, obj):
        if event in ("prefetch", "prefetch-stopped"):
            events.append((event, sorted({path.parent.name for path, _, _ in obj})))
        elif event in ("stage-start", "load"):
            events.append((event, name))

    config = configure(tiny_model, tmp_path / "ahead.mp4", "--device", "cpu")
    plain = ltx2gen.generate(configure(tiny_model, tmp_path / "plain.mp4", "--device", "cpu"))
    memory.add_listener(record)
    try:
        ahead = ltx2gen.generate(config, dataclasses.replace(RunPlan.choose(config), read_ahead=True))
    finally:
        memory.remove_listener(record)
    assert events.index(("prefetch", ["transformer"])) < events.index(("stage-start", "text"))
    stopped = [index for index, event in enumerate(events) if event == ("prefetch-stopped", ["transformer"])]
    # stopped by the transformer's load, if it was still running then; never before
    assert all(index > events.index(("load", "transformer")) for index in stopped)
    assert json.loads(ahead.sidecar.read_text())["transformer_read_ahead"] is True
    assert json.loads(plain.sidecar.read_text())["transformer_read_ahead"] is False  # a CPU run has no read-ahead
    for name in ("video", "audio"):
        assert torch.equal(getattr(load_latents(ahead.latents), name), getattr(load_latents(plain.latents), name))
