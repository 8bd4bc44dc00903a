"""Stage 4, audio: the audio VAE decodes the audio latents to a mel spectrogram and the vocoder turns it into a
stereo waveform. Both are freed when the stage ends."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ltx2gen import memory as mem
from ltx2gen.components import load_component


def decode_audio(stage: mem.Stage, model_dir: Path, audio_latents: torch.Tensor, *, device: torch.device,
                 dtype: torch.dtype) -> tuple[np.ndarray, int]:
    """Stage 4: audio VAE to a mel spectrogram, vocoder to a stereo waveform [channels, samples]."""
    audio_vae = stage.load("audio_vae", lambda: load_component(model_dir, "audio_vae", device, dtype))
    vocoder = stage.load("vocoder", lambda: load_component(model_dir, "vocoder", device, dtype))
    sample_rate = int(vocoder.config.output_sampling_rate)
    with torch.no_grad():
        mel = audio_vae.decode(audio_latents.to(device, audio_vae.dtype), return_dict=False)[0]
        waveform = vocoder(mel)
    return waveform[0].float().cpu().numpy(), sample_rate
