"""Faults and bad input at every entry point: generate.py (one clip, and --batch in one process), batch/run_batch.sh
(one generate.py process per clip) and decode_latents.py. Each case checks the exit status, what is said (bad input:
one `PROG: error:` line, without a traceback or argparse's usage block), which files exist afterwards, and, where a
recovery command is printed, that running it produces the clip."""

import contextlib
import errno
import io
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch

import decode_latents
import generate
from conftest import ROOT, failing_on_call, linked_copy, run_generate, run_generate_process
from ltx2gen import batch, memory
from ltx2gen.latents import load_latents
from ltx2gen.video import probe, read_frames

# A small clip: 2 latent frames of 2x2 latent pixels, through the real decode path.
# One stage: at 64x64 `--pipeline auto` would render two-stage, whose faults are not what these tests are about.
SMALL = ["--width", "64", "--height", "64", "--num-frames", "9", "--seed", "7", "--pipeline", "distilled"]
SMALL_LINE = {"width": 64, "height": 64, "num_frames": 9, "pipeline": "distilled"}
NOT_UTF8 = "a \udcff cat"  # the byte 0xff of a Latin-1 prompt, as Python holds a command line's stray byte
LONG_PROMPT = "a red fox runs through deep snow " * 40  # 1,320 characters, one token each in the tiny tokenizer


def pid_no_process_holds() -> int:
    """A killed run's process number: one that no process holds now."""
    pid = 999999
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid -= 1


NEVER_RUNNING = pid_no_process_holds()


# --- helpers -----------------------------------------------------------------------------------------------------


def call(function, *args, **kwargs):
    """`function` in this process: (its exit status, stdout, stderr); a SystemExit's code is its status."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = function(*args, **kwargs)
        except SystemExit as exit_info:
            status = exit_info.code
    return status, out.getvalue(), err.getvalue()


def said(text: str) -> list[str]:
    """The lines of `text`, progress bars' carriage returns included."""
    return [line.strip() for line in re.split(r"[\r\n]+", text) if line.strip()]


def assert_rejected(status, err: str, prog: str, *named: str) -> str:
    """Bad input: status 2 and one line, `PROG: error: ... [all flags: PROG --help]`, naming each of `named`; no
    usage block, no traceback. Returns the line."""
    assert status == 2, err
    assert "Traceback" not in err and "usage:" not in err, err
    lines = said(err)
    assert len(lines) == 1, err
    assert lines[0].startswith(f"{prog}: error: ") and lines[0].endswith(f"[all flags: {prog} --help]"), err
    for text in named:
        assert text in lines[0], (text, err)
    return lines[0]


def error_lines(err: str) -> list[str]:
    return [line for line in said(err) if line.startswith("error")]


def batch_env(**extra: str) -> dict:
    return dict(os.environ, PYTHON=sys.executable, HF_HUB_OFFLINE="1", **extra)


def run_batch_script(*args) -> subprocess.CompletedProcess:
    return subprocess.run([str(ROOT / "batch" / "run_batch.sh"), *map(str, args)], capture_output=True, text=True,
                          env=batch_env(), timeout=300)


def write_batch(path: Path, model: Path, clips: list[dict]) -> Path:
    path.write_text("".join(json.dumps({"model": str(model), **SMALL_LINE, **clip}) + "\n" for clip in clips))
    return path


def summary_rows(out: Path) -> dict[str, dict]:
    assert (out / "summary.md").is_file()
    return {row["name"]: row for row in json.loads((out / "summary.json").read_text())["clips"]}


