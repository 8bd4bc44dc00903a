from fractions import Fraction

import numpy as np
import pytest

from ltx2gen.frame_pipes import read_frames_streamed, write_with_audio_of
from ltx2gen.video import VideoFormat, VideoWriteError, probe, read_frames, write_mp4


def test_frames_stream_out_and_back_in_with_the_audio_copied_sample_for_sample(tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, (5, 32, 48, 3), np.uint8)
    tone = np.sin(np.linspace(0, 200, 9000))[None].repeat(2, 0) * 0.3
    source = write_mp4(tmp_path / "in.mp4", iter(frames), width=48, height=32, num_frames=5, fps=Fraction(24),
                       audio=tone, sample_rate=24000)
    streamed = list(read_frames_streamed(source, 48, 32))
    assert np.array_equal(np.stack(streamed), read_frames(source))
    doubled = VideoFormat(48, 32, 9, Fraction(48))
    out = write_with_audio_of(tmp_path / "out.mp4", iter(streamed + streamed[:4]), doubled, audio_from=source)
    before, after = probe(source), probe(out)
    assert (after.frames, after.fps) == (9, Fraction(48))
    assert (after.audio_samples, after.audio_channels) == (before.audio_samples, 2)
    with pytest.raises(VideoWriteError, match="expected 9 frames, the post-processing produced 5"):
        write_with_audio_of(tmp_path / "short.mp4", iter(streamed), doubled, audio_from=source)
    assert not (tmp_path / "short.mp4").exists()
