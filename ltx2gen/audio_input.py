"""`--audio`: a soundtrack or speech that the video follows, carried by the output MP4.

Encoding (its own stage, before the transformer loads: the audio VAE is loaded, encodes and is freed). LTX-2's audio
VAE encodes the log-mel spectrogram of stereo audio at `audio_vae.config.sample_rate` (16 kHz): a 1024-point Hann STFT
with hop `audio_vae.config.mel_hop_length` (160), centred with reflect padding, magnitudes (power 1), a Slaney mel
filterbank of `audio_vae.config.mel_bins` bands from 0 Hz to Nyquist, log of the values clamped at 1e-5, mono
duplicated to stereo. These are the parameters of diffusers' own LTX-2 audio encode path (the Echo pipeline's
`_encode_audio` in `modular_pipelines/echo/encoders.py`); `LTX2Pipeline` has no mel helper and torchaudio is not a
dependency, so the filterbank is built here with torchaudio's `melscale_fbanks` formula. The latents are the
encoder's mode, trimmed to the pipeline's audio length, round(clip seconds x 25) latent frames.

Conditioning, with strength s in [0, 1] on every audio token: LTX-2's conditioning strength (the per-token mask
that diffusers' `LTX2ConditionPipeline` uses for its video conditions), applied to the audio stream:

- the audio tokens start at noise level 1 - s: x = s * c + (1 - s) * n, with c the clean normalized latents and n
  the very noise the stock pipeline draws for the plain run (same seed, same noise at every strength);
- the transformer sees them at timestep t * (1 - s) (`audio_timestep`, which the transformer accepts per modality
  and the stock loop leaves equal to the video's);
- the prediction is blended in x0 space: x0' = (1 - s) * x0_model + s * c, where x0_model = x - (1 - s) * sigma * v
  uses the tokens' own noise level.

At s = 1 the audio tokens are exactly c at every step, seen clean (timestep 0), as diffusers' DFR pipeline does with
`freeze_audio`; the video is denoised against the given audio, and the pipeline returns c as its audio latents. At
s = 0 every one of these operations is the identity and the run is bit for bit the plain text-to-video run.

Why not re-impose noised audio in `callback_on_step_end`: the stock loop lets a callback replace only `latents` and
`prompt_embeds`, and audio re-imposed at the current sigma shows the transformer almost nothing of the soundtrack
during the distilled schedule's first five steps (sigma >= 0.975), where the motion is laid out; a per-modality
timestep shows it clean from the first step.

How, without forking diffusers: `patches.following_audio` wraps the pipeline's audio preparation and hooks the
transformer for one pipeline call; the velocity it returns, v' = (1 - s)^2 * v + s * (x - c) / sigma, is the one
whose x0 under the stock loop's own conversion (x - v' * sigma) is x0'. The loop's guidance, which combines x0s with
weights that sum to one, then acts on the model's share only, and its Euler step is unchanged.
"""

from __future__ import annotations

import math
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ltx2gen.errors import ConfigError, check_strength
from ltx2gen.files import file_sha256
from ltx2gen.video import ffmpeg_exe, fit_audio

if TYPE_CHECKING:
    import torch

N_FFT = 1024
LOG_FLOOR = 1e-5
# Decoding at this rate is enough to check a file and measure its duration.
PROBE_RATE = 16000
# What is decoded of an --audio file: the clip's length and this much more (to say that the file is longer and is
# trimmed), never the rest: an hour-long file for a five-second clip would otherwise be decoded whole (1.77 GB).
SECONDS_BEYOND_THE_CLIP = 1.0
# While the flags are checked the clip's length is not known yet: this much shows that the file holds sound.
SECONDS_TO_CHECK = 1.0


class AudioDecodeError(RuntimeError):
    pass


def _decode_command(path: Path, sample_rate: int, channels: int, seconds: float | None) -> list[str]:
    """ffmpeg decoding the file's first audio stream to float32 at `sample_rate` (resampled and mixed), stopping
    after `seconds` where given."""
    limit = ["-t", f"{seconds:.6f}"] if seconds is not None else []
    return [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i", str(path), "-map", "0:a:0", *limit, "-ac",
            str(channels), "-ar", str(sample_rate), "-f", "f32le", "-"]


def decode_waveform(path: Path, sample_rate: int, channels: int = 2, seconds: float | None = None) -> np.ndarray:
    """The file's first audio stream as float32 [channels, samples] at `sample_rate`: at most its first `seconds`
    where given, of which ffmpeg decodes no more."""
    result = subprocess.run(_decode_command(path, sample_rate, channels, seconds), capture_output=True)
    if result.returncode != 0:
        raise AudioDecodeError(result.stderr.decode(errors="replace").strip())
    return np.frombuffer(result.stdout, "<f4").reshape(-1, channels).T.copy()


