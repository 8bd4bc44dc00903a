"""Clips in windows, --extend and --prompt-at on the tiny real model: exact frame counts, a window's first latent
frames equal the tail it continues, the join drops exactly the overlap, a window that fails keeps the finished
ones and --resume completes the same clip, the same seed gives the same long clip; bad flags are refused before any
model loads."""

import json
from fractions import Fraction

import pytest
import torch
from PIL import Image

import decode_latents
import generate
from conftest import assert_refused_before_any_load, failing_on_call, parse_config, run_generate
from ltx2gen import batch, continuation, diffusion
from ltx2gen.continuation import Window, layout
from ltx2gen.errors import ConfigError
from ltx2gen.latents import load_latents
from ltx2gen.video import probe

# 41 frames (6 latent frames) in windows of at most 25 frames (4 latent frames): windows [0, 4) and [3, 6).
LONG = ["--width", "96", "--height", "64", "--num-frames", "41", "--window-seconds", "1", "--seed", "7"]
FIRST_WINDOW = ["--width", "96", "--height", "64", "--num-frames", "25", "--seed", "7"]


def new_frames(windows: tuple[Window, ...]) -> list[int]:
    frames = []
    for window in windows:
        first, end = window.new_frames()
        frames += range(first, end)
    return frames


@pytest.mark.parametrize("total,window,overlap,given,breaks", [
    (6, 4, 1, 0, ()), (21, 21, 1, 0, ()), (61, 21, 1, 0, ()), (61, 21, 3, 0, ()), (7, 4, 2, 0, ()),
    (9, 4, 1, 6, ()), (30, 21, 2, 21, ()), (61, 21, 1, 0, (13, 40)), (12, 5, 1, 0, (2, 3, 11)), (20, 8, 1, 6, (6, 9)),
])
def test_windows_add_every_frame_once_in_order_and_break_at_prompt_changes(total, window, overlap, given, breaks):
    windows = layout(total, window, overlap, given, 0, breaks)
    first_frame = 0 if given == 0 else (given - 1) * 8 + 1
    assert new_frames(windows) == list(range(first_frame, (total - 1) * 8 + 1))  # no frame repeated or missing
    assert all(w.latent_frames <= window and w.end <= total for w in windows)
    assert [w.overlap for w in windows] == [0 if w.start == 0 else overlap for w in windows]
    assert windows[-1].end == total
    starts = {w.start + w.overlap for w in windows}
    assert all(latent in starts for latent in breaks if latent > given)  # a change falls on a window's first new frame


def test_lengths_round_up_to_whole_latent_frames_and_the_automatic_window_is_bounded_by_tokens_and_time():
    assert continuation.frames_for_seconds(20, Fraction(24)) == 481
    assert continuation.frames_for_seconds(1, Fraction(24)) == 25
    assert continuation.frames_for_seconds(0.01, Fraction(24)) == 9
    assert continuation.added_frames(1, Fraction(24)) == 24
    assert continuation.added_frames(0.1, Fraction(24)) == 8
    assert continuation.window_num_frames(None, 1920, 1088, Fraction(24)) == 161  # 42,840 video tokens
    assert continuation.window_num_frames(None, 768, 512, Fraction(24)) == 481  # 20 s before the token bound
    assert continuation.window_num_frames(3, 768, 512, Fraction(24)) == 73


@pytest.fixture(scope="module")
def long_runs(tiny_model, tmp_path_factory):
    """A 41-frame clip in two windows (twice, same seed), what the second window was given and returned, and the
    first window alone as a plain run."""
    folder = tmp_path_factory.mktemp("long")
    seen = []
    stock_join = continuation.join

    def observed_join(video, audio, result, window, first_audio):
        seen.append((video, audio, result, window, first_audio))
        return stock_join(video, audio, result, window, first_audio)

    continuation.join = observed_join
    try:
        assert run_generate(tiny_model, folder / "long.mp4", "--keep-latents", clip=LONG) == 0
    finally:
        continuation.join = stock_join
    assert run_generate(tiny_model, folder / "again.mp4", "--keep-latents", clip=LONG) == 0
    assert run_generate(tiny_model, folder / "first.mp4", "--keep-latents", clip=FIRST_WINDOW) == 0
    return folder, seen


