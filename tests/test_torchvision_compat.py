import subprocess
import sys

from tests.conftest import ROOT


def run_python(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_here_a_cpu_torch_beside_a_cuda_torchvision_gets_the_operators_and_torchvision_imports():
    defined, again, version = run_python(
        "import torch\n"
        "from ltx2gen.torchvision_compat import prepare_torchvision\n"
        "assert torch.version.cuda is None\n"
        "first = prepare_torchvision()\n"
        "import torchvision\n"
        "print(first, prepare_torchvision(), torchvision.__version__)\n")
    assert (defined, again) == ("True", "False") and version.startswith("0.28.0")


def test_a_cuda_torch_or_a_torchvision_whose_own_operators_load_is_left_alone():
    assert run_python(
        "import torch\n"
        "from ltx2gen import torchvision_compat\n"
        "torch.version.cuda = '13.0'\n"
        "cuda = torchvision_compat.prepare_torchvision()\n"
        "torch.version.cuda = None\n"
        "own = torch.library.Library('torchvision', 'DEF')\n"  # as torchvision's _C.so defines it where it loads
        "own.define('nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor')\n"
        "print(cuda, torchvision_compat.prepare_torchvision(), torchvision_compat.operator_defined('qnms'))\n"
    ) == ["False", "False", "False"]
