from fractions import Fraction

import pytest

from ltx2gen.errors import ConfigError
from ltx2gen.postprocess_options import PostprocessOptions, postprocess_argv, validate_postprocess_options
from ltx2gen.video import VideoFormat
from tests.conftest import assert_refused_before_any_load
from tests.tiny_postprocess import write_tiny_rife, write_upscaler


def test_n_frames_become_factor_times_n_minus_one_plus_one_at_factor_times_the_rate(tmp_path):
    options = PostprocessOptions(upscale=4, upscale_model=tmp_path, interpolate=2, interpolate_model=tmp_path)
    assert options.postprocessed(VideoFormat(96, 64, 161, Fraction(24000, 1001))) == \
        VideoFormat(384, 256, 321, Fraction(48000, 1001))
    assert postprocess_argv(options)[:4] == ["--upscale", "4", "--upscale-model", str(tmp_path)]


@pytest.mark.parametrize("options, message", [
    (dict(upscale=2), "--upscale 2 needs --upscale-model FILE"),
    (dict(interpolate_model="x.pkl"), "--interpolate-model x.pkl has no effect without --interpolate 2|4"),
    (dict(upscale_tile=100), "--upscale-tile 100: give 0 (whole frames) or a multiple of 8"),
    (dict(interpolate=3, interpolate_model="x.pkl"), "--interpolate 3: give 2 or 4"),
])
def test_flag_rules(options, message):
    with pytest.raises(ConfigError, match=message.replace("|", "\\|").replace("(", "\\(").replace(")", "\\)")):
        validate_postprocess_options(PostprocessOptions(**options))


def test_valid_models_pass(tmp_path):
    validate_postprocess_options(PostprocessOptions(upscale=2, upscale_model=write_upscaler(tmp_path),
                                                    interpolate=4, interpolate_model=write_tiny_rife(tmp_path)))


def test_generate_refuses_a_wrong_model_before_any_weight_is_read(capsys, tmp_path, tiny_model):
    rife = write_tiny_rife(tmp_path)
    assert_refused_before_any_load(capsys, tmp_path, "--upscale-model", tiny_model, tmp_path / "out" / "c.mp4",
                                   "--upscale", "2", "--upscale-model", str(rife))