def test_a_long_clip_has_exactly_its_frames_and_audio_and_records_each_window(long_runs):
    folder, _ = long_runs
    info = probe(folder / "long.mp4")
    assert (info.frames, info.width, info.height, info.fps) == (41, 96, 64, 24)
    assert abs(info.audio_samples / info.audio_sample_rate - 41 / 24) < 0.05
    latents = load_latents(folder / "long.latents.safetensors")
    assert latents.video.shape[2] == 6
    sidecar = json.loads((folder / "long.json").read_text())
    assert [(w["start_latent_frame"], w["num_frames"], w["first_frame"], w["frames_added"], w["seed"])
            for w in sidecar["windows"]] == [(0, 25, 0, 25, 7), (3, 17, 25, 16, 8)]
    assert sidecar["planned_num_frames"] == 41 and sidecar["num_frames"] == 41


def test_the_first_window_is_the_plain_run_of_its_length_and_the_same_seed_gives_the_same_clip(long_runs):
    folder, _ = long_runs
    long, again = (load_latents(folder / f"{name}.latents.safetensors") for name in ("long", "again"))
    first = load_latents(folder / "first.latents.safetensors")
    assert torch.equal(long.video[:, :, :4], first.video)
    assert torch.equal(long.audio[:, :, :first.audio.shape[2]], first.audio)
    assert torch.equal(long.video, again.video) and torch.equal(long.audio, again.audio)


def test_a_window_starts_from_the_tail_it_continues_and_the_join_drops_exactly_the_overlap(long_runs):
    folder, seen = long_runs
    video, audio, result, window, first_audio = seen[1]
    assert (window.start, window.overlap) == (3, 1)
    # at strength 1 the window's first latent frame is the tail it was given, video and audio alike
    assert torch.allclose(result.video_latents[:, :, :1], video[:, :, 3:4], atol=1e-5)
    given = audio.shape[2] - first_audio
    assert torch.allclose(result.audio_latents[:, :, :given], audio[:, :, -given:], atol=1e-5)
    assert not torch.allclose(result.video_latents[:, :, 1:2], video[:, :, 3:4], atol=1e-2)
    joined = load_latents(folder / "long.latents.safetensors")
    assert torch.equal(joined.video, torch.cat([video, result.video_latents[:, :, 1:]], 2))
    assert torch.equal(joined.audio, torch.cat([audio, result.audio_latents[:, :, given:]], 2))


def test_a_failed_window_keeps_the_finished_ones_and_resume_completes_the_same_clip(long_runs, tiny_model, tmp_path,
                                                                                     monkeypatch, capsys):
    folder, _ = long_runs
    stock_run = diffusion.run_denoiser
    monkeypatch.setattr(diffusion, "run_denoiser", failing_on_call(stock_run, 2))  # the second window fails
    out = tmp_path / "cut.mp4"
    assert run_generate(tiny_model, out, clip=LONG) == 1
    monkeypatch.setattr(diffusion, "run_denoiser", stock_run)
    kept = tmp_path / "cut.latents.safetensors"
    err = capsys.readouterr().err
    assert f"--resume {kept}" in err and "windows 1-1 of 2 are kept (25 of 41 frames)" in err
    assert not out.exists() and load_latents(kept).video.shape[2] == 4

    assert decode_latents.main(["--input", str(kept), "--output", str(tmp_path / "part.mp4")]) == 0
    assert probe(tmp_path / "part.mp4").frames == 25  # the part that is there decodes
    assert batch.cut_short(kept)

    assert run_generate(tiny_model, out, "--keep-latents", "--resume", str(kept), clip=LONG) == 0
    assert "[window 2/2]" in capsys.readouterr().out
    resumed, whole = load_latents(kept), load_latents(folder / "long.latents.safetensors")
    assert torch.equal(resumed.video, whole.video) and torch.equal(resumed.audio, whole.audio)
    assert probe(out).frames == 41


