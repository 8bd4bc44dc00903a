"""Each weight file's header against the model its component's configuration builds, before any weight is read.

A header names its tensors and their shapes; the model built on the meta device from the component's configuration
(`sizes`: no memory, no weights) says what each should be. A tensor of the model stored in another shape, or a tensor
the model does not have that is larger than any it has, is refused naming the file and the tensor: otherwise the
load reads it (gigabytes, where a header promises a tensor far larger than the configuration allows) before it
fails with a traceback. A smaller stored tensor the model does not have is left to the loader, which skips it or
says in one line that it loads the component another way (`weights.WeightNamesMismatch`)."""

from __future__ import annotations

import math
from pathlib import Path

from ltx2gen.errors import ConfigError


def check_weights_fit_the_model(model_dir: Path, names: tuple[str, ...], flag: str) -> None:
    """Every weight file of components `names` of `model_dir` (those with weights; a folder of model_index.json, or
    LTX-2.5's transformer_full/) against the model its configuration builds. Raises ConfigError naming the file and
    the tensor."""
    from ltx2gen.built_at_load import built_at_load_names

    model_dir = Path(model_dir).resolve()
    built_at_load = built_at_load_names(model_dir)
    for name in names:
        folder = model_dir / name
        if name not in built_at_load and (folder / "config.json").is_file():
            _check_component(model_dir, name, flag)


def _check_component(model_dir: Path, name: str, flag: str) -> None:
    from ltx2gen.sizes import _built_empty
    from ltx2gen.weights import checkpoint_names, stored_tensors

    folder = model_dir / name
    model = _built_empty(str(model_dir), name, (folder / "config.json").stat().st_mtime_ns)
    shapes = model_shapes(model)
    largest = max((math.prod(shape) for shape in shapes.values()), default=0)
    stored = stored_tensors(folder)
    names = checkpoint_names(model, [tensor.name for tensor in stored]) if type(model).__module__.startswith(
        "transformers") else {}
    for tensor in stored:
        expected = shapes.get(names.get(tensor.name, tensor.name))
        if expected is None and math.prod(tensor.shape) > largest:
            raise ConfigError(f"{flag}: {tensor.file} holds {tensor.name} of shape {list(tensor.shape)}, larger than "
                              f"any tensor of the {type(model).__name__} its {folder / 'config.json'} describes; the "
                              "file does not belong to this model (download it again)")
        if expected is not None and tuple(expected) != tensor.shape:
            raise ConfigError(f"{flag}: {tensor.file} holds {tensor.name} of shape {list(tensor.shape)}, where the "
                              f"{type(model).__name__} its {folder / 'config.json'} describes has "
                              f"{list(expected)}; the file does not belong to this model (download it again)")


def model_shapes(model) -> dict[str, tuple[int, ...]]:
    """{name: shape} of `model`'s parameters (tied ones under each of their names) and persistent buffers."""
    shapes = {name: tuple(parameter.shape) for name, parameter in model.named_parameters(remove_duplicate=False)}
    for name, buffer in model.named_buffers(remove_duplicate=False):
        owner, _, attribute = name.rpartition(".")
        if attribute not in model.get_submodule(owner)._non_persistent_buffers_set:
            shapes[name] = tuple(buffer.shape)
    return shapes
