import pytest

from ltx2gen import compiling
from ltx2gen.fit import clip_tokens

TOKENS_1080P = clip_tokens(1920, 1088, 161)


@pytest.fixture
def compile_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "compile-cache"))
    return tmp_path / "compile-cache"


@pytest.mark.parametrize("requested,fp8,offload,calls,compiled", [
    ("auto", "off", "group", 8, False),  # a distilled 1080p clip saves about 5 s against a 30 s first compile
    ("auto", "weight", "group", 8, False),  # FP8 weights compile for minutes
    ("auto", "off", "none", 40 * 3, True),  # the full model's 40 guided steps: about 70 s saved
    ("auto", "weight", "group", 40 * 3, False),  # still short of the FP8 compile's 340 s
    ("auto", "dynamic", "none", 8, True),  # dynamic FP8 is only fast compiled
    ("on", "weight", "none", 8, True),
    ("off", "off", "none", 120, False),
    ("auto", "off", "sequential", 120, False),
])
def test_blocks_are_compiled_where_asked_needed_or_paying_in_the_run(compile_cache, requested, fp8, offload, calls,
                                                                    compiled):
    chosen, reason = compiling.choose(requested, fp8, offload, tokens=TOKENS_1080P, calls=calls, key="shape")
    assert chosen is compiled and reason


def test_a_warm_compile_cache_makes_a_short_run_compile(compile_cache):
    assert compiling.choose("auto", "off", "group", tokens=TOKENS_1080P, calls=8, key="1080p")[0] is False
    compiling.remember("1080p")
    compiled, reason = compiling.choose("auto", "off", "group", tokens=TOKENS_1080P, calls=8, key="1080p")
    assert compiled and "compile cache" in reason
    assert compiling.choose("auto", "off", "group", tokens=TOKENS_1080P, calls=8, key="720p")[0] is False


def test_a_plan_that_falls_back_to_sequential_offload_says_it_does_not_compile():
    compiled, reason = compiling.choose("on", "weight", "sequential", tokens=TOKENS_1080P, calls=8, key="shape")
    assert compiled is False and "--compile on is ignored" in reason


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
