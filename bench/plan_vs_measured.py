"""Each stage's planned GPU and host peaks against the measured ones, from run sidecars (Markdown table).

    python3 bench/plan_vs_measured.py OUT_DIR/*.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def rows(sidecar: dict, name: str) -> list[str]:
    estimates = sidecar.get("memory_plan_estimates") or {}
    lines = []
    for stage in sidecar["stages"]:
        planned = estimates.get(stage["name"])
        if not planned:
            continue
        gpu, host = stage["cuda_peak_gib"], stage["peak_rss_gib"]
        lines.append(f"| {name} | {stage['name']} | {stage['seconds']:.1f} s | {planned['gpu_gib']:.2f} | {gpu:.2f} | "
                     f"{planned['gpu_gib'] / gpu:.2f} | {planned['host_gib']:.2f} | {host:.2f} | "
                     f"{planned['host_gib'] / host:.2f} |")
    return lines


def main(paths: list[str]) -> int:
    print("| run | stage | time | GPU planned | GPU measured | ratio | host planned | host measured | ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    for path in paths:
        sidecar = json.loads(Path(path).read_text())
        for line in rows(sidecar, Path(path).stem):
            print(line)
        total = sum(stage["seconds"] for stage in sidecar["stages"])
        print(f"<!-- {Path(path).stem}: {sidecar.get('memory_plan')}; fp8 {sidecar['fp8']}, offload "
              f"{sidecar['offload']}, compiled {sidecar['compiled']}, stages {total:.1f} s -->")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
