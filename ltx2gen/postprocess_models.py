"""The post-processing models: reading their files safely, recognising them, and loading them for a device.

Upscalers are any super-resolution checkpoint spandrel recognises (Real-ESRGAN, ESRGAN, Compact, SPAN, ...);
interpolators are RIFE 4.22-4.26 (`ltx2gen.ifnet`). Files are safetensors or PyTorch pickles read with
`weights_only=True`, so a file holding anything but tensors is refused, never unpickled. Every check here runs
before any LTX-2 weight is read; problems are `ConfigError`s of one line.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import torch

from ltx2gen.errors import ConfigError
from ltx2gen.files import file_sha256
from ltx2gen.ifnet import IFNet, inference_weights, mismatch, widths_in
from ltx2gen.torchvision_compat import prepare_torchvision

PICKLE_SUFFIXES = (".pth", ".pt", ".pkl", ".ckpt", ".bin")


@dataclass(frozen=True)
class ModelFile:
    """A recognised post-processing model: its file, architecture and scale (1 for an interpolator)."""

    path: Path
    architecture: str
    scale: int

    def record(self) -> dict:
        return {"path": str(self.path), "sha256": file_sha256(self.path), "architecture": self.architecture}


def read_state_dict(path: Path, flag: str) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file or of a plain PyTorch state dict (`weights_only=True`), on the CPU. A
    state dict inside a training checkpoint (params_ema, state_dict, ...) is taken out by the callers' loaders."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{flag} {path}: no such file (give a .safetensors or .pth model file; nothing is "
                          "downloaded at run time)")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(path)
        except (SafetensorError, OSError) as err:
            raise ConfigError(f"{flag} {path}: not a readable safetensors file ({err})") from None
    if path.suffix not in PICKLE_SUFFIXES:
        raise ConfigError(f"{flag} {path}: give a .safetensors file or a PyTorch state dict "
                          f"({', '.join(PICKLE_SUFFIXES)})")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as err:
        reason = (str(err).strip().splitlines() or ["unreadable"])[0]
        raise ConfigError(f"{flag} {path}: not a plain state dict of tensors (read with weights_only=True: "
                          f"{reason[:160]})") from None
    if not isinstance(loaded, dict) or not loaded:
        raise ConfigError(f"{flag} {path}: holds a {type(loaded).__name__}, not a state dict of tensors")
    return loaded


def _canonical_tensors(state_dict: dict, flag: str, path: Path) -> dict[str, torch.Tensor]:
    prepare_torchvision()
    from spandrel import canonicalize_state_dict

    tensors = canonicalize_state_dict(state_dict)
    if not tensors or not all(isinstance(value, torch.Tensor) for value in tensors.values()):
        raise ConfigError(f"{flag} {path}: not a state dict of tensors")
    return tensors


def _upscaler_descriptor(path: Path, flag: str):
    prepare_torchvision()
    from spandrel import ImageModelDescriptor, ModelLoader, UnsupportedModelError

    tensors = _canonical_tensors(read_state_dict(path, flag), flag, path)
    try:
        descriptor = ModelLoader().load_from_state_dict(tensors)
    except UnsupportedModelError:
        raise ConfigError(f"{flag} {path}: not an architecture spandrel recognises (Real-ESRGAN, ESRGAN, Compact, "
                          "SPAN and other super-resolution models are)") from None
    if not isinstance(descriptor, ImageModelDescriptor) or descriptor.purpose != "SR" or \
            (descriptor.input_channels, descriptor.output_channels) != (3, 3):
        raise ConfigError(f"{flag} {path}: a {descriptor.architecture.name} model for "
                          f"{getattr(descriptor, 'purpose', 'another task')}, not an RGB super-resolution model")
    return descriptor


def check_upscaler(path: Path, factor: int, flag: str = "--upscale-model") -> ModelFile:
    """The upscaler at `path`, recognised and checked to scale by `factor`."""
    descriptor = _upscaler_descriptor(path, flag)
    if descriptor.scale != factor:
        raise ConfigError(f"{flag} {path}: a {descriptor.architecture.name} x{descriptor.scale} model, which does "
                          f"not upscale x{factor}; give --upscale {descriptor.scale} or an x{factor} model")
    return ModelFile(Path(path), descriptor.architecture.name, descriptor.scale)


def upscaler_dtype(descriptor, device: torch.device) -> torch.dtype:
    """The fastest precision the architecture supports on this device (float32 on the CPU)."""
    if device.type != "cuda":
        return torch.float32
    if descriptor.supports_bfloat16:
        return torch.bfloat16
    return torch.float16 if descriptor.supports_half else torch.float32


def load_upscaler(path: Path, device: torch.device):
    """The spandrel model descriptor, on `device`, in `upscaler_dtype`, in eval mode."""
    descriptor = _upscaler_descriptor(path, "--upscale-model")
    return descriptor.to(device=device, dtype=upscaler_dtype(descriptor, device)).eval()


def _ifnet_weights(path: Path, flag: str) -> tuple[IFNet, dict]:
    weights = inference_weights(read_state_dict(path, flag))
    widths = widths_in(weights)
    if not widths:
        raise ConfigError(f"{flag} {path}: not a RIFE 4.x flownet (no flow blocks block0.. found); give "
                          "Practical-RIFE's flownet.pkl of RIFE 4.22-4.26")
    network = IFNet(widths)
    wrong = mismatch(network, weights)
    if wrong:
        raise ConfigError(f"{flag} {path}: not the RIFE 4.22-4.26 layout ({wrong}); give Practical-RIFE's "
                          "flownet.pkl of RIFE 4.22-4.26")
    return network, weights


def check_interpolator(path: Path, flag: str = "--interpolate-model") -> ModelFile:
    """The RIFE checkpoint at `path`, checked to match the network exactly (RIFE interpolates at any timestep, so
    every factor is one it does)."""
    network, _ = _ifnet_weights(path, flag)
    return ModelFile(Path(path), f"RIFE IFNet ({len(network.widths)} blocks)", 1)


def interpolator_dtype(device: torch.device) -> torch.dtype:
    # Practical-RIFE's --fp16 on the GPU; grid sampling in bfloat16 is too coarse for sub-pixel flow.
    return torch.float16 if device.type == "cuda" else torch.float32


def load_interpolator(path: Path, device: torch.device) -> IFNet:
    network, weights = _ifnet_weights(path, "--interpolate-model")
    network.load_state_dict(weights)
    return network.to(device=device, dtype=interpolator_dtype(device)).eval()
