"""--num-frames auto on the tiny LTX-2.5 model: the duration head's choice is the stock pipeline's, and the clip is
the one a run given that frame count makes."""

import contextlib
import io
import json

import numpy as np
import pytest
import torch

from conftest import run_generate, stock_pipeline, stock_run
from ltx2gen import duration, text
from ltx2gen.checkpoint import latent_frame_count
from ltx2gen.latents import load_latents
from ltx2gen.memory import MemoryTracker
from ltx2gen.video import probe, read_frames

CPU = torch.device("cpu")
PROMPT = "w1 w2 w3"
# The bounds of the run below: they hold the tiny head's prediction (about 0.80 s for any prompt), so the head
# chooses the length, not the clamp.
INSIDE = ["--min-seconds", "0.5", "--max-seconds", "2"]
SMALL = ["--width", "64", "--height", "64", "--seed", "7"]
TINY_HEAD_SECONDS = 0.80  # what the tiny random head predicts, which the cases below are built around


@pytest.fixture(scope="module")
def auto_clip(tiny_25_model, tmp_path_factory):
    """One run with --num-frames auto (its latents kept) and what it printed."""
    out = tmp_path_factory.mktemp("auto") / "clip.mp4"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert run_generate(tiny_25_model, out, "--keep-latents", clip=[*SMALL, "--num-frames", "auto", *INSIDE],
                            prompt=PROMPT) == 0
    return out, printed.getvalue()


@pytest.fixture(scope="module")
def conditionings(tiny_25_model):
    """Our text stage's conditioning of the prompt: plain, with guidance ([negative, positive] rows) and with NAG
    (the negative prompt's tokens after the prompt's)."""
    requests = [text.PromptRequest(PROMPT, None, False), text.PromptRequest(PROMPT, "rain", True),
                text.PromptRequest(PROMPT, "rain", False, with_nag=True)]
    return MemoryTracker(CPU).run("text", text.encode_prompts, tiny_25_model, requests, CPU, torch.float32)


@pytest.fixture(scope="module")
def stock_head(tiny_25_model):
    """The stock pipeline's duration head and the tokens the stock pipeline gives it for the prompt (its own text
    encoder and connectors)."""
    pipe = stock_pipeline(tiny_25_model)
    with torch.no_grad():
        embeds, mask, _, _ = pipe.encode_prompt(PROMPT, do_classifier_free_guidance=False, max_sequence_length=1024,
                                                device=CPU)
        video, audio, _ = pipe.connectors(embeds, mask, padding_side=pipe.tokenizer.padding_side)
    assert pipe.vae_temporal_compression_ratio == 8
    return pipe.duration_head, video, audio


def test_the_chosen_length_is_printed_once_and_recorded_with_the_prediction(auto_clip):
    out, printed = auto_clip
    sidecar = json.loads(out.with_suffix(".json").read_text())
    chosen = sidecar["auto_duration"]
    assert 0.5 < chosen["predicted_seconds"] < 2.0  # the head chose: the bounds did not clamp
    assert (chosen["min_seconds"], chosen["max_seconds"]) == (0.5, 2.0)
    frames = chosen["num_frames"]
    assert frames == (round(chosen["predicted_seconds"] * 24) - 1) // 8 * 8 + 1  # floored to 8n+1
    assert sidecar["num_frames"] == sidecar["pipeline_call"]["num_frames"] == probe(out).frames == frames
    assert [stage["name"] for stage in sidecar["stages"]] == ["text", "duration", "diffusion", "audio", "video"]
    lines = [line for line in printed.splitlines() if line.startswith("length of clip.mp4:")]
    assert lines == [f"length of clip.mp4: the duration head predicts {chosen['predicted_seconds']:.2f} s for this "
                     f"prompt; {frames} frames ({frames / 24:.2f} s at 24 fps); VAE decode whole clip in one decode"]
    plan_line = next(line for line in printed.splitlines() if line.startswith("plan: "))
    assert "64x64, its length chosen by the model within 0.5-2 s (memory planned for up to 41 frames)" in plan_line
    # decode_latents.py needs no other flag: the latents file holds the chosen count (checked against the tensor)
    latents = load_latents(out.with_suffix(".latents.safetensors"))
    assert latents.video_format.num_frames == frames and latents.metadata["auto_duration"] == chosen


