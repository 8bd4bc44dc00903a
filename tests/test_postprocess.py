import json
import shlex
import subprocess
from fractions import Fraction

import numpy as np
import pytest
import torch

import decode_latents
from ltx2gen import postprocess, postprocess_models
from ltx2gen.files import file_sha256
from ltx2gen.video import probe
from tests.conftest import run_generate
from tests.tiny_postprocess import write_tiny_rife, write_upscaler

CPU = torch.device("cpu")


def test_generate_interpolates_and_upscales_into_the_output(tmp_path, tiny_model, capsys):
    upscaler, rife = write_upscaler(tmp_path), write_tiny_rife(tmp_path)
    out = tmp_path / "clip.mp4"
    assert run_generate(tiny_model, out, "--upscale", "2", "--upscale-model", str(upscaler), "--interpolate", "2",
                        "--interpolate-model", str(rife), "--upscale-tile", "64") == 0
    info = probe(out)
    assert (info.frames, info.width, info.height, info.fps) == (33, 192, 128, Fraction(48))
    assert info.audio_samples == round(Fraction(17, 24) * info.audio_sample_rate)  # the audio as decoded, 17 frames
    assert not postprocess.plain_path(out).exists()
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["postprocess"]["upscale"]["architecture"] == "RealESRGAN Compact"
    assert sidecar["postprocess"]["interpolate"]["sha256"] == file_sha256(rife)
    assert list(sidecar["stage_seconds"])[-2:] == ["video", "interpolate+upscale"]
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert "(33 frames 192x128 at 48 fps" in summary and "interpolate+upscale" in summary


def test_a_failed_post_processing_keeps_the_latents_and_the_plain_clip_and_says_how_to_redo_it(
        tmp_path, tiny_model, capsys, monkeypatch):
    upscaler, rife = write_upscaler(tmp_path), write_tiny_rife(tmp_path)
    out = tmp_path / "clip.mp4"

    def out_of_memory(*args):
        raise torch.OutOfMemoryError("CUDA out of memory")

    with monkeypatch.context() as patch:
        patch.setattr(postprocess, "upscale_tiled", out_of_memory)
        assert run_generate(tiny_model, out, "--upscale", "2", "--upscale-model", str(upscaler)) == 1
    error = capsys.readouterr().err
    plain, latents = postprocess.plain_path(out), out.with_suffix(".latents.safetensors")
    assert plain.is_file() and latents.is_file() and not out.exists()
    redo = error.split("redo only the post-processing with:\n  ")[1].splitlines()[0]
    assert subprocess.run(redo, shell=True, capture_output=True).returncode == 0
    assert (probe(out).width, probe(out).frames) == (192, 17)
    assert probe(out).audio_samples == probe(plain).audio_samples
    recovered = tmp_path / "recovered.mp4"  # the whole recovery from the latents, interpolating this time
    assert decode_latents.main(["--input", str(latents), "--output", str(recovered), "--interpolate", "2",
                                "--interpolate-model", str(rife)]) == 0
    assert (probe(recovered).frames, probe(recovered).fps) == (33, Fraction(48))
    assert "interpolate" in json.loads(recovered.with_suffix(".json").read_text())["postprocess"]
    assert shlex.split(redo)[-2:] == ["--upscale-model", str(upscaler)]


def test_tiles_join_without_seams_where_the_model_reaches_within_their_context(tmp_path):
    upscaler = postprocess_models.load_upscaler(write_upscaler(tmp_path), CPU)
    frames = torch.rand(2, 3, 72, 136)
    tiled, whole = postprocess.upscale_tiled(upscaler, frames, 64), postprocess.upscale_tiled(upscaler, frames, 0)
    assert tiled.shape == (2, 3, 144, 272) and torch.allclose(tiled, whole, atol=1e-5)


def frames_held(count: int, factor: int, network) -> int:
    """The most frames taken from the source and not yet handed on, streaming `count` frames through interpolation
    and upscaling."""
    taken, handed, most = [0], [0], [0]

    def source():
        for _ in range(count):
            taken[0] += 1
            yield np.zeros((32, 32, 3), np.uint8)

    for frame in postprocess.to_frames(postprocess.interpolated(postprocess.to_batches(source(), CPU), network,
                                                                factor)):
        handed[0] += 1
        most[0] = max(most[0], taken[0] * factor - handed[0])
    assert handed[0] == factor * (count - 1) + 1
    return most[0]


def test_memory_is_flat_in_the_clip_length(tmp_path):
    network = postprocess_models.load_interpolator(write_tiny_rife(tmp_path), CPU)
    assert frames_held(12, 2, network) == frames_held(24, 2, network) <= 2 * 2 * postprocess.FRAMES_PER_BATCH


@pytest.mark.parametrize("factor", [2, 4])
def test_source_frames_are_kept_and_the_frames_between_follow_them(tmp_path, factor):
    network = postprocess_models.load_interpolator(write_tiny_rife(tmp_path), CPU)
    source = [np.full((32, 32, 3), value, np.uint8) for value in (0, 60, 120, 180, 240, 250)]
    frames = list(postprocess.to_frames(postprocess.interpolated(postprocess.to_batches(iter(source), CPU), network,
                                                                 factor)))
    assert len(frames) == factor * 5 + 1
    assert all(np.array_equal(frames[index * factor], frame) for index, frame in enumerate(source))
