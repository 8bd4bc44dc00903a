"""bench/transformer_gpu.py runs the same code on the tiny transformer on CPU, so the GPU benchmark never rots."""

import json
import subprocess
import sys

from conftest import ROOT


def test_transformer_benchmark_smoke_run_reports_every_mode(tmp_path):
    out = tmp_path / "transformer.json"
    modes = ["stock", "bf16", "fp8_weight", "group", "group_leaf", "bf16_nag"]
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "transformer_gpu.py"), "--preset", "tiny",
                             "--device", "cpu", "--size", "96x64x17", "--repeats", "1", "--modes", *modes,
                             "--out", str(out)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads(out.read_text())
    by_mode = {entry["mode"]: entry for entry in record["modes"]}
    assert list(by_mode) == modes and record["video_tokens"] == 3 * 2 * 3
    assert by_mode["stock"]["reference"] and all(entry["step_s"] > 0 for entry in by_mode.values())
    assert by_mode["bf16"]["relative_error"] < 1e-2  # token-chunked feed-forward: the same computation
    assert by_mode["group"]["relative_error"] < 1e-2  # streamed blocks: the same weights
    assert by_mode["group_leaf"]["relative_error"] < 1e-2  # streamed layers: the same weights
    assert 0 < by_mode["fp8_weight"]["relative_error"] < 0.1
    assert by_mode["bf16_nag"]["settings"]["nag"]["scale"] == 8.0 and by_mode["bf16_nag"]["overhead_of"] == "bf16"
