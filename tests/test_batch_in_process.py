import contextlib
import io
import json
import re

import numpy as np
import pytest
import torch

import generate
from ltx2gen import memory
from ltx2gen.batch_lines import read_batch
from ltx2gen.latents import load_latents
from ltx2gen.video import read_frames

CLIPS = [{"name": name, "prompt": prompt, "seed": seed} for name, prompt, seed in (
    ("fox", "a red fox in snow", 1), ("sea", "waves on a beach, gulls", 2), ("owl", "an owl at night", 3))]
LINE = re.compile(r"\[(\d)/3\] (\w+): (\w+) in ([\d.]+) s")


class Watched(io.StringIO):
    """stdout that notes, as each `[i/N]` line is written, whether the clip's MP4 and sidecar are on disk then."""

    def __init__(self, out_dir, events):
        super().__init__()
        self.out_dir, self.events = out_dir, events

    def write(self, text):
        for index, name, status, _ in LINE.findall(text):
            on_disk = all((self.out_dir / f"{name}{suffix}").is_file() for suffix in (".mp4", ".json"))
            self.events.append(("line", name, status, on_disk))
        return super().write(text)


def write_batch(path, model, clips):
    common = {"model": str(model), "width": 96, "height": 64, "num_frames": 9, "keep_latents": True}
    path.write_text("\n".join(json.dumps(dict(common, **clip)) for clip in clips) + "\n")
    return path


@pytest.fixture(scope="module")
def batch_run(tiny_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("progress")
    batch_file = write_batch(folder / "three.jsonl", tiny_model, CLIPS)
    out_dir, events = folder / "out", []
    stdout = Watched(out_dir, events)

    def listener(event, name, obj):
        if event == "stage-start":
            events.append(("stage", name))

    memory.add_listener(listener)
    try:
        with contextlib.redirect_stdout(stdout):
            status = generate.main(["--batch", str(batch_file), "--out", str(out_dir)])
    finally:
        memory.remove_listener(listener)
    return batch_file, out_dir, status, stdout.getvalue(), events


def test_each_clip_is_decoded_and_reported_before_the_next_clip_diffuses(batch_run):
    _, out_dir, status, out, events = batch_run
    assert status == 0, out
    lines = [event for event in events if event[0] == "line"]
    assert lines == [("line", name, "done", True) for name in ("fox", "sea", "owl")]  # MP4 and sidecar there
    diffusions = [index for index, event in enumerate(events) if event == ("stage", "diffusion")]
    reported = [events.index(line) for line in lines]
    assert len(diffusions) == 3 and diffusions[0] < reported[0] < diffusions[1] < reported[1] < diffusions[2]
    assert "decoded after the group's diffusion" not in out
    assert out.index("[3/3] owl") < out.index("| clip | status |")  # the summary table still comes last
    assert re.search(r"\[1/3\] fox: done in [\d.]+ s \| elapsed [\d:]+, ETA \d:\d\d:\d\d", out)
    assert not re.search(r"\[3/3\].*ETA", out)


def test_a_clips_seconds_include_its_diffusion_and_decode_and_its_sidecar_its_own_stages(batch_run):
    _, out_dir, _, out, _ = batch_run
    rows = {row["name"]: row for row in json.loads((out_dir / "summary.json").read_text())["clips"]}
    printed = {name: float(seconds) for _, name, _, seconds in LINE.findall(out)}
    for name in ("fox", "sea", "owl"):
        stages = json.loads((out_dir / f"{name}.json").read_text())["stage_seconds"]
        assert list(stages) == ["text", "diffusion", "audio", "video"]
        own = stages["diffusion"] + stages["audio"] + stages["video"]
        # its own stages and an even share of the text stage
        assert rows[name]["seconds"] >= own + stages["text"] / 3 - 0.01
        assert printed[name] == pytest.approx(rows[name]["seconds"], abs=0.06)


def test_notes_every_clip_repeats_are_said_once_and_each_clip_has_its_plan_line(batch_run):
    _, _, _, out, _ = batch_run
    fp8 = [line for line in out.splitlines() if line.startswith("note: FP8 needs")]
    assert len(fp8) == 1 and fp8[0].endswith(" (all 3 clips)")
    for clip in CLIPS:
        assert len(re.findall(rf"^{clip['name']}: plan: .* seed {clip['seed']},", out, re.M)) == 1
    assert len(re.findall(r"^plan:", out, re.M)) == 0


def test_clips_equal_separate_runs_latents_and_frames(batch_run, tmp_path):
    batch_file, out_dir, _, _, _ = batch_run
    for clip in read_batch(batch_file):  # the later ones diffused after the earlier ones were decoded
        separate = tmp_path / f"{clip.name}.mp4"
        with contextlib.redirect_stdout(io.StringIO()):
            assert generate.main(clip.argv(separate)) == 0
        batch_latents = load_latents(out_dir / f"{clip.name}.latents.safetensors")
        separate_latents = load_latents(separate.with_suffix(".latents.safetensors"))
        assert torch.equal(batch_latents.video, separate_latents.video)
        assert torch.equal(batch_latents.audio, separate_latents.audio)
        assert np.array_equal(read_frames(out_dir / f"{clip.name}.mp4"), read_frames(separate))


def test_where_the_decode_does_not_fit_beside_the_transformer_the_group_is_decoded_after_and_said_once(
        batch_run, tiny_model, tmp_path, monkeypatch):
    monkeypatch.setenv("LTX2GEN_HOST_MEMORY_GIB", "0.5")  # the CPU's rule: the decode beside the transformer
    batch_file = write_batch(tmp_path / "two.jsonl", tiny_model, CLIPS[:2])
    out_dir = tmp_path / "out"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert generate.main(["--batch", str(batch_file), "--out", str(out_dir)]) == 0
    out = out.getvalue()
    said = [line for line in out.splitlines() if line.startswith("batch: clips are decoded after")]
    assert len(said) == 1 and "does not fit beside the transformer in host memory" in said[0]
    assert out.index("saved latents: " + str(out_dir / "sea.latents.safetensors")) < out.index("[1/2] fox: done")
    assert out.index("[1/2] fox: done") < out.index("[2/2] sea: done")
    for name in ("fox", "sea"):  # the same clips as decoded beside the transformer
        assert np.array_equal(read_frames(out_dir / f"{name}.mp4"), read_frames(batch_run[1] / f"{name}.mp4"))
