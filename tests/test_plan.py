import pytest

from ltx2gen.plan import choose_compile


@pytest.mark.parametrize("requested,fp8,offload,compiled", [
    ("auto", "weight", "none", False),  # a single clip does not pay for the compile
    ("auto", "off", "group", True),  # group offload: 5.1 instead of 6.4 GiB at 1080p, and faster steps
    ("auto", "dynamic", "none", True),  # dynamic FP8 is only fast compiled
    ("on", "weight", "none", True),
    ("on", "off", "model", True),
    ("off", "off", "group", False),
    ("auto", "off", "sequential", False),
])
def test_blocks_are_compiled_where_asked_needed_or_paying(requested, fp8, offload, compiled):
    assert choose_compile(requested, fp8, offload) is compiled


def test_a_plan_that_falls_back_to_sequential_offload_says_it_does_not_compile(capsys):
    assert choose_compile("on", "weight", "sequential") is False
    assert "--compile on is ignored" in capsys.readouterr().out


@pytest.mark.parametrize("flags,warned", [([], True), (["--nag-scale", "8"], False),
                                          (["--guidance-scale", "3"], False)])
def test_a_negative_prompt_at_guidance_1_is_only_called_ignored_without_nag(tiny_model, tmp_path, capsys, flags,
                                                                           warned):
    from ltx2gen.config import GenerateConfig, build_parser
    from ltx2gen.plan import RunPlan

    args = ["--prompt", "a fox", "--negative-prompt", "a dog", "--model", str(tiny_model), "--device", "cpu",
            "--output", str(tmp_path / "clip.mp4"), *flags]
    plan = RunPlan.choose(GenerateConfig.from_args(build_parser().parse_args(args)))
    out = capsys.readouterr().out
    assert ("--negative-prompt has no effect" in out) is warned
    assert (plan.nag is not None) == ("--nag-scale" in flags)
    assert ("NAG scale 8 tau 2.5 alpha 0.25" in out) == ("--nag-scale" in flags)


@pytest.mark.parametrize("flags,text_encoder", [([], "resident"), (["--fp8", "weight"], "fp8"),
                                                (["--fp8", "weight", "--text-fp8", "off"], "resident"),
                                                (["--text-fp8", "on"], "fp8")])
def test_the_text_encoder_is_fp8_whenever_the_transformer_is_unless_told(tiny_model, tmp_path, capsys, flags,
                                                                         text_encoder):
    from ltx2gen.config import GenerateConfig, build_parser
    from ltx2gen.plan import RunPlan

    args = ["--prompt", "a fox", "--model", str(tiny_model), "--device", "cpu", "--output", str(tmp_path / "c.mp4"),
            *flags]
    plan = RunPlan.choose(GenerateConfig.from_args(build_parser().parse_args(args)))
    assert plan.text_encoder == text_encoder
    assert ("fp8 text encoder" in capsys.readouterr().out) is (text_encoder == "fp8")
