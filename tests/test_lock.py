"""A batch output folder takes one runner at a time: the lock, the runners that take it (generate.py --batch and
batch/run_batch.sh), and a runner killed with -9 (its lock is stale; its clip's process does not run on)."""

import os
import signal
import subprocess
import sys
import time

import pytest
from test_faults import (
    assert_rejected,
    batch_env,
    processes_naming,
    run_batch_runner,
    stop_leftovers,
    summary_rows,
    wait_for,
    write_batch,
)

from conftest import ROOT
from ltx2gen import lock

HOLD_A_LOCK = ("import sys, time\nfrom ltx2gen import lock\nassert lock.try_lock(sys.argv[1])\n"
               "print('HELD', flush=True)\ntime.sleep(600)\n")


def holding_process(path):
    """A process that holds the lock of `path` until it is killed."""
    process = subprocess.Popen([sys.executable, "-c", HOLD_A_LOCK, str(path)], cwd=ROOT, stdout=subprocess.PIPE,
                               text=True)
    assert process.stdout.readline() == "HELD\n"
    return process


def test_a_lock_is_taken_once_and_its_file_removed_on_release(tmp_path):
    path = tmp_path / "x.lock"
    first = lock.try_lock(path)
    assert first is not None and path.read_text() == f"{os.getpid()}\n"
    assert lock.try_lock(path) is None  # held, even within one process
    first.release()
    assert not path.exists()
    with lock.try_lock(path) as second:
        assert second is not None and path.exists()
    assert not path.exists()


def test_a_lock_of_a_process_killed_with_9_is_stale_and_taken(tmp_path):
    path = tmp_path / "x.lock"
    process = holding_process(path)
    try:
        assert lock.try_lock(path) is None and lock.holder(path) == f"process {process.pid}"
    finally:
        process.kill()
        process.wait()
    assert path.exists()  # left behind by the killed holder
    taken = lock.try_lock(path)
    assert taken is not None
    taken.release()


def test_a_lock_never_follows_a_link_planted_at_its_name(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    (tmp_path / "x.lock").symlink_to(victim)
    with pytest.raises(OSError):
        lock.try_lock(tmp_path / "x.lock")
    assert victim.read_text() == "keep me"


@pytest.mark.parametrize("runner", ["generate.py", "run_batch.sh"])
def test_a_batch_runner_is_refused_a_folder_another_runner_renders_into(tiny_model, tmp_path, runner):
    out = tmp_path / "out"
    out.mkdir()
    batch_file = write_batch(tmp_path / "b.jsonl", tiny_model, [{"name": "a", "prompt": "a fox"}])
    other = holding_process(out / lock.BATCH_LOCK)
    try:
        status, stdout, err = run_batch_runner(runner, batch_file, "--out", out)
    finally:
        other.kill()
        other.wait()
    assert_rejected(status, err, runner, f"--out {out}: another batch runner (process {other.pid}",
                    "wait for it to finish")
    assert not list(out.glob("a*")) and not (out / "summary.md").exists()


def test_run_batch_killed_with_9_stops_its_clip_and_a_rerun_renders_it(tiny_model, tmp_path):
    batch_file = write_batch(tmp_path / "b.jsonl", tiny_model, [{"name": "a", "prompt": "a fox", "seed": 1}])
    out = tmp_path / "out"
    runner = subprocess.Popen([str(ROOT / "batch" / "run_batch.sh"), str(batch_file), "--out", str(out)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=batch_env())
    try:
        log = out / "logs" / "a.log"
        assert wait_for(lambda: log.is_file() and "plan:" in log.read_text()), "the clip never started"
        runner.send_signal(signal.SIGKILL)
        runner.wait()
        # The clip's process is stopped as on Ctrl-C, not left to finish (or to race the next runner).
        assert wait_for(lambda: not processes_naming(str(out / "a.mp4")), 60), "the clip's process ran on"
        assert "error: interrupted" in log.read_text()
        assert not (out / "a.mp4").exists()
        time.sleep(0.5)
        result = subprocess.run([str(ROOT / "batch" / "run_batch.sh"), str(batch_file), "--out", str(out)],
                                capture_output=True, text=True, env=batch_env(), timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
        assert summary_rows(out)["a"]["status"] == "done"
        assert not (out / lock.BATCH_LOCK).exists()
    finally:
        if runner.poll() is None:
            runner.kill()
        stop_leftovers(str(out))
