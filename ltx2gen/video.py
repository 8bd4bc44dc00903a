"""MP4 writing through ffmpeg (imageio-ffmpeg's bundled binary): frames are streamed in as they are decoded,
so the whole video is never held in memory. H.264 yuv420p video, AAC audio, exact fractional frame rates."""

from __future__ import annotations

import functools
import re
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterable

import numpy as np

from ltx2gen.errors import ConfigError
from ltx2gen.files import atomic_path

CRF = 18  # H.264 quality: visually lossless for generated video, a fraction of the size of lossless

class VideoWriteError(RuntimeError):
    pass


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def check_encoder(flag: str = "the MP4 writer") -> None:
    """The ffmpeg the writer will run starts and has the H.264 encoder, checked before any weight is read (an
    unusable ffmpeg would otherwise be found after diffusion), once per ffmpeg in a process (a batch plans each
    clip). Raises ConfigError."""
    try:
        exe = ffmpeg_exe()
    except RuntimeError as err:
        raise ConfigError(f"{flag}: ffmpeg cannot run ({err}); install it, or point IMAGEIO_FFMPEG_EXE at a "
                          "working ffmpeg") from None
    _check_h264(exe, flag)


@functools.lru_cache(maxsize=None)
def _check_h264(exe: str, flag: str) -> None:
    try:
        result = subprocess.run([exe, "-hide_banner", "-h", "encoder=libx264"], capture_output=True, text=True,
                                errors="replace", timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise ConfigError(f"{flag}: ffmpeg cannot run ({err}); install it, or point IMAGEIO_FFMPEG_EXE at a "
                          "working ffmpeg") from None
    if result.returncode != 0 or "libx264" not in result.stdout:
        said = (result.stderr or result.stdout).strip().splitlines()
        raise ConfigError(f"{flag}: {exe} cannot encode H.264 (exit status {result.returncode}"
                          f"{': ' + said[-1] if said else ''}); point IMAGEIO_FFMPEG_EXE at an ffmpeg with libx264")


def fit_audio(waveform: np.ndarray, sample_rate: int, num_frames: int, fps: Fraction) -> np.ndarray:
    """Trim or zero-pad [channels, samples] to exactly the video's duration, so the streams end together."""
    target = round(Fraction(num_frames) / fps * sample_rate)
    if waveform.shape[1] >= target:
        return waveform[:, :target]
    return np.pad(waveform, ((0, 0), (0, target - waveform.shape[1])))


def _write_wav(path: Path, waveform: np.ndarray, sample_rate: int) -> None:
    pcm = (np.clip(waveform, -1.0, 1.0) * 32767).round().astype("<i2").T.copy()
    with wave.open(str(path), "wb") as out:
        out.setnchannels(waveform.shape[0])
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(pcm.tobytes())


@dataclass(frozen=True)
class VideoFormat:
    """What the MP4 holds: its frame size, frame count and exact rate."""

    width: int
    height: int
    num_frames: int
    fps: Fraction


def write_mp4(path: Path, frames: Iterable[np.ndarray], *, width: int, height: int, num_frames: int,
              fps: Fraction, audio: np.ndarray | None = None, sample_rate: int | None = None) -> Path:
    """Encode uint8 [H, W, 3] frames (an iterator is consumed lazily) and optional [channels, samples] audio.

    Raises if the frames are not exactly `num_frames` of `width` x `height`; the final path never holds a
    partial file.
    """
    if width % 2 or height % 2:
        raise VideoWriteError(f"H.264 yuv420p needs even sizes, got {width}x{height}")
    if audio is not None and (audio.ndim != 2 or audio.shape[0] not in (1, 2) or not sample_rate):
        raise VideoWriteError(f"audio must be [1 or 2 channels, samples] with a sample rate, got {audio.shape}")
    fps = Fraction(fps)
    with tempfile.TemporaryDirectory(prefix="ltx2gen-") as scratch, atomic_path(path) as temporary:
        command = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
                   "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}",
                   "-framerate", f"{fps.numerator}/{fps.denominator}", "-i", "pipe:0"]
        if audio is not None:
            wav = Path(scratch) / "audio.wav"
            _write_wav(wav, fit_audio(audio, sample_rate, num_frames, fps), sample_rate)
            command += ["-i", str(wav), "-map", "0:v:0", "-map", "1:a:0", "-c:a", "aac", "-b:a", "192k"]
        command += ["-c:v", "libx264", "-preset", "medium", "-crf", str(CRF), "-pix_fmt", "yuv420p",
                    "-movflags", "+faststart", "-f", "mp4", str(temporary)]
        written = pipe_frames(command, frames, width, height)
        if written != num_frames:
            raise VideoWriteError(f"expected {num_frames} frames, the decoder produced {written}")
    return Path(path)


