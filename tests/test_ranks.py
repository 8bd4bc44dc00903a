import json
import os
import re
import signal
import subprocess

import numpy as np
import pytest

import generate
from conftest import torchrun, torchrun_command, torchrun_env
from ltx2gen.errors import ConfigError
from ltx2gen.ranks import Ranks
from ltx2gen.video import read_frames
from tests.test_batch import GOOD_AND_BAD, write_batch

CLIPS = GOOD_AND_BAD + [{"name": "owl", "prompt": "an owl blinks at night", "seed": 4}]


@pytest.mark.parametrize("world_size", [1, 2, 3, 5])
def test_every_clip_goes_to_exactly_one_rank(world_size):
    clips = list(range(11))
    shares = [Ranks(rank, world_size).share(clips) for rank in range(world_size)]
    assert sorted(clip for share in shares for clip in share) == clips


def test_rank_variables_are_read_and_checked(monkeypatch):
    assert Ranks.from_env() == Ranks(0, 1, 0)
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert Ranks.from_env() == Ranks(3, 4, 1)
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(ConfigError, match="RANK 4 is outside WORLD_SIZE 4"):
        Ranks.from_env()


def test_two_ranks_share_a_batch_render_like_one_process_and_resume(tiny_model, tmp_path):
    batch_file = write_batch(tmp_path / "four.jsonl", tiny_model, CLIPS)
    assert generate.main(["--batch", str(batch_file), "--out", str(tmp_path / "alone")]) == 1
    out = tmp_path / "ranks"
    result = torchrun("--batch", str(batch_file), "--out", str(out))
    assert result.returncode != 0, result.stdout  # the bad clip failed, so the run says so
    assert "rank 1 of 2: 2 of the batch's 4 clips" in result.stdout
    shares = [[row["name"] for row in json.loads((out / f"summary.rank{rank}.json").read_text())["clips"]]
              for rank in (0, 1)]
    assert shares == [["fox", "sea"], ["bad", "owl"]]
    rows = json.loads((out / "summary.json").read_text())["clips"]
    assert [(row["name"], row["status"]) for row in rows] == [("fox", "done"), ("bad", "failed"), ("sea", "done"),
                                                              ("owl", "done")]
    for name in ("fox", "sea", "owl"):
        assert np.array_equal(read_frames(out / f"{name}.mp4"), read_frames(tmp_path / "alone" / f"{name}.mp4"))
    assert (out / "contact_sheet.png").is_file()

    before = {name: (out / f"{name}.mp4").stat().st_mtime_ns for name in ("fox", "sea", "owl")}
    torchrun("--batch", str(batch_file), "--out", str(out))
    rows = json.loads((out / "summary.json").read_text())["clips"]
    assert [row["status"] for row in rows] == ["skipped", "failed", "skipped", "skipped"]
    assert before == {name: (out / f"{name}.mp4").stat().st_mtime_ns for name in ("fox", "sea", "owl")}


def test_a_rank_that_dies_stops_the_others_and_torchrun_names_it(tiny_model, tmp_path):
    clips = [{"name": f"clip{i}", "prompt": "w1 w2 w3", "seed": i} for i in range(8)]
    batch_file = write_batch(tmp_path / "eight.jsonl", tiny_model, clips)
    process = subprocess.Popen(torchrun_command("--batch", str(batch_file), "--out", str(tmp_path / "out")),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=torchrun_env())
    seen, worker = [], None
    for line in process.stdout:  # until both ranks have joined and rank 1 says which process it is
        seen.append(line)
        # anywhere in the line: the other rank's output can precede it on the same line (both share the pipe)
        worker = re.search(r"rank 1 of 2: .*\(process (\d+)\)", line)
        if worker:
            break
    assert worker, "".join(seen)[-3000:]
    os.kill(int(worker[1]), signal.SIGKILL)
    rest, _ = process.communicate(timeout=120)  # rank 0 is stopped too, not left waiting at the end of the batch
    output = "".join(seen) + rest
    assert process.returncode != 0
    assert "local_rank: 1" in output and "Signal 9 (SIGKILL)" in output, output[-3000:]
    assert not (tmp_path / "out" / "summary.json").exists()  # no merged summary claims the batch finished