def test_extend_continues_a_clip_from_its_mp4_keeping_it_and_adding_whole_latent_frames(long_runs, tiny_model,
                                                                                        tmp_path):
    folder, _ = long_runs
    out = tmp_path / "more.mp4"
    assert generate.main(["--model", str(tiny_model), "--extend", str(folder / "long.mp4"), "--extend-seconds", "0.5",
                          "--prompt", "w3 w2 w1", "--no-timestamp", "--output", str(out), "--keep-latents"]) == 0
    earlier, extended = (load_latents(path) for path in (folder / "long.latents.safetensors",
                                                         tmp_path / "more.latents.safetensors"))
    assert probe(out).frames == 41 + 16  # 0.5 s at 24 fps: 12 frames, rounded up to two latent frames
    assert torch.equal(extended.video[:, :, :6], earlier.video)
    assert torch.equal(extended.audio[:, :, :earlier.audio.shape[2]], earlier.audio)
    sidecar = json.loads((tmp_path / "more.json").read_text())
    assert sidecar["extended_from"] == str(folder / "long.latents.safetensors")
    assert (sidecar["width"], sidecar["height"], sidecar["prompt"]) == (96, 64, "w3 w2 w1")
    assert [w["index"] for w in sidecar["windows"]] == [0, 1, 2]


def test_a_prompt_change_starts_a_window_and_leaves_the_frames_before_it_alone(tiny_model, tmp_path):
    # frame 20 is nearest latent frame 3's first frame (17): the windows break there
    for name, prompt in (("change", "w3 w3 w3"), ("same", "w1 w2 w3")):
        assert run_generate(tiny_model, tmp_path / f"{name}.mp4", "--keep-latents", "--prompt-at", f"f20:{prompt}",
                            clip=LONG) == 0
    assert run_generate(tiny_model, tmp_path / "plain.mp4", "--keep-latents") == 0  # 17 frames, seed 7
    sidecar = json.loads((tmp_path / "change.json").read_text())
    assert sidecar["prompt_breaks"] == [3]
    assert [(w["start_latent_frame"], w["frames_added"], w["prompt"]) for w in sidecar["windows"]] == [
        (0, 17, "w1 w2 w3"), (2, 24, "w3 w3 w3")]
    changed, same, plain = (load_latents(tmp_path / f"{name}.latents.safetensors")
                            for name in ("change", "same", "plain"))
    assert torch.equal(changed.video[:, :, :3], plain.video) and torch.equal(changed.video[:, :, :3],
                                                                             same.video[:, :, :3])
    assert not torch.equal(changed.video[:, :, 3:], same.video[:, :, 3:])  # the tiny random encoder: near prompts
    assert probe(tmp_path / "change.mp4").frames == 41


def test_batch_lines_take_timed_prompts_and_an_extend_file_beside_them(tmp_path):
    (tmp_path / "earlier.mp4").write_bytes(b"")
    path = tmp_path / "b.jsonl"
    lines = [{"name": "a", "prompts": [{"at": 0, "prompt": "dawn"}, {"at": 8, "prompt": "noon"}], "seconds": 12},
             {"name": "b", "prompt": "dusk", "prompts": [{"at": "f96", "prompt": "night"}],
              "extend": "earlier.mp4", "extend_seconds": 4}]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    a, b = (set(clip.argv(tmp_path / "c.mp4")) for clip in batch.read_batch(path))
    assert {"--prompt=dawn", "--seconds=12.0", "--prompt-at=8:noon"} <= a
    assert {"--prompt=dusk", "--prompt-at=f96:night", f"--extend={tmp_path / 'earlier.mp4'}",
            "--extend-seconds=4.0"} <= b
    for prompts, message in (([{"at": 2, "prompt": "x"}], "the first of 'prompts' is at 2"),
                             ([{"at": 0}], "must be a list"), ("dawn", "must be a list"),
                             ([{"at": 0, "prompt": "x", "strength": 1}], "must be a list")):
        path.write_text(json.dumps({"name": "c", "prompts": prompts}) + "\n")
        with pytest.raises(ConfigError, match=message):
            batch.read_batch(path)
    path.write_text(json.dumps({"name": "c", "prompt": "x", "resume": "c.latents.safetensors"}) + "\n")
    with pytest.raises(ConfigError, match="sets resume"):
        batch.read_batch(path)


