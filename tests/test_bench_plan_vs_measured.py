"""bench/plan_vs_measured.py on the sidecars the consumer-machine benchmark kept (docs/results)."""

import importlib.util

from conftest import ROOT

RESULTS = ROOT / "docs" / "results" / "consumer_2026-12-07"


def load_script():
    spec = importlib.util.spec_from_file_location("plan_vs_measured", ROOT / "bench" / "plan_vs_measured.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_each_stage_is_a_row_of_planned_and_measured_peaks_with_their_ratio(capsys):
    assert load_script().main([str(RESULTS / "card24.json"), str(RESULTS / "resident.json")]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| card24") or
            line.startswith("| resident")]
    assert len(rows) == 6  # text, diffusion, video of each
    diffusion = next(row for row in rows if row.startswith("| card24 | diffusion"))
    cells = [cell.strip() for cell in diffusion.strip("|").split("|")]
    assert cells[3:6] == ["7.41", "5.97", "1.24"] and cells[6:9] == ["20.03", "20.49", "0.98"]
