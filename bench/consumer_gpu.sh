#!/usr/bin/env bash
# Consumer machines simulated on a large GPU: the GPU capped with LTX2GEN_GPU_MEMORY_GIB and the host with a real
# memory limit (a control group's, which the kernel's OOM killer enforces), default flags, the full-size
# random-weight model. Each run's sidecar (with the plan's estimated peaks) goes to OUT_DIR, and a table of plan
# against measurement is printed at the end.
# Usage: bench/consumer_gpu.sh OUT_DIR RUN...   where RUN is NAME:GPU_GIB:HOST_GIB:WIDTHxHEIGHTxFRAMES[:FLAGS]
#   (GPU_GIB and HOST_GIB may be "-" for no cap; FLAGS are extra generate.py flags separated by commas), e.g.
#   bench/consumer_gpu.sh out resident:-:-:1920x1088x161 card24:22:30:1920x1088x161
# LTX2GEN_BENCH_REPO=diffusers/LTX-2.3-Distilled-Diffusers (or another published repo) measures that version's
# bench model instead of LTX-2.0's (each takes about 40 GB of disk: remove the other first on a 64 GiB machine).
set -euo pipefail
out_dir="${1:?usage: bench/consumer_gpu.sh OUT_DIR RUN...}"
shift
# shellcheck source=common.sh source-path=SCRIPTDIR
source "$(dirname "$0")/common.sh"
mkdir -p "$out_dir"

# The control group a limited run goes into: cgroup v2's memory.max or v1's memory.limit_in_bytes.
limit_group() {
    local gib="$1" group
    if [ -w /sys/fs/cgroup/cgroup.subtree_control ] || [ -f /sys/fs/cgroup/cgroup.controllers ]; then
        group="/sys/fs/cgroup/ltx2gen-$$-$RANDOM"
        mkdir "$group" && echo "$((gib * 1024 * 1024 * 1024))" > "$group/memory.max" || return 1
        echo 0 > "$group/memory.swap.max" 2>/dev/null || true
    else
        group="/sys/fs/cgroup/memory/ltx2gen-$$-$RANDOM"
        mkdir "$group" && echo "$((gib * 1024 * 1024 * 1024))" > "$group/memory.limit_in_bytes" || return 1
    fi
    echo "$group"
}

group_peak() {
    local group="$1"
    cat "$group/memory.peak" 2>/dev/null || cat "$group/memory.max_usage_in_bytes" 2>/dev/null || echo 0
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
repo="${LTX2GEN_BENCH_REPO:-}"
if [ -n "$repo" ]; then
    model="$work/bench-${repo//\//--}"
    if [ ! -f "$model/model_index.json" ]; then
        python3 -m ltx2gen.testing.synthetic --preset bench --device cuda --repo "$repo" --out "$model"
    fi
else
    write_bench_model
    model="$work/bench"
fi
status=0
for run in "$@"; do
    IFS=: read -r name gpu host size flags <<< "$run"
    IFS=x read -r width height frames <<< "$size"
    extra=()
    if [ -n "${flags:-}" ]; then IFS=, read -r -a extra <<< "$flags"; fi
    environment=()
    if [ "$gpu" != "-" ]; then environment+=("LTX2GEN_GPU_MEMORY_GIB=$gpu"); fi
    group=""
    if [ "$host" != "-" ]; then
        if group="$(limit_group "$host")"; then
            echo "=== $name: host limited to $host GiB by $group"
        else
            group=""
            echo "=== $name: no control group can be made here; planning with LTX2GEN_HOST_MEMORY_GIB=$host only"
            environment+=("LTX2GEN_HOST_MEMORY_GIB=$host")
        fi
    fi
    echo "=== $name: GPU ${gpu} GiB, host ${host} GiB, ${width}x${height}x${frames} ${extra[*]:-}"
    command=(env "${environment[@]}" python3 generate.py --model "$model" --prompt "$prompt" --seed 1
             --no-timestamp --output "$work/$name.mp4" --width "$width" --height "$height" --num-frames "$frames"
             "${extra[@]}")
    start=$SECONDS
    if [ -n "$group" ]; then
        sh -c 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"' limited "$group" "${command[@]}" 2>&1 | quiet \
            || status=1
        echo "$name: control group peak $(( $(group_peak "$group") / 1048576 )) MiB, OOM events:" \
            "$(grep -h oom_kill "$group/memory.events" "$group/memory.oom_control" 2>/dev/null | tr '\n' ' ')"
        rmdir "$group" 2>/dev/null || true
    else
        "${command[@]}" 2>&1 | quiet || status=1
    fi
    echo "$name: wall $((SECONDS - start)) s"
    if [ -f "$work/$name.json" ]; then cp "$work/$name.json" "$out_dir/$name.json"; fi
    rm -f "$work/$name.mp4" "$work/$name.json"
done
python3 "$(dirname "$0")/plan_vs_measured.py" "$out_dir"/*.json || status=1
exit "$status"
