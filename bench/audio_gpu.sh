#!/usr/bin/env bash
# --audio on a CUDA machine with the full-size random-weight model (`bench` preset, bf16 or FP8 as the plan picks):
# the same clip plain and following a 5 s tone at strengths 0, 0.5 and 1. Prints what only a GPU run shows: whether
# strength 0 still equals the plain run with bf16/FP8 kernels, how far the strength-1 audio latents are from the
# encoded input after bf16 rounding, and the time and peak memory of the audio input stage and of diffusion (the
# conditioning hooks should cost nothing measurable per step).
# Usage: bench/audio_gpu.sh OUT_DIR [WIDTH HEIGHT FRAMES]   (default 768 512 97; one sidecar JSON per run in OUT_DIR)
set -euo pipefail
out_dir="${1:?usage: bench/audio_gpu.sh OUT_DIR [WIDTH HEIGHT FRAMES]}"
size=(--width "${2:-768}" --height "${3:-512}" --num-frames "${4:-97}")
# shellcheck source=common.sh source-path=SCRIPTDIR
source "$(dirname "$0")/common.sh"
mkdir -p "$out_dir"

write_bench_model
ffmpeg_exe="$(python3 -c 'import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())')"
"$ffmpeg_exe" -hide_banner -loglevel error -y -f lavfi -i "sine=frequency=440:duration=5" "$work/tone.wav"

for run in plain:1 s0:0 half:0.5 s1:1; do
    name="${run%%:*}"
    audio=()
    [ "$name" = plain ] || audio=(--audio "$work/tone.wav" --audio-strength "${run##*:}")
    echo "=== $name"
    python3 generate.py --prompt "A singer on a stage, close-up, lips moving with the song" --seed 1 \
        --model "$work/bench" "${size[@]}" --no-timestamp --keep-latents --output "$work/audio_$name.mp4" \
        "${audio[@]}" 2>&1 | grep -E "^\[memory\]|^audio:|^plan:|^done:"
    cp "$work/audio_$name.json" "$out_dir/audio_$name.json"
done

python3 - "$work" <<'PY'
import json
import sys
from fractions import Fraction
from pathlib import Path

import torch

from ltx2gen import memory
from ltx2gen.audio_input import AudioInput, encode
from ltx2gen.latents import load_latents

work = Path(sys.argv[1])
runs = {name: load_latents(work / f"audio_{name}.latents.safetensors") for name in ("plain", "s0", "half", "s1")}
print("strength 0 vs plain, max |video latent difference|:", float((runs["s0"].video - runs["plain"].video).abs().max()))
print("strength 1 vs plain, max |video latent difference|:", float((runs["s1"].video - runs["plain"].video).abs().max()))
meta = runs["s1"].metadata
item = AudioInput.inspect(work / "tone.wav", 1.0, meta["num_frames"], Fraction(meta["fps"]))
device = torch.device("cuda")
[given] = memory.MemoryTracker(device).run("audio input", encode, work / "bench", [item], device=device,
                                           dtype=torch.bfloat16)
print("strength 1 audio latents vs the encoded input, max |difference|:",
      float((runs["s1"].audio.float() - given.latents).abs().max()))
for name in ("plain", "s0", "half", "s1"):
    sidecar = json.loads((work / f"audio_{name}.json").read_text())
    stages = {stage["name"]: stage for stage in sidecar["stages"]}
    print(name, {key: (round(stage["seconds"], 2), stage.get("cuda_peak_gib")) for key, stage in stages.items()})
PY
