"""Each component's size once loaded, from its configuration: the model is built on the meta device (no memory, no
weights) and its parameters and persistent buffers are counted in the dtype a run loads them in. This is the size
the memory plan uses, whether or not the weight files are present or hold the same dtype (the published text
encoder is float32 on disk; a benchmark model builds its text encoder where it loads and writes no weights)."""

from __future__ import annotations

import functools
from pathlib import Path

import torch

from ltx2gen.weights import GEMMA_IMAGE_MODULES, is_persistent

BYTES_LOADED = 2  # floating-point weights load in bf16 on a GPU


def loaded_bytes(model_dir: Path, name: str, *, fp8: bool = False) -> int:
    """Bytes component `name` of `model_dir` (a folder of model_index.json, or LTX-2.5's transformer_full/) takes
    once loaded in 16-bit floats, or with `fp8` with the layers FP8 stores in float8 (`quant`): one byte a weight
    and a float32 scale a row. Gemma's image path, which the pipeline never runs, is left out as a load leaves it.
    0 for a component the model does not have."""
    folder = Path(model_dir) / name
    if not (folder / "config.json").is_file():
        return 0
    return _config_bytes(str(Path(model_dir).resolve()), name, (folder / "config.json").stat().st_mtime_ns, fp8)


@functools.lru_cache(maxsize=64)
def _config_bytes(model_dir: str, name: str, config_version: int, fp8: bool) -> int:
    return module_bytes(_built_empty(model_dir, name, config_version), GEMMA_IMAGE_MODULES, fp8=fp8)


@functools.lru_cache(maxsize=8)
def _built_empty(model_dir: str, name: str, config_version: int) -> torch.nn.Module:
    from accelerate import init_empty_weights

    from ltx2gen.components import component_class

    cls = component_class(Path(model_dir), name)
    folder = Path(model_dir) / name
    with init_empty_weights(include_buffers=True):
        if cls.__module__.startswith("transformers"):
            return cls(cls.config_class.from_pretrained(folder))
        return cls.from_config(cls.load_config(folder))


def folder_bytes(folder: Path, cls) -> int:
    """Bytes a component of class `cls` kept in a folder of its own (a latent upsampler given apart from the model)
    takes once loaded, from the folder's configuration."""
    return _folder_bytes(str(Path(folder).resolve()), cls, (Path(folder) / "config.json").stat().st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _folder_bytes(folder: str, cls, config_version: int) -> int:
    from accelerate import init_empty_weights

    with init_empty_weights(include_buffers=True):
        return module_bytes(cls.from_config(cls.load_config(folder)))


def module_bytes(model: torch.nn.Module, without: tuple[str, ...] = (), *, fp8: bool = False) -> int:
    """Bytes of `model`'s parameters (tied ones once) and persistent buffers in 16-bit floats, leaving out those of
    any submodule whose name is in `without`; with `fp8`, the layers FP8 stores in float8 at a byte a weight plus
    a float32 scale a row: the transformer's block linears, the text encoder's linears but its output head; no other
    component has an FP8 mode."""
    from ltx2gen.quant import BLOCKS, is_text_encoder_fp8_layer

    def quantized(layer_name: str, layer: torch.nn.Module) -> bool:
        if type(layer) is not torch.nn.Linear:
            return False
        if hasattr(model, BLOCKS):  # the transformer: its blocks' linears
            return layer_name.startswith(BLOCKS + ".")
        return type(model).__module__.startswith("transformers") and is_text_encoder_fp8_layer(layer_name, layer)

    in_fp8 = {f"{name}.weight" for name, layer in model.named_modules() if fp8 and quantized(name, layer)}
    state = {**dict(model.named_parameters()),
             **{name: buffer for name, buffer in model.named_buffers() if is_persistent(model, name)}}
    total = 0
    for name, tensor in state.items():
        if set(name.split(".")) & set(without):
            continue
        if name in in_fp8:
            total += tensor.numel() + 4 * tensor.shape[0]
        else:
            total += tensor.numel() * (BYTES_LOADED if tensor.is_floating_point() else tensor.element_size())
    return total
