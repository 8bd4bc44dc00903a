#!/usr/bin/env bash
# One clip over every GPU of this host: the equality test on the tiny model, the full-size transformer step on one
# GPU against all of them, then one 1920x1088x161 clip end to end with generate.py on one GPU and under torchrun
# (full-size random weights), and the relative difference of the two clips' latents.
# Each part fits one 10-minute call. Usage: bench/context_parallel_gpu.sh OUT_DIR step|clip
set -euo pipefail
out_dir="${1:?usage: bench/context_parallel_gpu.sh OUT_DIR step|clip}"
part="${2:?usage: bench/context_parallel_gpu.sh OUT_DIR step|clip}"
gpus="$(python3 -c 'import torch; print(torch.cuda.device_count())')"
# shellcheck source=common.sh source-path=SCRIPTDIR
source "$(dirname "$0")/common.sh"
mkdir -p "$out_dir"

if [ "$part" = step ]; then
    timeout 120 python3 -m pytest -q -p no:cacheprovider tests/test_context_parallel.py > "$out_dir/pytest.log" 2>&1 \
        || echo "the context-parallel tests failed or timed out"
    tail -n 3 "$out_dir/pytest.log"
    timeout 150 torchrun --standalone --nproc-per-node "$gpus" bench/context_parallel_gpu.py --size 1920x1088x161 \
        --modes bf16 fp8_weight --out "$out_dir/cp_step_${gpus}gpu.json" 2>&1 | quiet > "$out_dir/step.log"
    cat "$out_dir/step.log"
    exit 0
fi

model="$work/full"
if [ ! -f "$model/model_index.json" ]; then
    python3 -m ltx2gen.testing.synthetic --preset full --device cuda --text-encoder-at-load --out "$model" > /dev/null 2>&1
fi
clip=(--model "$model" --prompt "A red fox trots through fresh snow at dawn, breath steaming in the cold air."
      --width 1920 --height 1088 --num-frames 161 --seed 1 --no-timestamp --keep-latents)
timeout 200 python3 generate.py "${clip[@]}" --output "$work/one_gpu.mp4" 2>&1 | quiet > "$out_dir/e2e_1gpu.log"
tail -n 4 "$out_dir/e2e_1gpu.log"
timeout 160 torchrun --standalone --nproc-per-node "$gpus" generate.py "${clip[@]}" --output "$work/split.mp4" 2>&1 | quiet \
    > "$out_dir/e2e_${gpus}gpu.log"
tail -n 4 "$out_dir/e2e_${gpus}gpu.log"
python3 - "$work" <<'PY' | tee "$out_dir/e2e_latents.txt"
import sys
from ltx2gen.latents import load_latents
one, split = (load_latents(f"{sys.argv[1]}/{name}.latents.safetensors") for name in ("one_gpu", "split"))
for stream in ("video", "audio"):
    a, b = getattr(one, stream).float(), getattr(split, stream).float()
    print(f"{stream} latents: relative difference {float((b - a).norm() / a.norm()):.5f}")
PY
