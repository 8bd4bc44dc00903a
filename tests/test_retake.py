"""--retake on the tiny real model: the latents outside the span come back bit for bit, video or audio alone is
retaken with the other kept whole, a new prompt changes the span, the decoded frames outside the span stay within
the VAE's own reach of the clip's, any MP4 is encoded and retaken; bad input is refused before any model loads."""

import json
from fractions import Fraction

import numpy as np
import pytest
import torch

from conftest import assert_refused_before_any_load, run_generate
from ltx2gen.latents import load_latents
from ltx2gen.retake import RetakeSpan, audio_regenerated, video_regenerated
from ltx2gen.video import probe, write_mp4

# The tiny clip (17 frames at 24 fps: 3 latent frames, 18 audio latent frames); 0.1-0.3 s meets latent frame 1
# alone (frames 1-8, 0.042-0.375 s) and audio latent frames 3-8 (0.09-0.33 s).
SPAN = "0.1-0.3"
VIDEO_SPAN = [False, True, False]
AUDIO_SPAN = [3 <= index <= 8 for index in range(18)]
# The mean difference of the decoded frames outside the span from the clip's own decode, on the tiny random model
# (measured 0.237 of [-1, 1], a new clip 0.316: docs/conditioning.md#retake): its VAE decoder reaches across the
# whole clip.
FRAME_TOLERANCE = 0.26


def retake(tiny_model, clip, out, *extra: str, what: str = "both"):
    import generate

    return generate.main(["--model", str(tiny_model), "--retake", str(clip), "--retake-span", SPAN,
                          "--retake-what", what, "--no-timestamp", "--output", str(out), "--keep-latents", *extra,
                          *(() if "--seed" in extra else ("--seed", "11"))])


@pytest.fixture(scope="module")
def source(tiny_model, tmp_path_factory):
    """A kept 17-frame clip (seed 7), a new clip of the retakes' seed, and the clip's retakes (seed 11): both, video,
    audio, and both with a new prompt."""
    folder = tmp_path_factory.mktemp("retake")
    assert run_generate(tiny_model, folder / "clip.mp4", "--keep-latents") == 0
    fresh = ["--width", "96", "--height", "64", "--num-frames", "17", "--seed", "11"]  # the retakes' seed
    assert run_generate(tiny_model, folder / "fresh.mp4", "--keep-latents", clip=fresh) == 0
    clip = folder / "clip.mp4"
    for name, what, extra in (("both", "both", ()), ("video", "video", ()),
                              ("audio", "audio", ()), ("prompt", "both", ("--prompt", "w3 w3 w3"))):
        assert retake(tiny_model, clip, folder / f"{name}.mp4", *extra, what=what) == 0
    return folder


def latents(folder, name):
    return load_latents(folder / f"{name}.latents.safetensors")


def test_the_span_maps_to_whole_latent_frames_as_lightricks_mask_does():
    span = RetakeSpan.parse(SPAN)
    assert video_regenerated(span, 17, Fraction(24)) == VIDEO_SPAN
    assert audio_regenerated(span, 17, Fraction(24), 16000, 160) == AUDIO_SPAN
    # frame 0 alone is latent frame 0; a span ending exactly where latent frame 2 starts (9/24 s) leaves it alone
    assert video_regenerated(RetakeSpan.parse("0-0.375"), 17, Fraction(24)) == [True, True, False]
    assert video_regenerated(RetakeSpan.parse("0.375-0.5"), 17, Fraction(24)) == [False, False, True]


def test_a_retake_keeps_every_latent_frame_outside_the_span_bit_for_bit(source):
    clip, both = latents(source, "clip"), latents(source, "both")
    kept, kept_audio = torch.tensor(VIDEO_SPAN).logical_not(), torch.tensor(AUDIO_SPAN).logical_not()
    assert torch.equal(both.video[:, :, kept], clip.video[:, :, kept])
    assert torch.equal(both.audio[:, :, kept_audio], clip.audio[:, :, kept_audio])
    assert (both.video[:, :, 1] - clip.video[:, :, 1]).abs().mean() > 0.1  # the span is regenerated
    assert (both.audio[:, :, 3:9] - clip.audio[:, :, 3:9]).abs().mean() > 0.1
    assert probe(source / "both.mp4").frames == 17
    record = json.loads((source / "both.json").read_text())["retake"]
    assert record["span_asked"] == [0.1, 0.3] and record["latent_frames"] == [1, 1]
    assert record["frames"] == [1, 8] and record["audio_latent_frames"] == [3, 8]
    assert record["path"] == str(source / "clip.latents.safetensors") and not record["encoded_through_vae"]
    assert both.metadata["retake"]["sha256"] == record["sha256"] and both.metadata["seed"] == 11


