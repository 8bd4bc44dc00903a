"""Model weights read from safetensors files one tensor at a time, straight to the device.

`from_pretrained` memory-maps each weight file, and every page it touches counts in the process's resident memory
until the file is closed: loading the 38 GB transformer onto the GPU held 9 GiB of host memory at once (one
shard), on top of the GPU copy. On unified memory (Jetson Thor) host and GPU memory are one pool. Here each tensor
is read with plain file reads, in pieces, into a few small reused host buffers, copied to the device, and its file
range dropped from the page cache, so the host side holds a few 64 MiB pieces at a time. `on_block` sees each
transformer block as soon as all of its weights are on the device: quantizing there means the device never holds
the whole bf16 transformer.
"""

from __future__ import annotations

import json
import os
import queue
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch

from ltx2gen.files import safetensors_header
from ltx2gen.memory import stop_prefetching

READ_CHUNK_BYTES = 64 << 20  # a larger tensor is read and copied in pieces of this size
READ_BUFFERS = 4  # pieces the reader may run ahead: it keeps reading while a finished block is quantized
DTYPES = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32, "F64": torch.float64,
          "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
          "BOOL": torch.bool, "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2}


class WeightNamesMismatch(ValueError):
    """The stored tensor names are not the model's, one to one: raised before any weight is read."""


@dataclass(frozen=True)
class StoredTensor:
    name: str
    file: Path
    offset: int  # from the start of the file
    nbytes: int
    dtype: torch.dtype
    shape: tuple[int, ...]


INDEX_FILES = ("model.safetensors.index.json", "diffusion_pytorch_model.safetensors.index.json")
# Gemma's image path: the pipeline encodes text only, so these weights (0.42B in the published files) are not read.
GEMMA_IMAGE_MODULES = ("vision_tower", "multi_modal_projector")


def weight_files(folder: Path) -> list[Path]:
    """The safetensors files a component loads: those its index lists where it has one (transformers' name
    first), else every one in the folder. The published text encoder folders hold a stale second shard set beside
    the indexed one, which nothing must read."""
    folder = Path(folder)
    for name in INDEX_FILES:
        index = folder / name
        if index.is_file():
            return sorted({folder / file for file in json.loads(index.read_text())["weight_map"].values()})
    return sorted(folder.glob("*.safetensors"))


def stored_tensors(folder: Path) -> list[StoredTensor]:
    """Every tensor of the component's weight files (`weight_files`), in file order (from each file's header)."""
    tensors = []
    for file in weight_files(folder):
        header, data_start = safetensors_header(file)
        header.pop("__metadata__", None)
        for name, entry in header.items():
            start, end = entry["data_offsets"]
            tensors.append(StoredTensor(name, file, data_start + start, end - start, DTYPES[entry["dtype"]],
                                        tuple(entry["shape"])))
    return sorted(tensors, key=lambda tensor: (tensor.file, tensor.offset))


