import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Tiny clip used across tests: 3 latent frames at 96x64, so the real decode path (32x spatial, 8x temporal) runs.
CLIP = ["--width", "96", "--height", "64", "--num-frames", "17", "--seed", "7"]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    from ltx2gen.synthetic import write_model

    return write_model("tiny", tmp_path_factory.mktemp("models") / "ltx2-tiny")


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
