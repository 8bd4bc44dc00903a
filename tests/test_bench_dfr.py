"""bench/dfr_gpu.py runs the same code on the tiny LTX-2.5 model on CPU, so the GPU comparison never rots."""

import json
import subprocess
import sys

from conftest import ROOT
from ltx2gen.video import probe


def test_dfr_smoke_run_measures_ours_and_the_stock_composition_alike(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "dfr_gpu.py"), "--smoke", "--out", str(tmp_path),
                             "--rounds", "1", "--contenders", "ours", "stock"], capture_output=True, text=True,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    ours, stock = json.loads((tmp_path / "dfr.json").read_text())["results"]
    assert (ours["contender"], stock["contender"]) == ("ours", "stock")
    assert ours["transformer_calls"] == stock["transformer_calls"] == 8 + 3 + 4  # stage one, two, one round's tile
    for entry in (ours, stock):
        assert (probe(entry["output"]).frames, probe(entry["output"]).fps) == (33, 48)
        assert entry["peak_unified_gib"] > 0 and entry["end_to_end_s"] > 0
    assert [name for name, _ in ours["passes"]] == ["stage one", "stage two", "temporal round 1"]
    assert list(stock["stage_seconds"]) == ["load", "stage one", "upsample", "stage two", "temporal round 1",
                                            "decode", "encode"]
