"""Weight files in a published layout: the tensor names, on-disk dtypes and shard counts a `layout.json` gives."""

from __future__ import annotations

import json
from pathlib import Path

import torch


def stored_dtype(spec: dict, name: str) -> torch.dtype:
    """The on-disk dtype of tensor `name` under a layout weight specification."""
    by_name = {"BF16": torch.bfloat16, "F32": torch.float32, "F16": torch.float16}
    for dtype, patterns in spec.get("dtype_overrides", {}).items():
        if any(pattern in name for pattern in patterns):
            return by_name[dtype]
    return by_name[spec["dtype"]]


def published_names(tensors: dict[str, torch.Tensor], spec: dict, prefix: str = "") -> dict[str, torch.Tensor]:
    """Module tensor names as the published files store them (`name_map` prefixes, `omitted` tensors dropped)."""
    renamed = {}
    for name, tensor in tensors.items():
        if name in spec.get("omitted", ()):
            continue
        for module_prefix, stored_prefix in spec.get("name_map", {}).items():
            if name.startswith(module_prefix):
                name = stored_prefix + name[len(module_prefix):]
                break
        renamed[prefix + name] = tensor
    return renamed


def _shard_groups(sizes: list[int], shards: int) -> list[list[int]]:
    """Consecutive tensors split into exactly `shards` non-empty groups of about equal bytes."""
    if len(sizes) < shards:
        raise ValueError(f"{len(sizes)} tensors cannot fill {shards} shards")
    total, done, shard = max(sum(sizes), 1), 0, 0
    groups: list[list[int]] = [[] for _ in range(shards)]
    for i, size in enumerate(sizes):
        by_bytes = min(done * shards // total, shards - 1)
        if groups[shard] and by_bytes > shard:
            shard += 1
        shard = max(shard, shards - (len(sizes) - i))  # enough tensors left for every later shard
        groups[shard].append(i)
        done += size
    return groups


def write_weights(folder: Path, parts: list[tuple[dict[str, torch.Tensor], dict]], spec: dict) -> None:
    """Write named tensors as one weight file set of a layout (`stem`, `shards`, `index`): `parts` are (tensors, spec
    giving their dtype) in file order. Each shard is copied to the CPU in its stored dtype only while it is written."""
    from safetensors.torch import save_file

    names, dtypes, sources = [], [], []
    for tensors, part_spec in parts:
        for name, tensor in tensors.items():
            names.append(name)
            dtypes.append(stored_dtype(part_spec, name))
            sources.append(tensor)
    sizes = [source.numel() * dtype.itemsize for source, dtype in zip(sources, dtypes)]
    shards, weight_map = spec["shards"], {}
    folder.mkdir(parents=True, exist_ok=True)
    for number, group in enumerate(_shard_groups(sizes, shards), 1):
        stem = spec["stem"]
        file = f"{stem}.safetensors" if shards == 1 else f"{stem}-{number:05d}-of-{shards:05d}.safetensors"
        shard = {names[i]: sources[i].detach().to(device="cpu", dtype=dtypes[i]).contiguous() for i in group}
        save_file(shard, folder / file, metadata={"format": "pt"})
        weight_map.update({name: file for name in shard})
        del shard
    if spec.get("index"):
        index = {"metadata": {"total_size": sum(sizes)}, "weight_map": dict(sorted(weight_map.items()))}
        (folder / spec["index"]).write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")


def write_json(path: Path, value: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n")

