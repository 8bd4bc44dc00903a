import subprocess
import sys
from datetime import datetime
from fractions import Fraction
from pathlib import Path

import pytest

import generate
from conftest import ROOT, parse_config, run_generate_process
from ltx2gen.config import build_parser
from ltx2gen.errors import ConfigError
from ltx2gen.flag_values import parse_fps, stamped

BAD_INPUTS = [
    (["--width", "100"], "--width 100: must be a positive multiple of 32 (try 96 or 128)"),
    (["--height", "0"], "--height 0: must be a positive multiple of 32"),
    (["--num-frames", "100"], "--num-frames 100: must be of the form 8n+1; nearest valid counts are 97 and 105"),
    (["--num-frames", "0"], "--num-frames 0: must be of the form 8n+1"),
    (["--steps", "0"], "--steps 0: must be at least 1"),
    (["--steps", "20"], "--steps 20: the distilled schedule has exactly 8 steps"),
    (["--fps", "0"], "--fps 0: must be above 0"),
    (["--fps", "fast"], "--fps fast: not a number"),
    (["--guidance-scale", "0.5"], "--guidance-scale 0.5: must be between 1 (off) and 20"),
    (["--audio-guidance-scale", "nan"], "--audio-guidance-scale nan: must be between 1 (off) and 20"),
    (["--stg-scale", "-1"], "--stg-scale -1.0: must be between 0 (off) and 10"),
    (["--modality-scale", "0.5"], "--modality-scale 0.5: must be between 1 (off) and 20"),
    (["--guidance-scale", "1e38"], "--guidance-scale 1e+38: must be between 1 (off) and 20 (beyond, the model's"),
    (["--audio-guidance-scale", "21"], "--audio-guidance-scale 21.0: must be between 1 (off) and 20"),
    (["--stg-scale", "10.5"], "--stg-scale 10.5: must be between 0 (off) and 10"),
    (["--modality-scale", "1e6"], "--modality-scale 1000000.0: must be between 1 (off) and 20"),
    (["--nag-scale", "1e38"], "--nag-scale 1e+38: must be between 0 (off) and 20"),
    (["--model", "./no/such/model"], "--model ./no/such/model: no such model directory"),
    (["--output", "clip.avi"], "--output clip.avi: must end in .mp4"),
    (["--output", "afile/clip.mp4"], "is a file, so the folder afile cannot be created"),
    (["--vae-chunk-frames", "12"], "--vae-chunk-frames 12: must be 0 or a positive multiple of 8"),
    (["--vae-chunk-frames", "16", "--vae-context-frames", "0"], "temporal pieces need at least 8 frames of context"),
    (["--prompt", " "], "--prompt is empty"),
    (["--vae-tile-size", "100"], "--vae-tile-size 100: must be a multiple of 32, at least 256"),
    (["--vae-tile-size", "256", "--vae-tile-overlap", "160"], "must be a multiple of 32 between 0 and half the tile"),
    (["--offload", "group", "--sequential-offload"], "--sequential-offload contradicts --offload group"),
    (["--fp8", "weight", "--no-fp8"], "--no-fp8 contradicts --fp8 weight"),
    (["--fp8", "dynamic", "--offload", "group"], "--fp8 dynamic compiles the resident transformer and cannot stream"),
    (["--fp8", "fast"], "argument --fp8: invalid choice: 'fast'"),
    (["--fp8", "dynamic", "--compile", "off"], "--fp8 dynamic needs the compiled transformer"),
    (["--compile", "on", "--offload", "sequential"], "--compile on cannot compile through the per-layer hooks"),
    (["--nag-scale", "-1"], "--nag-scale -1.0: must be between 0 (off) and 20"),
    (["--nag-scale", "nan"], "--nag-scale nan: must be between 0 (off) and 20"),
    (["--nag-tau", "0.5"], "--nag-tau 0.5: must be at least 1"),
    (["--nag-alpha", "0"], "--nag-alpha 0.0: must be above 0 and at most 1"),
    (["--nag-alpha", "1.5"], "--nag-alpha 1.5: must be above 0 and at most 1"),
    (["--image", "missing.png"], "--image missing.png: no such file"),
    (["--image", "afile"], "--image afile: not a readable image"),
    (["--image-strength", "0.5"], "--image-strength 0.5 has no effect without --image"),
    (["--image", "afile", "--image-strength", "-0.1"], "--image-strength -0.1: must be between 0 and 1"),
    (["--pipeline", "two-stage", "--width", "800"], "--width 800: --pipeline two-stage with the default x2 upsampler "
                                                    "runs stage one at 800/2 px, which must be a multiple of 32; give "
                                                    "a multiple of 64: try 768 or 832"),
    (["--pipeline", "two-stage", "--height", "544"], "--height 544: --pipeline two-stage with the default x2 "),
    (["--pipeline", "two-stage", "--steps", "20"], "--steps 20: two-stage runs the distilled schedule (8 steps)"),
    (["--pipeline", "two-stage", "--guidance-scale", "3"], "--guidance-scale 3: two-stage runs the distilled model"),
    (["--pipeline", "two-stage", "--stg-scale", "1"], "--stg-scale 1: two-stage runs the distilled model"),
    (["--pipeline", "two-stage", "--upsampler", "./no/upsampler"], "--upsampler ./no/upsampler: no latent upsampler"),
    (["--refine-from", "nothing.stage1.latents.safetensors"], "--refine-from nothing.stage1.latents.safetensors: "
                                                              "no such file"),
    (["--refine-from", "afile"], "--refine-from afile: not an ltx2gen latents file"),
    (["--pipeline", "fast"], "argument --pipeline: invalid choice: 'fast'"),
    (["--audio", "missing.wav"], "--audio missing.wav: no such file"),
    (["--audio", "afile"], "--audio afile: not an audio file ffmpeg can read"),
    (["--audio", "afile", "--audio-strength", "1.5"], "--audio-strength 1.5: must be between 0"),
    (["--audio", "afile", "--audio-strength", "nan"], "--audio-strength nan: must be between 0"),
    (["--audio-strength", "0.5"], "--audio-strength 0.5 has no effect without --audio"),
    (["--num-frames", "many"], "--num-frames many: give a frame count of the form 8n+1 (e.g. 97) or auto"),
    (["--min-seconds", "2"], "--min-seconds 2 has no effect without --num-frames auto"),
    (["--num-frames", "auto", "--min-seconds", "3", "--max-seconds", "2"], "--min-seconds 3 must be less than "
                                                                           "--max-seconds 2"),
    (["--num-frames", "auto", "--max-seconds", "0.5"], "--min-seconds 1 (its default) must be less than "
                                                       "--max-seconds 0.5"),
    (["--num-frames", "auto", "--min-seconds", "0"], "--min-seconds 0: must be a positive, finite number of seconds"),
    (["--num-frames", "auto", "--max-seconds", "inf"], "--max-seconds inf: must be a positive, finite number"),
    (["--num-frames", "auto", "--min-seconds", "1", "--max-seconds", "1.02"],
     "--min-seconds 1 to --max-seconds 1.02 at 24 fps is 24 to 24 frames, which holds no count of the form 8n+1; "
     "widen the range to take in 17 or 25 frames"),
    (["--num-frames", "auto", "--audio", "afile"], "--num-frames auto with --audio afile: the soundtrack, not the "
                                                   "prompt, sets the length"),
    (["--num-frames", "auto", "--pipeline", "two-stage"], "--num-frames auto: not with --pipeline two-stage"),
]


