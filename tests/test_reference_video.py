"""--reference-video with an IC-LoRA on the tiny real model: the clip equals diffusers' stock LTX2InContextPipeline
given the same reference and LoRA, a clip in windows follows each window's slice of the reference, the reference is
fitted to the clip's length and size as Lightricks' pipeline fits it, and bad input is refused before any weight is
read."""

import json
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import assert_refused_before_any_load, run_generate, run_generate_process
from ltx2gen import reference_video
from ltx2gen.conditioners import Span, conditions_for
from ltx2gen.conditioners.reference import ReferenceConditioner
from ltx2gen.latents import load_latents
from ltx2gen.lora import InContextLora
from ltx2gen.reference_video import FittedReference, SourceVideo, prepare_pixels
from ltx2gen.video import read_frames, write_mp4
from tests.test_lora import write_lora

PROMPT = "w1 w2 w3"
SHORT_CLIP = ["--width", "96", "--height", "64", "--num-frames", "9", "--seed", "7"]


@pytest.fixture(scope="module")
def inputs(tiny_model, tmp_path_factory):
    """An IC-LoRA (its reference downscale factor in its metadata, as Lightricks' trainer writes it), a plain LoRA,
    and a 33-frame reference video at the tiny clip's size."""
    folder = tmp_path_factory.mktemp("reference")
    frames = np.random.default_rng(0).integers(0, 256, (33, 64, 96, 3), dtype=np.uint8)
    return SimpleNamespace(
        folder=folder,
        ic_lora=write_lora(folder / "control.safetensors", tiny_model, seed=3,
                           metadata={"reference_downscale_factor": "1"}),
        halving_ic_lora=write_lora(folder / "halving.safetensors", tiny_model, seed=3,
                                   metadata={"reference_downscale_factor": "2"}),
        plain_lora=write_lora(folder / "style.safetensors", tiny_model, seed=4),
        later_ic_lora=write_lora(folder / "ltx-2.3-22b-ic-lora-union-control.safetensors", tiny_model, seed=5),
        reference=write_mp4(folder / "pose.mp4", iter(frames), width=96, height=64, num_frames=33, fps=Fraction(24)))


def test_the_clip_equals_the_stock_in_context_pipeline_with_the_same_reference_and_lora(tiny_model, inputs, tmp_path,
                                                                                         capsys):
    from diffusers import LTX2InContextPipeline
    from diffusers.pipelines.ltx2.pipeline_ltx2_ic_lora import LTX2ReferenceCondition

    out = tmp_path / "ic.mp4"
    assert run_generate(tiny_model, out, "--keep-latents", "--lora", str(inputs.ic_lora), "--reference-video",
                        f"{inputs.reference}:0.9", prompt=PROMPT, clip=SHORT_CLIP) == 0
    said = [line for line in capsys.readouterr().out.splitlines() if line.startswith("reference video:")]
    assert said == ["reference video: pose.mp4 (96x64, 33 frames at 24 fps), at 96x64 (the clip's size), its first 9 "
                    "frames, frame for frame, at strength 0.9"]
    sidecar = json.loads(out.with_suffix(".json").read_text())
    pipe = LTX2InContextPipeline.from_pretrained(tiny_model)
    pipe.load_lora_weights(str(inputs.ic_lora), adapter_name="ic")
    pipe.fuse_lora(components=["transformer"])
    # All 33 frames, as PIL images (the stock preprocessing reads a uint8 array as values already in [0, 1]): the
    # stock pipeline cuts them to the clip's 9 itself.
    frames = [Image.fromarray(frame) for frame in read_frames(inputs.reference)]
    stock = pipe(reference_conditions=[LTX2ReferenceCondition(frames=frames, strength=0.9)],
                 reference_downscale_factor=1, prompt=PROMPT, generator=torch.Generator().manual_seed(7),
                 max_sequence_length=sidecar["prompt_tokens"], **sidecar["pipeline_call"])
    saved = load_latents(out.with_suffix(".latents.safetensors"))
    # Bit for bit: the same preparation of the frames, the same VAE latents, the same stock sampling loop.
    assert torch.equal(saved.video, stock.frames) and torch.equal(saved.audio, stock.audio)
    record = sidecar["reference_video"]
    assert record == saved.metadata["reference_video"]
    used = (record["frames"], record["source_frames"], record["strength"], record["downscale_factor"])
    assert used == (9, 33, 0.9, 1)
    assert record["sha256"] == reference_video.inspect_video(
        reference_video.ReferenceSpec.parse(str(inputs.reference))).sha256


