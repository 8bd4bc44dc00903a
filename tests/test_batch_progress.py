import contextlib
import io

from ltx2gen.batch import Row, Summary
from ltx2gen.batch_progress import BatchProgress, PlanningLines


def test_the_eta_counts_each_waiting_clips_stages_still_to_run_at_their_measured_means(tmp_path):
    progress = BatchProgress(Summary(tmp_path), 4)
    rows = [Row(name) for name in "abcd"]
    progress.summary.rows += rows
    times = [{} for _ in rows]
    for seconds in times[:3]:
        progress.expect(seconds)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rows[3].status = "skipped"
        progress.ended(rows[3])  # settled before any model loaded: nothing measured yet, no ETA
        for seconds in times[:3]:
            seconds["shared"] = 2.0
        times[0].update(diffusion=10.0, decode=4.0)
        times[1].update(diffusion=20.0)  # diffused, decoded after the group's diffusion
        rows[0].status = "done"
        progress.ended(rows[0], times[0])
        assert progress.remaining_seconds() == 4.0 + (15.0 + 4.0)  # b's decode; c's diffusion and decode
        rows[2].status, times[2]["diffusion"] = "failed", 100.0
        progress.ended(rows[2], times[2])  # a failed clip's seconds are no one's measure
        assert progress.remaining_seconds() == 4.0
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("[1/4] d: skipped in 0.0 s | elapsed ") and "ETA" not in lines[0]
    assert lines[1].startswith("[2/4] a: done") and lines[1].endswith("ETA 0:00:23")
    assert lines[2].startswith("[3/4] c: failed") and lines[2].endswith("ETA 0:00:04")


def test_planning_lines_say_each_clips_plan_under_its_name_and_shared_lines_once(capsys):
    lines = PlanningLines()
    for name, seed in (("a", 1), ("b", 2), ("c", 3)):
        with lines.of_clip(name):
            print("note: FP8 needs an NVIDIA GPU")
            print(f"plan: 96x64x9, seed {seed}")
            if name != "a":
                print("memory plan for 80 GiB GPU")
            if name == "c":
                print("note: c's own")
    assert capsys.readouterr().out == "a: plan: 96x64x9, seed 1\nb: plan: 96x64x9, seed 2\nc: plan: 96x64x9, seed 3\n"
    lines.say(3)
    assert capsys.readouterr().out == ("note: FP8 needs an NVIDIA GPU (all 3 clips)\n"
                                       "memory plan for 80 GiB GPU (2 of 3 clips: b, c)\nnote: c's own\n")