@pytest.mark.parametrize("args,message", BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_exits_2_with_one_line_before_loading_anything(tmp_path, args, message):
    (tmp_path / "afile").write_text("not a folder")
    prompt = [] if "--prompt" in args else ["--prompt", "a fox"]
    result = run_generate_process(*prompt, "--model", "rootonchair/LTX-2-19b-distilled", *args, cwd=tmp_path)
    assert result.returncode == 2
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("generate.py: error:")]
    assert len(error_lines) == 1 and message in error_lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert "TORCH_NOT_IMPORTED" in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_missing_prompt_is_a_usage_error(tmp_path):
    result = run_generate_process(cwd=tmp_path)
    assert result.returncode == 2 and "--prompt" in result.stderr


def test_defaults_follow_the_issue_and_the_distilled_model():
    config = parse_config()
    assert (config.width, config.height, config.num_frames, config.fps) == (768, 512, 97, Fraction(24))
    assert config.pipeline == "distilled" and config.steps == 8 and config.guidance_scale == 1.0
    assert config.output == Path("outputs/video_20260102_030405.mp4")
    assert 0 <= config.seed < 2**31


def test_full_model_gets_lightricks_recommended_guidance_and_explicit_values_win():
    config = parse_config("--model", "Lightricks/LTX-2")
    # The steps are the version's, which the plan reads from the checkpoint (40 for LTX-2.0, 30 later).
    assert (config.pipeline, config.steps) == ("full", None)
    assert (config.guidance_scale, config.audio_guidance_scale, config.stg_scale, config.modality_scale) == (
        3.0, 7.0, 1.0, 3.0)
    config = parse_config("--model", "Lightricks/LTX-2", "--steps", "12", "--guidance-scale", "4", "--seed", "5",
                          "--stg-scale", "0", "--modality-scale", "1", "--audio-guidance-scale", "5")
    assert (config.steps, config.guidance_scale, config.audio_guidance_scale, config.stg_scale,
            config.modality_scale, config.seed) == (12, 4.0, 5.0, 0.0, 1.0, 5)
    assert parse_config("--pipeline", "distilled", "--model", "Lightricks/LTX-2").steps == 8


