"""The user-input error and the strength check the conditioning inputs share."""

import pytest

from ltx2gen.errors import ConfigError, check_strength


@pytest.mark.parametrize("strength", [-0.1, 1.5, float("nan"), float("inf")])
def test_a_strength_outside_0_to_1_is_refused_with_what_its_ends_mean(strength):
    with pytest.raises(ConfigError) as error:
        check_strength("--image-strength", strength, "1 keeps the image", "--image", "picture.png")
    assert f"--image-strength {strength}: must be between 0 and 1" in str(error.value)
    assert "(1 keeps the image)" in str(error.value)


def test_a_strength_without_its_source_flag_is_refused():
    with pytest.raises(ConfigError) as error:
        check_strength("--audio-strength", 0.5, "1 keeps the audio", "--audio", None)
    assert "--audio-strength 0.5 has no effect without --audio" in str(error.value)


@pytest.mark.parametrize("strength,source", [(0.0, "tone.wav"), (0.5, "tone.wav"), (1.0, "tone.wav"), (1.0, None)])
def test_valid_strengths_pass(strength, source):
    assert check_strength("--audio-strength", strength, "1 keeps the audio", "--audio", source) is None
