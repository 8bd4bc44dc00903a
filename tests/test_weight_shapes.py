"""A model folder made for another pipeline, a component of another class and weight files whose headers do not fit
the model their configuration builds: each refused in planning (status 2, one line naming the file and what is wrong)
by generate.py and decode_latents.py alike, before any weight is read."""

import json
import math
import struct
from pathlib import Path

import pytest
import torch
from test_faults import SMALL, assert_rejected, call

import decode_latents
from conftest import linked_copy, run_generate
from ltx2gen import memory
from ltx2gen.latents import save_latents

LATENTS_META = {"fps": "24", "width": 64, "height": 64, "num_frames": 9, "seed": 7, "prompt": "a fox",
                "model_version": "2.0", "sample_rate": 24000}


@pytest.fixture
def loads():
    """The models loaded while the test runs."""
    seen = []

    def listener(event, name, obj):
        seen.append(name) if event == "load" else None

    memory.add_listener(listener)
    yield seen
    memory.remove_listener(listener)


def latents_of(model: Path, folder: Path) -> Path:
    """A latents file of the small clip's shapes for `model` (what decode_latents.py reads before the model)."""
    generator = torch.Generator().manual_seed(0)
    return save_latents(folder / "clip.latents.safetensors", torch.randn(1, 128, 2, 2, 2, generator=generator),
                        torch.randn(1, 8, 9, 16, generator=generator), {**LATENTS_META, "model": str(model)})


def refused_by_both(model: Path, tmp_path: Path, loads: list, *named: str) -> None:
    """generate.py and decode_latents.py given `model`: status 2, one line naming each of `named`, no model loaded,
    nothing written."""
    out = tmp_path / "out" / "c.mp4"
    status, _, err = call(run_generate, model, out, clip=SMALL)
    assert_rejected(status, err, "generate.py", *named)
    status, _, err = call(decode_latents.main, ["--input", str(latents_of(model, tmp_path)), "--output", str(out)])
    assert_rejected(status, err, "decode_latents.py", *named)
    assert loads == [] and not (tmp_path / "out").exists()


def with_index(tiny_model: Path, folder: Path, **changes) -> Path:
    """tiny_model as symbolic links, with its model_index.json changed by `changes`."""
    model = linked_copy(tiny_model, folder)
    index = json.loads((tiny_model / "model_index.json").read_text())
    (model / "model_index.json").unlink()
    (model / "model_index.json").write_text(json.dumps({**index, **changes}))
    return model


@pytest.mark.parametrize("changes, named", [
    ({"_class_name": "FluxPipeline"}, "is for a FluxPipeline, not an LTX-2 pipeline"),
    ({"vae": ["diffusers", "AutoencoderKLWan"]}, "makes its vae a diffusers.AutoencoderKLWan; LTX-2's vae is a "
                                                 "diffusers.AutoencoderKLLTX2Video"),
    ({"vocoder": ["ltx2", "NoSuchVocoder"]}, "makes its vocoder a ltx2.NoSuchVocoder"),
    ({"vocoder": [None, None]}, "lists no vocoder, which the run needs"),
])
def test_a_model_index_of_another_pipeline_or_component_class_is_refused_up_front(tiny_model, tmp_path, loads,
                                                                                  changes, named):
    model = with_index(tiny_model, tmp_path / "model", **changes)
    refused_by_both(model, tmp_path, loads, str(model / "model_index.json"), named)


def rewritten(source: Path, target: Path, name: str, shape: list[int]) -> Path:
    """`source`'s safetensors file with tensor `name`'s header entry promising `shape` (its data placed after the
    rest; the file extended, sparsely, to hold it), everything else as stored."""
    data = source.read_bytes()
    size = struct.unpack("<Q", data[:8])[0]
    header, body = json.loads(data[8:8 + size]), data[8 + size:]
    itemsize = {"F32": 4, "BF16": 2, "F16": 2}[header[name]["dtype"]]
    end = max(entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__")
    header[name] = {**header[name], "shape": shape, "data_offsets": [end, end + math.prod(shape) * itemsize]}
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    target.write_bytes(struct.pack("<Q", len(encoded)) + encoded + body)
    with target.open("r+b") as handle:
        handle.truncate(8 + len(encoded) + end + math.prod(shape) * itemsize)
    return target


def with_weights(tiny_model: Path, folder: Path, component: str, change) -> tuple[Path, Path, str]:
    """tiny_model as symbolic links, but for `component`'s first weight file, which `change(file, header)` rewrites
    (from the tensor it picks: its name); the model, the rewritten file and the tensor's name."""
    from ltx2gen.files import safetensors_header

    model = linked_copy(tiny_model, folder)
    (model / component).unlink()
    linked_copy(tiny_model / component, model / component)
    file = sorted((model / component).glob("*.safetensors"))[0]
    header, _ = safetensors_header(file)
    name = max((key for key in header if key != "__metadata__"), key=lambda key: math.prod(header[key]["shape"]))
    source = file.resolve()
    file.unlink()
    change(source, file, name, header[name]["shape"])
    return model, file, name


def test_a_weight_file_promising_a_tensor_far_larger_than_its_configuration_allows_is_refused_unread(
        tiny_model, tmp_path, loads):
    huge = [32768, 32768]  # 2 GiB in bfloat16, where the configuration allows a few kilobytes
    model, file, name = with_weights(tiny_model, tmp_path / "model", "vae",
                                     lambda source, target, name, shape: rewritten(source, target, name, huge))
    assert file.stat().st_size > 2 << 30 and file.stat().st_blocks * 512 < 64 << 20  # sparse: never written
    refused_by_both(model, tmp_path, loads, str(file), f"{name} of shape {huge}", "AutoencoderKLLTX2Video",
                    "does not belong to this model")


def test_a_tensor_stored_in_another_shape_than_the_models_is_refused_naming_both(tiny_model, tmp_path, loads):
    def transposed(source, target, name, shape):
        rewritten(source, target, name, list(reversed(shape)) if len(set(shape)) > 1 else [*shape, 1])

    model, file, name = with_weights(tiny_model, tmp_path / "model", "audio_vae", transposed)
    refused_by_both(model, tmp_path, loads, str(file), name, "where the AutoencoderKLLTX2Audio", "has [")


def test_a_header_whose_byte_range_does_not_hold_its_shape_is_damaged(tiny_model, tmp_path, loads):
    def short_range(source, target, name, shape):
        rewritten(source, target, name, shape)
        data = bytearray(target.read_bytes())
        size = struct.unpack("<Q", data[:8])[0]
        header = json.loads(data[8:8 + size])
        start, end = header[name]["data_offsets"]
        header[name]["data_offsets"] = [start, end - 4]
        encoded = json.dumps(header).encode().ljust(size)
        target.write_bytes(data[:8] + encoded + data[8 + size:])

    model, file, name = with_weights(tiny_model, tmp_path / "model", "vocoder", short_range)
    refused_by_both(model, tmp_path, loads, str(file), f"gives {name} the shape", "is damaged")