def test_a_clip_in_windows_follows_each_window_s_own_slice_of_the_reference(tiny_model, inputs, tmp_path,
                                                                           monkeypatch):
    from diffusers import AutoencoderKLLTX2Video

    seen = []
    stock_in_context = reference_video.in_context_pipeline

    def observed(pipe, keyframes, reference):
        seen.append((reference.latents.clone(), [keyframe.latents.shape[2] for keyframe in keyframes]))
        return stock_in_context(pipe, keyframes, reference)

    monkeypatch.setattr(reference_video, "in_context_pipeline", observed)
    out = tmp_path / "long.mp4"
    assert run_generate(tiny_model, out, "--lora", str(inputs.ic_lora), "--reference-video", str(inputs.reference),
                        "--window-seconds", "0.3", prompt=PROMPT) == 0
    record = json.loads(out.with_suffix(".json").read_text())
    windows = [(window["start_latent_frame"], window["num_frames"]) for window in record["windows"]]
    assert windows == [(0, 9), (1, 9)]  # 3 latent frames: 0-1, then 1-2 continuing from latent frame 1
    assert [(piece["first_frame"], piece["frames"]) for piece in record["reference_video"]["slices"]] == [(0, 9),
                                                                                                          (8, 9)]
    vae = AutoencoderKLLTX2Video.from_pretrained(tiny_model / "vae")
    frames = read_frames(inputs.reference)
    assert len(seen) == 2
    for (latents, keyframes), first in zip(seen, (0, 8)):
        with torch.no_grad():
            expected = vae.encode(prepare_pixels(frames[first:first + 9], 96, 64)).latent_dist.mode()
        assert torch.equal(latents, expected)
    assert [keyframes for _, keyframes in seen] == [[], [1]]  # the second also continues the first's last latent frame


def source(frames: int, width: int = 128, height: int = 96) -> SourceVideo:
    return SourceVideo(Path("ref.mp4"), "0" * 64, frames, width, height, Fraction(30))


def test_a_reference_of_another_length_and_size_is_fitted_as_lightricks_pipeline_fits_it_and_said():
    halving = InContextLora("control.safetensors", 2)
    longer = FittedReference.fit(source(200), 1.0, halving, width=128, height=64, num_frames=97)
    assert (longer.width, longer.height, longer.frames) == (64, 32, 97)
    assert "scaled to cover 64x32 (the clip's size / 2, control.safetensors's reference downscale factor) and " \
           "center-cropped, its first 97 frames, frame for frame" in longer.describe(97)
    shorter = FittedReference.fit(source(30, 64, 32), 0.5, halving, width=128, height=64, num_frames=97)
    assert shorter.frames == 25 and [(piece.first, piece.frames) for piece in shorter.slices] == [(0, 25)]
    assert "at 64x32" in shorter.describe(97) and "follow the clip's first 25 of 97 frames" in shorter.describe(97)
    windows = [SimpleNamespace(start=0, num_frames=17), SimpleNamespace(start=2, num_frames=17),
               SimpleNamespace(start=4, num_frames=17)]
    windowed = FittedReference.fit(source(30), 1.0, halving, width=128, height=64, num_frames=49, windows=windows)
    # 25 frames: the first window all 17, the second frames 16-24 (9), the third none (it starts at frame 32)
    assert [(piece.start, piece.first, piece.frames) for piece in windowed.slices] == [(0, 0, 17), (2, 16, 9)]
    conditioner = ReferenceConditioner(windowed, 49)
    encoded = reference_video.EncodedReference({0: "whole", 2: "second"})
    assert conditions_for((conditioner,), {"reference": encoded}).reference == "whole"
    assert conditions_for((conditioner,), {"reference": encoded}, Span(2, 1, 5, 0, 0)).reference == "second"
    assert conditions_for((conditioner,), {"reference": encoded}, Span(4, 1, 7, 0, 0)).reference is None