def test_distilled_model_samples_without_guidance_unless_asked():
    config = parse_config()
    assert (config.guidance_scale, config.audio_guidance_scale, config.stg_scale, config.modality_scale) == (
        1.0, 1.0, 0.0, 1.0)
    # Guidance asked of the distilled model guides its audio alike unless told otherwise.
    assert parse_config("--guidance-scale", "2").audio_guidance_scale == 2.0


def test_guidance_without_a_negative_prompt_gets_the_ltx2_default_loudly(capsys):
    from diffusers.pipelines.ltx2.utils import DEFAULT_NEGATIVE_PROMPT

    assert parse_config("--model", "Lightricks/LTX-2").negative_prompt == DEFAULT_NEGATIVE_PROMPT
    assert f"using LTX-2's default negative prompt: {DEFAULT_NEGATIVE_PROMPT}" in capsys.readouterr().out
    assert parse_config("--model", "Lightricks/LTX-2", "--negative-prompt", "rain").negative_prompt == "rain"
    assert parse_config().negative_prompt is None  # no guidance, no negative prompt
    assert "negative prompt" not in capsys.readouterr().out
    # Audio guidance alone needs the negative prompt too.
    assert parse_config("--model", "Lightricks/LTX-2", "--guidance-scale", "1").negative_prompt == \
        DEFAULT_NEGATIVE_PROMPT


def test_two_stage_defaults_are_the_distilled_schedule_without_guidance():
    config = parse_config("--pipeline", "two-stage", "--width", "1920", "--height", "1088")
    assert (config.pipeline, config.steps, config.guidance_scale, config.negative_prompt) == (
        "two-stage", 8, 1.0, None)
    assert config.distilled


def test_auto_length_is_planned_for_the_longest_clip_its_bounds_allow():
    from ltx2gen.duration import AutoLength

    config = parse_config("--num-frames", "auto")
    assert config.num_frames is None and config.auto_length == AutoLength(1.0, 20.0, Fraction(24))  # diffusers'
    assert config.planned_num_frames == 473  # 20 s are 480 frames: the last 8n+1 count in them
    assert parse_config("--num-frames", "auto", "--max-seconds", "4", "--fps", "25").planned_num_frames == 97
    assert parse_config("--num-frames", "121").planned_num_frames == 121
    assert parse_config("--num-frames", "121").auto_length is None


def test_sequential_offload_and_no_fp8_switches_are_aliases():
    assert parse_config("--sequential-offload").offload == "sequential"
    assert parse_config().offload == "auto" and parse_config("--offload", "group").offload == "group"
    assert parse_config("--no-fp8").fp8 == "off" and parse_config().fp8 == "auto"
    assert parse_config("--fp8", "dynamic").fp8 == "dynamic"


