import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Tiny clip used across tests: 3 latent frames at 96x64, so the real decode path (32x spatial, 8x temporal) runs.
CLIP = ["--width", "96", "--height", "64", "--num-frames", "17", "--seed", "7"]


def assert_linter_passes(linter: str, *arguments: str | Path) -> None:
    """Run a linter installed by requirements-dev.txt; skip visibly where it is not on PATH."""
    executable = shutil.which(linter)
    if executable is None:
        pytest.skip(f"{linter} is not on PATH")
    result = subprocess.run([executable, *map(str, arguments)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """The tiny model of the published distilled repo (rootonchair/LTX-2-19b-distilled): its configuration and file
    layout, small sizes."""
    from ltx2gen.synthetic import write_model

    return write_model("tiny", tmp_path_factory.mktemp("models") / "ltx2-tiny")


@pytest.fixture(scope="session")
def tiny_full_model(tmp_path_factory) -> Path:
    """The tiny model of the published full (non-distilled) repo, Lightricks/LTX-2."""
    from ltx2gen.synthetic import write_model

    return write_model("tiny", tmp_path_factory.mktemp("models") / "ltx2-tiny-full", repo="Lightricks/LTX-2")


def linked_copy(model: Path, folder: Path) -> Path:
    """`model` under another folder name, each of its entries a symbolic link (as a Hugging Face cache snapshot
    links its files)."""
    folder.mkdir(parents=True)
    for entry in model.iterdir():
        (folder / entry.name).symlink_to(entry)
    return folder


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