def test_a_run_given_the_chosen_frame_count_makes_the_same_clip(auto_clip, tiny_25_model, tmp_path):
    out, _ = auto_clip
    frames = json.loads(out.with_suffix(".json").read_text())["num_frames"]
    given = tmp_path / "given.mp4"
    # one stage, as --num-frames auto renders: given a frame count, auto would take two-stage at this size
    assert run_generate(tiny_25_model, given, "--keep-latents", clip=[*SMALL, "--num-frames", str(frames),
                                                                      "--pipeline", "distilled"], prompt=PROMPT) == 0
    auto, explicit = (load_latents(path.with_suffix(".latents.safetensors")) for path in (out, given))
    assert torch.equal(auto.video, explicit.video) and torch.equal(auto.audio, explicit.audio)
    assert np.array_equal(read_frames(out), read_frames(given))
    assert json.loads(given.with_suffix(".json").read_text())["auto_duration"] is None


def test_the_stock_pipeline_chooses_the_same_length_and_makes_the_same_latents(auto_clip, tiny_25_model):
    out, _ = auto_clip
    sidecar = json.loads(out.with_suffix(".json").read_text())
    asked = dict(sidecar["pipeline_call"], num_frames=None, min_seconds=0.5, max_seconds=2.0)
    stock = stock_run(tiny_25_model, dict(sidecar, pipeline_call=asked), "latent")
    assert stock.frames.shape[2] == latent_frame_count(sidecar["num_frames"])
    saved = load_latents(out.with_suffix(".latents.safetensors"))
    torch.testing.assert_close(saved.video, stock.frames, rtol=0, atol=1e-5)  # float32 rounding, as in test_generate
    torch.testing.assert_close(saved.audio, stock.audio, rtol=0, atol=1e-5)


# (min seconds, max seconds, fps, frames): None is diffusers' default bound (1 or 20 s)
BOUNDS = [
    (0.5, 2.0, 24, 17),  # inside: 0.80 s is 19 frames, floored to 8n+1
    (None, None, 24, 25),  # the defaults: clamped up to 1 s, 24 frames, snapped up to 8n+1 (floored it would be 17)
    (0.2, 0.5, 24, 9),  # clamped down to 0.5 s: 12 frames, floored
    (1.2, 3.0, 24, 33),  # clamped up to 1.2 s: 29 frames, snapped up
    (0.5, 2.0, 48, 33),  # inside, at 48 fps: 38 frames, floored
]


@pytest.mark.parametrize("min_seconds, max_seconds, fps, frames", BOUNDS)
def test_the_head_clamps_and_snaps_as_diffusers_does_on_the_stock_pipelines_tokens(
        tiny_25_model, conditionings, stock_head, min_seconds, max_seconds, fps, frames):
    auto = duration.AutoLength.from_flags(min_seconds, max_seconds, fps)
    chosen = MemoryTracker(CPU).run("duration", duration.choose_lengths, tiny_25_model, [(conditionings[0], auto)],
                                    device=CPU, dtype=torch.float32)[0]
    head, video, audio = stock_head
    bounds = {} if min_seconds is None else dict(min_seconds=min_seconds, max_seconds=max_seconds)  # else diffusers'
    with torch.no_grad():
        stock_frames = head.predict_num_frames(video, audio, frame_rate=fps, temporal_compression_ratio=8, **bounds)
        stock_seconds = head(video, audio).item()
    assert chosen.predicted_seconds == pytest.approx(TINY_HEAD_SECONDS, abs=0.05)
    assert chosen.predicted_seconds == pytest.approx(stock_seconds, rel=1e-5)
    assert chosen.num_frames == stock_frames == frames
    low, high = auto.frame_window
    assert low <= frames <= auto.longest_num_frames <= high  # the memory plan's clip is never shorter


@pytest.mark.parametrize("index", [1, 2], ids=["guidance", "nag"])
def test_the_head_reads_the_prompts_tokens_alone_with_guidance_or_nag(conditionings, index):
    plain, other = conditionings[0], conditionings[index]
    assert other.video.shape != plain.video.shape  # the negative prompt is in there too
    for theirs, ours in zip(other.prompt_tokens(), plain.prompt_tokens()):
        torch.testing.assert_close(theirs, ours, rtol=0, atol=1e-5)


def test_auto_on_a_model_without_a_duration_head_exits_2_before_any_weight(tiny_model, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_status:
        run_generate(tiny_model, tmp_path / "c.mp4", "--device", "cpu", clip=["--num-frames", "auto"])
    assert exit_status.value.code == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"generate.py: error: --num-frames auto: --model {tiny_model} (LTX-2.0) has no "
                                   "duration head") and captured.err.count("\n") == 1
    assert "[memory]" not in captured.out
