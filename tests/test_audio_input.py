"""--audio on the tiny real model: the video follows the given audio, the MP4 carries it, recovery muxes it again."""

import json
import subprocess
import wave
import weakref
from fractions import Fraction

import numpy as np
import pytest
import torch
from PIL import Image

import decode_latents
import generate
from conftest import run_generate, run_generate_process
from ltx2gen import memory
from ltx2gen.audio_input import N_FFT, AudioInput, log_mel_spectrogram, mel_filterbank
from ltx2gen.latents import load_latents, save_latents
from ltx2gen.video import ffmpeg_exe, probe, read_frames

TONE_HZ = 440


def write_tone(path, seconds, rate=22050, hz=TONE_HZ):
    """A mono 16-bit wav, at a rate that is neither the encoder's nor the vocoder's, so both resample."""
    samples = (0.5 * 32767 * np.sin(2 * np.pi * hz * np.arange(round(seconds * rate)) / rate)).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return path


def audio_track(path):
    raw = subprocess.run([ffmpeg_exe(), "-i", str(path), "-map", "0:a:0", "-f", "f32le", "-"], capture_output=True,
                         check=True).stdout
    return np.frombuffer(raw, "<f4").reshape(-1, 2)


def dominant_hz(samples, rate):
    return np.argmax(np.abs(np.fft.rfft(samples))) * rate / len(samples)


HALF = 0.5


@pytest.fixture(scope="module")
def runs(tiny_model, tmp_path_factory):
    """One clip (seed 7) following a 1.3 s tone at strength 0.5, rendered by generate.py, which also records the
    models alive when the transformer loads and every transformer call's audio input, timesteps and raw output; then a
    batch file of the same clip plain and at strengths 0, 0.5 and 1."""
    folder = tmp_path_factory.mktemp("audio")
    tone = write_tone(folder / "tone.wav", 1.3)
    refs, alive, calls = {}, [], []

    def observe(event, name, obj):
        if event == "loaded":
            refs[name] = weakref.ref(obj)
        if event == "loaded" and name == "transformer":  # registered before, so it runs before, the audio blend
            obj.register_forward_hook(lambda module, args, kwargs, output: calls.append(
                dict(kwargs, audio_velocity=output[1])), with_kwargs=True)
        if event == "load" and name == "transformer":
            alive.extend(sorted(name for name, ref in refs.items() if ref() is not None))

    separate = folder / "separate.mp4"
    memory.add_listener(observe)
    try:
        assert run_generate(tiny_model, separate, "--keep-latents", "--audio", str(tone), "--audio-strength",
                            str(HALF)) == 0
    finally:
        memory.remove_listener(observe)
    common = {"prompt": "w1 w2 w3", "model": str(tiny_model), "width": 96, "height": 64, "num_frames": 17, "seed": 7,
              "keep_latents": True}
    strengths = {"s0": 0.0, "half": HALF, "s1": 1.0}
    image = folder / "first_frame.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)).save(image)
    lines = [dict(common, name="plain")] + [dict(common, name=name, audio=str(tone), audio_strength=strength)
                                            for name, strength in strengths.items()]
    lines.append(dict(common, name="s1_image", audio=str(tone), image=str(image)))
    batch_file = folder / "voices.jsonl"
    batch_file.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert generate.main(["--batch", str(batch_file), "--out", str(folder / "batch"), "--embedding-cache",
                          str(folder / "cache")]) == 0
    outputs = {name: folder / "batch" / f"{name}.mp4" for name in ("plain", *strengths, "s1_image")}
    return dict(outputs, separate=separate), tone, (sorted(refs), alive, calls)


def latents(mp4):
    return load_latents(mp4.with_suffix(".latents.safetensors"))


def vocoder_rate(model):
    return json.loads((model / "vocoder" / "config.json").read_text())["output_sampling_rate"]


def encoded(model, tone):
    from ltx2gen.audio_input import encode

    tracker = memory.MemoryTracker(torch.device("cpu"))
    [given] = tracker.run("audio input", encode, model, [AudioInput.inspect(tone, 1.0, 17, Fraction(24))],
                          device=torch.device("cpu"), dtype=torch.float32)
    return given.latents


def normalized_tokens(model, audio_latents):
    """Audio latents [1, C, L, M] as the pipeline's tokens: packed and normalized, with the stock methods."""
    from diffusers import AutoencoderKLLTX2Audio, LTX2Pipeline

    from ltx2gen.stand_ins import LatentStatistics

    stats = LatentStatistics.load(AutoencoderKLLTX2Audio, model / "audio_vae", torch.device("cpu"))
    return LTX2Pipeline._normalize_audio_latents(LTX2Pipeline._pack_audio_latents(audio_latents),
                                                 stats.latents_mean, stats.latents_std)


