"""Batch lines are data: each key a setting's exact name, each value typed from its JSON and never read as a flag;
every error names the batch file, the line and the clip."""

import json

import pytest
from test_faults import assert_rejected, call, run_batch_runner, summary_rows

import generate
from conftest import parse_config
from ltx2gen import batch
from ltx2gen.batch_lines import read_batch
from ltx2gen.config import GenerateConfig, build_parser
from ltx2gen.errors import ConfigError

FLAG_LIKE = {"prompt": "--help", "negative_prompt": "-x --output y.mp4", "prompt_at": ["f16:--resume z"],
             "num_frames": 41, "fps": 24, "width": 768, "keep_latents": True, "nag_scale": 8, "seed": 5}


def write_lines(path, *lines) -> str:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return str(path)


def test_values_that_look_like_flags_are_values_in_both_runners(tmp_path):
    clip, = read_batch(write_lines(tmp_path / "b.jsonl", {"name": "a", **FLAG_LIKE}))
    config = clip.config(tmp_path / "a.mp4")
    assert (config.prompt, config.negative_prompt, config.prompt_at[0].prompt) == (
        "--help", "-x --output y.mp4", "--resume z")
    assert config.keep_latents and config.num_frames == 41 and config.output == tmp_path / "a.mp4"
    # run_batch.sh hands the same values to the clip's generate.py process: its arguments parse back to them
    argv = clip.argv(tmp_path / "a.mp4")
    assert GenerateConfig.from_args(build_parser().parse_args(argv)) == config


@pytest.mark.parametrize("value", ["false", "true", 0, 1, None])
def test_a_switch_takes_a_json_boolean_or_is_refused_naming_the_line(tmp_path, value):
    path = write_lines(tmp_path / "b.jsonl", {"name": "a", "prompt": "x"},
                       {"name": "b", "prompt": "y", "keep_latents": value})
    if value is None:  # null: the setting at its default
        assert not read_batch(path)[1].config(tmp_path / "b.mp4").keep_latents
        return
    with pytest.raises(ConfigError) as error:
        read_batch(path)
    assert str(error.value).startswith(f"{path}:2: clip 'b': 'keep_latents' is a switch: give true or false")
    assert json.dumps(value) in str(error.value)


@pytest.mark.parametrize("key, close", [("outpu", "output"), ("resum", "resume"), ("num_frame", "num_frames"),
                                        ("out", None), ("batch", None), ("--width", "width")])
def test_an_unknown_or_abbreviated_key_is_refused_naming_the_key_and_the_known_ones(tmp_path, key, close):
    path = write_lines(tmp_path / "b.jsonl", {"name": "a", "prompt": "x", key: "y.mp4"})
    with pytest.raises(ConfigError) as error:
        read_batch(path)
    message = str(error.value)
    assert message.startswith(f"{path}:1: clip 'a': unknown key {key!r}")
    assert (f"did you mean {close!r}?" in message) == (close is not None)
    known = message.split("a line's keys are exactly these: ")[1].split(", ")
    assert {"num_frames", "prompts", "keyframes", "seed"} <= set(known) and "resume" not in known


@pytest.mark.parametrize("runner", ["generate.py", "run_batch.sh"])
def test_both_runners_refuse_an_abbreviated_key_before_anything_renders(tmp_path, runner):
    path = write_lines(tmp_path / "b.jsonl", {"name": "a", "prompt": "x"},
                       {"name": "b", "prompt": "y", "outpu": "elsewhere.mp4"})
    status, _, err = run_batch_runner(runner, path, "--out", tmp_path / "out")
    assert_rejected(status, err, runner, f"{path}:2: clip 'b': unknown key 'outpu'", "did you mean 'output'?")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("line, says", [
    ({"width": "768"}, "'width' must be a whole number, not \"768\""),
    ({"guidance_scale": [3]}, "'guidance_scale' must be a number, not [3]"),
    ({"pipeline": "fast"}, "'pipeline' is \"fast\"; choose one of auto, distilled, full, two-stage"),
    ({"prompt_at": [{"at": 1}]}, "'prompt_at' must be text"),
])
def test_a_value_of_the_wrong_type_is_refused_naming_the_line(tmp_path, line, says):
    path = write_lines(tmp_path / "b.jsonl", {"name": "a", "prompt": "x", **line})
    with pytest.raises(ConfigError, match=r"^" + str(path) + ":1: clip 'a': ") as error:
        read_batch(path)
    assert says in str(error.value)