def processes_naming(text: str) -> list[int]:
    """The processes whose command line holds `text` (a path under a test's own temporary folder)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            with contextlib.suppress(OSError):
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
    return found


def stop_leftovers(text: str) -> None:
    """Kill what a failed test left running of its own (processes naming its temporary path)."""
    for pid in processes_naming(text):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def wait_for(condition, seconds: float = 120) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def disk_full(is_full):
    """safetensors' save_file that, for a file whose folder `is_full`, writes part of it and then fails as a full disk
    does (ENOSPC)."""
    real = safetensors.torch.save_file

    def save_file(tensors, filename, metadata=None):
        if is_full(Path(filename).parent):
            Path(filename).write_bytes(b"\0" * 64)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(filename))
        return real(tensors, filename, metadata=metadata)

    return save_file


def isolate_latents_fallbacks(monkeypatch, root: Path) -> list[Path]:
    """$HF_HOME, $XDG_CACHE_HOME and the temporary folder under `root`; the latents fallback folders, in order."""
    monkeypatch.setenv("HF_HOME", str(root / "hf"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(root / "xdg"))
    (root / "tmp").mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(root / "tmp"))
    return [root / "hf" / "ltx2gen-latents", root / "xdg" / "ltx2gen" / "latents", root / "tmp" / "ltx2gen-latents"]


@pytest.fixture
def events():
    """Every lifecycle event (a model load, a stage start) while the test runs."""
    seen = []

    def listener(event, name, obj):
        seen.append((event, name))

    memory.add_listener(listener)
    yield seen
    memory.remove_listener(listener)


@pytest.fixture(scope="module")
def kept(tiny_model, tmp_path_factory):
    """One small clip rendered with --keep-latents: its MP4 and its latents file."""
    out = tmp_path_factory.mktemp("kept") / "kept.mp4"
    status, _, err = call(run_generate, tiny_model, out, "--keep-latents", clip=SMALL)
    assert status == 0, err
    return out, out.with_suffix(".latents.safetensors")


# --- 1. the latents save after diffusion --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fallback_render(tiny_model, tmp_path_factory):
    """One clip whose output folder cannot take the latents file (the safetensors write fails there with ENOSPC,
    after writing part of it), with --keep-latents and a prompt longer than the text encoder's 1,024 tokens, into a
    folder holding the partial MP4s of a killed run (a process number no process holds) and of a running process
    (process 1)."""
    root = tmp_path_factory.mktemp("fallback")
    out_dir = root / "out"
    out_dir.mkdir()
    for pid in (NEVER_RUNNING, 1):
        (out_dir / f".clip.partial-{pid}.mp4").write_bytes(b"\0" * 32)
    with pytest.MonkeyPatch.context() as monkeypatch:
        fallbacks = isolate_latents_fallbacks(monkeypatch, root)
        monkeypatch.setattr(safetensors.torch, "save_file", disk_full(lambda folder: folder == out_dir))
        status, out, err = call(run_generate, tiny_model, out_dir / "clip.mp4", "--keep-latents", clip=SMALL,
                                prompt=LONG_PROMPT)
    return out_dir, fallbacks[0] / "clip.latents.safetensors", status, out, err


def output_folder_full(monkeypatch, root: Path) -> tuple[Path, list[Path]]:
    """An output folder under `root` that cannot take a latents file (a full disk), and the fallback folders."""
    out_dir = root / "out"
    out_dir.mkdir()
    fallbacks = isolate_latents_fallbacks(monkeypatch, root)
    monkeypatch.setattr(safetensors.torch, "save_file", disk_full(lambda folder: folder == out_dir))
    return out_dir, fallbacks


def failing_after(kept: Path):
    """A stand-in for the latent upsample that fails, once `kept` (the work before it) is saved."""
    def upsample_fails(*args, **kwargs):
        assert kept.is_file()
        raise RuntimeError("the upsampler failed")

    return upsample_fails


def test_a_two_stage_run_keeps_its_stage_one_latents_in_a_fallback_folder_and_finds_them_again(tiny_model, tmp_path,
                                                                                                monkeypatch):
    """Two-stage (what --pipeline auto renders a distilled clip at 64x64 with): where the output's folder cannot take
    the stage-one latents they go to the first fallback folder; a refine that then fails names that file in its resume
    command, and a finished run removes it."""
    from ltx2gen import two_stage

    out_dir, fallbacks = output_folder_full(monkeypatch, tmp_path)
    kept = fallbacks[0] / "clip.stage1.latents.safetensors"
    stock_upsample = two_stage.upsample
    monkeypatch.setattr(two_stage, "upsample", failing_after(kept))
    two_stage_clip = [flag for flag in SMALL if flag not in ("--pipeline", "distilled")]
    status, out, err = call(run_generate, tiny_model, out_dir / "clip.mp4", clip=two_stage_clip)
    assert status == 1 and f"saved stage-one latents: {kept} (its folder beside the output could not take it)" in out
    assert f"the stage-one latents are kept in {kept}; resume the refine with:" in err
    assert f"--refine-from {kept}" in err
    monkeypatch.setattr(two_stage, "upsample", stock_upsample)
    status, out, err = call(run_generate, tiny_model, out_dir / "clip.mp4", "--refine-from", str(kept), clip=[])
    assert status == 0, err
    assert probe(out_dir / "clip.mp4").frames == 9 and not kept.exists()


def test_a_dfr_run_keeps_its_passes_in_a_fallback_folder_and_resumes_from_there(tiny_25_model, tmp_path,
                                                                                monkeypatch):
    """dfr: where the output's folder cannot take a pass's latents they go to the first fallback folder; a failure
    after stage one names that file in its resume command, and the resumed run, once finished, removes the passes."""
    from ltx2gen import two_stage

    out_dir, fallbacks = output_folder_full(monkeypatch, tmp_path)
    kept = fallbacks[0] / "clip.dfr0.latents.safetensors"
    stock_upsample = two_stage.upsample
    monkeypatch.setattr(two_stage, "upsample", failing_after(kept))
    dfr = ["--width", "128", "--height", "128", "--num-frames", "17", "--seed", "7", "--pipeline", "dfr"]
    status, out, err = call(run_generate, tiny_25_model, out_dir / "clip.mp4", clip=dfr)
    assert status == 1 and f"saved dfr pass 0 latents: {kept} (its folder beside the output could not take it)" in out
    assert f"--dfr-from {kept}" in err
    monkeypatch.setattr(two_stage, "upsample", stock_upsample)
    status, out, err = call(run_generate, tiny_25_model, out_dir / "clip.mp4", "--dfr-from", str(kept), clip=[])
    assert status == 0, err
    assert probe(out_dir / "clip.mp4").frames == 17 and not list(fallbacks[0].glob("clip.dfr*"))


def test_latents_go_to_the_first_fallback_folder_when_the_outputs_cannot_take_them(fallback_render):
    out_dir, fallback, status, out, err = fallback_render
    assert status == 0, err
    warnings = [line for line in said(err) if line.startswith("warning:")]
    assert len(warnings) == 1, err
    assert str(out_dir) in warnings[0] and "No space left on device" in warnings[0]
    assert "Traceback" not in err and not error_lines(err)
    assert f"saved latents: {fallback} (its folder beside the output could not take it)" in out
    # The clip is finished; beside it no latents file and no partial one; the kept latents are whole in the fallback.
    assert probe(out_dir / "clip.mp4").frames == 9
    assert not list(out_dir.glob("*.safetensors")) and not list(out_dir.glob(".clip.latents*"))
    assert load_latents(fallback).video_format.num_frames == 9
    assert json.loads((out_dir / "clip.json").read_text())["latents"] == str(fallback)


def test_no_folder_takes_the_latents_exit_1_with_one_error_line_and_advice(tiny_model, tmp_path, monkeypatch):
    fallbacks = isolate_latents_fallbacks(monkeypatch, tmp_path)
    out_dir = tmp_path / "out"
    monkeypatch.setattr(safetensors.torch, "save_file", disk_full(lambda folder: True))
    status, _, err = call(run_generate, tiny_model, out_dir / "clip.mp4", clip=SMALL)
    assert status == 1, err
    assert "Traceback" not in err, err
    errors = error_lines(err)
    assert len(errors) == 1 and "No space left on device" in errors[0], err
    assert "free some space" in err
    warnings = [line for line in said(err) if line.startswith("warning:")]
    assert len(warnings) == 4, err  # each folder tried, in order: the output's, then the fallbacks
    assert all(str(folder) in line for folder, line in zip([out_dir, *fallbacks], warnings)), err
    # Nothing is left anywhere: no clip, no latents, no partial file.
    assert not [path for path in tmp_path.rglob("*") if path.is_file()]


def test_a_long_clip_whose_folder_fills_keeps_each_window_in_a_fallback_and_resumes_from_there(tiny_model, tmp_path,
                                                                                              monkeypatch):
    from ltx2gen import diffusion

    fallbacks = isolate_latents_fallbacks(monkeypatch, tmp_path)
    out_dir = tmp_path / "out"
    monkeypatch.setattr(safetensors.torch, "save_file", disk_full(lambda folder: folder == out_dir))
    stock_run = diffusion.run_denoiser
    monkeypatch.setattr(diffusion, "run_denoiser", failing_on_call(stock_run, 2))  # the second window fails
    long = ["--width", "96", "--height", "64", "--num-frames", "41", "--window-seconds", "1", "--seed", "7"]
    status, out, err = call(run_generate, tiny_model, out_dir / "clip.mp4", clip=long)
    kept = fallbacks[0] / "clip.latents.safetensors"
    assert status == 1 and f"saved latents: {kept} (25 of 41 frames" in out, err
    assert f"are kept (25 of 41 frames) in {kept}; render the rest with the same command and --resume {kept}" in err
    monkeypatch.setattr(diffusion, "run_denoiser", stock_run)
    status, out, err = call(run_generate, tiny_model, out_dir / "clip.mp4", "--resume", str(kept), clip=long)
    assert status == 0, err
    assert probe(out_dir / "clip.mp4").frames == 41 and not list(out_dir.glob("*.safetensors"))


@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_stop_during_the_latents_save_takes_effect_once_the_file_is_whole(tiny_model, tmp_path, monkeypatch,
                                                                          signal_number):
    real = safetensors.torch.save_file

    def save_file_stopped_half_way(tensors, filename, metadata=None):
        os.kill(os.getpid(), signal_number)
        time.sleep(0.05)  # the signal is handled here, in the middle of the save
        return real(tensors, filename, metadata=metadata)

    def not_deferred(signum, frame):
        raise AssertionError("the stop took effect during the latents save")

    monkeypatch.setattr(safetensors.torch, "save_file", save_file_stopped_half_way)
    previous = signal.signal(signal.SIGINT, not_deferred)  # pytest must not see the Ctrl-C, whatever happens
    try:
        out = tmp_path / "clip.mp4"
        status, _, err = call(run_generate, tiny_model, out, clip=SMALL)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert status == 130, err
    assert "Traceback" not in err and error_lines(err) == ["error: interrupted"], err
    latents = out.with_suffix(".latents.safetensors")
    assert sorted(path.name for path in tmp_path.iterdir()) == [latents.name]  # whole, and no MP4 or partial file
    assert load_latents(latents).video_format.num_frames == 9
    command = shlex.split(re.search(r"recover the clip with:\n\s+(.*)", err).group(1))
    assert command[1:] == [str(ROOT / "decode_latents.py"), "--input", str(latents), "--output", str(out)]
    # The command runs this interpreter on decode_latents.py, whose main() takes its arguments here (test_generate.py
    # runs such a command in a process of its own).
    assert command[0] == sys.executable
    status, _, err = call(decode_latents.main, command[2:])
    assert status == 0, err
    assert probe(out).frames == 9 and (tmp_path / "clip.json").is_file()


# --- 2. a prompt that is not UTF-8 ---------------------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--prompt", "--negative-prompt"])
def test_a_prompt_that_is_not_utf8_is_refused_before_anything_loads(tiny_model, tmp_path, flag):
    prompts = {"--prompt": "a cat", flag: os.fsencode(NOT_UTF8)}  # the raw byte on the command line
    result = run_generate_process(*[part for name, text in prompts.items() for part in (name, text)],
                                  "--model", str(tiny_model), "--no-timestamp", "--output", str(tmp_path / "c.mp4"),
                                  *SMALL, cwd=tmp_path)
    assert "TORCH_NOT_IMPORTED" in result.stdout
    assert_rejected(result.returncode, result.stderr, "generate.py", f"{flag}: character 3 is the byte 0xff",
                    "UTF-8")
    assert not list(tmp_path.iterdir())


# --- 3, 4, 9. one line for every status-2 rejection ----------------------------------------------------------------


@pytest.mark.parametrize("program", ["generate.py", "decode_latents.py"])
@pytest.mark.parametrize("device", ["cudax", "cuda:x", "cuda:", "gpu"])
def test_a_malformed_device_is_refused_naming_the_valid_forms(tiny_model, kept, tmp_path, program, device):
    if program == "generate.py":
        argv = ["--prompt", "a cat", "--model", str(tiny_model), "--no-timestamp", "--output",
                str(tmp_path / "c.mp4"), *SMALL, "--device", device]
        main = generate.main
    else:
        argv = ["--input", str(kept[1]), "--output", str(tmp_path / "c.mp4"), "--device", device]
        main = decode_latents.main
    status, _, err = call(main, argv)
    assert_rejected(status, err, program, f"--device {device}:", "auto, cpu, cuda or cuda:N")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("name", ["clip.mp4", "clips"])
def test_an_existing_folder_as_output_is_refused_up_front(tiny_model, tmp_path, events, name):
    folder = tmp_path / name
    folder.mkdir()
    status, _, err = call(run_generate, tiny_model, folder)
    assert_rejected(status, err, "generate.py", f"--output {folder}")
    assert not events and not list(folder.iterdir())


def test_decode_latents_refuses_an_existing_folder_as_output_up_front(kept, tmp_path, events):
    folder = tmp_path / "clip.mp4"
    folder.mkdir()
    status, _, err = call(decode_latents.main, ["--input", str(kept[1]), "--output", str(folder)])
    assert_rejected(status, err, "decode_latents.py", f"--output {folder}")
    assert not events and not list(folder.iterdir())


@pytest.mark.parametrize("damage", ["cut short", "not safetensors", "empty"])
def test_decode_latents_refuses_a_damaged_latents_file_in_one_line(kept, tmp_path, events, damage):
    data = kept[1].read_bytes()
    damaged = tmp_path / "clip.latents.safetensors"
    damaged.write_bytes({"cut short": data[:len(data) - 100], "not safetensors": b"PK\3\4" + data[4:],
                         "empty": b""}[damage])
    status, _, err = call(decode_latents.main, ["--input", str(damaged), "--output", str(tmp_path / "c.mp4")])
    assert_rejected(status, err, "decode_latents.py", f"{damaged}: not a readable latents file")
    assert not events and sorted(path.name for path in tmp_path.iterdir()) == [damaged.name]


REJECTIONS = [  # (program, arguments, what the line names); {batch} is a valid batch file
    ("generate.py", ["--prompt", "a cat", "--bogus"], "unrecognized arguments: --bogus"),
    ("generate.py", ["--prompt", "a cat", "--width", "wide"], "--width: invalid int value: 'wide'"),
    ("generate.py", ["--prompt", "a cat", "--pipeline", "fast"], "--pipeline: invalid choice: 'fast'"),
    ("generate.py", ["--width", "96"], "--prompt is required"),
    ("generate.py", ["--prompt", "a cat", "--num-frames", "10"], "--num-frames 10: must be of the form 8n+1"),
    ("generate.py", ["--batch", "{batch}", "--width", "96"], "put --width on its lines instead"),
    ("decode_latents.py", [], "the following arguments are required: --input, --output"),
    ("decode_latents.py", ["--input", "missing.latents.safetensors", "--output", "c.mp4"], "no such latents file"),
    ("run_batch.sh", [], "the following arguments are required: file"),
    ("run_batch.sh", ["{batch}", "--retries", "many"], "--retries: invalid int value: 'many'"),
    ("run_batch.sh", ["missing.jsonl"], "missing.jsonl: no such batch file"),
]
MAINS = {"generate.py": generate.main, "decode_latents.py": decode_latents.main, "run_batch.sh": batch.main}


@pytest.mark.parametrize("program, argv, named", REJECTIONS, ids=[" ".join([r[0], *r[1]]) for r in REJECTIONS])
def test_every_status_2_rejection_is_one_line_without_the_usage_block(tmp_path, monkeypatch, program, argv, named):
    (tmp_path / "b.jsonl").write_text('{"name": "a", "prompt": "x"}\n')
    monkeypatch.chdir(tmp_path)
    status, _, err = call(MAINS[program], [arg.format(batch=tmp_path / "b.jsonl") for arg in argv])
    assert_rejected(status, err, program, named)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["b.jsonl"]


# --- 5, 6. SIGTERM ends run_batch.sh and decode_latents.py like Ctrl-C -------------------------------------------


def test_run_batch_on_sigterm_stops_its_clip_writes_the_summary_and_leaves_no_process(tiny_model, tmp_path):
    batch_file = write_batch(tmp_path / "b.jsonl", tiny_model, [{"name": "a", "prompt": "a slow clip", "seed": 1},
                                                                {"name": "b", "prompt": "never started", "seed": 2}])
    out = tmp_path / "out"
    runner = subprocess.Popen([str(ROOT / "batch" / "run_batch.sh"), str(batch_file), "--out", str(out)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=batch_env())
    try:
        log = out / "logs" / "a.log"
        assert wait_for(lambda: log.is_file() and "plan:" in log.read_text()), "the clip never started"
        runner.send_signal(signal.SIGTERM)
        output, _ = runner.communicate(timeout=120)
        assert runner.returncode == 130, output
        assert "Traceback" not in output and "Traceback" not in log.read_text()
        rows = summary_rows(out)
        assert (rows["a"]["status"], rows["b"]["status"], rows["b"]["detail"]) == (
            "interrupted", "interrupted", "not run")
        assert processes_naming(str(out / "a.mp4")) == []  # the clip's generate.py is not left running
        time.sleep(1)  # an orphan, had there been one, would be writing the clip now
        assert not list(out.glob("a.*")) and not list(out.glob(".a.*"))
    finally:
        if runner.poll() is None:
            runner.kill()
        stop_leftovers(str(out))


# decode_latents.py whose frames reach ffmpeg one a second, so that a signal lands in the middle of the decode.
SLOW_DECODE = """
import sys, time
import decode_latents
from ltx2gen import clip

