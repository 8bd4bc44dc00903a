#!/usr/bin/env bash
# Container entrypoint: picks one of the CLIs by sub-command. Every branch uses exec, so the Python process
# becomes PID 1's child directly and receives docker stop / Ctrl-C signals itself.
set -euo pipefail

# Overridable so the tests can run this very script against a stub interpreter outside the image.
APP_DIR="${LTX2GEN_APP_DIR:-/app}"
PYTHON="${LTX2GEN_PYTHON:-python3}"
DEFAULT_MODEL="rootonchair/LTX-2-19b-distilled"
# Tells generate.py to print its recovery advice as this image's `decode` command.
export LTX2GEN_IN_CONTAINER=1

usage() {
    cat <<EOF
LTX-2 text-to-video with audio.

Usage: docker run [docker options] IMAGE [COMMAND] [ARGS...]

Commands:
  generate ARGS     text-to-video (generate.py); the default when the first argument is an option
  decode ARGS       decode a kept latents file into an MP4 (decode_latents.py)
  batch FILE ARGS   render a JSON Lines batch, one process per clip, resumable (see /app/batch/prompts/)
  download [REPO]   fetch model weights into the Hugging Face cache (default: ${DEFAULT_MODEL},
                    the seven camera-control LoRAs, and the post-processing models into
                    /cache/huggingface/ltx2gen-postprocess: Real-ESRGAN x2plus and x4plus, RIFE 4.x)
  postprocess ARGS  upscale / interpolate a decoded clip again (python -m ltx2gen.postprocess)
  synthetic ARGS    write a random-weight test model (python -m ltx2gen.testing.synthetic)
  help, --help, -h  this text; 'generate --help' and 'decode --help' list each command's options

Examples:
  docker run --rm -v ~/.cache/huggingface:/cache/huggingface ltx2 download
  docker run --gpus all -v ~/.cache/huggingface:/cache/huggingface -v "\$PWD/outputs:/outputs" \\
      ltx2 --prompt "..." --output /outputs/clip.mp4    (writes clip_YYYYMMDD_HHMMSS.mp4)
  docker run --gpus all -v ~/.cache/huggingface:/cache/huggingface -v "\$PWD/outputs:/outputs" \\
      ltx2 decode --input /outputs/clip_20260101_120000.latents.safetensors --output /outputs/clip.mp4

The image runs offline (HF_HUB_OFFLINE=1): weights come from the mounted /cache/huggingface.
EOF
}

command="${1:-}"
case "${command}" in
    "" | help | --help | -h)
        usage
        exit 0
        ;;
    generate)
        shift
        exec "${PYTHON}" "${APP_DIR}/generate.py" "$@"
        ;;
    -*)
        exec "${PYTHON}" "${APP_DIR}/generate.py" "$@"
        ;;
    decode)
        shift
        exec "${PYTHON}" "${APP_DIR}/decode_latents.py" "$@"
        ;;
    batch)
        shift
        export PYTHONPATH="${APP_DIR}${PYTHONPATH:+:${PYTHONPATH}}"
        exec "${PYTHON}" -m ltx2gen.batch "$@"
        ;;
    postprocess)
        shift
        export PYTHONPATH="${APP_DIR}${PYTHONPATH:+:${PYTHONPATH}}"
        exec "${PYTHON}" -m ltx2gen.postprocess "$@"
        ;;
    synthetic)
        shift
        # -m needs the app directory on the module path, whatever the working directory (docker run -w).
        export PYTHONPATH="${APP_DIR}${PYTHONPATH:+:${PYTHONPATH}}"
        exec "${PYTHON}" -m ltx2gen.testing.synthetic "$@"
        ;;
    download)
        shift
        # The only command that may reach the Hub; the image is offline otherwise.
        export HF_HUB_OFFLINE=0
        export PYTHONPATH="${APP_DIR}${PYTHONPATH:+:${PYTHONPATH}}"
        exec "${PYTHON}" -c '
import sys
from huggingface_hub import hf_hub_download, snapshot_download
from ltx2gen.lora import CAMERA_MOVES, camera_lora
from ltx2gen.checkpoint import MODEL_FILE_PATTERNS, MODEL_IGNORE_PATTERNS, TRANSFORMERS_MODEL_FILE_PATTERNS
from ltx2gen.postprocess_download import download_postprocess_models

def download():
    # An LTX-2 model or a prompt enhancer (google/gemma-4-E2B-it for LTX-2.5 --enhance-prompt)
    for repo_id in sys.argv[1:] or ["rootonchair/LTX-2-19b-distilled"]:
        print(f"downloading {repo_id}", flush=True)
        print(snapshot_download(repo_id=repo_id, ignore_patterns=MODEL_IGNORE_PATTERNS,
                                allow_patterns=MODEL_FILE_PATTERNS + TRANSFORMERS_MODEL_FILE_PATTERNS), flush=True)
    if len(sys.argv) == 1:
        for move in CAMERA_MOVES:
            lora = camera_lora(move)
            print(hf_hub_download(lora.source, lora.weight_name), flush=True)
        for path in download_postprocess_models():
            print(path, flush=True)

try:
    download()
except KeyboardInterrupt:
    sys.exit("download: interrupted; run it again to go on (finished files are kept)")
except Exception as err:  # offline, a repo that does not exist, a full disk: one line, not a chain of tracebacks
    reason = (str(err).strip().splitlines() or [""])[0]
    sys.exit(f"download: error: {type(err).__name__}: {reason} (is the network reachable from the container? run "
             "it again to go on; finished files are kept)")
' "$@"
        ;;
    *)
        echo "entrypoint.sh: unknown command '${command}' (use generate, decode, batch, download, postprocess, synthetic or --help)" >&2
        exit 2
        ;;
esac
