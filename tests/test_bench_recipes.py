"""bench/recipes_gpu.py runs the same code on tiny models on CPU, so the GPU comparisons never rot."""

import json
import subprocess
import sys

from conftest import ROOT
from ltx2gen.video import probe


def smoke(recipe: str, out, *flags: str) -> list[dict]:
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "recipes_gpu.py"), "--recipe", recipe, "--smoke",
                             "--out", str(out), *flags], capture_output=True, text=True, cwd=out)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads((out / f"{recipe}.json").read_text())["results"]


def test_dfr_smoke_run_measures_ours_and_the_stock_composition_alike(tmp_path):
    ours, stock = smoke("dfr", tmp_path, "--rounds", "1", "--contenders", "ours", "stock")
    assert (ours["contender"], stock["contender"]) == ("ours", "stock")
    assert ours["transformer_calls"] == stock["transformer_calls"] == 8 + 3 + 4  # stage one, two, one round's tile
    for entry in (ours, stock):
        assert (probe(entry["output"]).frames, probe(entry["output"]).fps) == (33, 48)
        assert entry["peak_unified_gib"] > 0 and entry["end_to_end_s"] > 0
    assert [name for name, _ in ours["passes"]] == ["stage one", "stage two", "temporal round 1"]
    assert list(stock["stage_seconds"]) == ["load", "stage one", "upsample", "stage two", "temporal round 1",
                                            "decode", "encode"]


def test_two_stage_smoke_run_measures_auto_one_stage_and_the_stock_recipe_alike(tmp_path):
    ours, distilled, stock = smoke("two-stage", tmp_path)
    assert (ours["pipeline"], distilled["pipeline"]) == ("two-stage", "distilled")
    assert ours["transformer_calls"] == stock["transformer_calls"] == 8 + 3 and distilled["transformer_calls"] == 8
    for entry in (ours, distilled, stock):
        assert (probe(entry["output"]).frames, probe(entry["output"]).width) == (17, 128)
    assert list(stock["stage_seconds"]) == ["load", "stage one", "upsample", "refine and decode", "encode"]