write_mp4 = clip.write_mp4

def slowly(frames):
    for frame in frames:
        yield frame
        print("FRAME", flush=True)
        time.sleep(1)

clip.write_mp4 = lambda path, frames, **kwargs: write_mp4(path, slowly(frames), **kwargs)
sys.exit(decode_latents.main(sys.argv[1:]))
"""


def test_decode_latents_on_sigterm_mid_decode_exits_130_leaving_no_partial_file_or_ffmpeg(kept, tmp_path):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    process = subprocess.Popen([sys.executable, "-c", SLOW_DECODE, "--input", str(kept[1]), "--output",
                                str(out_dir / "clip.mp4")], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    try:
        printed = [process.stdout.readline()]
        while printed[-1] not in ("FRAME\n", ""):  # until the first frame is in ffmpeg, or the decode ended
            printed.append(process.stdout.readline())
        assert printed[-1] == "FRAME\n" and printed[0].startswith("decoding "), printed
        assert wait_for(lambda: list(out_dir.glob(".clip.partial-*.mp4")), 10), "ffmpeg never opened its output"
        assert processes_naming(str(out_dir / ".clip.partial-"))  # ffmpeg, writing it
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=60)
        assert process.returncode == 130, stdout + stderr
        assert "Traceback" not in stderr
        errors = error_lines(stderr)
        assert len(errors) == 1 and f"{kept[1]} is unchanged" in errors[0], stderr
        assert not list(out_dir.iterdir())  # no partial file, no MP4
        assert processes_naming(str(out_dir)) == []  # no ffmpeg left writing it
        assert load_latents(kept[1]).video_format.num_frames == 9
    finally:
        if process.poll() is None:
            process.kill()
        stop_leftovers(str(out_dir))


# --- 7. a read-only embedding cache -------------------------------------------------------------------------------


def unwritable_folder(tmp_path: Path) -> Path:
    """A folder nothing can be written in: a read-only one where that stops this user (not root), else one under a
    regular file, which cannot be created."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        (folder / "probe").write_bytes(b"")
    except OSError:
        return folder
    (folder / "probe").unlink()
    folder.chmod(0o755)
    (tmp_path / "a-file").write_text("")
    return tmp_path / "a-file" / "embeddings"


