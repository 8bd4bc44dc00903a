"""bench/ab_outputs.py's hashing and --compare on handmade files: what is volatile is dropped and nothing else, a
safetensors file hashes by its tensors and metadata, and --compare names each differing artifact."""

import importlib.util
import json
import struct

from conftest import ROOT

spec = importlib.util.spec_from_file_location("ab_outputs", ROOT / "bench" / "ab_outputs.py")
ab_outputs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ab_outputs)

PLACES = {"/runs/a": "<OUT>", "/models/tiny": "<MODEL>"}


def sidecar(**changes):
    record = {"output": "/runs/a/demo/demo.mp4", "created": "2026-01-02T03:04:05+00:00", "seed": 42,
              "model": "/models/tiny", "audio_input": {"path": "/runs/a/inputs/tone.wav", "seconds": 1.3},
              "stage_seconds": {"text": 0.7}, "versions": {"torch": "2.13"},
              "stages": [{"name": "text", "seconds": 0.7, "rss_gib": 0.4, "load_seconds": {"vae": 0.1}}],
              "windows": [{"index": 0, "seed": 42, "seconds": 1.1}]}
    return dict(record, **changes)


def test_volatile_keys_are_dropped_and_content_stays():
    stable = ab_outputs.stable_json(sidecar(), PLACES)
    assert stable == {"output": "<OUT>/demo/demo.mp4", "seed": 42, "model": "<MODEL>",
                      "audio_input": {"path": "<OUT>/inputs/tone.wav", "seconds": 1.3},  # the input's length stays
                      "stages": [{"name": "text"}], "windows": [{"index": 0, "seed": 42}]}
    again = sidecar(created="2027-01-01T00:00:00+00:00", stage_seconds={"text": 9.0},
                    stages=[{"name": "text", "seconds": 3.0, "rss_gib": 2.0, "load_seconds": {"vae": 1.0}}])
    assert ab_outputs.json_digest(again, PLACES) == ab_outputs.json_digest(sidecar(), PLACES)
    for changed in (sidecar(seed=43), sidecar(audio_input={"path": "/runs/a/inputs/tone.wav", "seconds": 1.4}),
                    sidecar(stages=[{"name": "video", "seconds": 0.7}]), sidecar(output="/elsewhere/demo.mp4")):
        assert ab_outputs.json_digest(changed, PLACES) != ab_outputs.json_digest(sidecar(), PLACES)


def write_safetensors(path, metadata: dict, tensors: dict[str, tuple[str, list, bytes]]):
    header, data = {"__metadata__": metadata}, b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    encoded = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + data)


def test_a_safetensors_file_hashes_each_tensor_and_its_metadata_without_what_is_volatile(tmp_path):
    video = ("F32", [1, 2], struct.pack("<2f", 1.0, 2.0))
    meta = {"format": "ltx2gen-latents/1", "ltx2gen": json.dumps(sidecar())}
    write_safetensors(tmp_path / "a.safetensors", meta, {"video_latents": video})
    write_safetensors(tmp_path / "b.safetensors", {**meta, "ltx2gen": json.dumps(sidecar(created="later"))},
                      {"video_latents": video})
    write_safetensors(tmp_path / "c.safetensors", meta, {"video_latents": ("F32", [2, 1], video[2])})
    a, b, c = (ab_outputs.safetensors_hashes(tmp_path / f"{name}.safetensors", PLACES) for name in "abc")
    assert set(a) == {"metadata", "video_latents"} and a == b
    assert c["video_latents"] != a["video_latents"] and c["metadata"] == a["metadata"]  # same bytes, other shape


def test_compare_names_each_differing_artifact_and_fails(tmp_path, capsys):
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    first.write_text(json.dumps({"demo": {"demo.mp4#video": "1", "demo.mp4#audio": "2"}, "image": {"image.json": "3"}}))
    second.write_text(json.dumps({"demo": {"demo.mp4#video": "1", "demo.mp4#audio": "9"}}))
    assert ab_outputs.compare(first, second) == 1
    printed = capsys.readouterr().out.splitlines()
    assert printed == ["differs: demo demo.mp4#audio: 2 vs 9", "differs: image image.json: 3 vs missing",
                       "2 of 3 artifacts differ"]
    assert ab_outputs.compare(first, first) == 0
    assert capsys.readouterr().out.strip() == "all 3 artifacts are identical"
