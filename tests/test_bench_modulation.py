"""bench/modulation_memory.py runs the same code on the tiny transformer on CPU, so the GPU measurement never rots."""

import json
import subprocess
import sys

from conftest import ROOT


def test_modulation_memory_smoke_run_measures_both_modes_and_finds_the_same_numbers(tmp_path):
    out = tmp_path / "memory.json"
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "modulation_memory.py"), "--preset", "tiny",
                             "--repo", "diffusers/LTX-2.3-Distilled-Diffusers", "--device", "cpu", "--blocks", "2",
                             "--latent-frames", "3", "--latent-height", "2", "--latent-width", "3", "--out", str(out)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads(out.read_text())
    assert [entry["mode"] for entry in record["results"]] == ["stock", "per_run"]
    assert all(entry["video_tokens"] == 18 and entry["peak_rise_mib"] >= 0 for entry in record["results"])
    assert record["max_difference"] == {"video": 0.0, "audio": 0.0}
