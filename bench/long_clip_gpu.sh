#!/usr/bin/env bash
# A long clip against one window on a CUDA machine, on the full-size random-weight model (the text encoder built
# seeded where it loads, so no 17 GB of its files are written): one command renders SECONDS at WIDTHxHEIGHT in
# windows, the transformer loaded once; beside it, one window's clip (the automatic window: 161 frames at 1920x1088).
# Compares the peaks (GPU and process RSS, every stage) and the long clip's time against (windows x one window's
# diffusion) + one decode.
# Usage: bench/long_clip_gpu.sh OUT_DIR [SECONDS WIDTH HEIGHT [WINDOW_SECONDS]]   (default 20 1920 1088, automatic)
# Writes window.json and long.json (the sidecars) and long_clip_summary.json into OUT_DIR.
set -euo pipefail
out_dir="${1:?usage: bench/long_clip_gpu.sh OUT_DIR [SECONDS WIDTH HEIGHT [WINDOW_SECONDS]]}"
seconds="${2:-20}"
width="${3:-1920}"
height="${4:-1088}"
window=()
if [ -n "${5:-}" ]; then
    window=(--window-seconds "$5")
fi
# shellcheck source=common.sh source-path=SCRIPTDIR
source "$(dirname "$0")/common.sh"
mkdir -p "$out_dir"
model="$work/bench_text_at_load"
if [ ! -f "$model/model_index.json" ]; then
    echo "=== writing the full-size model (text encoder built at load)"
    python3 -m ltx2gen.testing.synthetic --preset full --device cuda --text-encoder-at-load --out "$model" > /dev/null
fi
window_frames="$(python3 -c "import sys; from fractions import Fraction; from ltx2gen import continuation
print(continuation.window_num_frames(float(sys.argv[1]) if sys.argv[1] else None, int(sys.argv[2]), int(sys.argv[3]),
                                     Fraction(24)))" "${5:-}" "$width" "$height")"
echo "=== one window: $window_frames frames"
python3 generate.py --prompt "$prompt" --seed 1 --no-timestamp --output "$work/window.mp4" --model "$model" \
    --width "$width" --height "$height" --num-frames "$window_frames" 2>&1 | quiet
cp "$work/window.json" "$out_dir/window.json"
echo "=== the long clip: $seconds s"
python3 generate.py --prompt "$prompt" --seed 1 --no-timestamp --output "$work/long.mp4" --model "$model" \
    --width "$width" --height "$height" --seconds "$seconds" "${window[@]}" 2>&1 | quiet
cp "$work/long.json" "$out_dir/long.json"
python3 - "$out_dir" <<'PY'
import json, sys
from pathlib import Path

out = Path(sys.argv[1])
runs = {name: json.loads((out / f"{name}.json").read_text()) for name in ("window", "long")}


def peaks(sidecar):
    return {"gpu_peak_gib": max(stage["cuda_peak_gib"] for stage in sidecar["stages"]),
            "rss_peak_gib": max(stage["peak_rss_gib"] for stage in sidecar["stages"]),
            "gpu_peak_by_stage": {stage["name"]: stage["cuda_peak_gib"] for stage in sidecar["stages"]}}


window, long = runs["window"], runs["long"]
windows = long["windows"]
one_window_diffusion = window["stage_seconds"]["diffusion"]
bound = len(windows) * one_window_diffusion + long["stage_seconds"]["video"] + long["stage_seconds"]["audio"]
summary = {
    "window": {"num_frames": window["num_frames"], "stage_seconds": window["stage_seconds"], **peaks(window)},
    "long": {"num_frames": long["num_frames"], "stage_seconds": long["stage_seconds"], **peaks(long),
             "windows": [{key: w[key] for key in ("index", "num_frames", "first_frame", "frames_added", "seconds")}
                         for w in windows],
             "transformer_loads": sum("transformer" in name for stage in long["stages"]
                                      for name in stage["load_seconds"])},
}
rendered = sum(seconds for stage, seconds in long["stage_seconds"].items() if stage != "text")


def ratio(key):
    return round(key(summary["long"]) / key(summary["window"]), 3) if key(summary["window"]) else None


summary["ratios"] = {
    "gpu_peak_long_over_window": ratio(lambda run: run["gpu_peak_gib"]),
    "gpu_plus_rss_peak_long_over_window": ratio(lambda run: run["gpu_peak_gib"] + run["rss_peak_gib"]),
    "time_bound_seconds (windows x one window's diffusion + the long clip's decode)": round(bound, 1),
    "long_seconds (diffusion, audio and video)": round(rendered, 1),
}
print(json.dumps(summary, indent=2))
(out / "long_clip_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
PY
