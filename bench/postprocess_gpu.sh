#!/usr/bin/env bash
# Post-processing on one GPU: 1920x1088x161 with the full-size random-weight bench model, upscaled x2 to 3840x2176
# (random weights at RealESRGAN_x2plus's size) and interpolated x2 to 321 frames at 48 fps (a random IFNet at RIFE
# 4.26's size); the post-processing alone on 161 and 321 source frames (flatness); the reference loops' frames per
# second. Prints rows for docs/BENCHMARKS.md.
# Usage: bench/postprocess_gpu.sh [generate|flatness|fps]...   (default: all three; each fits a 10-minute slot)
# On a machine without the packages: pip install --no-deps .whl/*.whl first (spandrel, einops, diffusers, ...).
set -euo pipefail
# shellcheck source=common.sh source-path=SCRIPTDIR
source "$(dirname "$0")/common.sh"
models="$work/postprocess-models"
out="$work/postprocess"
mkdir -p "$out"
python3 "$repository/bench/postprocess_models.py" write "$models"
upscale=(--upscale 2 --upscale-model "$models/RealESRGAN_x2plus-random.safetensors")
interpolate=(--interpolate 2 --interpolate-model "$models/rife-random.pkl")

# One row per stage of a sidecar: name, seconds, GPU peak, host peak.
rows() {
    python3 - "$1" <<'PY'
import json, sys
sidecar = json.load(open(sys.argv[1]))
for stage in sidecar["stages"]:
    print(f"| {sys.argv[1].rsplit('/', 1)[-1]} | {stage['name']} | {stage['seconds']:.1f} s | "
          f"GPU peak {stage['cuda_peak_gib']:.2f} GiB | host peak {stage['peak_rss_gib']:.2f} GiB |")
PY
}

run_generate() {
    write_bench_model
    rm -f "$out"/full-*
    python3 "$repository/generate.py" --model "$work/bench" --prompt "$prompt" --width 1920 --height 1088 \
        --num-frames 161 --seed 1 --no-timestamp --keep-latents --output "$out/full-upscale.mp4" "${upscale[@]}" 2>&1 | quiet
    rows "$out/full-upscale.json"
    python3 "$repository/decode_latents.py" --input "$out/full-upscale.latents.safetensors" \
        --output "$out/full-interpolate.mp4" "${interpolate[@]}" 2>&1 | quiet
    rows "$out/full-interpolate.json"
}

# The plain clips the post-processing starts from: the bench model's 1920x1088x161 decode where `generate` kept its
# latents, else ffmpeg's moving test pattern at that size (with a tone), so the post-processing alone is measured.
write_sources() {
    rm -f "$out"/plain-*
    if [ -f "$out/full-upscale.latents.safetensors" ]; then
        python3 "$repository/decode_latents.py" --input "$out/full-upscale.latents.safetensors" \
            --output "$out/plain-161.mp4" 2>&1 | quiet
    else
        ffmpeg="$(python3 -c 'import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())')"
        "$ffmpeg" -loglevel error -f lavfi -i testsrc2=size=1920x1088:rate=24 -f lavfi -i sine=frequency=440 \
            -frames:v 161 -t 6.708 -c:v libx264 -crf 18 -pix_fmt yuv420p -c:a aac -shortest "$out/plain-161.mp4"
    fi
    python3 -m ltx2gen.postprocess --input "$out/plain-161.mp4" --output "$out/plain-321.mp4" "${interpolate[@]}" | quiet
}

run_flatness() {
    write_sources
    rm -f "$out"/flat-*
    for frames in 161 321; do
        python3 -m ltx2gen.postprocess --input "$out/plain-$frames.mp4" --output "$out/flat-upscale-$frames.mp4" \
            "${upscale[@]}" | quiet
        rows "$out/flat-upscale-$frames.json"
        python3 -m ltx2gen.postprocess --input "$out/plain-$frames.mp4" \
            --output "$out/flat-interpolate-$frames.mp4" "${interpolate[@]}" | quiet
        rows "$out/flat-interpolate-$frames.json"
    done
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
for step in "${@:-generate flatness fps}"; do
    for name in $step; do
        case "$name" in
            generate) run_generate ;;
            flatness) run_flatness ;;
            fps) python3 "$repository/bench/postprocess_models.py" fps "$models" 1920 1088 32 ;;
            *) echo "postprocess_gpu.sh: unknown step '$name' (generate, flatness or fps)" >&2; exit 2 ;;
        esac
    done
done
