"""bench/compare_gpu.py runs the same code on the tiny model on CPU, so the GPU comparison never rots."""

import json
import subprocess
import sys

from conftest import ROOT
from ltx2gen.video import probe


def test_comparison_smoke_run_measures_every_contender(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "compare_gpu.py"), "--smoke", "--out",
                             str(tmp_path)], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads((tmp_path / "compare.json").read_text())
    by_name = {entry["contender"]: entry for entry in record["results"]}
    assert [(entry["contender"], entry["size"]) for entry in record["results"]] == [
        ("ours", "96x64x17"), ("seed", "96x64x17"), ("stock", "96x64x17"), ("ours_fp8", "96x64x17"),
        ("decode", "96x64x17"), ("decode", "96x64x33")]
    for entry in record["results"]:
        frames = int(entry["size"].split("x")[-1])
        assert entry["transformer_calls"] == (0 if entry["contender"] == "decode" else 8)  # 8 distilled steps
        assert len(entry["transformer_call_seconds"]) == entry["transformer_calls"]  # each call timed
        assert probe(entry["output"]).frames == frames
        sampled = max(gpu + rss for _, gpu, rss in entry["samples"])  # a subsample of what the peak came from
        assert entry["peak_unified_gib"] + 0.005 >= sampled > 0  # the peak is rounded to 0.01 GiB
        stages = entry["stage_seconds"].values()  # each rounded to 0.01 s, as is the end-to-end time
        assert 0 < sum(stages) <= entry["end_to_end_s"] + 0.005 * (len(stages) + 1)
    assert list(by_name["ours"]["stage_seconds"]) == ["text", "diffusion", "audio", "video"]
    assert 0 < by_name["ours"]["load_seconds"]["diffusion"] < by_name["ours"]["stage_seconds"]["diffusion"]
    assert list(by_name["seed"]["stage_seconds"]) == ["load", "text+diffusion", "decode", "encode"]
    assert list(by_name["decode"]["stage_seconds"]) == ["audio", "video"]
    assert by_name["ours"]["output"] != by_name["ours_fp8"]["output"]
    assert by_name["ours"]["plan"].startswith("fp8 off") and by_name["ours_fp8"]["plan"].startswith("fp8 weight")
    for name in ("ours", "ours_fp8"):  # the saved result, not overwritten by a clip's sidecar
        saved = json.loads((tmp_path / "96x64x17" / f"{name}.result.json").read_text())
        assert saved["contender"] == name and saved["plan"] == by_name[name]["plan"]
    # the same pipeline on the same noise as the seed approach: exact in bf16, close with float8 weights
    assert max(by_name["ours"]["latents_vs_seed"].values()) <= 1e-5, by_name["ours"]["latents_vs_seed"]
    assert 0 < max(by_name["ours_fp8"]["latents_vs_seed"].values()) < 0.2, by_name["ours_fp8"]["latents_vs_seed"]
    assert by_name["stock"]["untiled_decode"] == "ok"  # the 32-bit index error needs a 1080p clip
    table = (tmp_path / "compare.md").read_text()
    assert all(f"| 96x64x17 | {name} |" in table for name in by_name)
    assert (tmp_path / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_comparison_on_a_later_version_loads_its_model_in_every_contender(tiny_25_model, tmp_path):
    """--repo: the LTX-2.5 model (its Gemma 4 text encoder on disk, which stock loads with from_pretrained), each
    contender one transformer call per distilled step."""
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "compare_gpu.py"), "--smoke", "--repo",
                             "Lightricks/LTX-2.5-Diffusers", "--model", str(tiny_25_model), "--contenders", "ours",
                             "stock", "--decode-sizes", "--out", str(tmp_path)], capture_output=True, text=True,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads((tmp_path / "compare.json").read_text())
    assert record["repo"] == "Lightricks/LTX-2.5-Diffusers" and record["model_version"] == "2.5"
    assert [entry["contender"] for entry in record["results"]] == ["ours", "stock"]
    for entry in record["results"]:
        assert entry["transformer_calls"] == len(entry["transformer_call_seconds"]) == 8
        assert probe(entry["output"]).frames == 17
    assert "| 96x64x17 | stock |" in (tmp_path / "compare.md").read_text()
