"""Every shell script the project ships: valid bash in strict mode, shellcheck-clean with sourced files followed,
and the bench scripts' shared log filter keeps the status of the command it filters."""
import os
import subprocess

import pytest

from conftest import ROOT, assert_linter_passes

SOURCED = ROOT / "bench" / "common.sh"
SCRIPTS = sorted([ROOT / "entrypoint.sh", ROOT / "batch" / "run_batch.sh", *(ROOT / "bench").glob("*.sh")])


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_valid_bash_in_strict_mode(script):
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    if script != SOURCED:
        assert "set -euo pipefail" in script.read_text().splitlines()[:12], f"{script.name} is not in strict mode"


def test_shellcheck():
    assert_linter_passes("shellcheck", "-x", *(script.relative_to(ROOT) for script in SCRIPTS))


def bench_shell(command: str, tmp_path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", f'set -euo pipefail; source bench/common.sh; {command}'], cwd=ROOT,
                          capture_output=True, text=True, env=dict(os.environ, LTX2GEN_BENCH_WORK=str(tmp_path)))


def test_the_log_filter_drops_progress_bars_and_keeps_the_status(tmp_path):
    log = r"printf 'plan: bf16\n 50%%|#####| 4/8 [00:02<00:02,  1.9it/s]\ndone: out.mp4\n'"
    result = bench_shell(f"{log} | quiet", tmp_path)
    assert (result.returncode, result.stdout) == (0, "plan: bf16\ndone: out.mp4\n")
    assert bench_shell(f"{{ {log}; false; }} | quiet", tmp_path).returncode == 1
    assert bench_shell("printf ' 10%%| 1/8 [00:01<00:07, 1.0it/s]\\n' | quiet", tmp_path).returncode == 0
