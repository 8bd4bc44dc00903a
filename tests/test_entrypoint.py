"""The container entrypoint, run for real against a stub interpreter that echoes what it was given."""

import os
import subprocess
import sys

import pytest

from conftest import ROOT
from ltx2gen.decode_options import DEFAULT_MODEL

ENTRYPOINT = ROOT / "entrypoint.sh"

# Arguments to stdout, one a line; the environment the entrypoint set to stderr.
STUB = """#!/usr/bin/env bash
printf '%s\\n' "$@"
printf 'HF_HUB_OFFLINE=%s\\nPYTHONPATH=%s\\nLTX2GEN_IN_CONTAINER=%s\\n' "${HF_HUB_OFFLINE:-}" "${PYTHONPATH:-}" \\
    "${LTX2GEN_IN_CONTAINER:-}" >&2
"""


@pytest.fixture
def run(tmp_path):
    stub = tmp_path / "bin" / "python3"
    stub.parent.mkdir()
    stub.write_text(STUB)
    stub.chmod(0o755)
    app = tmp_path / "app"
    app.mkdir()
    env = {**os.environ, "LTX2GEN_PYTHON": str(stub), "LTX2GEN_APP_DIR": str(app), "HF_HUB_OFFLINE": "1"}
    env.pop("PYTHONPATH", None)

    def run_entrypoint(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(ENTRYPOINT), *args], env=env, capture_output=True, text=True, timeout=10)

    run_entrypoint.app = app
    return run_entrypoint


def argv(result: subprocess.CompletedProcess) -> list[str]:
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_is_executable_bash_script():
    assert os.access(ENTRYPOINT, os.X_OK)
    assert ENTRYPOINT.read_text().startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in ENTRYPOINT.read_text()


def test_options_go_to_generate(run):
    assert argv(run("--prompt", "x")) == [f"{run.app}/generate.py", "--prompt", "x"]


def test_generate_knows_it_runs_in_the_container(run):
    # so its recovery advice is this image's `decode` command, not a path inside the container
    assert "LTX2GEN_IN_CONTAINER=1" in run("--prompt", "x").stderr.splitlines()


def test_generate_keeps_quoted_argument_whole(run):
    result = run("generate", "--prompt", "a b", "--output", "/outputs/clip with space.mp4")
    assert argv(result) == [f"{run.app}/generate.py", "--prompt", "a b", "--output", "/outputs/clip with space.mp4"]
    assert "HF_HUB_OFFLINE=1" in result.stderr.splitlines()


def test_generate_help_is_passed_through(run):
    assert argv(run("generate", "--help")) == [f"{run.app}/generate.py", "--help"]


def test_decode(run):
    assert argv(run("decode", "--input", "a", "--output", "b")) == [
        f"{run.app}/decode_latents.py", "--input", "a", "--output", "b"]


def test_synthetic_runs_the_module_from_the_app_dir(run):
    result = run("synthetic", "--preset", "tiny", "--out", "d")
    assert argv(result) == ["-m", "ltx2gen.testing.synthetic", "--preset", "tiny", "--out", "d"]
    assert f"PYTHONPATH={run.app}" in result.stderr.splitlines()


def download_code(run, tmp_path, hub_source: str):
    """The entrypoint's real download code, as a function of the repos to fetch, run against a huggingface_hub
    made of `hub_source`."""
    fake_hub = tmp_path / "fake" / "huggingface_hub"
    fake_hub.mkdir(parents=True)
    (fake_hub / "__init__.py").write_text(hub_source)
    code = argv(run("download"))[1:]
    kept = tmp_path / "hf" / "ltx2gen-postprocess"  # post-processing models already there are not fetched again
    kept.mkdir(parents=True)
    for name in ("RealESRGAN_x2plus.pth", "RealESRGAN_x4plus.pth", "rife-4-flownet.pkl"):
        (kept / name).write_bytes(b"kept")

    def download(*repos: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", "\n".join(code), *repos], capture_output=True, text=True,
                              timeout=30, env={**os.environ, "PYTHONPATH": f"{fake_hub.parent}:{ROOT}",
                                               "HF_HUB_OFFLINE": "0", "HF_HOME": str(tmp_path / "hf")})

    return download


def test_download_default_model_online(run):
    result = run("download")
    lines = argv(result)
    assert lines[0] == "-c"
    code = "\n".join(lines[1:])
    assert "snapshot_download" in code and DEFAULT_MODEL in code
    assert "HF_HUB_OFFLINE=0" in result.stderr.splitlines()


def test_download_named_repos_reach_the_code_as_arguments(run, tmp_path):
    # Run the real download code, with snapshot_download replaced, to see which repos it fetches.
    download = download_code(run, tmp_path, (
        "import os\n"
        "def snapshot_download(repo_id, allow_patterns, ignore_patterns):\n"
        "    assert 'model_index.json' in allow_patterns\n"
        "    assert 'text_encoder/diffusion_pytorch_model*' in ignore_patterns  # the stale shard set\n"
        "    return f'fetched {repo_id} offline={os.environ[\"HF_HUB_OFFLINE\"]}'\n"
        "def hf_hub_download(repo_id, filename):\n"
        "    return f'lora {repo_id}::{filename}'\n"))
    for repos, expected in (([], [DEFAULT_MODEL]), (["org/a", "org/b"], ["org/a", "org/b"])):
        result = download(*repos)
        assert result.returncode == 0, result.stderr
        assert [line for line in result.stdout.splitlines() if line.startswith("fetched")] == [
            f"fetched {repo} offline=0" for repo in expected]
        loras = [line for line in result.stdout.splitlines() if line.startswith("lora ")]
        assert len(loras) == (7 if not repos else 0)
        assert "lora Lightricks/LTX-2-19b-LoRA-Camera-Control-Jib-Down::ltx-2-19b-lora-camera-control-jib-down" \
               ".safetensors" in loras or repos


def test_download_offline_fails_in_one_line(run, tmp_path):
    # The hub's own error chain when the network is unreachable: a connection error, raised again as its own.
    download = download_code(run, tmp_path, (
        "class LocalEntryNotFoundError(Exception):\n    pass\n"
        "def snapshot_download(repo_id, allow_patterns, ignore_patterns):\n"
        "    try:\n        raise ConnectionError('Failed to resolve huggingface.co')\n"
        "    except ConnectionError as err:\n"
        "        raise LocalEntryNotFoundError('An error happened while trying to locate the files on the Hub.\\n'\n"
        "                                      'Check your connection.') from err\n"
        "def hf_hub_download(repo_id, filename):\n    raise AssertionError\n"))
    result = download()
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        "download: error: LocalEntryNotFoundError: An error happened while trying to locate the files on the Hub. "
        "(is the network reachable from the container? run it again to go on; finished files are kept)"]


@pytest.mark.parametrize("args", [(), ("--help",), ("-h",), ("help",)])
def test_usage(run, args):
    result = run(*args)
    assert result.returncode == 0
    assert result.stderr == ""
    for word in ("generate", "decode", "batch", "download", "synthetic", "--gpus all", "/cache/huggingface"):
        assert word in result.stdout


def test_unknown_command(run):
    result = run("bogus")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip() == (
        "entrypoint.sh: unknown command 'bogus' (use generate, decode, batch, download, postprocess, synthetic or "
        "--help)")


def test_batch_runs_the_runner_module(run):
    result = run("batch", "/app/batch/prompts/cinematic.jsonl", "--out", "/outputs/cinematic")
    assert argv(result) == ["-m", "ltx2gen.batch", "/app/batch/prompts/cinematic.jsonl", "--out",
                            "/outputs/cinematic"]