def test_frames_are_scaled_to_cover_and_center_cropped_into_minus_one_to_one():
    frames = np.zeros((9, 90, 160, 3), np.uint8)
    frames[:, :, 65:95] = 255  # a white band in the middle third of 16:9 frames
    pixels = prepare_pixels(frames, 48, 32)  # 3:2: the sides are cut
    assert pixels.shape == (1, 3, 9, 32, 48)
    assert pixels.min() == -1 and pixels.max() == 1
    middle = pixels[0, 0, 0, 16]
    assert middle[24] == 1 and middle[0] == -1 and middle[-1] == -1


@pytest.mark.parametrize("case, flags, message", [
    ("plain LoRA", ["--lora", "{plain_lora}", "--reference-video", "{reference}"], "needs an IC-LoRA (--lora)"),
    ("no LoRA", ["--reference-video", "{reference}"], "needs an IC-LoRA (--lora)"),
    ("no reference", ["--lora", "{ic_lora}"], "an IC-LoRA, made to follow a reference video; give the video"),
    ("not a video", ["--lora", "{ic_lora}", "--reference-video", "{plain_lora}"], "not a video ffmpeg can read"),
    ("missing", ["--lora", "{ic_lora}", "--reference-video", "{folder}/none.mp4"], "none.mp4: no such file"),
    ("strength above 1", ["--lora", "{ic_lora}", "--reference-video", "{reference}:2"], "must be between 0 and 1"),
    ("strength not a number", ["--lora", "{ic_lora}", "--reference-video", "{reference}:strong"],
     "the strength 'strong' after ':' is not a number"),
    ("auto length", ["--lora", "{ic_lora}", "--reference-video", "{reference}", "--num-frames", "auto"],
     "--num-frames auto with --reference-video"),
    ("size for the factor", ["--lora", "{halving_ic_lora}", "--reference-video", "{reference}"],
     "--width 96: --reference-video"),
    ("version", ["--lora", "{later_ic_lora}", "--reference-video", "{reference}"], "made for LTX-2.3"),
])
def test_bad_reference_input_exits_2_with_one_line_before_any_weight_is_read(tiny_model, inputs, tmp_path, capsys,
                                                                           case, flags, message):
    given = [flag.format(**vars(inputs)) for flag in flags]
    assert_refused_before_any_load(capsys, tmp_path, message, tiny_model, tmp_path / "out" / "clip.mp4", *given)


def test_the_pairing_is_refused_while_the_flags_are_checked_before_torch_is_imported(inputs, tmp_path):
    for flags, message in [(["--lora", str(inputs.ic_lora)], "an IC-LoRA, made to follow a reference video"),
                           (["--lora", str(inputs.plain_lora), "--reference-video", str(inputs.reference)],
                            "needs an IC-LoRA"),
                           (["--lora", str(inputs.ic_lora), "--reference-video", f"{inputs.reference}:-1"],
                            "must be between 0 and 1")]:
        result = run_generate_process("--prompt", "a fox", *flags, cwd=tmp_path)
        errors = [line for line in result.stderr.splitlines() if line.startswith("generate.py: error:")]
        assert result.returncode == 2 and len(errors) == 1 and message in errors[0], result.stderr
        assert "TORCH_NOT_IMPORTED" in result.stdout
