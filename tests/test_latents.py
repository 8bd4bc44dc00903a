import subprocess
import sys

import numpy as np
import pytest
import torch
from test_faults import SMALL, assert_rejected, call, error_lines

import decode_latents
import generate
from conftest import ROOT, run_generate
from ltx2gen import diffusion
from ltx2gen.latents import LatentsFileError, load_latents, save_latents

META = {"model": "some/model", "fps": "24000/1001", "width": 96, "height": 64, "num_frames": 17, "seed": 1,
        "prompt": "a fox", "sample_rate": 24000}


def sample(dtype=torch.float32):
    generator = torch.Generator().manual_seed(0)
    return (torch.randn(1, 4, 3, 2, 3, generator=generator).to(dtype),
            torch.randn(1, 2, 18, 2, generator=generator).to(dtype))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_round_trip_is_exact_and_keeps_metadata(tmp_path, dtype):
    video, audio = sample(dtype)
    path = save_latents(tmp_path / "clip.latents.safetensors", video, audio, META)
    loaded = load_latents(path)
    assert loaded.video.dtype == dtype and torch.equal(loaded.video, video) and torch.equal(loaded.audio, audio)
    assert loaded.metadata == META
    assert [p.name for p in tmp_path.iterdir()] == ["clip.latents.safetensors"]


def test_older_npz_form_is_read(tmp_path):
    video, _ = sample()
    np.savez(tmp_path / "old.npz", latents=video.numpy(), model="some/model", fps=24, width=96, height=64,
             num_frames=17)
    loaded = load_latents(tmp_path / "old.npz")
    assert torch.equal(loaded.video, video) and loaded.audio is None and loaded.metadata["fps"] == 24


def test_truncated_corrupt_and_wrong_shape_files_are_refused(tmp_path):
    video, audio = sample()
    good = save_latents(tmp_path / "good.safetensors", video, audio, META)
    (tmp_path / "truncated.safetensors").write_bytes(good.read_bytes()[:200])
    (tmp_path / "garbage.safetensors").write_bytes(b"\x00" * 64)
    save_latents(tmp_path / "shape.safetensors", video[:, :, :2], audio, META)
    for name, message in [("truncated", "not a readable latents file"), ("garbage", "not a readable latents file"),
                          ("shape", r"need \(3, 2, 3\)"), ("missing", "no such latents file")]:
        with pytest.raises(LatentsFileError, match=message):
            load_latents(tmp_path / f"{name}.safetensors")


@pytest.mark.parametrize("content,message", [
    (None, "no such latents file"),
    (b"\x07" * 100, "not a readable latents file"),
])
def test_decode_latents_cli_refuses_bad_files_with_status_2(tmp_path, content, message):
    source = tmp_path / "in.safetensors"
    if content is not None:
        source.write_bytes(content)
    result = subprocess.run([sys.executable, str(ROOT / "decode_latents.py"), "--input", str(source),
                             "--output", str(tmp_path / "out.mp4")], capture_output=True, text=True)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out.mp4").exists()


# --- latents that went bad: NaN or infinite values are a failure where they appear --------------------------------


def spoiled(source, target, value=float("nan")):
    """A copy of the latents file `source` at `target` with one video and one audio value set to `value`, written as
    a run whose numbers overflowed would have written it."""
    import json

    from safetensors.torch import save_file

    loaded = load_latents(source)
    video, audio = loaded.video.clone(), loaded.audio.clone()
    video.view(-1)[3], audio.view(-1)[1] = value, value
    save_file({"video_latents": video, "audio_latents": audio}, str(target),
              metadata={"format": "ltx2gen-latents/1", "ltx2gen": json.dumps(loaded.metadata)})
    return target


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_values_are_counted_without_torch_and_refused_on_save_and_load(tmp_path, dtype, value):
    from ltx2gen.latents import NonFiniteLatents, nonfinite_values

    video, audio = sample(dtype)
    good = save_latents(tmp_path / "good.latents.safetensors", video, audio, META)
    assert nonfinite_values(good) == 0
    bad = spoiled(good, tmp_path / "bad.latents.safetensors", value)
    assert nonfinite_values(bad) == 2
    with pytest.raises(LatentsFileError, match="NaN or infinite .video 1 of 72, audio 1 of 72 values"):
        load_latents(bad)
    video.view(-1)[0] = value
    with pytest.raises(NonFiniteLatents):
        save_latents(tmp_path / "never.latents.safetensors", video, audio, META)
    assert not list(tmp_path.glob("*never*")) and not list(tmp_path.glob(".*"))


