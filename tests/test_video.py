from fractions import Fraction

import numpy as np
import pytest

from ltx2gen.video import VideoWriteError, fit_audio, probe, read_frames, write_mp4


def stereo_tone(seconds: float, rate: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 660 * t)]).astype(np.float32) * 0.5


def test_writer_keeps_exact_frame_count_size_rate_and_audio_layout(tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, (17, 64, 96, 3), dtype=np.uint8)
    fps = Fraction(24000, 1001)
    out = write_mp4(tmp_path / "c.mp4", iter(frames), width=96, height=64, num_frames=17, fps=fps,
                    audio=stereo_tone(0.5, 24000), sample_rate=24000)
    info = probe(out)
    assert (info.frames, info.width, info.height, info.fps) == (17, 96, 64, fps)
    assert (info.audio_channels, info.audio_sample_rate) == (2, 24000)
    expected_samples = round(17 / fps * 24000)
    assert abs(info.audio_samples - expected_samples) <= 1024  # one AAC frame of encoder padding at most


def test_frames_survive_encoding_closely(tmp_path):
    gradient = np.linspace(0, 255, 96, dtype=np.float32)[None, :, None].repeat(64, 0).repeat(3, 2)
    frames = np.stack([np.roll(gradient, k, axis=1) for k in range(9)]).astype(np.uint8)
    out = write_mp4(tmp_path / "g.mp4", iter(frames), width=96, height=64, num_frames=9, fps=Fraction(24))
    decoded = read_frames(out)
    assert decoded.shape == frames.shape
    assert np.abs(decoded.astype(int) - frames).mean() < 3


def test_wrong_frame_count_raises_and_leaves_no_file(tmp_path):
    frames = np.zeros((5, 64, 96, 3), np.uint8)
    with pytest.raises(VideoWriteError, match="expected 9 frames"):
        write_mp4(tmp_path / "short.mp4", iter(frames), width=96, height=64, num_frames=9, fps=Fraction(24))
    assert list(tmp_path.iterdir()) == []


def test_failure_mid_stream_leaves_no_partial_file(tmp_path):
    def frames():
        yield np.zeros((64, 96, 3), np.uint8)
        raise RuntimeError("decoder crashed")

    with pytest.raises(RuntimeError, match="decoder crashed"):
        write_mp4(tmp_path / "crash.mp4", frames(), width=96, height=64, num_frames=9, fps=Fraction(24))
    assert list(tmp_path.iterdir()) == []


def test_wrong_frame_shape_is_rejected(tmp_path):
    with pytest.raises(VideoWriteError, match="expected \\(64, 96, 3\\) uint8"):
        write_mp4(tmp_path / "x.mp4", iter([np.zeros((64, 90, 3), np.uint8)]), width=96, height=64, num_frames=1,
                  fps=Fraction(24))


def test_fit_audio_trims_and_pads_to_the_video_duration():
    audio = np.ones((2, 1000), np.float32)
    assert fit_audio(audio, 1000, 12, Fraction(24)).shape == (2, 500)
    padded = fit_audio(audio, 1000, 48, Fraction(24))
    assert padded.shape == (2, 2000) and padded[:, 1000:].sum() == 0