def _decoded_seconds(path: Path, most: float) -> float:
    """How long the file's audio is, up to `most` seconds, counted as ffmpeg decodes it (mono at `PROBE_RATE`);
    the samples are counted, not kept."""
    with subprocess.Popen(_decode_command(path, PROBE_RATE, 1, most), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE) as process:
        decoded = sum(len(block) for block in iter(lambda: process.stdout.read(1 << 20), b""))
        errors = process.stderr.read()
    if process.returncode != 0:
        raise AudioDecodeError(errors.decode(errors="replace").strip())
    return decoded // 4 / PROBE_RATE


def probe_seconds(path: Path, most: float) -> float:
    """Duration of the audio in `path`, up to `most` seconds (no more is decoded); raises ConfigError for anything
    that is not a readable, non-empty audio file."""
    flag = f"--audio {path}"
    if not path.exists():
        raise ConfigError(f"{flag}: no such file; give a wav, flac or mp3 file")
    if not path.is_file():
        raise ConfigError(f"{flag}: not a file; give a wav, flac or mp3 file")
    try:
        with open(path, "rb"):
            pass
    except OSError as err:
        raise ConfigError(f"{flag}: cannot be read ({err.strerror}); give a readable wav, flac or mp3 file") from None
    try:
        seconds = _decoded_seconds(path, most)
    except AudioDecodeError as err:
        if "matches no streams" in str(err):
            raise ConfigError(f"{flag}: has no audio stream; give a wav, flac or mp3 file") from None
        raise ConfigError(f"{flag}: not an audio file ffmpeg can read ({str(err).splitlines()[-1]}); give a wav, "
                          "flac or mp3 file") from None
    if seconds == 0:
        raise ConfigError(f"{flag}: holds no audio samples; give a wav, flac or mp3 file with sound in it")
    return seconds


def validate_audio_options(audio: Path | None, strength: float) -> None:
    check_strength("--audio-strength", strength, "0: the video ignores the audio, 1: it follows it fully", "--audio",
                   audio)
    if audio is not None:
        probe_seconds(Path(audio), SECONDS_TO_CHECK)


@dataclass(frozen=True)
class AudioInput:
    """The resolved --audio of one clip: what the run records, and the clip timing its audio must fit."""

    path: Path
    sha256: str
    seconds: float  # measured up to the clip's length and `SECONDS_BEYOND_THE_CLIP` more
    strength: float
    num_frames: int
    fps: Fraction

    @classmethod
    def inspect(cls, path: Path, strength: float, num_frames: int, fps: Fraction) -> "AudioInput":
        path = Path(path).resolve()
        most = float(num_frames / Fraction(fps)) + SECONDS_BEYOND_THE_CLIP
        return cls(path, file_sha256(path), probe_seconds(path, most), strength, num_frames, Fraction(fps))

    @property
    def clip_seconds(self) -> float:
        return float(self.num_frames / self.fps)

    def record(self) -> dict:
        return {"path": str(self.path), "sha256": self.sha256, "seconds": round(self.seconds, 4),
                "strength": self.strength}

    def waveform(self, sample_rate: int, announce: bool = False) -> np.ndarray:
        """Stereo float32 at `sample_rate`, trimmed or padded with silence to exactly the clip's duration (said in
        one line when `announce`)."""
        decoded = decode_waveform(self.path, sample_rate, seconds=self.clip_seconds + SECONDS_BEYOND_THE_CLIP)
        fitted = fit_audio(decoded, sample_rate, self.num_frames, self.fps)
        if announce and decoded.shape[1] != fitted.shape[1]:
            source = decoded.shape[1] / sample_rate
            whole = source < self.clip_seconds + SECONDS_BEYOND_THE_CLIP - 1 / sample_rate  # else decoded in part
            length = f"{source:.3f} s" if whole else f"over {source:.3f} s"
            change = (f"trimmed to the clip's {self.clip_seconds:.3f} s" if decoded.shape[1] > fitted.shape[1] else
                      f"padded with {self.clip_seconds - source:.3f} s of silence to the clip's "
                      f"{self.clip_seconds:.3f} s")
            print(f"audio: {self.path.name} is {length}; {change}", flush=True)
        return fitted


def soundtrack(audio_input: AudioInput, sample_rate: int) -> tuple[np.ndarray, int]:
    """The input audio for the MP4: resampled to the vocoder's output rate and fitted to the clip."""
    return audio_input.waveform(sample_rate), sample_rate


