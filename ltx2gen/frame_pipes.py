"""Frames streamed out of an MP4 and into another through ffmpeg, one frame in flight per pipe, the audio stream
copied across untouched: the post-processing's memory does not grow with the clip's length."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from ltx2gen.files import atomic_path
from ltx2gen.video import CRF, VideoFormat, VideoWriteError, ffmpeg_exe, pipe_frames


def read_frames_streamed(path: Path, width: int, height: int) -> Iterator[np.ndarray]:
    """Each frame of `path`'s video as uint8 [height, width, 3], decoded as it is asked for."""
    command = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i", str(path), "-map", "0:v:0",
               "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]
    frame_bytes = width * height * 3
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors)
        try:
            while chunk := process.stdout.read(frame_bytes):
                if len(chunk) != frame_bytes:
                    raise VideoWriteError(f"{path}: a frame of {len(chunk)} bytes, expected {width}x{height} RGB")
                yield np.frombuffer(chunk, np.uint8).reshape(height, width, 3)
            if process.wait() != 0:
                errors.seek(0)
                raise VideoWriteError(f"ffmpeg could not read {path}: {errors.read().decode(errors='replace')}")
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            process.stdout.close()


def write_with_audio_of(path: Path, frames: Iterable[np.ndarray], video_format: VideoFormat, audio_from: Path) -> Path:
    """Encode `frames` as `write_mp4` does (H.264 at the same quality), with the audio stream of `audio_from`
    copied as it is (no re-encode, every sample kept). Exactly `video_format.num_frames` frames or it raises; the
    final path never holds a partial file."""
    fps = video_format.fps
    with atomic_path(path) as temporary:
        command = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
                   "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{video_format.width}x{video_format.height}",
                   "-framerate", f"{fps.numerator}/{fps.denominator}", "-i", "pipe:0", "-i", str(audio_from),
                   "-map", "0:v:0", "-map", "1:a:0?", "-c:a", "copy",
                   "-c:v", "libx264", "-preset", "medium", "-crf", str(CRF), "-pix_fmt", "yuv420p",
                   "-movflags", "+faststart", "-f", "mp4", str(temporary)]
        written = pipe_frames(command, frames, video_format.width, video_format.height)
        if written != video_format.num_frames:
            raise VideoWriteError(f"expected {video_format.num_frames} frames, the post-processing produced {written}")
    return Path(path)