def read_tensors(tensors: list[StoredTensor], device: torch.device, dtype: torch.dtype, *, evict: bool = True,
                 chunk_bytes: int = READ_CHUNK_BYTES) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, tensor on `device`) for each stored tensor; floating-point tensors are cast to `dtype` piece by piece
    as they arrive, so a float32 file (the published text encoder) never has a float32 copy on the device. With
    `evict`, each file range is dropped from the page cache once read (no root needed).

    A reader thread reads ahead while the caller copies to the device and uses each tensor (quantizes it, for FP8),
    so the load takes about as long as the disk's read, not the read plus the copies. It reads in pieces of at most
    `chunk_bytes` into `READ_BUFFERS` reused host buffers (pinned for a GPU, so each copy is a direct transfer): the
    host side stays small even for Gemma's 1.9 GiB embedding."""
    stop_prefetching({tensor.file for tensor in tensors})  # from here on this reader reads these files itself
    largest = max((tensor.nbytes for tensor in tensors), default=0)
    size = min(chunk_bytes, -(-largest // 8) * 8)  # whole elements of every dtype in each piece
    pinned = device.type == "cuda"
    free: queue.Queue = queue.Queue()
    for _ in range(READ_BUFFERS):
        free.put(torch.empty(size, dtype=torch.uint8, pin_memory=pinned))
    filled: queue.Queue = queue.Queue()
    stopping = threading.Event()

    def pieces(tensor: StoredTensor) -> Iterator[tuple[int, int]]:
        """(start, length) within the tensor; one empty piece for an empty tensor."""
        for start in range(0, max(tensor.nbytes, 1), size or 1):
            yield start, min(size, tensor.nbytes - start)

    def read_ahead() -> None:
        handles: dict[Path, object] = {}
        try:
            for tensor in tensors:
                if tensor.file not in handles:
                    handles[tensor.file] = open(tensor.file, "rb", buffering=0)
                handle = handles[tensor.file]
                for start, length in pieces(tensor):
                    buffer = free.get()
                    if stopping.is_set():
                        return
                    handle.seek(tensor.offset + start)
                    if handle.readinto(memoryview(buffer[:length].numpy())) != length:
                        raise ValueError(f"{tensor.file}: truncated at {tensor.name}")
                    if evict:
                        os.posix_fadvise(handle.fileno(), tensor.offset + start, length, os.POSIX_FADV_DONTNEED)
                    filled.put((buffer, None))
        except BaseException as err:  # handed to the consumer, which raises it
            filled.put((None, err))
        finally:
            for handle in handles.values():
                handle.close()

    reader = threading.Thread(target=read_ahead, name="weights-reader", daemon=True)
    reader.start()
    try:
        for tensor in tensors:
            value = torch.empty(tensor.shape, device=device,
                                dtype=dtype if tensor.dtype.is_floating_point else tensor.dtype)
            elements, element_size = value.view(-1), tensor.dtype.itemsize
            for start, length in pieces(tensor):
                buffer, error = filled.get()
                if error is not None:
                    raise error
                # Synchronous: the buffer is free once it returns.
                elements[start // element_size:(start + length) // element_size].copy_(
                    buffer[:length].view(tensor.dtype))
                free.put(buffer)
            yield tensor.name, value
    finally:
        stopping.set()
        free.put(None)  # wakes a reader waiting for a buffer
        reader.join()


def load_streamed(component_class, folder: Path, device: torch.device, dtype: torch.dtype,
                  *, on_block: Callable[[torch.nn.Module], object] | None = None, blocks: str = "transformer_blocks",
                  evict: bool = True, without: tuple[str, ...] = ()):
    """`component_class` (a diffusers model, or a transformers one: the Gemma text encoder) built without weights
    (`model_on_meta`), then filled tensor by tensor from `folder` on `device` (`fill_streamed`). The submodules named
    in `without` are left out (set to None): their weights are neither read nor held."""
    model, names = model_on_meta(component_class, folder, dtype)
    model, tensors = paired(model, folder, stored_tensors(folder), names, without)
    model = fill_streamed(model, tensors, device, dtype, on_block=on_block, blocks=blocks, evict=evict, names=names)
    if component_class.__module__.startswith("transformers"):
        model.tie_weights()  # filling replaced the embedding's parameter
    return model.to(device).eval().requires_grad_(False)  # .to: the buffers the constructor made


def model_on_meta(component_class, folder: Path, dtype: torch.dtype) -> tuple[torch.nn.Module, dict[str, str]]:
    """`component_class` built from `folder`'s configuration with its parameters on the meta device, and {stored
    name: model name} for the folder's tensors. A transformers model (the Gemma text encoder) is built with
    constructor buffers in `dtype`, as from_pretrained builds it, and its stored names are paired with the model's by
    transformers' own checkpoint conversion mapping: the published Gemma 3 files carry transformers-4 names
    (`language_model.model.*`), the model is built with transformers-5 ones (`model.language_model.*`)."""
    from accelerate import init_empty_weights

    stored = [tensor.name for tensor in stored_tensors(folder)]
    if not component_class.__module__.startswith("transformers"):
        with init_empty_weights(include_buffers=False):  # parameters on the meta device; constructor buffers real
            model = component_class.from_config(component_class.load_config(folder))
        return model, {name: name for name in stored}
    previous_dtype = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with init_empty_weights(include_buffers=False):
            model = component_class(component_class.config_class.from_pretrained(folder))
    finally:
        torch.set_default_dtype(previous_dtype)
    model.tie_weights()  # the output head shares the input embedding: one stored tensor fills both
    return model, checkpoint_names(model, stored)  # before `without`: the mapping is whole


def checkpoint_names(model: torch.nn.Module, stored: list[str]) -> dict[str, str]:
    """{stored name: model name} by transformers' checkpoint conversion mapping for `model` (the renames
    from_pretrained applies when loading)."""
    from transformers.conversion_mapping import get_model_conversion_mapping
    from transformers.core_model_loading import WeightRenaming, rename_source_key

    transforms = get_model_conversion_mapping(model)
    renamings = [transform for transform in transforms if isinstance(transform, WeightRenaming)]
    converters = [transform for transform in transforms if not isinstance(transform, WeightRenaming)]
    meta_state = dict(model.state_dict())
    return {name: rename_source_key(name, renamings, converters, model.base_model_prefix, meta_state)[0]
            for name in stored}


def paired(model: torch.nn.Module, folder: Path, tensors: list[StoredTensor], names: dict[str, str],
            without: tuple[str, ...]) -> tuple[torch.nn.Module, list[StoredTensor]]:
    """The model without the submodules in `without` (dotted paths, set to None) and the stored tensors it reads:
    those of the submodules left out are skipped. Raises WeightNamesMismatch, before any weight is read, unless
    the rest pair one to one with the model's parameters and persistent buffers."""
    def left_out(name: str) -> bool:
        return any(name == path or name.startswith(path + ".") for path in without)

    for path in without:
        owner, _, attribute = path.rpartition(".")
        setattr(model.get_submodule(owner), attribute, None)
    tensors = [tensor for tensor in tensors if not left_out(names[tensor.name])]
    expected = _expected_names(model)
    loaded = {names[tensor.name] for tensor in tensors}
    unknown, missing = sorted(loaded - expected), sorted(expected - loaded)
    if unknown or missing or len(loaded) != len(tensors):
        raise WeightNamesMismatch(f"{folder}: the weights do not match {type(model).__name__}: {len(missing)} missing "
                                  f"(e.g. {missing[:2]}), {len(unknown)} unexpected (e.g. {unknown[:2]})")
    return model, tensors


def fill_streamed(model: torch.nn.Module, tensors: list[StoredTensor], device: torch.device, dtype: torch.dtype,
                  *, on_block: Callable[[torch.nn.Module], object] | None = None, blocks: str = "transformer_blocks",
                  evict: bool = True, names: dict[str, str] | None = None) -> torch.nn.Module:
    """Fill a model built on the meta device from `tensors`, one at a time, on `device`. `names` maps stored
    names to the model's where they differ. `on_block(block)` runs for each module of the `blocks` list (a dotted
    path) once all of its weights have arrived; `evict` as in `read_tensors`."""
    names = names or {}
    waiting = Counter(block_of(names.get(tensor.name, tensor.name), blocks) for tensor in tensors)
    for stored_name, value in read_tensors(tensors, device, dtype, evict=evict):
        name = names.get(stored_name, stored_name)
        assign(model, name, value)
        block = block_of(name, blocks)
        waiting[block] -= 1
        if block is not None and waiting[block] == 0 and on_block is not None:
            on_block(model.get_submodule(block))
    return model


def _expected_names(model: torch.nn.Module) -> set[str]:
    """The names a complete checkpoint of `model` holds: its parameters (tied ones once) and persistent buffers."""
    return {name for name, _ in model.named_parameters()} | {
        name for name, _ in model.named_buffers() if is_persistent(model, name)}


def assign(model: torch.nn.Module, name: str, value: torch.Tensor) -> None:
    """Put `value` in `model` as its parameter (frozen) or buffer `name`, replacing what was there."""
    owner_name, _, attribute = name.rpartition(".")
    owner = model.get_submodule(owner_name)
    if attribute in owner._parameters:
        owner._parameters[attribute] = torch.nn.Parameter(value, requires_grad=False)
    else:
        owner._buffers[attribute] = value


def block_of(name: str, blocks: str) -> str | None:
    """The block (`blocks`.N) that the parameter `name` belongs to, or None."""
    if not name.startswith(blocks + "."):
        return None
    return f"{blocks}.{name[len(blocks) + 1:].split('.')[0]}"


def is_persistent(model: torch.nn.Module, name: str) -> bool:
    """Whether buffer `name` of `model` is saved with its weights (not one its constructor makes)."""
    owner_name, _, attribute = name.rpartition(".")
    return attribute not in model.get_submodule(owner_name)._non_persistent_buffers_set
