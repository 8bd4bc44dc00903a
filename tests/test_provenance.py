"""Kept work is taken up only where it was made from what is asked for now: a batch re-run renders a clip again
(said in one line) when its line changed since its latents were kept; --refine-from and --resume refuse kept work
made from other settings or inputs."""

import json
import shutil

import numpy as np
import pytest
import torch
from test_faults import kept, run_batch_runner, summary_rows, write_batch  # noqa: F401 (kept: a fixture)

from conftest import parse_config
from ltx2gen import provenance
from ltx2gen.errors import ConfigError
from ltx2gen.video import read_frames


def config_with(tmp_path, tiny_model, *extra):
    return parse_config("--model", str(tiny_model), "--seed", "7", "--output", str(tmp_path / "c.mp4"), *extra)


def test_every_setting_and_input_that_shapes_the_latents_is_compared(tmp_path, tiny_model):
    from PIL import Image

    Image.new("RGB", (64, 64), "red").save(tmp_path / "a.png")
    (tmp_path / "style.safetensors").write_bytes(b"one")
    base = config_with(tmp_path, tiny_model, "--image", str(tmp_path / "a.png"), "--lora",
                       str(tmp_path / "style.safetensors"))
    stored = json.loads(json.dumps(provenance.made_from(base)))  # as a latents file holds it
    assert provenance.differences(stored, base) == []
    assert provenance.differences({}, base) is None  # a file of an earlier version records nothing
    changes = {("--prompt", "a cat"): ["prompt"], ("--seed", "8"): ["seed"], ("--width", "64"): ["width"],
               ("--num-frames", "9"): ["num_frames"], ("--fps", "25"): ["fps", "windows"],
               ("--pipeline", "full"): ["pipeline", "steps", "guidance"],
               ("--model", "someone/LTX-2-19b-distilled"): ["model"]}
    for flags, differ in changes.items():
        changed = config_with(tmp_path, tiny_model, "--image", str(tmp_path / "a.png"), "--lora",
                              str(tmp_path / "style.safetensors"), *flags)
        assert [name for name in provenance.differences(stored, changed) if name != "negative_prompt"] == differ
    Image.new("RGB", (64, 64), "blue").save(tmp_path / "a.png")  # the same files, other contents
    (tmp_path / "style.safetensors").write_bytes(b"two")
    assert provenance.differences(stored, base) == ["image", "lora"]
    assert provenance.describe(["image", "lora"]) == "was made from another image, lora"


@pytest.mark.parametrize("runner", ["generate.py", "run_batch.sh"])
def test_a_batch_renders_again_a_clip_whose_line_changed_since_its_latents_were_kept(tiny_model, kept,  # noqa: F811
                                                                                     tmp_path, runner):
    out = tmp_path / "out"
    out.mkdir()
    shutil.copy(kept[1], out / "kept.latents.safetensors")  # diffused with prompt "w1 w2 w3", seed 7, then stopped
    batch_file = write_batch(tmp_path / "b.jsonl", tiny_model, [{"name": "kept", "prompt": "a red fox", "seed": 8}])
    status, stdout, err = run_batch_runner(runner, batch_file, "--out", out, *(
        ["--embedding-cache", tmp_path / "cache"] if runner == "generate.py" else []))
    assert status == 0, stdout + err
    note = f"note: {batch_file}:1: clip 'kept': its kept kept.latents.safetensors was made from another prompt, " \
           "seed; rendering the clip again"
    assert [line for line in stdout.splitlines() if line.startswith("note: ") and "again" in line] == [note]
    row = summary_rows(out)["kept"]
    assert row["status"] == "done" and row["detail"] == "rendered again: " + note[len("note: "):]
    sidecar = json.loads((out / "kept.json").read_text())
    assert (sidecar["prompt"], sidecar["seed"]) == ("a red fox", 8) and "recovered_from" not in sidecar
    assert not np.array_equal(read_frames(out / "kept.mp4"), read_frames(kept[0]))


def stage_one_file(path, config) -> str:
    """A two-stage run's stage-one latents file as `config`'s run writes it (its settings; small tensors)."""
    from ltx2gen.latents import save_latents
    from ltx2gen.two_stage import CLIP_FIELDS, STAGE_ONE_KIND

    clip = {name: getattr(config, name) for name in CLIP_FIELDS}
    clip.update(fps=str(config.fps), output=str(config.output))
    save_latents(path, torch.zeros(1, 1, 1, 1, 1), torch.zeros(1, 1, 1, 1),
                 {"kind": STAGE_ONE_KIND, "clip": clip, **provenance.made_from(config)})
    return str(path)


def test_refine_from_refuses_stage_one_latents_made_with_other_settings(tmp_path, tiny_model):
    (tmp_path / "style.safetensors").write_bytes(b"one")
    lora = ["--lora", str(tmp_path / "style.safetensors")]
    first = config_with(tmp_path, tiny_model, "--pipeline", "two-stage", "--width", "128", "--height", "128", *lora)
    path = stage_one_file(tmp_path / "c.stage1.latents.safetensors", first)
    assert parse_config("--refine-from", path, *lora).prompt == "a fox"
    with pytest.raises(ConfigError, match=f"^--refine-from {path}: was made from another lora than this command"):
        parse_config("--refine-from", path)
    (tmp_path / "style.safetensors").write_bytes(b"two")  # the LoRA file changed since stage one
    with pytest.raises(ConfigError, match="was made from another lora"):
        parse_config("--refine-from", path, *lora)


def test_refine_from_refuses_a_contradicting_flag_even_at_its_default_value(tmp_path, tiny_model):
    first = config_with(tmp_path, tiny_model, "--pipeline", "two-stage", "--width", "128", "--height", "128")
    path = stage_one_file(tmp_path / "c.stage1.latents.safetensors", first)
    with pytest.raises(ConfigError, match="^--width 768: the stage-one latents were made with 128"):
        parse_config("--refine-from", path, "--width", "768")  # 768 is the default: given, it still contradicts