def test_retaking_video_or_audio_alone_keeps_the_other_whole(source):
    clip, video, audio = latents(source, "clip"), latents(source, "video"), latents(source, "audio")
    assert torch.equal(video.audio, clip.audio) and not torch.equal(video.video[:, :, 1], clip.video[:, :, 1])
    assert torch.equal(video.video[:, :, [0, 2]], clip.video[:, :, [0, 2]])
    assert torch.equal(audio.video, clip.video) and not torch.equal(audio.audio[:, :, 3:9], clip.audio[:, :, 3:9])
    kept_audio = torch.tensor(AUDIO_SPAN).logical_not()
    assert torch.equal(audio.audio[:, :, kept_audio], clip.audio[:, :, kept_audio])


def test_a_new_prompt_changes_the_span_as_much_as_it_changes_a_new_clip_and_nothing_else(source):
    # The same clip, span and seed, so the difference is the prompt's. The tiny random text encoder moves a clip
    # little: measured 1.7e-4 on average between new clips of seed 11 with these two prompts, 1.6e-4 in the span
    # here; float rounding alone is 2.4e-7 (the test below). The rest does not move at all.
    same, new, clip = latents(source, "both"), latents(source, "prompt"), latents(source, "clip")
    assert (new.video[:, :, 1] - same.video[:, :, 1]).abs().mean() > 5e-5
    assert torch.equal(new.video[:, :, [0, 2]], clip.video[:, :, [0, 2]])
    assert json.loads((source / "prompt.json").read_text())["prompt"] == "w3 w3 w3"
    assert json.loads((source / "both.json").read_text())["prompt"] == "w1 w2 w3"  # the clip's own, adopted


def decoded(tiny_model, video):
    from ltx2gen.components import load_component

    vae = load_component(tiny_model, "vae", torch.device("cpu"), torch.float32)
    with torch.no_grad():
        return vae.decode(video, None).sample.clamp(-1, 1)


def test_decoded_frames_outside_the_span_stay_within_the_vae_decoders_reach(source, tiny_model):
    # The latents there are the clip's (above): what differs is the decoder's reach across latent frames. The tiny
    # random decoder reaches the whole 3-latent-frame clip, so the figures are its own, not the real model's.
    clip = decoded(tiny_model, latents(source, "clip").video)
    outside = [0, *range(9, 17)]  # frame 0 and latent frame 2's frames
    retaken, fresh = ((decoded(tiny_model, latents(source, name).video) - clip)[:, :, outside].abs()
                      for name in ("both", "fresh"))
    print(f"decoded frames outside the span: max {retaken.max():.3f}, mean {retaken.mean():.3f} (of [-1, 1]); a new "
          f"clip of the retake's seed: max {fresh.max():.3f}, mean {fresh.mean():.3f}")
    assert retaken.mean() < FRAME_TOLERANCE and retaken.mean() < 0.8 * fresh.mean()


def test_any_mp4_is_encoded_through_the_vaes_and_retaken(tiny_model, tmp_path, capsys):
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 256, (17, 64, 96, 3), dtype=np.uint8)
    tone = np.sin(np.arange(int(24000 * 17 / 24)) / 24000 * 2 * np.pi * 440).astype(np.float32)[None].repeat(2, 0)
    given = write_mp4(tmp_path / "any.mp4", iter(frames), width=96, height=64, num_frames=17, fps=Fraction(24),
                      audio=tone * 0.3, sample_rate=24000)
    assert retake(tiny_model, given, tmp_path / "out.mp4", "--prompt", "w1 w2 w3", "--seed", "3") == 0
    out = capsys.readouterr().out
    assert "any.mp4 has no kept latents; its frames and audio are encoded through the VAE" in out
    assert "regenerates frames 1-8 (latent frames 1-1) and audio 0.00-0.33 s" not in out
    assert "regenerates frames 1-8 (latent frames 1-1)" in out
    record = json.loads((tmp_path / "out.json").read_text())["retake"]
    assert record["encoded_through_vae"] and record["path"] == str(given.resolve())
    result = load_latents(tmp_path / "out.latents.safetensors")
    assert result.video.shape[2] == 3 and probe(tmp_path / "out.mp4").frames == 17


def test_an_mp4_without_audio_gets_its_audio_generated_whole(inputs, tiny_model, tmp_path, capsys):
    assert retake(tiny_model, inputs["silent"], tmp_path / "out.mp4", "--prompt", "w1 w2 w3", what="video") == 0
    assert "(it has no audio: the clip's audio is generated whole)" in capsys.readouterr().out
    record = json.loads((tmp_path / "out.json").read_text())["retake"]
    assert record["audio_latent_frames"] == [0, 17] and record["latent_frames"] == [1, 1]
    info = probe(tmp_path / "out.mp4")
    assert info.frames == 17 and info.audio_channels == 2


