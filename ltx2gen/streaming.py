"""Offloading to the weight files: a model whose blocks are read from its safetensors files each time they run.

For a machine whose host memory cannot hold even the FP8 transformer (a 12 GB card in a 16 GB desktop), the
transformer's blocks live nowhere but in their files. Everything outside the blocks stays on the device; each block's
tensors are read when it is called, cast (and quantized, for FP8) on the device, and dropped when it returns, while a
reader thread reads the next block into a pinned host buffer. The kernel's page cache keeps what it can of the files
between steps (the files are never evicted here), so a host with some memory to spare reads less from disk. Host
memory holds the process and two blocks' bytes; the device holds the rest of the model, one block and the
activations.
"""

from __future__ import annotations

from collections import defaultdict
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import torch

from ltx2gen.weights import StoredTensor, assign, block_of, fill_streamed, model_on_meta, paired, stored_tensors


class BlocksFromFiles:
    """The forward hooks that read each block of `model` (module paths in `blocks`, in calling order) from its
    stored tensors when it runs and drop it when it returns. `names` maps stored names to the model's."""

    def __init__(self, model: torch.nn.Module, blocks: dict[str, list[StoredTensor]], device: torch.device,
                 dtype: torch.dtype, names: dict[str, str], on_block: Callable[[torch.nn.Module], object] | None):
        self.model, self.blocks, self.device, self.dtype = model, blocks, device, dtype
        self.names, self.on_block = names, on_block
        self.order = list(blocks)
        self.reader = ThreadPoolExecutor(1, thread_name_prefix="block-reader")
        self.ahead: dict[str, Future] = {}
        self.shapes = {names.get(tensor.name, tensor.name): (tensor.shape, tensor.dtype)
                       for tensors in blocks.values() for tensor in tensors}
        for index, name in enumerate(self.order):
            block = model.get_submodule(name)
            block.register_forward_pre_hook(lambda module, args, index=index: self.load(index, module))
            block.register_forward_hook(lambda module, args, output, index=index: self.drop(index, module))

    def read(self, block: str) -> list[tuple[str, torch.Tensor]]:
        """The block's stored bytes in host memory (pinned for a GPU), one buffer a tensor."""
        pinned = self.device.type == "cuda"
        values, handles = [], {}
        try:
            for tensor in self.blocks[block]:
                handle = handles.get(tensor.file) or handles.setdefault(tensor.file, open(tensor.file, "rb"))
                raw = torch.empty(tensor.nbytes, dtype=torch.uint8, pin_memory=pinned)
                handle.seek(tensor.offset)
                if handle.readinto(memoryview(raw.numpy())) != tensor.nbytes:
                    raise ValueError(f"{tensor.file}: truncated at {tensor.name}")
                values.append((tensor.name, raw.view(tensor.dtype).view(tensor.shape)))
        finally:
            for handle in handles.values():
                handle.close()
        return values

    def load(self, index: int, module: torch.nn.Module) -> None:
        name = self.order[index]
        future = self.ahead.pop(name, None) or self.reader.submit(self.read, name)
        following = self.order[(index + 1) % len(self.order)]
        host = future.result()
        self.ahead[following] = self.reader.submit(self.read, following)  # read while this block computes
        for stored_name, value in host:
            target = value.to(self.device, non_blocking=True)
            target = target.to(self.dtype) if target.is_floating_point() else target
            assign(self.model, self.names.get(stored_name, stored_name), target)
        if self.on_block is not None:
            self.on_block(module)

    def drop(self, index: int, module: torch.nn.Module) -> None:
        prefix = self.order[index] + "."
        for name, (shape, dtype) in self.shapes.items():
            if name.startswith(prefix):
                assign(self.model, name, torch.empty(shape, dtype=self.dtype if dtype.is_floating_point else dtype,
                                                      device="meta"))

    def close(self) -> None:
        self.reader.shutdown(wait=True, cancel_futures=True)


def from_files(component_class, folder: Path, device: torch.device, dtype: torch.dtype, *, blocks: str,
               on_block: Callable[[torch.nn.Module], object] | None = None, without: tuple[str, ...] = ()):
    """The model of `component_class` (a diffusers model, or a transformers one such as Gemma) with everything but
    the modules of the `blocks` list on `device`, and those read from `folder`'s files each time they run
    (`BlocksFromFiles`, kept as the model's `blocks_from_files`)."""
    model, names = model_on_meta(component_class, folder, dtype)
    model, tensors = paired(model, folder, stored_tensors(folder), names, without)
    by_block: dict[str, list[StoredTensor]] = defaultdict(list)
    rest = []
    for tensor in tensors:
        block = block_of(names[tensor.name], blocks)
        (by_block[block] if block else rest).append(tensor)
    model = fill_streamed(model, rest, device, dtype, blocks=blocks, names=names, evict=False)
    for owner in model.modules():  # the buffers the constructor made, outside and inside the blocks
        for name, buffer in owner._buffers.items():
            if buffer is not None and buffer.device.type != "meta":
                owner._buffers[name] = buffer.to(device)
    order = sorted(by_block, key=lambda block: int(block.rsplit(".", 1)[1]))
    model.blocks_from_files = BlocksFromFiles(model, {block: by_block[block] for block in order}, device, dtype,
                                              names, on_block)
    return model.eval().requires_grad_(False)
