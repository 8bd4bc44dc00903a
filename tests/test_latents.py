import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import ROOT
from ltx2gen.latents import LatentsFileError, load_latents, save_latents

META = {"model": "some/model", "fps": "24000/1001", "width": 96, "height": 64, "num_frames": 17, "seed": 1,
        "prompt": "a fox", "sample_rate": 24000}


def sample(dtype=torch.float32):
    generator = torch.Generator().manual_seed(0)
    return (torch.randn(1, 4, 3, 2, 3, generator=generator).to(dtype),
            torch.randn(1, 2, 18, 2, generator=generator).to(dtype))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_round_trip_is_exact_and_keeps_metadata(tmp_path, dtype):
    video, audio = sample(dtype)
    path = save_latents(tmp_path / "clip.latents.safetensors", video, audio, META)
    loaded = load_latents(path)
    assert loaded.video.dtype == dtype and torch.equal(loaded.video, video) and torch.equal(loaded.audio, audio)
    assert loaded.metadata == META
    assert [p.name for p in tmp_path.iterdir()] == ["clip.latents.safetensors"]


def test_older_npz_form_is_read(tmp_path):
    video, _ = sample()
    np.savez(tmp_path / "old.npz", latents=video.numpy(), model="some/model", fps=24, width=96, height=64,
             num_frames=17)
    loaded = load_latents(tmp_path / "old.npz")
    assert torch.equal(loaded.video, video) and loaded.audio is None and loaded.metadata["fps"] == 24


def test_truncated_corrupt_and_wrong_shape_files_are_refused(tmp_path):
    video, audio = sample()
    good = save_latents(tmp_path / "good.safetensors", video, audio, META)
    (tmp_path / "truncated.safetensors").write_bytes(good.read_bytes()[:200])
    (tmp_path / "garbage.safetensors").write_bytes(b"\x00" * 64)
    save_latents(tmp_path / "shape.safetensors", video[:, :, :2], audio, META)
    for name, message in [("truncated", "not a readable latents file"), ("garbage", "not a readable latents file"),
                          ("shape", r"need \(3, 2, 3\)"), ("missing", "no such latents file")]:
        with pytest.raises(LatentsFileError, match=message):
            load_latents(tmp_path / f"{name}.safetensors")


@pytest.mark.parametrize("content,message", [
    (None, "no such latents file"),
    (b"\x07" * 100, "not a readable latents file"),
])
def test_decode_latents_cli_refuses_bad_files_with_status_2(tmp_path, content, message):
    source = tmp_path / "in.safetensors"
    if content is not None:
        source.write_bytes(content)
    result = subprocess.run([sys.executable, str(ROOT / "decode_latents.py"), "--input", str(source),
                             "--output", str(tmp_path / "out.mp4")], capture_output=True, text=True)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out.mp4").exists()