def silent_mp4(path, frames: int = 17, width: int = 96, height: int = 64):
    pictures = np.random.default_rng(5).integers(0, 256, (frames, height, width, 3), dtype=np.uint8)
    return write_mp4(path, iter(pictures), width=width, height=height, num_frames=frames, fps=Fraction(24))


@pytest.fixture(scope="module")
def inputs(source, tmp_path_factory):
    """Files the refusals name: the kept clip, an image, junk, MP4s without audio, too short and too narrow."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("inputs")
    fill = {"clip": source / "clip.mp4", "image": folder / "i.png", "junk": folder / "junk.mp4",
            "bad_latents": folder / "bad.latents.safetensors", "silent": silent_mp4(folder / "silent.mp4"),
            "short": silent_mp4(folder / "short.mp4", 10), "narrow": silent_mp4(folder / "narrow.mp4", width=80)}
    fill["junk"].write_text("not a video")
    fill["bad_latents"].write_bytes(b"\0" * 64)
    Image.new("RGB", (96, 64)).save(fill["image"])
    return fill


@pytest.mark.parametrize("flags,message", [
    (["--retake", "{missing}", "--retake-span", SPAN], "--retake {missing}: no such file"),
    (["--retake", "{junk}", "--retake-span", SPAN], "not a clip: neither a latents file nor a video"),
    (["--retake", "{bad_latents}", "--retake-span", SPAN], "not a clip ("),
    (["--retake", "{clip}"], "give --retake-span START-END in seconds"),
    (["--retake-span", SPAN], "--retake-span 0.1-0.3: give --retake CLIP"),
    (["--retake-what", "video"], "--retake-what video: give --retake CLIP"),
    (["--retake", "{clip}", "--retake-span", "0.1to0.3"], "--retake-span 0.1to0.3: give START-END"),
    (["--retake", "{clip}", "--retake-span", "0.3-0.1"], "an empty span"),
    (["--retake", "{clip}", "--retake-span", "0.5-0.9"], "ends after the clip, which lasts 0.708 s"),
    (["--retake", "{clip}", "--retake-span", "0-0.7"], "covers the whole clip once widened"),
    (["--retake", "{clip}", "--retake-span", "0-0.708", "--retake-what", "audio"], "covers the whole clip's audio"),
    (["--retake", "{clip}", "--retake-span", SPAN, "--retake-what", "music"], "invalid choice: 'music'"),
    (["--retake", "{clip}", "--retake-span", "0.695-0.7", "--retake-what", "audio"], "holds none of the clip's audio"),
    (["--retake", "{clip}", "--retake-span", SPAN, "--num-frames", "25"], "--num-frames 25: the clip to retake has 17"),
    (["--retake", "{clip}", "--retake-span", SPAN, "--width", "128"], "--width 128: the clip to retake has 96"),
    (["--retake", "{clip}", "--retake-span", SPAN, "--num-frames", "auto"], "--num-frames auto: the clip to retake"),
    (["--retake", "{clip}", "--retake-span", SPAN, "--fps", "25"], "--fps 25: the clip to retake has 24"),
    (["--retake", "{clip}", "--retake-span", SPAN, "--seconds", "1"], "keeps the clip's length; drop --seconds"),
    (["--retake", "{clip}", "--retake-span", SPAN, "--extend", "{clip}"], "with --extend: a retake renders"),
    (["--retake", "{clip}", "--retake-span", SPAN, "--audio", "{clip}"], "with --audio: a retake follows the clip"),
    (["--retake", "{clip}", "--retake-span", SPAN, "--image", "{image}"], "with --image: a retake follows the clip"),
    (["--retake", "{clip}", "--retake-span", SPAN, "--prompt-at", "0.2:w3"], "with --prompt-at: a retake"),
    (["--retake", "{clip}", "--retake-span", SPAN, "--pipeline", "two-stage"], "--pipeline two-stage with --retake"),
    (["--retake", "{clip}", "--retake-span", SPAN, "--window-seconds", "0.3"], "longer than one window of 9"),
    (["--retake", "{silent}", "--retake-span", SPAN, "--retake-what", "audio"], "has no audio stream to retake"),
    (["--retake", "{short}", "--retake-span", SPAN], "has 10 frames; the VAE encodes 8n+1 (cut it to 9"),
    (["--retake", "{narrow}", "--retake-span", SPAN], "is 80x64; the VAE encodes sizes that are multiples of 32"),
])
def test_bad_retake_input_is_refused_before_any_model_loads(flags, message, inputs, tiny_model, tmp_path, capsys):
    fill = {**inputs, "missing": tmp_path / "gone.mp4"}
    run_args = [flag.format(**fill) for flag in flags]
    assert_refused_before_any_load(capsys, tmp_path, message.format(**fill), tiny_model, tmp_path / "out" / "c.mp4",
                                   *run_args, clip=[])


def test_any_mp4_needs_a_prompt(inputs, tiny_model, tmp_path, capsys):
    import generate

    given = inputs["silent"]
    with pytest.raises(SystemExit) as exit_info:
        generate.main(["--model", str(tiny_model), "--retake", str(given), "--retake-span", SPAN, "--output",
                       str(tmp_path / "out" / "c.mp4")])
    assert exit_info.value.code == 2
    assert "a video without this tool's latents, so no prompt is known; give --prompt" in capsys.readouterr().err


def test_latent_frames_in_place_at_strength_zero_are_the_plain_run_to_float_rounding(source, tiny_model):
    from ltx2gen.conditioners.base import RunConditions
    from ltx2gen.diffusion import TransformerOptions, load_denoiser, run_denoiser
    from ltx2gen.retake import RetakeCondition
    from tests.test_diffusion import prompt_and_call

    cpu = torch.device("cpu")
    tracker, conditioning, call = prompt_and_call(tiny_model, cpu, torch.float32)
    clip = latents(source, "clip").video
    nothing_kept = RunConditions(retake=RetakeCondition(clip, (False,) * 3, None, ()))

    def diffuse(stage):
        denoiser = load_denoiser(stage, tiny_model, cpu, torch.float32, TransformerOptions())
        return [run_denoiser(denoiser, conditioning, call, seed=3, conditions=conditions)
                for conditions in (None, nothing_kept)]

    plain, in_place = tracker.run("diffusion", diffuse)
    # the same noise and arithmetic; the transformer takes a timestep per token then, which rounds apart from one
    # per clip (measured 2.4e-7 video, 4.8e-7 audio)
    torch.testing.assert_close(in_place.video_latents, plain.video_latents, rtol=0, atol=1e-6)
    torch.testing.assert_close(in_place.audio_latents, plain.audio_latents, rtol=0, atol=2e-6)
    assert not torch.equal(in_place.video_latents, clip)


def test_the_clip_retaken_is_never_the_output(source, tiny_model, capsys):
    import generate

    for given in ("clip.mp4", "clip.latents.safetensors"):  # the MP4 itself; the output's latents file
        with pytest.raises(SystemExit) as exit_info:
            generate.main(["--model", str(tiny_model), "--retake", str(source / given), "--retake-span", SPAN,
                           "--no-timestamp", "--output", str(source / "clip.mp4")])
        assert exit_info.value.code == 2
        assert "which this run would replace; give another --output" in capsys.readouterr().err


def test_guidance_leaves_the_kept_latent_frames_as_they_were_at_every_step(source, tiny_full_model, tmp_path,
                                                                            monkeypatch):
    # The full model's guidance (CFG, STG, modality isolation, rescale 0.7) combines every token's prediction; the
    # kept tokens' guided x0 is the clip's again, so the run itself keeps them (without that: 0.03 apart after 3
    # steps). The copy after the run is taken away here to see it.
    from ltx2gen.retake import RetakeCondition

    monkeypatch.setattr(RetakeCondition, "restore_kept", lambda self, video, audio: (video, audio))
    assert retake(tiny_full_model, source / "clip.mp4", tmp_path / "full.mp4", "--steps", "2") == 0
    clip, full = latents(source, "clip"), latents(tmp_path, "full")
    kept_audio = torch.tensor(AUDIO_SPAN).logical_not()
    torch.testing.assert_close(full.video[:, :, [0, 2]], clip.video[:, :, [0, 2]], rtol=0, atol=1e-6)
    torch.testing.assert_close(full.audio[:, :, kept_audio], clip.audio[:, :, kept_audio], rtol=0, atol=1e-6)
    assert (full.video[:, :, 1] - clip.video[:, :, 1]).abs().mean() > 0.05


def test_a_clip_from_another_latent_space_is_refused(source, tiny_model, tmp_path, capsys):
    from ltx2gen.latents import save_latents

    clip = latents(source, "clip")
    forged = save_latents(tmp_path / "other.latents.safetensors", clip.video, clip.audio,
                          {**clip.metadata, "model_version": "2.3"})
    assert_refused_before_any_load(capsys, tmp_path, "model's; retake it with an LTX-2.3 model", tiny_model,
                                   tmp_path / "out" / "c.mp4", "--retake", str(forged), "--retake-span", SPAN, clip=[])