def test_mp4_carries_the_input_audio_resampled_to_the_vocoder_rate_and_trimmed_to_the_clip(runs, tiny_model):
    outputs, _, _ = runs
    rate = vocoder_rate(tiny_model)
    info = probe(outputs["separate"])
    assert (info.frames, info.audio_channels, info.audio_sample_rate) == (17, 2, rate)
    assert abs(info.audio_samples - round(17 / 24 * rate)) < 1024  # AAC frames of 1024 samples
    track = audio_track(outputs["separate"])
    assert abs(dominant_hz(track[:, 0], rate) - TONE_HZ) < 5  # the tone itself, not the generated audio
    assert abs(dominant_hz(audio_track(outputs["plain"])[:, 0], rate) - TONE_HZ) > 5


def test_strength_one_keeps_the_audio_latents_as_given_and_changes_the_video(runs, tiny_model):
    outputs, tone, _ = runs
    followed, plain = latents(outputs["s1"]), latents(outputs["plain"])
    torch.testing.assert_close(followed.audio, encoded(tiny_model, tone), rtol=0, atol=1e-5)
    assert (followed.audio - plain.audio).abs().max() > 0.1
    assert (followed.video - plain.video).abs().max() > 0.01
    assert not np.array_equal(read_frames(outputs["s1"]), read_frames(outputs["plain"]))


def test_audio_conditioning_holds_with_image_to_video(runs, tiny_model):
    """Image-to-video hands the transformer per-token video timesteps; the audio keeps its own."""
    outputs, tone, _ = runs
    torch.testing.assert_close(latents(outputs["s1_image"]).audio, encoded(tiny_model, tone), rtol=0, atol=1e-5)


def test_strength_zero_is_the_plain_run_bit_for_bit(runs):
    outputs, _, _ = runs
    ignored, plain = latents(outputs["s0"]), latents(outputs["plain"])
    assert torch.equal(ignored.video, plain.video) and torch.equal(ignored.audio, plain.audio)
    assert np.array_equal(read_frames(outputs["s0"]), read_frames(outputs["plain"]))


def test_audio_tokens_are_seen_at_their_own_noise_level_and_blended_with_the_given_audio_in_x0(runs, tiny_model):
    outputs, tone, (_, _, calls) = runs
    assert len(calls) == 8
    for call in calls:
        assert call["timestep"].min() > 0 and torch.equal(call["audio_timestep"], call["timestep"] * (1 - HALF))
    # The last step lands on x0: (1 - s) * the model's x0 at the tokens' noise level (1 - s) * sigma, + s * given.
    last = calls[-1]
    token_sigma = (1 - HALF) * last["timestep"].view(-1, 1, 1) / 1000
    model_x0 = last["audio_hidden_states"] - token_sigma * last["audio_velocity"]
    expected = (1 - HALF) * model_x0 + HALF * normalized_tokens(tiny_model, encoded(tiny_model, tone))
    result = normalized_tokens(tiny_model, latents(outputs["separate"]).audio)
    torch.testing.assert_close(result, expected, rtol=0, atol=1e-5)
    assert (result - normalized_tokens(tiny_model, latents(outputs["plain"]).audio)).abs().max() > 0.1


def test_audio_is_encoded_in_its_own_stage_freed_before_the_transformer_loads(runs):
    outputs, _, (loaded, alive_when_the_transformer_loads, _) = runs
    assert "audio_vae" in loaded and alive_when_the_transformer_loads == []
    stages = json.loads(outputs["separate"].with_suffix(".json").read_text())["stage_seconds"]
    assert list(stages) == ["text", "audio input", "diffusion", "video"]  # no audio decode: the input is muxed


def test_sidecar_and_latents_record_the_audio_path_hash_and_strength(runs):
    import hashlib

    outputs, tone, _ = runs
    expected = {"path": str(tone.resolve()), "sha256": hashlib.sha256(tone.read_bytes()).hexdigest(),
                "seconds": 1.3, "strength": HALF}
    assert json.loads(outputs["separate"].with_suffix(".json").read_text())["audio_input"] == expected
    assert latents(outputs["separate"]).metadata["audio_input"] == expected
    assert json.loads(outputs["s0"].with_suffix(".json").read_text())["audio_input"]["strength"] == 0.0
    assert json.loads(outputs["plain"].with_suffix(".json").read_text())["audio_input"] is None


def test_recovery_muxes_the_input_audio_again_or_says_it_decodes_the_latents(runs, tmp_path, capsys):
    outputs, _, _ = runs
    recovered = tmp_path / "recovered.mp4"
    source = outputs["separate"].with_suffix(".latents.safetensors")
    assert decode_latents.main(["--input", str(source), "--output", str(recovered)]) == 0
    assert "muxing the input audio" in capsys.readouterr().out
    assert np.array_equal(read_frames(recovered), read_frames(outputs["separate"]))
    assert np.array_equal(audio_track(recovered), audio_track(outputs["separate"]))

    stored = load_latents(source)
    moved = save_latents(tmp_path / "moved.latents.safetensors", stored.video, stored.audio,
                         dict(stored.metadata, audio_input=dict(stored.metadata["audio_input"],
                                                                path=str(tmp_path / "gone.wav"))))
    assert decode_latents.main(["--input", str(moved), "--output", str(tmp_path / "decoded.mp4")]) == 0
    assert "is missing or has changed since generation" in capsys.readouterr().out
    assert probe(tmp_path / "decoded.mp4").audio_channels == 2


