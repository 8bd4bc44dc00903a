import os
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
if os.environ.get("PYTEST_XDIST_WORKER"):  # `make test` runs two workers on two cores: one thread each, as do
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # the processes they start (set before torch is imported)
ROOT = Path(__file__).resolve().parent.parent

# Tiny clip used across tests: 3 latent frames at 96x64, so the real decode path (32x spatial, 8x temporal) runs.
CLIP = ["--width", "96", "--height", "64", "--num-frames", "17", "--seed", "7"]


def run_generate(model, out, *extra: str, prompt: str = "w1 w2 w3", clip: list[str] = CLIP):
    """generate.py's main() in this process: one clip of `model` (the tiny clip unless `clip` says otherwise) written
    to `out` exactly, without a timestamp; its exit status."""
    import generate

    return generate.main(["--prompt", prompt, "--model", str(model), "--no-timestamp", "--output", str(out), *clip,
                          *extra])


def run_generate_process(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """generate.py in a fresh interpreter, reporting whether torch was imported before it exited."""
    code = ("import sys, generate\n"
            "try:\n    generate.main(sys.argv[1:])\n"
            "finally:\n    print('TORCH_IMPORTED' if 'torch' in sys.modules else 'TORCH_NOT_IMPORTED')\n")
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"})


def torchrun_command(*args: str, nproc: int = 2, script: Path = ROOT / "generate.py") -> list[str]:
    """`script` (generate.py unless told) under torchrun in `nproc` processes on this host."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
            str(script), *args]


def torchrun_env(**env: str) -> dict[str, str]:
    """This process's environment, offline and one CPU thread per process (the ranks share the host's cores); a rank
    that crashes prints its Python stack."""
    return dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", PYTHONFAULTHANDLER="1", **env)


def torchrun(*args: str, nproc: int = 2, script: Path = ROOT / "generate.py",
             **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(torchrun_command(*args, nproc=nproc, script=script), capture_output=True, text=True,
                          env=torchrun_env(**env))


def assert_refused_before_any_load(capsys, tmp_path, message: str, *run_args, **run_options):
    """generate.py given `run_args` exits 2 with `message` in one error line, loading no model and writing nothing
    under tmp_path/out."""
    from ltx2gen import memory

    loads = []

    def observe(event, name, obj):
        loads.append(name) if event == "load" else None

    memory.add_listener(observe)
    try:
        with pytest.raises(SystemExit) as exit_info:
            run_generate(*run_args, **run_options)
    finally:
        memory.remove_listener(observe)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("generate.py: error: ") and message in error, error
    assert loads == [] and not (tmp_path / "out").exists()


def failing_on_call(function, number: int):
    """`function`, except that its `number`-th call raises as a GPU fault does (a window that fails, say)."""
    calls = []

    def wrapped(*args, **kwargs):
        calls.append(1)
        if len(calls) == number:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return function(*args, **kwargs)

    return wrapped


def parse_config(*args: str):
    """The GenerateConfig of `--prompt "a fox"` and `args`, as if run at 2026-01-02 03:04:05."""
    from ltx2gen.config import GenerateConfig, build_parser

    return GenerateConfig.from_args(build_parser().parse_args(["--prompt", "a fox", *args]),
                                    now=datetime(2026, 1, 2, 3, 4, 5))


def stock_pipeline(model_dir, transformer_folder: str = "transformer"):
    """diffusers' LTX2Pipeline loaded whole from the model's files in float32, as a user of diffusers alone would run
    it on a CPU (diffusers' components default to float32; transformers' text encoder would keep its stored dtype,
    bfloat16 for LTX-2.5). Its LTX-2.0 blocks are made perturbable as ours are (`patches.self_attention_perturbable`:
    diffusers' LTX-2.0 conversion leaves STG without effect), the one change from stock. LTX-2.5's full model
    (`transformer_folder` transformer_full) is loaded as diffusers' documentation does it ("Full / SFT transformer"):
    its transformer passed in, the repo's scheduler rebuilt with dynamic shifting and a terminal shift of 0.1."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, LTX2Pipeline, LTX2VideoTransformer3DModel

    from ltx2gen.patches import self_attention_perturbable

    full = {}
    if transformer_folder == "transformer_full":
        full["transformer"] = LTX2VideoTransformer3DModel.from_pretrained(
            model_dir, subfolder="transformer_full", local_files_only=True, torch_dtype=torch.float32)
    pipe = LTX2Pipeline.from_pretrained(model_dir, local_files_only=True, torch_dtype=torch.float32, **full)
    if full:
        pipe.scheduler = FlowMatchEulerDiscreteScheduler.from_config(pipe.scheduler.config,
                                                                     use_dynamic_shifting=True, shift_terminal=0.1)
    self_attention_perturbable(pipe.transformer)
    return pipe


def stock_run(model_dir, sidecar: dict, output_type: str):
    """The stock pipeline called with the sidecar's parameters: its pipeline call, seed, prompt and prompt length.
    Given sigmas are stepped through as given (a scheduler without shifting, built here from the checkpoint's), as
    diffusers' own two-stage example does for the distilled lists."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler

    pipe = stock_pipeline(model_dir, sidecar["transformer_folder"])
    call = dict(sidecar["pipeline_call"], output_type=output_type)
    if call["sigmas"] is not None:
        pipe.scheduler = FlowMatchEulerDiscreteScheduler.from_config(pipe.scheduler.config,
                                                                     use_dynamic_shifting=False, shift_terminal=None)
    output = pipe(prompt=sidecar["prompt"], negative_prompt=sidecar["negative_prompt"],
                  generator=torch.Generator().manual_seed(sidecar["seed"]),
                  max_sequence_length=sidecar["prompt_tokens"], **call)
    assert [round(float(sigma), 8) for sigma in pipe.scheduler.sigmas] == sidecar["scheduler_sigmas"]
    return output


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
    from ltx2gen.testing.synthetic import write_model

    return write_model("tiny", tmp_path_factory.mktemp("models") / "ltx2-tiny")


@pytest.fixture(scope="session")
def tiny_full_model(tmp_path_factory) -> Path:
    """The tiny model of the published full (non-distilled) repo, Lightricks/LTX-2."""
    from ltx2gen.testing.synthetic import write_model

    return write_model("tiny", tmp_path_factory.mktemp("models") / "ltx2-tiny-full", repo="Lightricks/LTX-2")


@pytest.fixture(scope="session")
def tiny_23_model(tmp_path_factory) -> Path:
    """The tiny model of the published LTX-2.3 distilled repo (diffusers/LTX-2.3-Distilled-Diffusers)."""
    from ltx2gen.testing.synthetic import write_model

    return write_model("tiny", tmp_path_factory.mktemp("models") / "ltx23-tiny",
                       repo="diffusers/LTX-2.3-Distilled-Diffusers")


@pytest.fixture(scope="session")
def tiny_23_full_model(tmp_path_factory) -> Path:
    """The tiny model of the published LTX-2.3 full repo (diffusers/LTX-2.3-Diffusers)."""
    from ltx2gen.testing.synthetic import write_model

    return write_model("tiny", tmp_path_factory.mktemp("models") / "ltx23-tiny-full",
                       repo="diffusers/LTX-2.3-Diffusers")


@pytest.fixture(scope="session")
def tiny_25_model(tmp_path_factory) -> Path:
    """The tiny model of the published LTX-2.5 repo (Lightricks/LTX-2.5-Diffusers: its distilled transformer)."""
    from ltx2gen.testing.synthetic import write_model

    return write_model("tiny", tmp_path_factory.mktemp("models") / "ltx25-tiny", repo="Lightricks/LTX-2.5-Diffusers")


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