def stored_soundtrack(record: dict | None, num_frames: int, fps: Fraction,
                      sample_rate: int) -> tuple[np.ndarray, int] | None:
    """Recovery: the input audio recorded in a latents file, if that file is still there unchanged; otherwise None,
    said in one line (the audio is then decoded from the latents, which at strength 1 are the encoded input)."""
    if not record:
        return None
    path = Path(record["path"])
    if not path.is_file() or file_sha256(path) != record["sha256"]:
        print(f"note: the input audio {path} is missing or has changed since generation; the clip's audio is "
              f"decoded from the latents instead (at --audio-strength {record['strength']:g} they hold "
              f"{'the encoded input audio' if record['strength'] == 1 else 'the generated audio'})", flush=True)
        return None
    print(f"audio: muxing the input audio {path} again", flush=True)
    item = AudioInput(path, record["sha256"], record["seconds"], record["strength"], num_frames, Fraction(fps))
    return soundtrack(item, sample_rate)


def mel_filterbank(sample_rate: int, mel_bins: int) -> "torch.Tensor":
    """Slaney-scale, Slaney-normalized triangular filters, [N_FFT // 2 + 1 frequencies, mel_bins]."""
    import torch

    def hz_to_mel(hz: torch.Tensor) -> torch.Tensor:
        linear = hz * 3.0 / 200.0
        return torch.where(hz >= 1000.0, 15.0 + torch.log(hz / 1000.0) * 27.0 / math.log(6.4), linear)

    def mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
        return torch.where(mel >= 15.0, 1000.0 * torch.exp((mel - 15.0) * math.log(6.4) / 27.0), mel * 200.0 / 3.0)

    frequencies = torch.linspace(0, sample_rate // 2, N_FFT // 2 + 1, dtype=torch.float64)
    edges = mel_to_hz(torch.linspace(0.0, float(hz_to_mel(torch.tensor(sample_rate / 2.0, dtype=torch.float64))),
                                     mel_bins + 2, dtype=torch.float64))
    widths = edges[1:] - edges[:-1]
    slopes = edges.unsqueeze(0) - frequencies.unsqueeze(1)
    rising, falling = -slopes[:, :-2] / widths[:-1], slopes[:, 2:] / widths[1:]
    filters = torch.clamp(torch.minimum(rising, falling), min=0.0)
    return (filters * (2.0 / (edges[2:] - edges[:-2])).unsqueeze(0)).float()


def log_mel_spectrogram(waveform: "torch.Tensor", sample_rate: int, hop_length: int, mel_bins: int) -> "torch.Tensor":
    """[channels, samples] float32 -> the audio VAE's input [1, channels, frames, mel_bins]."""
    import torch

    if waveform.shape[-1] < N_FFT:  # reflect padding needs more than half a window
        waveform = torch.nn.functional.pad(waveform, (0, N_FFT - waveform.shape[-1]))
    window = torch.hann_window(N_FFT, device=waveform.device, dtype=waveform.dtype)
    magnitudes = torch.stft(waveform, N_FFT, hop_length, N_FFT, window, center=True, pad_mode="reflect",
                            return_complex=True).abs()
    mel = torch.matmul(magnitudes.transpose(-1, -2), mel_filterbank(sample_rate, mel_bins).to(waveform.device))
    return torch.log(torch.clamp(mel, min=LOG_FLOOR)).unsqueeze(0)


def audio_latent_frames(num_frames: int, fps: Fraction, sample_rate: int, hop_length: int,
                        temporal_compression: int) -> int:
    """The audio length `LTX2Pipeline` gives a clip, with its own arithmetic (it receives the rate as a float)."""
    return round(num_frames / float(fps) * (sample_rate / hop_length / float(temporal_compression)))


@dataclass
class AudioCondition:
    """What the audio input stage leaves for diffusion: the clean audio latents [1, channels, length, mel bins], as
    the audio VAE encodes them (the pipeline normalizes them itself), and the strength. With `prefix`, they are the
    start of the clip's audio alone (a window continuing a clip, `ltx2gen.continuation`) and the rest is generated."""

    latents: "torch.Tensor"
    strength: float
    prefix: bool = False


def encode(stage, model_dir: Path, inputs: list[AudioInput], *, device, dtype) -> list[AudioCondition]:
    """Stage: the audio VAE encodes each clip's input audio; it is freed when the stage ends."""
    import torch

    from ltx2gen.components import load_component

    audio_vae = stage.load("audio_vae", lambda: load_component(model_dir, "audio_vae", device, dtype))
    config = audio_vae.config
    conditions = []
    for item in inputs:
        waveform = torch.from_numpy(item.waveform(config.sample_rate, announce=True)).to(device)
        mel = log_mel_spectrogram(waveform, config.sample_rate, config.mel_hop_length, config.mel_bins)
        with torch.no_grad():
            latents = audio_vae.encode(mel.to(audio_vae.dtype)).latent_dist.mode()
        length = audio_latent_frames(item.num_frames, item.fps, config.sample_rate, config.mel_hop_length,
                                     audio_vae.temporal_compression_ratio)
        if latents.shape[2] < length:
            raise RuntimeError(f"the audio VAE encoded {latents.shape[2]} latent frames, the clip needs {length}")
        conditions.append(AudioCondition(latents[:, :, :length].float().cpu(), item.strength))
    return conditions
