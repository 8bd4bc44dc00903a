#!/usr/bin/env bash
# Render a JSON Lines batch, one generate.py process per clip, resumable.
# Usage: batch/run_batch.sh FILE [--out DIR] [--docker [IMAGE]] [--retries N]
# Prints [i/N] progress with elapsed time and ETA, writes one log per clip, first/last-frame PNGs, a contact sheet
# and a summary table; exits non-zero when any clip failed (the rest of the batch still runs).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
if [ -z "${PYTHON:-}" ] && [ -x "${root}/.venv/bin/python" ]; then
    python="${root}/.venv/bin/python"
fi
export PYTHONPATH="${root}${PYTHONPATH:+:${PYTHONPATH}}"
exec "${python}" -m ltx2gen.batch "$@"