@pytest.mark.parametrize("runner", ["generate.py", "run_batch.sh"])
def test_a_clips_bad_value_fails_it_naming_the_file_and_line_and_the_others_render(tiny_model, tmp_path, runner):
    path = write_lines(tmp_path / "b.jsonl", {"name": "bad", "prompt": "x", "num_frames": 10},
                       {"name": "help", "prompt": "--help", "model": str(tiny_model), "width": 64, "height": 64,
                        "num_frames": 9, "seed": 3})
    status, _, err = run_batch_runner(runner, path, "--out", tmp_path / "out", *(
        ["--embedding-cache", tmp_path / "cache"] if runner == "generate.py" else []))
    assert status == 1, err
    rows = summary_rows(tmp_path / "out")
    assert rows["help"]["status"] == "done"  # a prompt of --help renders
    assert json.loads((tmp_path / "out" / "help.json").read_text())["prompt"] == "--help"
    assert (rows["bad"]["status"], rows["bad"]["attempts"]) == ("failed", 0)
    assert rows["bad"]["detail"].startswith(f"bad input: {path}:1: clip 'bad': --num-frames 10: must be of the form")


def test_a_batch_line_and_the_command_line_build_the_same_configuration(tmp_path):
    clip, = read_batch(write_lines(tmp_path / "b.jsonl", {"name": "a", "prompt": "a fox", "seed": 3, "fps": "25",
                                                          "lora": [["x.safetensors", 0.5]], "keep_latents": True}))
    assert clip.flags["lora"] == [[str("x.safetensors"), "0.5"]]
    from_line = batch.Clip("a", 1, {**clip.flags, "lora": None}, clip.source).config(tmp_path / "a.mp4")
    assert from_line == parse_config("--seed", "3", "--fps", "25", "--keep-latents", "--no-timestamp",
                                     "--output", str(tmp_path / "a.mp4"))


def test_generate_batch_refuses_a_generation_flag_given_at_its_default_value(tmp_path):
    path = write_lines(tmp_path / "b.jsonl", {"name": "a", "prompt": "x"})
    status, _, err = call(generate.main, ["--batch", path, "--width", "768"])
    assert_rejected(status, err, "generate.py", "put --width on its lines instead")


def test_relative_input_files_and_folders_resolve_beside_the_batch_file_and_repo_ids_stay(tmp_path):
    (tmp_path / "temporal").mkdir()
    (tmp_path / "temporal" / "config.json").write_text("{}")
    clip, = read_batch(write_lines(tmp_path / "b.jsonl", {
        "name": "a", "prompt": "a fox", "pipeline": "dfr", "temporal_upsampler": "temporal",
        "detailing_lora": "Lightricks/LTX-2.5-22b-IC-LoRA-Pixel-Spatial-Upscaler"}))
    assert clip.flags["temporal_upsampler"] == tmp_path / "temporal"  # typed as the flag types it
    assert clip.flags["detailing_lora"] == "Lightricks/LTX-2.5-22b-IC-LoRA-Pixel-Spatial-Upscaler"
    with pytest.raises(ConfigError, match="sets dfr_from; outputs are named by the batch"):
        read_batch(write_lines(tmp_path / "c.jsonl", {"name": "a", "prompt": "a fox", "dfr_from": "x"}))
