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

import os
import queue
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch

from ltx2gen.files import safetensors_header

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


def stored_tensors(folder: Path) -> list[StoredTensor]:
    """Every tensor of the folder's safetensors files, in file order (from each file's header alone)."""
    tensors = []
    for file in sorted(Path(folder).glob("*.safetensors")):
        header, data_start = safetensors_header(file)
        header.pop("__metadata__", None)
        for name, entry in header.items():
            start, end = entry["data_offsets"]
            tensors.append(StoredTensor(name, file, data_start + start, end - start, DTYPES[entry["dtype"]],
                                        tuple(entry["shape"])))
    return sorted(tensors, key=lambda tensor: (tensor.file, tensor.offset))


def read_tensors(tensors: list[StoredTensor], device: torch.device, dtype: torch.dtype, evict: bool = True,
                 chunk_bytes: int = READ_CHUNK_BYTES) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, tensor on `device`) for each stored tensor; floating-point tensors are cast to `dtype`. With `evict`,
    each file range is dropped from the page cache once read (no root needed).

    A reader thread reads ahead while the caller copies to the device and uses each tensor (quantizes it, for FP8),
    so the load takes about as long as the disk's read, not the read plus the copies. It reads in pieces of at most
    `chunk_bytes` into `READ_BUFFERS` reused host buffers (pinned for a GPU, so each copy is a direct transfer): the
    host side stays small even for Gemma's 1.9 GiB embedding."""
    size = min(chunk_bytes, max((tensor.nbytes for tensor in tensors), default=0))
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
            raw = torch.empty(tensor.nbytes, dtype=torch.uint8, device=device)
            for start, length in pieces(tensor):
                buffer, error = filled.get()
                if error is not None:
                    raise error
                raw[start:start + length].copy_(buffer[:length])  # synchronous: the buffer is free once it returns
                free.put(buffer)
            value = raw.view(tensor.dtype).view(tensor.shape)
            yield tensor.name, value.to(dtype) if value.is_floating_point() else value
    finally:
        stopping.set()
        free.put(None)  # wakes a reader waiting for a buffer
        reader.join()


def load_streamed(component_class, folder: Path, device: torch.device, dtype: torch.dtype,
                  on_block: Callable[[torch.nn.Module], object] | None = None, blocks: str = "transformer_blocks",
                  evict: bool = True, without: tuple[str, ...] = ()):
    """The diffusers `component_class` built without weights, then filled tensor by tensor from `folder` on
    `device` (`fill_streamed`). The top-level submodules named in `without` are left out (set to None): their
    weights are neither read nor held."""
    from accelerate import init_empty_weights

    with init_empty_weights(include_buffers=False):  # parameters on the meta device; constructor buffers real
        model = component_class.from_config(component_class.load_config(folder))
    for name in without:
        setattr(model, name, None)
    tensors = [tensor for tensor in stored_tensors(folder) if tensor.name.split(".")[0] not in without]
    expected = _expected_names(model)
    unknown = sorted({tensor.name for tensor in tensors} - expected)
    missing = sorted(expected - {tensor.name for tensor in tensors})
    if unknown or missing:
        raise WeightNamesMismatch(f"{folder}: the weights do not match {component_class.__name__}: "
                                  f"{len(missing)} missing (e.g. {missing[:2]}), {len(unknown)} unexpected (e.g. {unknown[:2]})")
    model = fill_streamed(model, tensors, device, dtype, on_block, blocks, evict)
    return model.to(device).eval().requires_grad_(False)  # .to: the buffers the constructor made


def load_transformers_streamed(component_class, folder: Path, device: torch.device, dtype: torch.dtype,
                               on_block: Callable[[torch.nn.Module], object] | None = None, blocks: str = "",
                               evict: bool = True):
    """The transformers `component_class` (the Gemma text encoder) built without weights and filled like
    `load_streamed`, or None when the stored names do not match the model's one to one (`match_names`)."""
    from accelerate import init_empty_weights

    previous_dtype = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # as from_pretrained builds it: constructor buffers in the model's dtype
    try:
        with init_empty_weights(include_buffers=False):
            model = component_class(component_class.config_class.from_pretrained(folder))
    finally:
        torch.set_default_dtype(previous_dtype)
    model.tie_weights()  # the output head shares the input embedding: one stored tensor fills both
    tensors = stored_tensors(folder)
    names = match_names([tensor.name for tensor in tensors], _expected_names(model))
    if names is None:
        return None
    model = fill_streamed(model, tensors, device, dtype, on_block, blocks, evict, names)
    model.tie_weights()  # filling replaced the embedding's parameter
    return model.to(device).eval().requires_grad_(False)


def match_names(stored: list[str], expected: set[str]) -> dict[str, str] | None:
    """{stored name: model name} for names equal once their `model` path segments are dropped (transformers
    saves Gemma's layers as `language_model.model.layers.N`, and builds them as `model.language_model.layers.N`);
    None unless that pairs every stored name with a different expected one and leaves none out."""
    def bare(name: str) -> str:
        return ".".join(part for part in name.split(".") if part != "model")

    by_bare = {bare(name): name for name in expected}
    names = {name: by_bare.get(bare(name)) for name in stored}
    paired = set(names.values())
    if len(by_bare) != len(expected) or len(paired) != len(names) or paired != expected:
        return None
    return names


def fill_streamed(model: torch.nn.Module, tensors: list[StoredTensor], device: torch.device, dtype: torch.dtype,
                  on_block: Callable[[torch.nn.Module], object] | None = None, blocks: str = "transformer_blocks",
                  evict: bool = True, names: dict[str, str] | None = None) -> torch.nn.Module:
    """Fill a model built on the meta device from `tensors`, one at a time, on `device`. `names` maps stored
    names to the model's where they differ. `on_block(block)` runs for each module of the `blocks` list (a dotted
    path) once all of its weights have arrived; `evict` as in `read_tensors`."""
    names = names or {}
    waiting = Counter(_block_of(names.get(tensor.name, tensor.name), blocks) for tensor in tensors)
    for stored_name, value in read_tensors(tensors, device, dtype, evict):
        name = names.get(stored_name, stored_name)
        owner_name, _, attribute = name.rpartition(".")
        owner = model.get_submodule(owner_name)
        if attribute in owner._parameters:
            owner._parameters[attribute] = torch.nn.Parameter(value, requires_grad=False)
        else:
            owner._buffers[attribute] = value
        block = _block_of(name, blocks)
        waiting[block] -= 1
        if block is not None and waiting[block] == 0 and on_block is not None:
            on_block(model.get_submodule(block))
    return model


def _expected_names(model: torch.nn.Module) -> set[str]:
    """The names a complete checkpoint of `model` holds: its parameters (tied ones once) and persistent buffers."""
    return {name for name, _ in model.named_parameters()} | {
        name for name, _ in model.named_buffers() if _is_persistent(model, name)}


def _block_of(name: str, blocks: str) -> str | None:
    """The block (`blocks`.N) that the parameter `name` belongs to, or None."""
    if not name.startswith(blocks + "."):
        return None
    return f"{blocks}.{name[len(blocks) + 1:].split('.')[0]}"


def _is_persistent(model: torch.nn.Module, name: str) -> bool:
    owner_name, _, attribute = name.rpartition(".")
    return attribute not in model.get_submodule(owner_name)._non_persistent_buffers_set
