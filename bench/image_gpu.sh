#!/usr/bin/env bash
# Image-to-video against text-to-video on a CUDA machine with the full-size random-weight model (`bench` preset):
# the same clip with and without --image, with FP8 weights (auto, compiled where the plan compiles) and with
# --fp8 dynamic. Per-token timesteps make the transformer's modulation tensors per token in image-to-video
# ([tokens, 6 x 4096] and more, about 2 GiB each at 1920x1088x161), which the memory plan (ltx2gen/fit.py)
# does not count: compare the diffusion stage's peak between the text and image runs in the sidecars.
# Usage: bench/image_gpu.sh OUT_DIR [WIDTH HEIGHT FRAMES]   (default 1920 1088 161; one sidecar JSON per run)
set -euo pipefail
out_dir="${1:?usage: bench/image_gpu.sh OUT_DIR [WIDTH HEIGHT FRAMES]}"
size=(--width "${2:-1920}" --height "${3:-1088}" --num-frames "${4:-161}")
# shellcheck source=common.sh source-path=SCRIPTDIR
source "$(dirname "$0")/common.sh"
mkdir -p "$out_dir"
failures=0

generate() {
    local name="$1"; shift
    echo "=== $name: generate.py $*"
    if python3 generate.py --prompt "$prompt" --seed 1 --no-timestamp --output "$work/$name.mp4" \
            --model "$work/bench" "${size[@]}" "$@" 2>&1 | quiet; then
        cp "$work/$name.json" "$out_dir/$name.json"
        python3 -c "import json; s = json.load(open('$out_dir/$name.json')); \
print('$name:', 'peak GiB', {r['name']: r['cuda_peak_gib'] for r in s['stages']}, s['stage_seconds'])"
    else
        echo "=== $name FAILED"
        failures=$((failures + 1))
    fi
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
write_bench_model
python3 -c "import numpy as np; from PIL import Image; \
Image.fromarray(np.random.default_rng(0).integers(0, 256, (1080, 1440, 3), dtype=np.uint8)).save('$work/still.jpg')"
generate text_fp8 --fp8 weight
generate image_fp8 --fp8 weight --image "$work/still.jpg"
generate image_fp8_half --fp8 weight --image "$work/still.jpg" --image-strength 0.5
generate text_dynamic --fp8 dynamic
generate image_dynamic --fp8 dynamic --image "$work/still.jpg"
echo "$failures run(s) failed"
[ "$failures" -eq 0 ]