def test_batch_lines_accept_audio_and_render_like_a_separate_run(runs):
    outputs, tone, _ = runs
    assert np.array_equal(read_frames(outputs["half"]), read_frames(outputs["separate"]))
    assert np.array_equal(audio_track(outputs["half"]), audio_track(outputs["separate"]))
    assert json.loads(outputs["half"].with_suffix(".json").read_text())["audio_input"]["path"] == str(tone.resolve())


def test_short_audio_is_padded_with_silence_and_said_once(tmp_path, capsys):
    short = AudioInput.inspect(write_tone(tmp_path / "short.wav", 0.3), 1.0, 17, Fraction(24))
    waveform = short.waveform(8000, announce=True)
    assert waveform.shape == (2, round(17 / 24 * 8000))
    assert np.abs(waveform[:, round(0.3 * 8000) + 10:]).max() == 0
    assert capsys.readouterr().out == "audio: short.wav is 0.300 s; padded with 0.408 s of silence to the clip's " \
                                      "0.708 s\n"
    short.waveform(8000)
    assert capsys.readouterr().out == ""


def test_log_mel_puts_a_tone_in_the_band_around_its_frequency():
    rate, bins = 16000, 64
    filters = mel_filterbank(rate, bins)
    frequencies = np.linspace(0, rate / 2, filters.shape[0])
    for hz in (300.0, 1000.0, 3000.0):
        tone = torch.sin(2 * np.pi * hz * torch.arange(rate) / rate).repeat(2, 1)
        mel = log_mel_spectrogram(tone, rate, 160, bins)
        assert mel.shape == (1, 2, rate // 160 + 1, bins)
        loudest = int(mel[0, 0, 50].argmax())
        assert filters[round(hz * N_FFT / rate), loudest] > 0  # the tone lies inside the loudest band
        assert abs(frequencies[int(filters[:, loudest].argmax())] - hz) < 0.1 * hz


def test_files_without_audio_exit_2_before_any_model_loads(tmp_path):
    from ltx2gen.video import write_mp4

    silent = write_mp4(tmp_path / "silent.mp4", iter(np.zeros((1, 32, 32, 3), np.uint8)), width=32, height=32,
                       num_frames=1, fps=Fraction(24))
    empty = write_tone(tmp_path / "empty.wav", 0)
    for path, message in ((silent, "has no audio stream"), (empty, "holds no audio samples"),
                          (tmp_path, "not a file")):
        result = run_generate_process("--prompt", "a fox", "--audio", str(path), "--output",
                                      str(tmp_path / "out" / "c.mp4"), cwd=tmp_path)
        assert result.returncode == 2 and f"--audio {path}: {message}" in result.stderr.splitlines()[-1]
        assert "TORCH_NOT_IMPORTED" in result.stdout and not (tmp_path / "out").exists()


def test_a_long_audio_file_is_decoded_only_as_far_as_the_clip_needs(tmp_path, capsys, monkeypatch):
    """A ten-minute file for a 0.7 s clip: checking it, measuring it and fitting it to the clip each decode about the
    clip's length and a second more, never the whole file; said in one line."""
    import ltx2gen.audio_input as audio_input

    decoded = []
    run, popen = subprocess.run, subprocess.Popen

    def counted_run(*args, **kwargs):
        result = run(*args, **kwargs)
        decoded.append(len(result.stdout))
        return result

    class CountedPopen(popen):
        def __exit__(self, *exc):
            decoded.append(int(self.args[self.args.index("-t") + 1].split(".")[0]) if "-t" in self.args else None)
            return super().__exit__(*exc)

    monkeypatch.setattr(audio_input.subprocess, "run", counted_run)
    monkeypatch.setattr(audio_input.subprocess, "Popen", CountedPopen)
    long_file = write_tone(tmp_path / "long.wav", 600, rate=8000)
    audio_input.validate_audio_options(long_file, 1.0)
    item = AudioInput.inspect(long_file, 1.0, 17, Fraction(24))
    waveform = item.waveform(8000, announce=True)
    assert waveform.shape == (2, round(17 / 24 * 8000)) and abs(item.seconds - (17 / 24 + 1)) < 0.01
    assert decoded[:2] == [1, 1]  # the check, the measure: each stopped after a second or the clip and a second
    assert decoded[2] <= round((17 / 24 + 1) * 8000) * 2 * 4  # the waveform: float32 stereo of 1.71 s, not 600 s
    assert capsys.readouterr().out == "audio: long.wav is over 1.708 s; trimmed to the clip's 0.708 s\n"
