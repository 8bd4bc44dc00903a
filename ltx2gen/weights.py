"""Model weights read from safetensors files one tensor at a time, straight to the device.

`from_pretrained` memory-maps each weight file, and every page it touches counts in the process's resident memory
until the file is closed: loading the 38 GB transformer onto the GPU held 9 GiB of host memory at once (one
shard), on top of the GPU copy. On unified memory (Jetson Thor) host and GPU memory are one pool. Here each tensor
is read with plain file reads into one reused host buffer, copied to the device, and its file range dropped from
the page cache, so the host side holds one tensor at a time. `on_block` sees each transformer block as soon as all
of its weights are on the device: quantizing there means the device never holds the whole bf16 transformer.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch

from ltx2gen.files import safetensors_header

DTYPES = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32, "F64": torch.float64,
          "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
          "BOOL": torch.bool, "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2}


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


def read_tensors(tensors: list[StoredTensor], device: torch.device, dtype: torch.dtype, evict: bool = True
                 ) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, tensor on `device`) for each stored tensor; floating-point tensors are cast to `dtype`. With `evict`,
    each file range is dropped from the page cache once copied (no root needed)."""
    buffer = torch.empty(max((tensor.nbytes for tensor in tensors), default=0), dtype=torch.uint8)
    handles: dict[Path, object] = {}
    try:
        for tensor in tensors:
            if tensor.file not in handles:
                handles[tensor.file] = open(tensor.file, "rb", buffering=0)
            handle = handles[tensor.file]
            handle.seek(tensor.offset)
            view = buffer[:tensor.nbytes]
            if handle.readinto(memoryview(view.numpy())) != tensor.nbytes:
                raise ValueError(f"{tensor.file}: truncated at {tensor.name}")
            value = view.view(tensor.dtype).view(tensor.shape)
            target = dtype if value.is_floating_point() else value.dtype
            # copy=True: on the CPU the result must not alias the reused buffer
            yield tensor.name, value.to(device=device, dtype=target, copy=True)
            if evict:
                os.posix_fadvise(handle.fileno(), tensor.offset, tensor.nbytes, os.POSIX_FADV_DONTNEED)
    finally:
        for handle in handles.values():
            handle.close()


def load_streamed(component_class, folder: Path, device: torch.device, dtype: torch.dtype,
                  on_block: Callable[[torch.nn.Module], object] | None = None, blocks: str = "transformer_blocks",
                  evict: bool = True):
    """`component_class` built without weights, then filled tensor by tensor from `folder` on `device`.
    `on_block(block)` runs for each module of the `blocks` list once all of its weights have arrived; `evict` as
    in `read_tensors`."""
    from accelerate import init_empty_weights

    with init_empty_weights(include_buffers=False):  # parameters on the meta device; constructor buffers real
        model = component_class.from_config(component_class.load_config(folder))
    expected = {name for name, _ in model.named_parameters()} | {
        name for name, _ in model.named_buffers() if _is_persistent(model, name)}
    tensors = stored_tensors(folder)
    unknown = sorted({tensor.name for tensor in tensors} - expected)
    missing = sorted(expected - {tensor.name for tensor in tensors})
    if unknown or missing:
        raise ValueError(f"{folder}: the weights do not match {component_class.__name__}: "
                         f"{len(missing)} missing (e.g. {missing[:2]}), {len(unknown)} unexpected (e.g. {unknown[:2]})")
    waiting = Counter(_block_of(tensor.name, blocks) for tensor in tensors)
    for name, value in read_tensors(tensors, device, dtype, evict):
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
    return model.to(device).eval().requires_grad_(False)  # .to: the buffers the constructor made


def _block_of(name: str, blocks: str) -> str | None:
    parts = name.split(".")
    return ".".join(parts[:2]) if parts[0] == blocks else None


def _is_persistent(model: torch.nn.Module, name: str) -> bool:
    owner_name, _, attribute = name.rpartition(".")
    return attribute not in model.get_submodule(owner_name)._non_persistent_buffers_set