@pytest.fixture(scope="module")
def kept_small(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("kept") / "kept.mp4"
    status, _, err = call(run_generate, tiny_model, out, "--keep-latents", clip=SMALL)
    assert status == 0, err
    return out.with_suffix(".latents.safetensors")


def test_decode_latents_and_extend_refuse_latents_that_went_bad_up_front(tiny_model, kept_small, tmp_path):
    bad = spoiled(kept_small, tmp_path / "bad.latents.safetensors")
    status, _, err = call(decode_latents.main, ["--input", str(bad), "--output", str(tmp_path / "c.mp4")])
    assert_rejected(status, err, "decode_latents.py", f"{bad}: its latents are NaN or infinite")
    status, _, err = call(generate.main, ["--prompt", "more", "--model", str(tiny_model), "--extend", str(bad),
                                          "--extend-seconds", "0.5", "--output", str(tmp_path / "more.mp4")])
    assert_rejected(status, err, "generate.py", f"--extend {bad}: 2 of its latent values are NaN or infinite")
    assert sorted(path.name for path in tmp_path.iterdir()) == [bad.name]


def nan_after(function, call_number: int = 1):
    """`function` (a denoising run), except that its `call_number`-th result holds NaN latents, as a run whose
    guidance overflowed does."""
    calls = []

    def wrapped(*args, **kwargs):
        result = function(*args, **kwargs)
        calls.append(1)
        if len(calls) == call_number:
            result.video_latents = torch.full_like(result.video_latents, float("nan"))
        return result

    return wrapped


def test_a_diffusion_that_diverges_fails_in_one_line_saving_nothing(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setattr(diffusion, "run_denoiser", nan_after(diffusion.run_denoiser))
    status, out, err = call(run_generate, tiny_model, tmp_path / "clip.mp4", clip=SMALL)
    assert status == 1 and "Traceback" not in err, err
    assert error_lines(err) == ["error: NonFiniteLatents: the diffusion's latents are NaN or infinite (video 32 of "
                                "32 values)"], err
    assert "lower the guidance scales" in err and "done:" not in out
    assert list(tmp_path.iterdir()) == []


def test_a_window_that_diverges_keeps_the_windows_before_it_and_says_how_to_resume(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setattr(diffusion, "run_denoiser", nan_after(diffusion.run_denoiser, 2))
    long = ["--width", "96", "--height", "64", "--num-frames", "41", "--window-seconds", "1", "--seed", "7"]
    out = tmp_path / "clip.mp4"
    status, _, err = call(run_generate, tiny_model, out, clip=long)
    kept = out.with_suffix(".latents.safetensors")
    assert status == 1 and "Traceback" not in err and len(error_lines(err)) == 1, err
    assert "NaN or infinite" in error_lines(err)[0]
    assert f"render the rest with the same command and --resume {kept}" in err
    assert load_latents(kept).video_format.num_frames == 25  # the first window, whole and finite


def model_channels(model) -> tuple[int, int, int]:
    """(video channels, audio channels, audio mel bins) of `model`'s latents."""
    import json

    video = json.loads((model / "vae" / "config.json").read_text())
    audio = json.loads((model / "audio_vae" / "config.json").read_text())
    return video["latent_channels"], audio["latent_channels"], audio["mel_bins"] // 4


def latents_for(model, path, video_channels=None, audio=None, dtype=torch.float32):
    """A latents file of a 64x64, 9-frame clip of `model` (LTX-2.0), with its channels unless told, and `dtype`."""
    generator = torch.Generator().manual_seed(0)
    meta = {"model": str(model), "model_version": "2.0", "fps": "24", "width": 64, "height": 64, "num_frames": 9,
            "seed": 7, "prompt": "a fox", "sample_rate": 24000}
    channels, audio_channels, mel_bins = model_channels(model)
    video = torch.randn(1, video_channels or channels, 2, 2, 2, generator=generator).to(dtype)
    audio = torch.randn(1, *(audio or (audio_channels, mel_bins))[:1], 9, (audio or (0, mel_bins))[1],
                        generator=generator).to(dtype)
    return save_latents(path, video, audio, meta)


@pytest.mark.parametrize("change, message", [
    ({"video_channels": 3}, "its video latents have channels 3, this model's video VAE takes {video}"),
    ({"audio": (3, None)}, "its audio latents have (channels, mel bins) (3, {mel}), this model's audio VAE takes "
                           "({audio}, {mel})"),
    ({"audio": (None, 64)}, "its audio latents have (channels, mel bins) ({audio}, 64)"),
    ({"dtype": torch.int32}, "video latents are not floating-point numbers"),
])
def test_latents_made_for_another_model_are_refused_by_decode_and_extend_up_front(tiny_model, tmp_path, change,
                                                                                  message):
    from ltx2gen import memory

    video, audio, mel = model_channels(tiny_model)
    if "audio" in change:
        change = {"audio": (change["audio"][0] or audio, change["audio"][1] or mel)}
    message = message.format(video=video, audio=audio, mel=mel)
    loads = []
    listener = lambda event, name, obj: loads.append(name) if event == "load" else None  # noqa: E731
    memory.add_listener(listener)
    try:
        other = latents_for(tiny_model, tmp_path / "other.latents.safetensors", **change)
        status, _, err = call(decode_latents.main, ["--input", str(other), "--output", str(tmp_path / "c.mp4")])
        assert_rejected(status, err, "decode_latents.py", str(other), message)
        status, _, err = call(generate.main, ["--prompt", "more", "--model", str(tiny_model), "--extend", str(other),
                                              "--extend-seconds", "0.5", "--output", str(tmp_path / "more.mp4")])
        assert_rejected(status, err, "generate.py", f"--extend {other}", message.split(",")[0])
    finally:
        memory.remove_listener(listener)
    assert loads == [] and sorted(path.name for path in tmp_path.iterdir()) == [other.name]
