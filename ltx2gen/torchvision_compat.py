"""torchvision importable beside a CPU-only torch (the local and CI setup), before spandrel imports it.

PyPI's torchvision 0.28.0 wheel is built for CUDA: beside the CPU torch 2.13.0 its compiled operators (`_C.so`) need
libtorch_cuda.so and do not load, and torchvision then registers a fake kernel for `torchvision::nms`, an operator
never defined, and fails to import (pytorch/vision#9085). Defining the two operators' schemas first lets it import;
the upscalers use none of its compiled operators. Where torchvision's own operators load (the Docker image's CUDA
torchvision, a GPU machine) nothing is changed.

transformers imports torchvision whenever it is installed, so importing `ltx2gen` installs `prepare_on_import`'s
hook: the first `import torchvision` of the process, whoever asks for it, runs `prepare_torchvision` first.
Importing the package still imports no torch.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from pathlib import Path

# The schemas of the operators torchvision registers fake kernels for at import time (torchvision/_meta_registrations).
MISSING_OPERATORS = ("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
                     "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
_defined: list = []  # the torch.library.Library holding the definitions: they last as long as it does


def operator_defined(name: str) -> bool:
    import torch

    try:
        torch._C._get_schema(f"torchvision::{name}", "")
    except RuntimeError:
        return False
    return True


def own_operators_load() -> bool:
    """Whether torchvision's compiled operators load into this torch (they then define `torchvision::nms`)."""
    import torch

    if operator_defined("nms"):
        return True
    spec = importlib.util.find_spec("torchvision")
    libraries = sorted(Path(next(iter(spec.submodule_search_locations))).glob("_C*.so")) if spec else []
    for library in libraries:
        try:
            torch.ops.load_library(library)
        except OSError:  # built against a libtorch this torch does not have (libtorch_cuda.so)
            return False
    return operator_defined("nms")


def prepare_torchvision() -> bool:
    """Make `import torchvision` work here; call it before anything imports torchvision or spandrel. Returns whether
    the missing operators had to be defined (a CPU torch beside a CUDA-built torchvision)."""
    # Prepared now, so the import hook has nothing left to do (and must not prepare inside find_spec below).
    sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, _PrepareBeforeTorchvision)]
    if _defined or "torchvision" in sys.modules or importlib.util.find_spec("torchvision") is None:
        return False
    import torch

    if torch.version.cuda is not None or own_operators_load():
        return False  # a CUDA torch, or a torchvision that matches this torch: its own operators stand
    library = torch.library.Library("torchvision", "DEF")
    for schema in MISSING_OPERATORS:
        if not operator_defined(schema.split("(")[0]):
            library.define(schema)
    _defined.append(library)
    return True


class _PrepareBeforeTorchvision(importlib.abc.MetaPathFinder):
    """Finds nothing itself: on the first `import torchvision` it steps aside and prepares torch for it."""

    def find_spec(self, name, path=None, target=None):
        if name == "torchvision":
            prepare_torchvision()  # removes this finder first
        return None


def prepare_on_import() -> None:
    """Run `prepare_torchvision` just before torchvision is first imported (by spandrel, transformers or anyone)."""
    if "torchvision" not in sys.modules and not any(isinstance(finder, _PrepareBeforeTorchvision)
                                                    for finder in sys.meta_path):
        sys.meta_path.insert(0, _PrepareBeforeTorchvision())