@pytest.mark.parametrize("flags,message", [
    (["--extend-seconds", "2"], "--extend-seconds 2.0: give --extend FILE"),
    (["--window-overlap", "0"], "--window-overlap 0: must be at least 1"),
    (["--window-overlap", "4"], "below the window's 4 latent frames"),
    (["--window-seconds", "0"], "--window-seconds 0.0: must be above 0"),
    (["--seconds", "2"], "--seconds 2.0 contradicts --num-frames 41"),
    (["--prompt-at", "soon:x"], "--prompt-at soon:x: give TIME:TEXT"),
    (["--prompt-at", "2:"], "--prompt-at 2:: give TIME:TEXT"),
    (["--prompt-at", "f40:x"], "--prompt-at f40:x: frame 40 is at or past the clip's last latent frame"),
    (["--prompt-at", "f17:x", "--prompt-at", "f20:y"], "same latent frame (3, frames 17-24)"),
    (["--prompt-at", "f30:x", "--prompt-at", "f10:y"], "in the order of their times"),
    (["--resume", "{long}/long.latents.safetensors"], "a finished clip, not a long clip cut short"),
    (["--pipeline", "two-stage", "--width", "128", "--height", "128"], "--pipeline two-stage renders one window"),
])
def test_bad_window_flags_exit_2_with_one_line_before_any_model_loads(long_runs, tiny_model, tmp_path, capsys,
                                                                     flags, message):
    write_wav(tmp_path / "a.wav")
    fill = dict(folder=tmp_path, long=long_runs[0])
    assert_refused_before_any_load(capsys, tmp_path, message.format(**fill), tiny_model, tmp_path / "out" / "c.mp4",
                                   *(flag.format(**fill) for flag in flags), clip=LONG)


@pytest.mark.parametrize("flags,message", [
    (["--extend", "{folder}/none.latents.safetensors", "--extend-seconds", "1"], "none.latents.safetensors: no such"),
    (["--extend", "{long}/long.mp4"], "give --extend-seconds N"),
    (["--extend", "{long}/long.mp4", "--extend-seconds", "1", "--num-frames", "49"], "drop --num-frames"),
    (["--extend", "{long}/long.mp4", "--extend-seconds", "1", "--width", "128"], "the clip to extend is 96"),
    (["--extend", "{long}/long.mp4", "--extend-seconds", "-1"], "--extend-seconds -1.0: must be above 0"),
    (["--extend", "{long}/long.mp4", "--extend-seconds", "1", "--image", "{folder}/a.png"], "pin an image later"),
    (["--extend", "{long}/long.mp4", "--extend-seconds", "1", "--prompt-at", "f24:x"], "frame 65 is at or past"),
    (["--extend", "{folder}/a.wav", "--extend-seconds", "1"], "a.wav: not a readable latents file"),
    (["--extend", "{long}/long.mp4", "--extend-seconds", "1", "--audio", "{folder}/a.wav"],
     "the new segment continues the earlier clip's audio"),
])
def test_bad_extend_flags_exit_2_with_one_line_before_any_model_loads(long_runs, tiny_model, tmp_path, capsys, flags,
                                                                      message):
    write_wav(tmp_path / "a.wav")
    Image.new("RGB", (96, 64)).save(tmp_path / "a.png")
    fill = dict(folder=tmp_path, long=long_runs[0])
    assert_refused_before_any_load(capsys, tmp_path, message.format(**fill), tiny_model, tmp_path / "out" / "c.mp4",
                                   *(flag.format(**fill) for flag in flags), clip=[])


def write_wav(path, seconds: float = 1):
    """A 440 Hz tone."""
    import wave

    import numpy as np

    samples = (np.sin(2 * np.pi * 440 * np.arange(int(16000 * seconds)) / 16000) * 8000).astype("<i2")
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(16000)
        handle.writeframes(samples.tobytes())


def test_extending_an_mp4_whose_latents_were_not_kept_says_how_to_keep_them(long_runs, tiny_model, tmp_path, capsys):
    folder, _ = long_runs
    out = tmp_path / "plain.mp4"
    assert run_generate(tiny_model, out) == 0
    assert_refused_before_any_load(capsys, tmp_path, "its latents were not kept (render with --keep-latents",
                                   tiny_model, tmp_path / "out" / "c.mp4", "--extend", str(out), "--extend-seconds",
                                   "1", clip=[])


