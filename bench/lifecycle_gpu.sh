#!/usr/bin/env bash
# The staged lifecycle on a CUDA machine: every code path on the tiny model, then a full-size random-weight
# model (`bench` preset) at 768x512x97 with FP8 weights, with bf16 weights, and with sequential or group offload.
# Usage: bench/lifecycle_gpu.sh OUT_DIR [WIDTH HEIGHT FRAMES]   (default 768 512 97; writes one sidecar JSON per
# run into OUT_DIR). LTX2GEN_SKIP_TINY=1 skips the tiny-model checks; LTX2GEN_RUNS lists the full-size runs.
set -euo pipefail
out_dir="${1:?usage: bench/lifecycle_gpu.sh OUT_DIR [WIDTH HEIGHT FRAMES]}"
size=(--width "${2:-768}" --height "${3:-512}" --num-frames "${4:-97}")
runs="${LTX2GEN_RUNS:-fp8 bf16 offload}"
# shellcheck source=common.sh source-path=SCRIPTDIR
source "$(dirname "$0")/common.sh"
mkdir -p "$out_dir"

generate() {
    local name="$1"; shift
    echo "=== $name: generate.py $*"
    python3 generate.py --prompt "$prompt" --seed 1 --no-timestamp --output "$work/$name.mp4" "$@" 2>&1 | quiet
    cp "$work/$name.json" "$out_dir/$name.json"
    python3 -c "from ltx2gen.video import probe; print('$name:', probe('$work/$name.mp4'))"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
df -h "$work" | tail -1
if [ "${LTX2GEN_SKIP_TINY:-0}" != 1 ]; then
    python3 -m ltx2gen.testing.synthetic --preset tiny --out "$work/tiny"
    generate tiny_fp8 --model "$work/tiny" --width 96 --height 64 --num-frames 17 --keep-latents
    generate tiny_bf16 --model "$work/tiny" --width 96 --height 64 --num-frames 17 --no-fp8
    python3 decode_latents.py --input "$work/tiny_fp8.latents.safetensors" --output "$work/tiny_recovered.mp4"
    python3 -c "from ltx2gen.video import read_frames; import numpy as np; print('recovered equals generated:', \
np.array_equal(read_frames('$work/tiny_recovered.mp4'), read_frames('$work/tiny_fp8.mp4')))"
fi

time write_bench_model
du -sh "$work/bench"/*
label="${2:-768}x${3:-512}x${4:-97}"
for run in $runs; do
    case "$run" in
        fp8) generate "bench_${label}_fp8" --model "$work/bench" "${size[@]}" ;;
        bf16) generate "bench_${label}_bf16" --model "$work/bench" "${size[@]}" --no-fp8 ;;
        offload) generate "bench_${label}_offload" --model "$work/bench" "${size[@]}" --no-fp8 --sequential-offload ;;
        group) generate "bench_${label}_group" --model "$work/bench" "${size[@]}" --no-fp8 --offload group ;;
        group_fp8) generate "bench_${label}_group_fp8" --model "$work/bench" "${size[@]}" --offload group ;;
        *) echo "unknown run $run" >&2; exit 2 ;;
    esac
done
