"""The conditioners' interface: every registered conditioner plugs into the parser, the batch lines, the records
and the conditions of a denoising run the same way (a throwaway one, `--flat-first-frame`, took three files: its
module, one line of `CONDITIONERS` and its options among `GenerateConfig`'s bases)."""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ltx2gen.audio_input import AudioCondition
from ltx2gen.batch_lines import INPUT_FILE_KEYS
from ltx2gen.conditioners import CONDITIONERS, Span, conditions_for, given_inputs, plan_all, records
from ltx2gen.conditioners.audio import AudioConditioner
from ltx2gen.conditioners.retake import RetakeConditioner
from ltx2gen.config import GenerateConfig, build_parser
from ltx2gen.errors import ConfigError
from ltx2gen.video import write_mp4
from tests.test_audio_input import write_tone
from tests.test_lora import write_lora


def settings(tmp_path: Path, *flags: str) -> GenerateConfig:
    return GenerateConfig.from_args(build_parser().parse_args(["--prompt", "a fox", "--width", "96", "--height", "64",
                                                               "--num-frames", "25", "--output",
                                                               str(tmp_path / "out.mp4"), *flags]))


def test_each_conditioner_brings_its_own_flags_batch_files_and_stage():
    fields = {f.name for f in dataclasses.fields(GenerateConfig)}
    groups = {group.title: {action.dest for action in group._group_actions} for group in build_parser()._action_groups}
    for kind in CONDITIONERS:
        own = {f.name for f in dataclasses.fields(kind.options)}
        assert own <= fields and groups[kind.options.__doc__.splitlines()[0]] == own  # its own group of --help
        assert set(kind.input_files) <= own and set(kind.input_files) <= INPUT_FILE_KEYS
    assert len({kind.name for kind in CONDITIONERS}) == len({kind.stage for kind in CONDITIONERS}) == len(CONDITIONERS)


def test_a_clip_without_inputs_records_each_conditioner_as_absent_as_the_latents_file_always_did(tmp_path):
    plain = settings(tmp_path)
    assert given_inputs(plain) == [] and plan_all(plain, None) == ()
    assert records(()) == {"image": None, "keyframes": [], "audio_input": None, "reference_video": None,
                           "retake": None}


def test_planned_inputs_are_inspected_once_and_record_the_same_keys_as_their_absence(tmp_path, tiny_model):
    Image.new("RGB", (96, 64), (200, 30, 30)).save(tmp_path / "red.png")
    tone = write_tone(tmp_path / "tone.wav", 1.5)
    reference = write_mp4(tmp_path / "pose.mp4", iter(np.zeros((25, 64, 96, 3), np.uint8)), width=96, height=64,
                          num_frames=25, fps=Fraction(24))
    ic_lora = write_lora(tmp_path / "control.safetensors", tiny_model, seed=1,
                         metadata={"reference_downscale_factor": "1"})
    given = settings(tmp_path, "--image", str(tmp_path / "red.png"), "--keyframe", f"{tmp_path / 'red.png'}@end",
                     "--audio", str(tone), "--audio-strength", "0.5", "--lora", str(ic_lora), "--reference-video",
                     f"{reference}:0.5")
    assert [flag for flag, _ in given_inputs(given)] == ["--image", "--keyframe", "--audio", "--reference-video"]
    planned = plan_all(given, tiny_model)
    # a retake takes no other input (tests/test_retake.py plans and records it)
    assert [type(item) for item in planned] == [kind for kind in CONDITIONERS if kind is not RetakeConditioner]
    for item in planned:  # a clip without the input records the same keys, at their "absent" values
        assert set(type(item).absent_record) <= set(item.record())
    record = records(planned)
    assert record["image_strength"] == 1.0 and [k["frame"] for k in record["keyframes"]] == [17]
    assert record["audio_input"]["strength"] == 0.5 and record["audio_input"]["seconds"] == pytest.approx(1.5, 0.01)
    assert record["reference_video"]["strength"] == 0.5 and record["reference_video"]["frames"] == 25
    assert "2 keyframes" in "".join(item.describe() for item in planned)


def test_a_window_follows_its_slice_of_the_input_audio_padded_at_the_clip_end():
    latents = torch.arange(10.0).view(1, 1, 10, 1)
    audio = (AudioConditioner(None),)
    whole = conditions_for(audio, {"audio": AudioCondition(latents, 0.5)})
    assert torch.equal(whole.audio.latents, latents) and whole.keyframes == []
    window = conditions_for(audio, {"audio": AudioCondition(latents, 0.5)}, Span(4, 1, 8, 7, 5)).audio
    assert window.strength == 0.5 and not window.prefix
    assert window.latents.flatten().tolist() == [7.0, 8.0, 9.0, 9.0, 9.0]  # 3 frames left, the last one repeated


def test_a_conditioner_s_bad_input_is_refused_with_the_others_before_any_weight_is_read(tmp_path):
    with pytest.raises(ConfigError, match="--num-frames auto with --audio"):
        settings(tmp_path, "--audio", str(tmp_path / "none.wav"), "--num-frames", "auto")
    with pytest.raises(ConfigError, match="--image-strength 2"):
        settings(tmp_path, "--image", str(tmp_path / "none.png"), "--image-strength", "2")
