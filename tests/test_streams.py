"""A closed stdout or stderr pipe never ends a run: the clip is finished, or, where a later stage fails, the latents
are kept and the recovery command is left beside the output."""

import os
import re
import shlex
import subprocess
import sys

from test_faults import SMALL

from conftest import ROOT
from ltx2gen.latents import load_latents
from ltx2gen.video import probe

# generate.py whose video writer fails, as a full disk or a dead ffmpeg does, after the latents are saved.
WRITER_FAILS = """
import sys
import generate
from ltx2gen import clip

def write_mp4(*args, **kwargs):
    raise OSError(28, "No space left on device")

clip.write_mp4 = write_mp4
sys.exit(generate.main(sys.argv[1:]))
"""


def started(code_or_script: list[str], *args, stdout=None, stderr=None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *code_or_script, *map(str, args)], cwd=ROOT, stdout=stdout,
                            stderr=stderr, env=dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT)))


def generate_args(model, out):
    return ["--prompt", "a fox", "--model", model, "--no-timestamp", "--output", out, *SMALL]


def test_generate_piped_into_head_finishes_its_clip(tiny_model, tmp_path):
    out = tmp_path / "clip.mp4"
    process = started([str(ROOT / "generate.py")], *generate_args(tiny_model, out), stdout=subprocess.PIPE,
                      stderr=subprocess.PIPE)
    first = process.stdout.readline()  # `| head -1`: one line read, then the pipe closed
    process.stdout.close()
    _, err = process.communicate(timeout=300)
    assert first and process.returncode == 0, err.decode()
    assert "Traceback" not in err.decode() and "BrokenPipeError" not in err.decode()
    assert probe(out).frames == 9 and out.with_suffix(".json").is_file()


def test_a_failure_with_stderr_closed_keeps_the_latents_and_leaves_the_recovery_command_beside_the_output(
        tiny_model, tmp_path):
    out = tmp_path / "clip.mp4"
    process = started(["-c", WRITER_FAILS], *generate_args(tiny_model, out), stdout=subprocess.PIPE,
                      stderr=subprocess.PIPE)
    process.stderr.close()  # nobody reads stderr: the progress bars, the error and the advice go nowhere
    stdout, _ = process.communicate(timeout=300)
    assert process.returncode == 1, stdout.decode()
    latents = out.with_suffix(".latents.safetensors")
    assert f"saved latents: {latents}" in stdout.decode()
    assert load_latents(latents).video_format.num_frames == 9
    note = out.with_suffix(".error.txt").read_text()
    assert note.startswith("error: OSError: [Errno 28] No space left on device\n"), note
    command = shlex.split(re.search(r"recover the clip with:\n\s+(.*)", note).group(1))
    assert command[1:] == [str(ROOT / "decode_latents.py"), "--input", str(latents), "--output", str(out)]
    recovered = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300,
                               env=dict(os.environ, HF_HUB_OFFLINE="1"))
    assert recovered.returncode == 0, recovered.stderr
    assert probe(out).frames == 9


def test_decode_latents_piped_into_head_finishes_its_clip(tiny_model, tmp_path):
    from test_faults import call

    from conftest import run_generate

    kept = tmp_path / "kept.mp4"
    assert call(run_generate, tiny_model, kept, "--keep-latents", clip=SMALL)[0] == 0
    out = tmp_path / "again.mp4"
    process = started([str(ROOT / "decode_latents.py")], "--input", kept.with_suffix(".latents.safetensors"),
                      "--output", out, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.readline()
    process.stdout.close()
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0 and "Traceback" not in err.decode(), err.decode()
    assert probe(out).frames == 9


def test_ctrl_c_before_the_latents_are_saved_says_it_was_interrupted_and_gives_the_command(tiny_model, tmp_path,
                                                                                           monkeypatch):
    from test_faults import call, error_lines

    import generate
    from ltx2gen import diffusion

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(diffusion, "run_denoiser", stopped)
    argv = generate_args(str(tiny_model), str(tmp_path / "clip.mp4"))
    status, _, err = call(generate.main, argv)
    assert status == 130 and error_lines(err) == ["error: interrupted"], err
    assert "fix the cause" not in err
    command = shlex.split(re.search(r"nothing was saved; render it again with:\n\s+(.*)", err).group(1))
    assert command == [sys.executable, str(ROOT / "generate.py"), *argv]
    assert list(tmp_path.iterdir()) == []
