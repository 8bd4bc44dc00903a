"""A run's output names are its own: reserved before any weight is read (a second run of the same name takes the
next timestamped one, or with --no-timestamp is refused), and never one of the run's own inputs."""

import json
from datetime import datetime

import pytest
from test_faults import SMALL, assert_rejected, call, summary_rows, write_batch
from test_lock import holding_process

import generate
from conftest import run_generate
from ltx2gen import config as config_module
from ltx2gen import outputs
from ltx2gen.latents import load_latents
from ltx2gen.video import probe

NOW = datetime(2026, 1, 2, 3, 4, 5)


class FixedClock(datetime):
    @classmethod
    def now(cls, tz=None):
        return NOW


@pytest.fixture(scope="module")
def kept_clip(tiny_model, tmp_path_factory):
    """A small clip rendered with --keep-latents: its MP4, sidecar and latents."""
    out = tmp_path_factory.mktemp("kept") / "kept.mp4"
    status, _, err = call(run_generate, tiny_model, out, "--keep-latents", clip=SMALL)
    assert status == 0, err
    return out


@pytest.fixture
def events():
    """The models loaded while the test runs."""
    from ltx2gen import memory

    loaded = []
    listener = lambda event, name, obj: loaded.append(name) if event == "load" else None  # noqa: E731
    memory.add_listener(listener)
    yield loaded
    memory.remove_listener(listener)


def snapshot(folder):
    return {path.name: path.read_bytes() for path in folder.iterdir()}


def test_a_second_run_of_a_name_another_run_holds_is_refused_with_no_timestamp(tiny_model, tmp_path, events):
    out = tmp_path / "out" / "clip.mp4"
    out.parent.mkdir()
    other = holding_process(outputs.lock_path(out))
    try:
        status, _, err = call(run_generate, tiny_model, out, clip=SMALL)
    finally:
        other.kill()
        other.wait()
    assert_rejected(status, err, "generate.py", f"--output {out}: another run (process {other.pid}) is writing it")
    assert not events and [path.name for path in out.parent.iterdir()] == [outputs.lock_path(out).name]


def test_runs_started_in_the_same_second_take_the_next_free_timestamped_name(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setattr(config_module, "datetime", FixedClock)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    held = out_dir / "clip_20260102_030405.mp4"  # a run of the same second, still diffusing
    (out_dir / "clip_20260102_030405_2.latents.safetensors").write_bytes(b"a failed run's latents")
    other = holding_process(outputs.lock_path(held))
    try:
        argv = ["--prompt", "a fox", "--model", str(tiny_model), "--output", str(out_dir / "clip.mp4"), *SMALL]
        status, out, err = call(generate.main, argv)
    finally:
        other.kill()
        other.wait()
    assert status == 0, err
    mine = out_dir / "clip_20260102_030405_3.mp4"
    assert f"note: {held} is taken by another run; this run writes {mine}" in out
    assert f"done: {mine}" in out
    assert probe(mine).frames == 9 and json.loads(mine.with_suffix(".json").read_text())["output"] == str(mine)
    assert (out_dir / "clip_20260102_030405_2.latents.safetensors").read_bytes() == b"a failed run's latents"
    assert not held.exists()
    assert sorted(path.name for path in out_dir.iterdir()) == sorted([
        mine.name, mine.with_suffix(".json").name, "clip_20260102_030405_2.latents.safetensors",
        outputs.lock_path(held).name])  # the other run's lock stays (killed with -9); this run's is gone


def test_next_name_counts_on_from_a_timestamped_name():
    from pathlib import Path

    assert outputs.next_name(Path("a/v_20260102_030405.mp4")) == Path("a/v_20260102_030405_2.mp4")
    assert outputs.next_name(Path("a/v_20260102_030405_2.mp4")) == Path("a/v_20260102_030405_3.mp4")


@pytest.mark.parametrize("flag, given", [("--extend", "mp4"), ("--extend", "latents"), ("--audio", "mp4")])
def test_an_output_that_is_one_of_the_runs_inputs_is_refused_up_front(tiny_model, kept_clip, tmp_path, events, flag,
                                                                     given):
    folder = kept_clip.parent
    before = snapshot(folder)
    source = kept_clip if given == "mp4" else kept_clip.with_suffix(".latents.safetensors")
    extra = ["--extend-seconds", "0.5"] if flag == "--extend" else []
    status, _, err = call(generate.main, ["--prompt", "more", "--model", str(tiny_model), "--no-timestamp",
                                          "--output", str(kept_clip), flag, str(source), *extra,
                                          *(SMALL if flag == "--audio" else [])])
    assert_rejected(status, err, "generate.py", f"{flag} {source}: is the output", "give another --output")
    assert not events and snapshot(folder) == before
    assert load_latents(kept_clip.with_suffix(".latents.safetensors")).video_format.num_frames == 9


def test_a_batch_clip_whose_output_is_its_own_input_fails_as_bad_input(tiny_model, kept_clip, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.mp4").write_bytes(kept_clip.read_bytes())  # a soundtrack that happens to be named as the clip
    batch_file = write_batch(tmp_path / "b.jsonl", tiny_model, [{"name": "a", "prompt": "more",
                                                                 "audio": str(out / "a.mp4")}])
    status, _, err = call(generate.main, ["--batch", str(batch_file), "--out", str(out)])
    assert status == 1, err
    row = summary_rows(out)["a"]
    assert row["status"] == "failed" and row["detail"].startswith(f"bad input: {batch_file}:1: clip 'a': ")
    assert f"--audio {out / 'a.mp4'}: is the output" in row["detail"], row
    assert (out / "a.mp4").read_bytes() == kept_clip.read_bytes()


def test_decode_latents_refuses_an_output_another_run_is_writing(kept_clip, tmp_path, events):
    import decode_latents

    out = tmp_path / "out" / "clip.mp4"
    with outputs.reserve_exactly(out):  # a generate.py or decode_latents.py run writing that name
        status, _, err = call(decode_latents.main, ["--input", str(kept_clip.with_suffix(".latents.safetensors")),
                                                    "--output", str(out)])
        assert_rejected(status, err, "decode_latents.py", f"--output {out}: another run", "is writing it")
        assert not events and [path.name for path in out.parent.iterdir()] == [outputs.lock_path(out).name]
    assert not out.parent.exists()  # the folder made for the name goes with it


def test_a_batch_clip_whose_output_another_run_is_writing_fails_as_bad_input(tiny_model, tmp_path, events):
    out = tmp_path / "out"
    batch_file = write_batch(tmp_path / "b.jsonl", tiny_model, [{"name": "a", "prompt": "a fox"}])
    with outputs.reserve_exactly(out / "a.mp4"):  # generate.py --output out/a.mp4 --no-timestamp, say
        status, _, err = call(generate.main, ["--batch", str(batch_file), "--out", str(out)])
    assert status == 1, err
    row = summary_rows(out)["a"]
    assert row["status"] == "failed" and f"bad input: --output {out / 'a.mp4'}: another run" in row["detail"], row
    assert not events and not (out / "a.mp4").exists()