def pipe_frames(command: list[str], frames: Iterable[np.ndarray], width: int, height: int) -> int:
    """Feed uint8 [H, W, 3] frames to the ffmpeg `command` reading raw RGB on its stdin; returns how many. Raises
    VideoWriteError on a frame of another shape or an ffmpeg failure."""
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    written = 0
    try:
        for frame in frames:
            if frame.shape != (height, width, 3) or frame.dtype != np.uint8:
                raise VideoWriteError(f"frame {written} is {frame.shape} {frame.dtype}, expected "
                                      f"({height}, {width}, 3) uint8")
            process.stdin.write(np.ascontiguousarray(frame).tobytes())
            written += 1
        process.stdin.close()
        if process.wait() != 0:
            raise VideoWriteError(f"ffmpeg failed: {process.stderr.read().decode(errors='replace').strip()}")
    except BrokenPipeError:
        process.wait()
        reason = process.stderr.read().decode(errors="replace").strip() or "it printed no reason"
        raise VideoWriteError(f"ffmpeg stopped with exit status {process.returncode} ({reason})") from None
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stderr.close()
    return written


@dataclass
class MediaInfo:
    frames: int
    width: int
    height: int
    fps: Fraction
    audio_channels: int = 0
    audio_sample_rate: int = 0
    audio_samples: int = 0

    @property
    def duration(self) -> float:
        return float(self.frames / self.fps)


def probe(path: Path) -> MediaInfo:
    """Decode a file fully and report what is really in it (frame count, size, exact rate, audio layout)."""
    exe = ffmpeg_exe()
    video = subprocess.run([exe, "-i", str(path), "-map", "0:v:0", "-f", "framemd5", "-"],
                           capture_output=True, text=True, check=True).stdout
    timebase = Fraction(re.search(r"^#tb 0: (\d+/\d+)", video, re.M).group(1))
    width, height = map(int, re.search(r"^#dimensions 0: (\d+)x(\d+)", video, re.M).groups())
    rows = [line.split(",") for line in video.splitlines() if line and not line.startswith("#")]
    info = MediaInfo(frames=len(rows), width=width, height=height, fps=1 / (timebase * int(rows[0][3])))
    header = subprocess.run([exe, "-i", str(path)], capture_output=True, text=True).stderr
    audio = re.search(r"Audio: .*?, (\d+) Hz, (mono|stereo|\d+ channels)", header)
    if audio:
        info.audio_sample_rate = int(audio.group(1))
        info.audio_channels = {"mono": 1, "stereo": 2}.get(audio.group(2)) or int(audio.group(2).split()[0])
        pcm = subprocess.run([exe, "-i", str(path), "-map", "0:a:0", "-f", "f32le", "-"],
                             capture_output=True, check=True).stdout
        info.audio_samples = len(pcm) // (4 * info.audio_channels)
    return info


def read_frames(path: Path) -> np.ndarray:
    """All frames of a video as uint8 [frames, H, W, 3] (for tests and checks on short clips)."""
    info = probe(path)
    raw = subprocess.run([ffmpeg_exe(), "-i", str(path), "-map", "0:v:0", "-f", "rawvideo", "-pix_fmt", "rgb24",
                          "-"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(info.frames, info.height, info.width, 3)