def test_a_batch_renders_with_an_embedding_cache_it_cannot_write_saying_so_once(tiny_model, tmp_path):
    cache = unwritable_folder(tmp_path)
    batch_file = write_batch(tmp_path / "b.jsonl", tiny_model, [{"name": "fox", "prompt": "a red fox", "seed": 1}])
    try:
        status, _, err = call(generate.main, ["--batch", str(batch_file), "--out", str(tmp_path / "out"),
                                              "--embedding-cache", str(cache)])
    finally:
        if cache.name == "read-only":
            cache.chmod(0o755)
    assert status == 0, err
    warnings = [line for line in said(err) if line.startswith("warning:")]
    assert len(warnings) == 1 and f"the embedding cache {cache} cannot be written" in warnings[0], err
    assert "Traceback" not in err and not error_lines(err)
    assert probe(tmp_path / "out" / "fox.mp4").frames == 9
    assert summary_rows(tmp_path / "out")["fox"]["status"] == "done"
    assert not (cache.exists() and list(cache.iterdir()))


# --- 8. an --out that cannot be written; a batch file that is not UTF-8 --------------------------------------------


def impossible_out(tmp_path: Path, kind: str) -> Path:
    if kind == "a file":
        (tmp_path / "a-file").write_text("")
        return tmp_path / "a-file"
    if kind == "under a file":
        (tmp_path / "a-file").write_text("")
        return tmp_path / "a-file" / "out"
    if kind == "in /proc":
        return Path("/proc") / f"ltx2gen-test-{os.getpid()}" / "out"
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    if os.access(folder, os.W_OK) or os.geteuid() == 0:
        folder.chmod(0o755)
        pytest.skip("running as root, which writes in a read-only folder (the other kinds cover it)")
    return folder / "out"


