"""bench/loading_gpu.py runs the same code on the tiny model on CPU, so the loading benchmark never rots."""

import json
import subprocess
import sys

from conftest import ROOT


def test_loading_smoke_run_measures_the_disk_both_text_encoder_precisions_and_the_video_decoder(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "loading_gpu.py"), "--smoke", "--out",
                             str(tmp_path), "--components", "text_encoder", "vae"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads((tmp_path / "loading.json").read_text())
    disk, bf16, fp8, vae_disk, *vae_runs = record["results"]
    assert vae_disk["run"] == "disk" and vae_disk["component"] == "vae"
    assert [run["run"] for run in vae_runs] == ["vae_whole", "vae_decoder", "vae_decoder_prefetched"]
    assert all(run["load_s"] > 0 for run in vae_runs)
    assert (disk["run"], bf16["run"], fp8["run"]) == ("disk", "text_bf16", "text_fp8")
    assert disk["bytes"] > 0 and bf16["load_s"] > 0 and bf16["forward_s"] > 0
    assert 0 < fp8["relative_error"] < 0.2  # float8 weights: close to bf16, not equal
    assert "| text_fp8 |" in (tmp_path / "loading.md").read_text()
    assert not (tmp_path / "work" / "text_encoder").exists()  # the weights are deleted after measuring
    assert not (tmp_path / "work" / "vae").exists()