def test_each_window_gets_the_tail_it_continues_and_the_keyframes_among_its_new_frames():
    from ltx2gen.conditioners import Span, conditions_for
    from ltx2gen.conditioners.images import ImageConditioner
    from ltx2gen.image import EncodedKeyframe, ImageConditioning

    video = torch.arange(10.0).view(1, 1, 10, 1, 1).expand(1, 2, 10, 2, 3)
    audio = torch.arange(30.0).view(1, 1, 30, 1).expand(1, 8, 30, 4)
    encoded = {"image": ImageConditioning([EncodedKeyframe(torch.full((1, 2, 1, 2, 3), -1.0), latent, 1.0)
                                           for latent in (0, 6, 12)])}
    images = (ImageConditioner((), 96, 64, 24, 1.0, 33),)
    first, second = Window(0, 0, 7, 0), Window(1, 6, 7, 2)

    def conditions(window, first_audio):
        span = Span(window.start, window.overlap, window.end, first_audio, 20)
        return conditions_for(images, encoded, span, continuation.so_far(window, video, audio, first_audio))

    opening = conditions(first, 0)
    assert [(k.latent_frame, k.latents.shape[2]) for k in opening.keyframes] == [(0, 1), (6, 1)]
    assert opening.audio is None  # nothing before the first window: all of its audio is generated
    later_window = conditions(second, 18)
    tail, later = later_window.keyframes
    assert (tail.latent_frame, tail.strength) == (0, 1.0) and torch.equal(tail.latents, video[:, :, 6:8])
    assert later.latent_frame == 6 and torch.equal(later.latents, encoded["image"].keyframes[2].latents)
    assert later_window.audio.prefix and torch.equal(later_window.audio.latents, audio[:, :, 18:])


def test_a_clip_from_another_latent_space_is_refused_and_ltx_2_5_continues_ltx_2_3(long_runs, tmp_path):
    from ltx2gen.latents import read_header, save_latents

    earlier = load_latents(long_runs[0] / "long.latents.safetensors")
    forged = save_latents(tmp_path / "other.latents.safetensors", earlier.video, earlier.audio,
                          {**earlier.metadata, "model_version": "2.3"})
    with pytest.raises(ConfigError, match="was rendered by LTX-2.3 .* continue it with an LTX-2.3 model"):
        continuation.check_model(read_header(forged), "2.0", "--extend x")
    continuation.check_model(read_header(forged), "2.5", "--extend x")  # LTX-2.5 ships LTX-2.3's VAEs


def test_a_batch_resumes_a_long_clip_cut_short_instead_of_decoding_it(long_runs, tiny_model, tmp_path):
    from ltx2gen.latents import save_latents

    whole = load_latents(long_runs[0] / "long.latents.safetensors")
    line = {"prompt": "w1 w2 w3", "model": str(tiny_model), "width": 96, "height": 64, "num_frames": "41",
            "window_seconds": 1.0, "seed": 7}
    clip = batch.Clip("c", 1, line)
    save_latents(tmp_path / "c.latents.safetensors", whole.video[:, :, :4], whole.audio,
                 {**whole.metadata, "num_frames": 25, "windows": whole.metadata["windows"][:1]})
    run = batch.plan_clip(tmp_path, clip)
    assert not run.decodes and run.note == ""  # not decoded as if it were the whole clip: resumed
    assert run.latents == run.config.resume == tmp_path / "c.latents.safetensors"
    assert "its finished windows are kept" in batch.unfinished(tmp_path, clip)
    save_latents(tmp_path / "c.latents.safetensors", whole.video, whole.audio, whole.metadata)
    run = batch.plan_clip(tmp_path, clip)
    assert run.decodes and run.latents == tmp_path / "c.latents.safetensors"  # a whole clip: decoded
    assert run.config.resume is None


def test_extend_finds_the_latents_beside_an_mp4_moved_with_them(long_runs, tiny_model, tmp_path):
    import shutil

    moved = tmp_path / "moved"
    moved.mkdir()
    for name in ("long.mp4", "long.json", "long.latents.safetensors"):
        shutil.copy(long_runs[0] / name, moved / name)
    sidecar = json.loads((moved / "long.json").read_text())
    (moved / "long.json").write_text(json.dumps({**sidecar, "latents": "outputs/long.latents.safetensors"}))
    assert continuation.earlier_clip(moved / "long.mp4", "--extend").path == moved / "long.latents.safetensors"


