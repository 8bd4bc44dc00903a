"""Components a model folder asks to have built when they load, from their configuration, with seeded random weights.

A model folder may carry `MARKER` (`ltx2gen_synthetic.json`), a JSON object whose `built_at_load` lists components
stored as their configuration alone and whose `seed` seeds their weights. Loading such a component (the text encoder
only: a transformers Gemma 3 or Gemma 4) builds it from its config.json on the device it loads to, each layer as
loading would fill it, instead of reading weight files; planning and the weight checks leave its files out. This is
how a benchmark model keeps the real size of a text encoder whose files would not fit its disk beside the
transformer. Every other component, and every folder without the marker, loads from its files.

What writes such folders (the seeded test models) is `ltx2gen.testing`; it builds its components with
`seeded_construction`, so a component built here is the one a test model would have written.
"""

from __future__ import annotations

import json
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import torch

from ltx2gen.quant import is_text_encoder_fp8_layer

MARKER = "ltx2gen_synthetic.json"
BUILDABLE = ("text_encoder",)  # the components a folder can ask to have built at load


def read_marker(model_dir: Path) -> dict:
    """The folder's `MARKER` (for a test model: its preset, seed, repo and the components built at load); empty for
    any other model."""
    marker_path = Path(model_dir) / MARKER
    return json.loads(marker_path.read_text()) if marker_path.is_file() else {}


def built_at_load_names(model_dir: Path) -> list[str]:
    """The components the folder builds when they load instead of storing their weights."""
    return read_marker(model_dir).get("built_at_load", [])


@contextmanager
def seeded_construction(seed: int, dtype: torch.dtype, device: str | torch.device):
    """Seeded modules created directly on `device` in `dtype`: a full-size fp32 copy would not fit."""
    torch.manual_seed(seed)
    previous_dtype = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            yield
    finally:
        torch.set_default_dtype(previous_dtype)


def text_encoder_classes(model_type: str):
    """The configuration and model classes of a text encoder `model_type`: Gemma 3 (LTX-2.0/2.3) or Gemma 4 (2.5)."""
    import transformers

    prefix = {"gemma3": "Gemma3", "gemma4_unified": "Gemma4Unified"}[model_type]
    return getattr(transformers, f"{prefix}Config"), getattr(transformers, f"{prefix}ForConditionalGeneration")


def build_at_load(model_dir: Path, name: str, device: torch.device, dtype: torch.dtype,
                  *, quantize: Callable[[torch.nn.Module], object] | None = None):
    """The component `name` of a folder that asks to have it built at load, built from its configuration with the
    folder's seed directly on `device`; None for every component whose weights are on disk.

    Layers are built one at a time, as loading fills them: with `quantize`, each linear layer except the output head
    is quantized as soon as it exists, so the unquantized encoder is never whole in memory, as when real files load
    with quantization. Its random values are the same either way: normal(0, 0.02) for matrices, zeros for vectors."""
    marker = read_marker(model_dir)
    if name not in marker.get("built_at_load", []):
        return None
    if name not in BUILDABLE:
        raise ValueError(f"{model_dir}: only the text encoder can be built at load, not {name}")
    from accelerate import init_empty_weights

    folder = Path(model_dir) / name
    config_class, model_class = text_encoder_classes(json.loads((folder / "config.json").read_text())["model_type"])
    config = config_class.from_pretrained(folder)
    with seeded_construction(marker["seed"], dtype, device):
        with init_empty_weights(include_buffers=False):  # parameters on the meta device, constructor buffers real
            model = model_class(config)
        model.tie_weights()  # on the meta device too, so the head is built once, as the input embedding
        uses = Counter(id(empty) for _, empty in model.named_parameters(remove_duplicate=False))
        shared: dict[int, torch.nn.Parameter] = {}  # tied parameters (the output head) stay one tensor
        for module_name, module in model.named_modules():
            for attribute, empty in list(module.named_parameters(recurse=False, remove_duplicate=False)):
                parameter = shared.get(id(empty))
                if parameter is None:
                    value = torch.empty(empty.shape, device=device, dtype=dtype)
                    parameter = torch.nn.Parameter(value.normal_(0, 0.02) if value.ndim > 1 else value.zero_(),
                                                   requires_grad=False)
                    if uses[id(empty)] > 1:  # only these are held here: quantizing must free the rest
                        shared[id(empty)] = parameter
                module._parameters[attribute] = parameter
                del parameter
            if quantize is not None and is_text_encoder_fp8_layer(module_name, module):
                quantize(module)
    return model
