import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import generate
from conftest import ROOT
from ltx2gen import memory
from ltx2gen.batch import docker_command
from ltx2gen.batch_lines import Clip, read_batch
from ltx2gen.errors import ConfigError
from ltx2gen.video import probe, read_frames


def write_batch(path, model, clips):
    common = {"model": str(model), "width": 96, "height": 64, "num_frames": 17}
    path.write_text("\n".join(json.dumps(dict(common, **clip)) for clip in clips) + "\n")
    return path


GOOD_AND_BAD = [
    {"name": "fox", "prompt": "a red fox in snow", "seed": 1},
    {"name": "bad", "prompt": "a clip with a bad flag", "num_frames": 100},
    {"name": "sea", "prompt": "waves on a beach, gulls", "seed": 2, "no_fp8": True},
]


def run_batch_script(batch_file, out_dir):
    return subprocess.run([str(ROOT / "batch" / "run_batch.sh"), str(batch_file), "--out", str(out_dir)],
                          capture_output=True, text=True, env=dict(os.environ, PYTHON=sys.executable,
                                                                   HF_HUB_OFFLINE="1"))


@pytest.fixture(scope="module")
def rendered(tiny_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("batch")
    batch_file = write_batch(folder / "themes.jsonl", tiny_model, GOOD_AND_BAD)
    return batch_file, folder / "out", run_batch_script(batch_file, folder / "out")


def test_runner_renders_good_clips_reports_the_bad_one_and_fails(rendered):
    _, out, result = rendered
    assert result.returncode == 1, result.stdout + result.stderr
    for name in ("fox", "sea"):
        assert probe(out / f"{name}.mp4").frames == 17
        assert (out / f"{name}.first.png").is_file() and (out / f"{name}.last.png").is_file()
        assert (out / "logs" / f"{name}.log").is_file()
    assert not (out / "bad.mp4").exists()
    assert (out / "contact_sheet.png").is_file()
    rows = {row["name"]: row for row in json.loads((out / "summary.json").read_text())["clips"]}
    assert {name: row["status"] for name, row in rows.items()} == {"fox": "done", "bad": "failed", "sea": "done"}
    assert "themes.jsonl:2: clip 'bad': --num-frames 100: must be of the form 8n+1" in rows["bad"]["detail"]
    assert rows["bad"]["attempts"] == 0  # bad input is found before a process starts, and not retried
    assert "[1/3] fox: done" in result.stdout and "[3/3] sea: done" in result.stdout
    assert "| bad | failed |" in (out / "summary.md").read_text()


def test_second_run_renders_nothing_again(rendered):
    batch_file, out, _ = rendered
    before = {name: (out / f"{name}.mp4").stat().st_mtime_ns for name in ("fox", "sea")}
    result = run_batch_script(batch_file, out)
    assert result.returncode == 1
    rows = {row["name"]: row["status"] for row in json.loads((out / "summary.json").read_text())["clips"]}
    assert rows == {"fox": "skipped", "bad": "failed", "sea": "skipped"}
    assert before == {name: (out / f"{name}.mp4").stat().st_mtime_ns for name in ("fox", "sea")}


def test_in_process_batch_equals_separate_runs_and_reuses_cached_embeddings(rendered, tmp_path):
    batch_file, separate, _ = rendered
    cache = tmp_path / "embeddings"
    args = ["--batch", str(batch_file), "--out", str(tmp_path / "one"), "--embedding-cache", str(cache)]
    assert generate.main(args) == 1  # the bad clip still fails
    for name in ("fox", "sea"):
        assert np.array_equal(read_frames(tmp_path / "one" / f"{name}.mp4"), read_frames(separate / f"{name}.mp4"))
    assert len(list(cache.iterdir())) == 2

    loads = []
    listener = lambda event, name, obj: loads.append(name) if event == "load" else None  # noqa: E731
    memory.add_listener(listener)
    try:
        assert generate.main(["--batch", str(batch_file), "--out", str(tmp_path / "two"),
                              "--embedding-cache", str(cache)]) == 1
    finally:
        memory.remove_listener(listener)
    assert "text_encoder" not in loads and loads.count("transformer") == 1
    assert np.array_equal(read_frames(tmp_path / "two" / "fox.mp4"), read_frames(separate / "fox.mp4"))


def test_in_process_batch_renders_a_two_stage_clip(tiny_model, tmp_path):
    batch_file = write_batch(tmp_path / "two.jsonl", tiny_model, [
        {"name": "big", "prompt": "a red fox in snow", "seed": 1, "pipeline": "two-stage", "width": 128,
         "height": 128}])
    assert generate.main(["--batch", str(batch_file), "--out", str(tmp_path / "out"), "--embedding-cache",
                          str(tmp_path / "embeddings")]) == 0
    info = probe(tmp_path / "out" / "big.mp4")
    assert (info.frames, info.width, info.height) == (17, 128, 128)
    sidecar = json.loads((tmp_path / "out" / "big.json").read_text())
    assert [stage["width"] for stage in sidecar["diffusion_stages"]] == [64, 128, 128]
    assert not list((tmp_path / "out").glob("*.latents.safetensors"))  # stage-one latents discarded after success


def test_in_process_batch_lets_the_model_choose_a_clips_length_and_decodes_its_kept_latents(tiny_25_model, tmp_path):
    batch_file = write_batch(tmp_path / "auto.jsonl", tiny_25_model, [
        {"name": "fox", "prompt": "w1 w2 w3", "seed": 7, "width": 64, "num_frames": "auto", "min_seconds": 0.5,
         "max_seconds": 2, "keep_latents": True}])
    out = tmp_path / "out"
    args = ["--batch", str(batch_file), "--out", str(out), "--embedding-cache", str(tmp_path / "embeddings")]
    assert generate.main(args) == 0
    sidecar = json.loads((out / "fox.json").read_text())
    assert 0.5 < sidecar["auto_duration"]["predicted_seconds"] < 2  # the model chose, not the bounds
    assert probe(out / "fox.mp4").frames == sidecar["num_frames"] == sidecar["auto_duration"]["num_frames"]
    rendered = read_frames(out / "fox.mp4")
    # The clip's latents are kept and its video is gone, as after a failed decode: a re-run decodes the latents
    # at the length they hold.
    (out / "fox.mp4").unlink()
    (out / "fox.json").unlink()
    assert generate.main(args) == 0
    assert np.array_equal(read_frames(out / "fox.mp4"), rendered)
    row = json.loads((out / "summary.json").read_text())["clips"][0]
    assert (row["status"], row["detail"]) == ("done", "decoded from the kept fox.latents.safetensors")


def test_ctrl_c_stops_cleanly_after_writing_the_summary(tiny_model, tmp_path):
    batch_file = write_batch(tmp_path / "long.jsonl", tiny_model,
                             [{"name": f"c{i}", "prompt": "a slow clip", "seed": i} for i in range(4)])
    out = tmp_path / "out"
    runner = subprocess.Popen([str(ROOT / "batch" / "run_batch.sh"), str(batch_file), "--out", str(out)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env=dict(os.environ, PYTHON=sys.executable, HF_HUB_OFFLINE="1"))
    log = out / "logs" / "c1.log"
    deadline = time.time() + 120
    while not (log.exists() and "plan:" in log.read_text()) and time.time() < deadline:
        time.sleep(0.2)
    runner.send_signal(signal.SIGINT)
    output, _ = runner.communicate(timeout=120)
    assert runner.returncode == 130, output
    rows = {row["name"]: row["status"] for row in json.loads((out / "summary.json").read_text())["clips"]}
    assert rows["c0"] == "done" and rows["c1"] == "interrupted" and rows["c3"] == "interrupted"
    assert not (out / "c1.mp4").exists()


def test_batch_file_structure_errors_name_the_line(tmp_path):
    cases = [('{"name": "a", "prompt": "x"}\n{not json}\n', ":2: not valid JSON"),
             ('{"name": "a b", "prompt": "x"}\n', "file-name-safe"),
             ('{"name": "a", "prompt": "x"}\n{"name": "a", "prompt": "y"}\n', "used twice"),
             ('{"name": "a"}\n', "has no 'prompt'"),
             ('{"name": "a", "prompt": "x", "output": "y.mp4"}\n', "sets output"),
             ("\n# only a comment\n", "holds no clips")]
    for text, message in cases:
        (tmp_path / "b.jsonl").write_text(text)
        with pytest.raises(ConfigError, match=message):
            read_batch(tmp_path / "b.jsonl")
    result = subprocess.run([str(ROOT / "batch" / "run_batch.sh"), str(tmp_path / "missing.jsonl")],
                            capture_output=True, text=True, env=dict(os.environ, PYTHON=sys.executable))
    assert result.returncode == 2 and "no such batch file" in result.stderr


def test_batch_refuses_generation_flags_on_the_command_line(tmp_path, capsys):
    (tmp_path / "b.jsonl").write_text('{"name": "a", "prompt": "x"}\n')
    with pytest.raises(SystemExit) as exit_info:
        generate.main(["--batch", str(tmp_path / "b.jsonl"), "--width", "1920", "--seed", "3"])
    assert exit_info.value.code == 2
    assert "put --width, --seed on its lines instead" in capsys.readouterr().err


def test_clip_flags_become_generate_arguments(tmp_path):
    clip = Clip("x", 1, {"prompt": "a b", "num_frames": "121", "no_fp8": True, "keep_latents": False,
                         "lora": [["a.safetensors", "0.5"], ["b.safetensors"]], "camera": "jib-up"})
    assert clip.argv(tmp_path / "x.mp4") == [
        "--prompt=a b", "--num-frames=121", "--no-fp8", "--lora", "a.safetensors", "0.5",
        "--lora", "b.safetensors", "--camera=jib-up", f"--output={tmp_path / 'x.mp4'}", "--no-timestamp"]


def test_docker_mode_mounts_the_cache_and_the_output_folder(tmp_path):
    command = docker_command("ltx2", tmp_path / "hf", tmp_path / "out")
    assert command[:4] == ["docker", "run", "--rm", "--gpus"]
    assert f"{tmp_path / 'hf'}:/cache/huggingface" in command and f"{tmp_path / 'out'}:/outputs" in command
    assert command[-2:] == ["ltx2", "generate"]


def test_shipped_prompt_files_are_valid_batches():
    files = sorted((ROOT / "batch" / "prompts").glob("*.jsonl"))
    assert len(files) >= 6
    for path in files:
        clips = read_batch(path)
        assert clips and all(len(clip.flags["prompt"]) > 80 for clip in clips), path
    cameras = read_batch(ROOT / "batch" / "prompts" / "camera_moves.jsonl")
    assert {clip.flags["camera"] for clip in cameras} == {"dolly-in", "dolly-out", "dolly-left", "dolly-right",
                                                          "jib-up", "jib-down", "static"}
    assert len({clip.flags["prompt"] for clip in cameras}) == 1


def test_relative_image_and_audio_paths_are_found_beside_the_batch_file(tmp_path, monkeypatch):
    folder = tmp_path / "prompts"
    folder.mkdir()
    (folder / "frame.png").write_bytes(b"png")
    (tmp_path / "voice.wav").write_bytes(b"wav")
    (folder / "b.jsonl").write_text('{"name": "a", "prompt": "p", "image": "frame.png", "audio": "voice.wav"}\n')
    monkeypatch.chdir(tmp_path)
    clip, = read_batch(folder / "b.jsonl")
    assert clip.flags["image"] == folder / "frame.png"  # beside the batch file
    assert clip.flags["audio"] == Path("voice.wav")  # not there: as given, from the working directory


def test_clips_share_a_loaded_transformer_only_where_it_is_held_alike(tiny_model, tmp_path):
    """The in-process batch loads one transformer per group of clips: a clip whose transformer is another folder
    (LTX-2.5's full model) or runs its attention in FP8 must not join another's group."""
    import dataclasses

    from ltx2gen.batch_in_process import _Job
    from ltx2gen.plan import RunPlan
    from tests.test_clip import configure

    config = configure(tiny_model, tmp_path / "a.mp4", "--device", "cpu")
    plan = RunPlan.choose(config)
    keys = {_Job(candidate, clip=None, row=None).shared_models_key() for candidate in (
        plan, dataclasses.replace(plan), dataclasses.replace(plan, fp8_attention=True),
        dataclasses.replace(plan, transformer_folder="transformer_full"))}
    assert len(keys) == 3


def test_a_finished_clip_whose_line_changed_renders_again_and_an_unchanged_one_is_skipped(tiny_model, tmp_path):
    from test_faults import call, summary_rows, write_batch

    out = tmp_path / "out"
    line = {"name": "a", "prompt": "a fox", "seed": 7}
    batch_file = write_batch(tmp_path / "b.jsonl", tiny_model, [line])
    assert call(generate.main, ["--batch", str(batch_file), "--out", str(out)])[0] == 0
    first = (out / "a.mp4").read_bytes()
    assert json.loads((out / "a.json").read_text())["made_from"]["prompt"] == "a fox"
    write_batch(batch_file, tiny_model, [dict(line, prompt="a cat", seed=8)])  # edited after it finished
    status, out_text, err = call(generate.main, ["--batch", str(batch_file), "--out", str(out)])
    row = summary_rows(out)["a"]
    assert status == 0 and row["status"] == "done", err
    why = f"{batch_file}:1: clip 'a': its a.mp4 was made from another prompt, seed; rendering the clip again"
    assert row["detail"] == f"rendered again: {why}" and f"note: {why}" in out_text
    assert (out / "a.mp4").read_bytes() != first and json.loads((out / "a.json").read_text())["prompt"] == "a cat"
    assert call(generate.main, ["--batch", str(batch_file), "--out", str(out)])[0] == 0  # unchanged now: skipped
    assert summary_rows(out)["a"]["status"] == "skipped"