def test_timestamp_never_overwrites_and_no_timestamp_is_exact(tmp_path):
    now = datetime(2026, 1, 2, 3, 4, 5)
    first = stamped(tmp_path / "clip.mp4", now)
    first.write_text("taken")
    assert first.name == "clip_20260102_030405.mp4"
    assert stamped(tmp_path / "clip.mp4", now).name == "clip_20260102_030405_2.mp4"
    assert parse_config("--no-timestamp", "--output", str(tmp_path / "x.mp4")).output == tmp_path / "x.mp4"


def test_fps_is_exact_and_ntsc_decimals_are_snapped_loudly(capsys):
    assert parse_fps("24000/1001") == Fraction(24000, 1001)
    assert parse_fps("23.976") == Fraction(24000, 1001)
    assert "exact NTSC rate 24000/1001" in capsys.readouterr().out
    assert parse_fps("25") == Fraction(25)
    with pytest.raises(ConfigError):
        parse_fps("-1")


def test_help_lists_every_flag_with_its_default():
    help_text = build_parser().format_help()
    for flag in ("--prompt", "--negative-prompt", "--model", "--output", "--no-timestamp", "--width", "--height",
                 "--num-frames", "--fps", "--steps", "--guidance-scale", "--seed", "--no-fp8", "--fp8",
                 "--vae-chunk-frames", "--sequential-offload", "--keep-latents", "--min-seconds", "--max-seconds"):
        assert flag in help_text
    assert "(default: 768)" in help_text and "(default: rootonchair/LTX-2-19b-distilled)" in help_text


@pytest.mark.parametrize("args,message", [
    (["--device", "cuda:7"], "--device cuda:7"),
    (["--device", "cpu", "--fp8", "dynamic"], "--fp8 dynamic needs float8 tensor cores"),
    (["--model", "{tmp_path}/not-a-model"], "no model_index.json"),
])
def test_an_unavailable_device_or_model_folder_exits_2_before_any_weight_is_read(tiny_model, tmp_path, capsys,
                                                                                  args, message):
    (tmp_path / "not-a-model").mkdir()
    args = [arg.format(tmp_path=tmp_path) for arg in args]
    model = [] if "--model" in args else ["--model", str(tiny_model)]
    with pytest.raises(SystemExit) as exit_info:
        generate.main(["--prompt", "a fox", *model, *args, "--output", str(tmp_path / "out" / "c.mp4")])
    captured = capsys.readouterr()
    assert exit_info.value.code == 2
    assert message in captured.err.splitlines()[-1] and "[memory]" not in captured.out
    assert not (tmp_path / "out").exists()


def test_help_shows_zero_defaults_too():
    from ltx2gen.config import build_parser

    help_text = " ".join(build_parser().format_help().split())
    assert "is 8 here (default: 0.0)" in help_text  # --nag-scale: 0.0 == False must not hide it


def test_an_output_folder_that_cannot_be_written_exits_2_and_leaves_nothing(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        generate.main(["--prompt", "a fox", "--output", "/proc/ltx2gen-no-such-folder/clip/c.mp4"])
    assert exit_info.value.code == 2
    assert "--output: cannot write in /proc/ltx2gen-no-such-folder/clip" in capsys.readouterr().err.splitlines()[-1]


def test_the_write_probe_leaves_no_file_or_folder_behind(tmp_path):
    from ltx2gen.flag_values import ensure_writable_dir

    ensure_writable_dir(tmp_path / "new" / "nested", "--output")
    ensure_writable_dir(tmp_path, "--output")
    assert list(tmp_path.iterdir()) == []


def test_a_utf8_prompt_is_taken_under_an_ascii_locale_without_utf8_mode(tmp_path):
    prompt = "un café à l'aube, 夜明けの狐"
    code = ("import sys\nfrom conftest import parse_config\nconfig = parse_config('--prompt', sys.argv[1], "
            "'--negative-prompt', sys.argv[2], '--prompt-at', sys.argv[3])\n"
            "print(ascii([config.prompt, config.negative_prompt, config.prompt_at[0].prompt]))\n")
    result = subprocess.run([sys.executable, "-c", code, prompt, "flou, café", "1:la nuit tombe, été"],
                            cwd=ROOT / "tests", capture_output=True, text=True,
                            env={"PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}", "PATH": "/usr/bin:/bin", "LC_ALL": "C",
                                 "PYTHONUTF8": "0", "PYTHONIOENCODING": "utf-8"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ascii([prompt, "flou, café", "la nuit tombe, été"])