def run_batch_runner(runner: str, *args) -> tuple[int, str, str]:
    """A batch runner (generate.py --batch in this process, or run_batch.sh): exit status, stdout, stderr."""
    if runner == "run_batch.sh":
        result = run_batch_script(*args)
        return result.returncode, result.stdout, result.stderr
    return call(generate.main, ["--batch", *map(str, args)])


@pytest.mark.parametrize("runner", ["generate.py", "run_batch.sh"])
@pytest.mark.parametrize("kind", ["a file", "under a file", "in /proc", "read-only"])
def test_batch_runners_refuse_an_out_folder_they_cannot_write(tmp_path, runner, kind):
    out = impossible_out(tmp_path, kind)
    (tmp_path / "b.jsonl").write_text('{"name": "a", "prompt": "x"}\n')
    try:
        status, _, err = run_batch_runner(runner, tmp_path / "b.jsonl", "--out", out)
    finally:
        if out.parent.name == "read-only":
            out.parent.chmod(0o755)
    assert_rejected(status, err, runner, "--out", str(out))
    assert not out.exists() or out.is_file() and not out.read_text()


@pytest.mark.parametrize("runner", ["generate.py", "run_batch.sh"])
def test_batch_runners_refuse_a_batch_file_that_is_not_utf8_naming_its_line(tmp_path, runner):
    batch_file = tmp_path / "b.jsonl"
    batch_file.write_bytes(b'{"name": "a", "prompt": "x"}\n{"name": "b", "prompt": "caf\xe9"}\n')
    status, _, err = run_batch_runner(runner, batch_file, "--out", tmp_path / "out")
    assert_rejected(status, err, runner, f"{batch_file}:2:", "0xe9", "UTF-8")
    assert not (tmp_path / "out").exists()


