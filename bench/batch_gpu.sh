#!/usr/bin/env bash
# Clips per hour: one generate.py process per clip (batch/run_batch.sh) against one process for the whole batch
# (generate.py --batch), then the same batch again with the prompt embeddings cached. Full-size random weights
# (`bench` preset), 3 clips at 768x512x97. Usage: bench/batch_gpu.sh OUT_DIR
set -euo pipefail
out_dir="${1:?usage: bench/batch_gpu.sh OUT_DIR}"
# shellcheck source=common.sh source-path=SCRIPTDIR
source "$(dirname "$0")/common.sh"
mkdir -p "$out_dir"
export PYTHON=python3
write_bench_model > /dev/null 2>&1
batch_file="$work/three.jsonl"
python3 - "$work/bench" > "$batch_file" <<'PY'
import json, sys
prompts = ["A red fox trots through fresh snow at dawn, breath steaming, crows calling in the distance.",
           "Waves roll onto a black sand beach under a grey sky, foam hissing, gulls crying overhead.",
           "A blacksmith hammers a glowing blade on an anvil, sparks flying, metal ringing in a dark forge."]
for i, prompt in enumerate(prompts):
    print(json.dumps({"name": f"clip{i}", "prompt": prompt, "seed": i, "model": sys.argv[1]}))
PY

seconds() { local start="$1"; python3 -c "import time; print(f'{time.time() - $start:.1f}')"; }

start=$(date +%s.%N); batch/run_batch.sh "$batch_file" --out "$work/per_process" | quiet
per_process=$(seconds "$start")
start=$(date +%s.%N); python3 generate.py --batch "$batch_file" --out "$work/in_process" \
    --embedding-cache "$work/embeddings" 2>&1 | quiet
in_process=$(seconds "$start")
start=$(date +%s.%N); python3 generate.py --batch "$batch_file" --out "$work/in_process_cached" \
    --embedding-cache "$work/embeddings" 2>&1 | quiet
cached=$(seconds "$start")
python3 - "$work" "$per_process" "$in_process" "$cached" <<'PY' | tee "$out_dir/batch_result.txt"
import sys
import numpy as np
from ltx2gen.video import read_frames
work, *times = sys.argv[1], *map(float, sys.argv[2:])
for label, t in zip(("one process per clip", "one process (--batch)", "one process, cached embeddings"), times):
    print(f"{label}: {t:.1f} s for 3 clips = {3 * 3600 / t:.0f} clips/hour ({times[0] / t:.2f}x)")
for i in range(3):
    same = np.array_equal(read_frames(f"{work}/per_process/clip{i}.mp4"), read_frames(f"{work}/in_process/clip{i}.mp4"))
    print(f"clip{i}: in-process frames equal per-process frames: {same}")
PY
cp "$work/per_process/summary.md" "$out_dir/per_process_summary.md"
cp "$work/in_process/summary.md" "$out_dir/in_process_summary.md"
cp "$work/in_process/contact_sheet.png" "$out_dir/contact_sheet.png"
