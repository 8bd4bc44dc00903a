#!/usr/bin/env bash
# Two-stage against one-stage distilled on a CUDA machine, on the full-size random-weight model (`bench` preset, which
# includes the real-size latent upsampler): diffusion seconds, each two-stage step's seconds and the GPU peaks.
# Usage: bench/two_stage_gpu.sh OUT_DIR [WIDTH HEIGHT FRAMES]   (default 1920 1088 161; sizes must be multiples of 64)
# Writes distilled.json and two_stage.json (the sidecars) and two_stage_summary.json into OUT_DIR.
set -euo pipefail
out_dir="${1:?usage: bench/two_stage_gpu.sh OUT_DIR [WIDTH HEIGHT FRAMES]}"
size=(--width "${2:-1920}" --height "${3:-1088}" --num-frames "${4:-161}")
# shellcheck source=common.sh source-path=SCRIPTDIR
source "$(dirname "$0")/common.sh"
mkdir -p "$out_dir"

write_bench_model
for pipeline in distilled two-stage; do
    name="${pipeline/-/_}"
    echo "=== $name"
    python3 generate.py --prompt "$prompt" --seed 1 --no-timestamp --output "$work/$name.mp4" \
        --model "$work/bench" --pipeline "$pipeline" "${size[@]}" 2>&1 | quiet
    cp "$work/$name.json" "$out_dir/$name.json"
done
python3 - "$out_dir" <<'PY'
import json, sys
from pathlib import Path

out = Path(sys.argv[1])
summary = {}
for name in ("distilled", "two_stage"):
    sidecar = json.loads((out / f"{name}.json").read_text())
    peaks = {stage["name"]: stage["cuda_peak_gib"] for stage in sidecar["stages"]}
    summary[name] = {"diffusion_seconds": sidecar["stage_seconds"]["diffusion"], "gpu_peak_gib": peaks,
                     "steps": [(s["stage"], s["seconds"]) for s in sidecar.get("diffusion_stages") or []]}
    print(name, json.dumps(summary[name]))
(out / "two_stage_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
PY