def test_a_long_clip_follows_a_soundtrack_window_by_window_as_one_window_does(tiny_model, tmp_path):
    write_wav(tmp_path / "song.wav", seconds=2)
    one_window = ["--width", "96", "--height", "64", "--num-frames", "41", "--seed", "7"]
    assert run_generate(tiny_model, tmp_path / "long.mp4", "--keep-latents", "--audio", str(tmp_path / "song.wav"),
                        clip=LONG) == 0
    assert run_generate(tiny_model, tmp_path / "one.mp4", "--keep-latents", "--audio", str(tmp_path / "song.wav"),
                        clip=one_window) == 0
    long, one = (load_latents(tmp_path / f"{name}.latents.safetensors") for name in ("long", "one"))
    assert len(json.loads((tmp_path / "long.json").read_text())["windows"]) == 2
    # at strength 1 each window's audio is the soundtrack's over its time, so the joined audio is the soundtrack's
    assert long.audio.shape == one.audio.shape
    assert torch.allclose(long.audio, one.audio, atol=1e-4)
    assert not torch.equal(long.video[:, :, 4:], one.video[:, :, 4:])  # the windows are other runs than the whole
    info = probe(tmp_path / "long.mp4")
    assert info.frames == 41 and abs(info.audio_samples / info.audio_sample_rate - 41 / 24) < 0.05


def forged_latents(long_runs, tmp_path, **metadata):
    """The long clip's latents file with some of its metadata changed."""
    from ltx2gen.latents import save_latents

    earlier = load_latents(long_runs[0] / "long.latents.safetensors")
    return save_latents(tmp_path / "forged.latents.safetensors", earlier.video, earlier.audio,
                        {**earlier.metadata, **metadata})


@pytest.mark.parametrize("flags, clip_is", [(["--width", "768"], "96"), (["--height", "512"], "64"),
                                            (["--fps", "24"], "25")])
def test_extend_refuses_a_given_size_or_rate_that_contradicts_the_clip_even_at_its_default(long_runs, tmp_path,
                                                                                          flags, clip_is):
    forged = forged_latents(long_runs, tmp_path, fps="25")  # 768x512 at 24 fps are the defaults
    with pytest.raises(ConfigError, match=f"^{flags[0]} {flags[1]}: the clip to extend is {clip_is}; a continuation"):
        parse_config("--extend", str(forged), "--extend-seconds", "1", *flags)
    config = parse_config("--extend", str(forged), "--extend-seconds", "1")  # not given: the clip's
    assert (config.width, config.height, config.fps) == (96, 64, 25)


def test_decode_latents_refuses_latents_of_another_latent_space_before_any_load(long_runs, tiny_model, tmp_path,
                                                                               capsys):
    from ltx2gen import memory

    forged = forged_latents(long_runs, tmp_path, model_version="2.3")
    loads = []
    memory.add_listener(listener := lambda event, name, obj: loads.append(name))
    try:
        with pytest.raises(SystemExit) as exit_info:
            decode_latents.main(["--input", str(forged), "--output", str(tmp_path / "c.mp4"), "--model",
                                 str(tiny_model)])
    finally:
        memory.remove_listener(listener)
    assert exit_info.value.code == 2 and not loads and not (tmp_path / "c.mp4").exists()
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"decode_latents.py: error: --input {forged}: was rendered by LTX-2.3") and \
        "decode it with an LTX-2.3 model" in error and len(error.splitlines()) == 1


def test_a_prompt_change_at_the_first_frame_is_the_opening_prompt_or_refused_beside_one(capsys):
    from ltx2gen.config import GenerateConfig

    timeline = GenerateConfig.from_values({"prompt_at": ["0:a fox sleeps", "f16:the fox wakes"], "num_frames": "41",
                                           "window_seconds": 1.0})
    assert timeline.prompt == "a fox sleeps" and [change.text for change in timeline.prompt_at] == [
        "f16:the fox wakes"]
    assert "note: --prompt-at 0:a fox sleeps is the opening prompt (there is no --prompt)" in capsys.readouterr().out
    assert [window.latent_frames for window in timeline.windows][0] > 1  # no one-frame window at frame 0
    with pytest.raises(ConfigError, match="^--prompt-at 0:a cat: the clip starts with --prompt"):
        parse_config("--prompt-at", "0:a cat", "--num-frames", "41")
    with pytest.raises(ConfigError, match="^--prompt-at f3:a cat: frame 3 falls in the clip's first latent frame"):
        parse_config("--prompt-at", "f3:a cat", "--num-frames", "41").windows  # placed when planning
