# LTX-2 text-to-video with audio. Build: docker build -t ltx2 .   Usage: docker run --rm ltx2 --help
#
# The default base is NVIDIA's NGC PyTorch image (arm64 and amd64; its torch is built for its own CUDA and for
# Jetson Thor's sm_110). Any image with a CUDA torch and Python 3 can replace it:
#   docker build --build-arg BASE_IMAGE=<an x86 CUDA PyTorch image> -t ltx2 .
#
# --privileged is not needed: the weight files are evicted from the page cache with posix_fadvise, which any
# user may do on files they can read. --privileged only enables the optional global cache drop
# (generate.py --drop-page-cache, which writes /proc/sys/vm/drop_caches).
ARG BASE_IMAGE=nvcr.io/nvidia/pytorch:26.01-py3
FROM ${BASE_IMAGE}

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# NGC images pin their own package versions through PIP_CONSTRAINT (/etc/pip/constraint.txt); those pins
# conflict with ours, so switch them off. torch is protected by its own constraint below instead.
ENV PIP_CONSTRAINT=

WORKDIR /app

# requirements.txt alone first: the dependency layer is then rebuilt only when it changes, not on code edits.
# It is the same file the local setup installs (requirements-dev.txt: -r requirements.txt) and has no torch.
COPY requirements.txt ./

# Never reinstall torch: the base image's build is the one that matches its CUDA and GPU. A constraint on
# exactly the installed version makes pip fail instead of swapping torch if a dependency asks for another.
RUN python3 -c 'import torch; print(torch.__version__)' > /tmp/torch-version \
 && python3 -c 'import importlib.metadata as m; print("torch==" + m.version("torch"))' > /tmp/keep-torch.txt \
 && if [ -f /etc/pip/constraint.txt ]; then : > /etc/pip/constraint.txt; fi \
 && python3 -m pip install --no-cache-dir -c /tmp/keep-torch.txt -r requirements.txt

# The GPU-only extras (--fp8-attention's cuDNN frontend), without their own requirements: see the file.
COPY requirements-gpu.txt ./
RUN python3 -m pip install --no-cache-dir --no-deps -c /tmp/keep-torch.txt -r requirements-gpu.txt

# Belt and braces: fail the build if torch changed anyway, or if post-processing's torchvision (the base image's CUDA
# build, kept like torch) does not import.
RUN python3 -c 'import torchvision; print("torchvision", torchvision.__version__)' \
 && before="$(cat /tmp/torch-version)" \
 && after="$(python3 -c 'import torch; print(torch.__version__)')" \
 && if [ "${before}" != "${after}" ]; then echo "torch changed from ${before} to ${after}" >&2; exit 1; fi \
 && echo "torch ${after} kept"

# Only what runs; no weights are baked in (they live in the /cache/huggingface volume).
COPY generate.py decode_latents.py ./
COPY ltx2gen/ ./ltx2gen/
COPY batch/ ./batch/
COPY --chmod=755 entrypoint.sh ./

# Offline by default so a run never stalls on, or silently pulls from, the Hub; `download` turns it back on.
# torch.compile's kernels are cached in the weights' volume: each `docker run` is a new container, and a cache
# inside it would be lost, so every run would compile the blocks again (about 30 s; 6 min with --fp8 dynamic).
ENV HF_HUB_OFFLINE=1 HF_HOME=/cache/huggingface PYTHONUNBUFFERED=1 \
    TORCHINDUCTOR_CACHE_DIR=/cache/huggingface/ltx2gen-torch-compile
VOLUME ["/cache/huggingface", "/outputs"]

# Replaces the NGC entrypoint; `docker run IMAGE --prompt "..."` goes straight to generate.py.
ENTRYPOINT ["/app/entrypoint.sh"]
CMD ["--help"]