# --- 10, 11. damaged model files and an unusable ffmpeg, found in planning ----------------------------------------

DAMAGES = {  # what is damaged: (component folder, file, what the line says)
    "empty transformer shard": ("transformer", "diffusion_pytorch_model-00003-of-00008.safetensors", "is empty"),
    "truncated vae": ("vae", "diffusion_pytorch_model.safetensors", "is cut short"),
    "missing vocoder": ("vocoder", None, "is missing"),
}


def damaged_model(tiny_model: Path, folder: Path, damage: str) -> Path:
    """tiny_model as symbolic links, but for the one damaged entry, which is a real damaged copy."""
    model = linked_copy(tiny_model, folder)
    component, file, _ = DAMAGES[damage]
    (model / component).unlink()
    if file is None:
        return model
    linked_copy(tiny_model / component, model / component)
    (model / component / file).unlink()
    data = (tiny_model / component / file).read_bytes()
    (model / component / file).write_bytes(b"" if "empty" in damage else data[:len(data) // 2])
    return model


@pytest.mark.parametrize("program, damage", [("generate.py", damage) for damage in DAMAGES] + [
    ("decode_latents.py", damage) for damage in DAMAGES if DAMAGES[damage][0] != "transformer"])
def test_damaged_model_files_are_found_in_planning_naming_the_file(tiny_model, kept, tmp_path, events, program,
                                                                   damage):
    component, file, says = DAMAGES[damage]
    model = damaged_model(tiny_model, tmp_path / "model", damage)
    out = tmp_path / "out" / "c.mp4"
    if program == "generate.py":
        status, _, err = call(run_generate, model, out, clip=SMALL)
    else:
        status, _, err = call(decode_latents.main, ["--input", str(kept[1]), "--output", str(out), "--model",
                                                    str(model)])
    assert_rejected(status, err, program, str(model / component / (file or "")).rstrip("/"), says)
    assert not events  # found before any model loads
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


@pytest.mark.parametrize("ffmpeg", ["/bin/false", "missing/ffmpeg"])
@pytest.mark.parametrize("program", ["generate.py", "decode_latents.py"])
def test_an_unusable_ffmpeg_is_found_in_planning(tiny_model, kept, tmp_path, monkeypatch, events, program, ffmpeg):
    exe = ffmpeg if ffmpeg.startswith("/") else str(tmp_path / ffmpeg)
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", exe)
    out = tmp_path / "c.mp4"
    if program == "generate.py":
        status, _, err = call(run_generate, tiny_model, out, clip=SMALL)
    else:
        status, _, err = call(decode_latents.main, ["--input", str(kept[1]), "--output", str(out)])
    assert_rejected(status, err, program, exe, "IMAGEIO_FFMPEG_EXE")
    assert not events  # before any weight is read
    assert not out.exists()


# --- 12, 13. a prompt over 1,024 tokens; a killed run's partial file ----------------------------------------------


def test_a_prompt_over_1024_tokens_is_said_in_one_line_and_recorded(fallback_render, tiny_model):
    from transformers import AutoTokenizer

    out_dir, _, status, out, _ = fallback_render
    assert status == 0
    tokens = len(AutoTokenizer.from_pretrained(tiny_model / "tokenizer")(LONG_PROMPT)["input_ids"])
    assert tokens > 1024
    notes = [line for line in said(out) if "tokens long" in line]
    assert notes == [f"note: the prompt is {tokens} tokens long; the text encoder takes the first 1024 and the "
                     f"last {tokens - 1024} are dropped (shorten it to keep them)"]
    sidecar = json.loads((out_dir / "clip.json").read_text())
    assert (sidecar["prompt_token_count"], sidecar["prompt_tokens_dropped"]) == (tokens, tokens - 1024)


def test_a_killed_runs_partial_file_is_removed_by_the_next_run_writing_that_clip(fallback_render):
    out_dir, _, status, _, _ = fallback_render
    assert status == 0
    assert not (out_dir / f".clip.partial-{NEVER_RUNNING}.mp4").exists()
    assert (out_dir / ".clip.partial-1.mp4").exists()  # a running process's is left alone
    assert sorted(path.name for path in out_dir.iterdir()) == [".clip.partial-1.mp4", "clip.json", "clip.mp4"]


# --- 2, 14. a batch re-run: a clip's kept latents, a clip whose prompt is not UTF-8 --------------------------------


@pytest.fixture(scope="module", params=["generate.py", "run_batch.sh"])
def rerun_batch(request, tiny_model, kept, tmp_path_factory):
    """A batch run again by each runner: its clip `kept` was diffused before and stopped (its latents are kept, its
    .mp4 and .json are not there), `bad`'s prompt holds the byte 0xff (\\udcff in its JSON line); in generate.py
    --batch, `good` is diffused beside them (run_batch.sh runs each clip in a process of its own, so `kept` shows
    the batch going on after `bad`)."""
    folder = tmp_path_factory.mktemp("rerun")
    out = folder / "out"
    out.mkdir()
    (out / "kept.latents.safetensors").write_bytes(kept[1].read_bytes())
    clips = [{"name": "kept", "prompt": "w1 w2 w3", "seed": 7}, {"name": "bad", "prompt": NOT_UTF8, "seed": 2}]
    if request.param == "generate.py":
        clips.append({"name": "good", "prompt": "a red fox in snow", "seed": 1})
    batch_file = write_batch(folder / "b.jsonl", tiny_model, clips)
    assert "\\udcff" in batch_file.read_text()
    cache = ["--embedding-cache", folder / "embeddings"] if request.param == "generate.py" else []
    return (request.param, out, *run_batch_runner(request.param, batch_file, "--out", out, *cache))


def test_a_batch_fails_a_clip_whose_prompt_is_not_utf8_as_bad_input_and_renders_the_others(rerun_batch):
    runner, out, status, stdout, stderr = rerun_batch
    assert status == 1, stdout + stderr
    assert "Traceback" not in stdout + stderr
    rows = summary_rows(out)
    others = {"kept", "good"} if runner == "generate.py" else {"kept"}
    assert {name: row["status"] for name, row in rows.items()} == {"bad": "failed", **dict.fromkeys(others, "done")}
    assert rows["bad"]["attempts"] == 0  # bad input is found before the clip runs, and not retried
    detail = rows["bad"]["detail"]
    assert detail.startswith("bad input: ") and "b.jsonl:2: clip 'bad': --prompt: character 3 is the byte 0xff" \
        in detail, detail
    assert all(probe(out / f"{name}.mp4").frames == 9 and (out / f"{name}.json").is_file() for name in others)
    assert not list(out.glob("bad*")) and not (out / "logs" / "bad.log").exists()


def test_a_batch_decodes_a_clips_kept_latents_instead_of_diffusing_it_again(rerun_batch, kept):
    runner, out, _, stdout, stderr = rerun_batch
    row = summary_rows(out)["kept"]
    assert row["status"] == "done" and row["detail"] == "decoded from the kept kept.latents.safetensors", row
    assert np.array_equal(read_frames(out / "kept.mp4"), read_frames(kept[0]))
    # Decoded, not diffused again: its sidecar says where it came from; the latents are no longer needed.
    assert json.loads((out / "kept.json").read_text())["recovered_from"] == str(out / "kept.latents.safetensors")
    assert not (out / "kept.latents.safetensors").exists()
    assert (out / "kept.first.png").is_file() and (out / "kept.last.png").is_file()
    if runner == "run_batch.sh":
        assert "decode_latents.py" in (out / "logs" / "kept.log").read_text().splitlines()[0]
