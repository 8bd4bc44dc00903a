"""Small modules that give the stock `LTX2Pipeline` what its diffusion call needs from components whose weights
are not in that stage.

The pipeline reads only the VAEs' latent statistics and configuration while denoising (to denormalise its output
latents), and it runs the text connectors on the prompt embeddings inside the call. Holding the real modules
there would add the 2.3 GB video VAE and the 2.7 GB connectors to the largest stage; these stand-ins hold the
statistics and the connectors' precomputed outputs instead, so the numerics stay exactly the stock pipeline's.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch


class TensorHolder(torch.nn.Module):
    """A module that only holds tensors, with the `device` and `dtype` diffusers reads from every component."""

    @property
    def device(self) -> torch.device:
        return next(self.buffers()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.buffers()).dtype


class LatentStatistics(TensorHolder):
    """A VAE's `latents_mean`/`latents_std` (read from its weight file alone) and its configuration attributes
    (computed by the real class, instantiated on the meta device)."""

    @classmethod
    def load(cls, component_class, folder: Path, device: torch.device) -> "LatentStatistics":
        from accelerate import init_empty_weights
        from safetensors import safe_open

        with init_empty_weights():
            reference = component_class.from_config(json.loads((folder / "config.json").read_text()))
        stats = cls()
        for name, value in vars(reference).items():
            if not name.startswith("_") and not isinstance(value, (torch.nn.Module, torch.Tensor)):
                setattr(stats, name, value)
        stats.config = reference.config
        wanted = {"latents_mean", "latents_std"}
        for weights in sorted(folder.glob("*.safetensors")):
            with safe_open(str(weights), framework="pt", device=str(device)) as handle:
                for name in wanted & set(handle.keys()):
                    stats.register_buffer(name, handle.get_tensor(name))
        missing = wanted - set(dict(stats.named_buffers()))
        if missing:
            raise ValueError(f"{folder}: no {', '.join(sorted(missing))} in the weights")
        return stats


class ConnectorOutputs(TensorHolder):
    """The text connectors' outputs, computed in the text stage, handed to the pipeline's connectors call."""

    def __init__(self, video: torch.Tensor, audio: torch.Tensor, mask: torch.Tensor):
        super().__init__()
        self.register_buffer("video", video)
        self.register_buffer("audio", audio)
        self.register_buffer("mask", mask)

    def forward(self, prompt_embeds: torch.Tensor, attention_mask: torch.Tensor, padding_side: str = "left"):
        if prompt_embeds.shape[0] != self.video.shape[0]:
            raise ValueError(f"precomputed conditioning is for a batch of {self.video.shape[0]}, "
                             f"the pipeline passed {prompt_embeds.shape[0]}")
        return self.video, self.audio, self.mask


class EncodedImage(TensorHolder):
    """The video VAE as the image-to-video pipelines use it while sampling: the latent statistics and configuration
    of a `LatentStatistics`, and an `encode` that returns the latents the image stage computed (`ltx2gen.image`), one
    condition per call in the order the pipeline's conditions are given."""

    def __init__(self, statistics: LatentStatistics, image_latents: list[torch.Tensor]):
        super().__init__()
        for index, latents in enumerate(image_latents):
            self.register_buffer(f"image_latents_{index}", latents)
        self.statistics = statistics
        self.encoded = 0

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("statistics"), name)

    def encode(self, pixels: torch.Tensor):
        from types import SimpleNamespace

        held = list(self.buffers(recurse=False))  # the images' latents, not the statistics'
        if self.encoded == len(held):
            raise ValueError(f"the pipeline encoded more images than the {len(held)} the image stage encoded")
        latents = held[self.encoded]
        height, width = (side * self.spatial_compression_ratio for side in latents.shape[3:])
        frames = (latents.shape[2] - 1) * self.temporal_compression_ratio + 1
        if tuple(pixels.shape) != (1, 3, frames, height, width):
            raise ValueError(f"the condition was encoded for {frames} frame(s) of {width}x{height}, the pipeline "
                             f"passed pixels of shape {tuple(pixels.shape)}")
        self.encoded += 1
        return SimpleNamespace(latents=latents)
