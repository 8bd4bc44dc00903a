# Sourced by the bench scripts: their work folder, a filter for generate.py's log, and the full-size model.
# shellcheck shell=bash
work="${LTX2GEN_BENCH_WORK:-/tmp/ltx2gen-bench}"
# shellcheck disable=SC2034  # read by the scripts that source this file
prompt="A red fox runs through fresh snow at dawn, breath steaming, birds calling"
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
# The package from this checkout, whether or not it is installed (`pip install -e .`).
repository="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PYTHONPATH="${repository}${PYTHONPATH:+:${PYTHONPATH}}"
mkdir -p "$work"

# generate.py's log without progress bars and library notices; never fails (the pipeline's status is the command's).
quiet() {
    grep -v -E "it/s\]|s/it\]|Loading weights|Failed to load|_pytree|SyntaxWarning|Configuration class|torchao|experimental feature" \
        || true
}

# The full-size random-weight model (`bench` preset, with its latent upsampler) in "$work/bench", written once.
write_bench_model() {
    if [ ! -f "$work/bench/latent_upsampler/config.json" ]; then
        echo "=== writing the bench model"
        rm -rf "$work/bench"
        python3 -m ltx2gen.testing.synthetic --preset bench --device cuda --out "$work/bench"
    fi
}
