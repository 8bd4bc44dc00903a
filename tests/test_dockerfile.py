"""Static checks of the Dockerfile (no Docker needed): it copies what exists, installs the same pinned
requirements as the local setup, keeps the base image's torch, and documents how it is run."""

import json
import re
import shlex

import pytest

from conftest import ROOT, assert_linter_passes
from ltx2gen.config import build_parser

DOCKERFILE = ROOT / "Dockerfile"
BASE_IMAGE = "nvcr.io/nvidia/pytorch:26.01-py3"
TORCH_PACKAGES = {"torch", "torchvision", "torchaudio"}


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with comments dropped and continuation lines joined."""
    result, pending = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        keyword, _, args = (pending + line).strip().partition(" ")
        result.append((keyword.upper(), args.strip()))
        pending = ""
    assert not pending, "Dockerfile ends inside a continued line"
    return result


def args_of(keyword: str) -> list[str]:
    return [args for kw, args in instructions() if kw == keyword]


def comments() -> str:
    return "\n".join(line.lstrip()[1:] for line in DOCKERFILE.read_text().splitlines() if line.lstrip().startswith("#"))


def copy_sources(args: str) -> list[str]:
    words = json.loads(args) if args.startswith("[") else shlex.split(args)
    words = [w for w in words if not w.startswith("--")]
    assert len(words) >= 2, args
    return words[:-1]


def requirement_names(path) -> list[str]:
    names = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            names.append(re.split(r"[=<>!~\[; ]", line, maxsplit=1)[0].lower())
    return names


def test_base_image_is_an_overridable_arg():
    ins = instructions()
    assert ins[0] == ("ARG", f"BASE_IMAGE={BASE_IMAGE}")
    assert ins[1][0] == "FROM" and ins[1][1] in ("${BASE_IMAGE}", "$BASE_IMAGE")
    assert [kw for kw, _ in ins].count("FROM") == 1


def test_copy_sources_exist_and_cover_the_app():
    copied = [src for args in args_of("COPY") for src in copy_sources(args)]
    for src in copied:
        assert (ROOT / src).exists(), f"COPY source {src} is not in the repository"
    assert {src.rstrip("/") for src in copied} == {
        "requirements.txt", "requirements-gpu.txt", "generate.py", "decode_latents.py", "entrypoint.sh", "ltx2gen",
        "batch"}


def test_requirements_copied_and_installed_before_the_code():
    ins = instructions()
    first_copy = next(i for i, (kw, _) in enumerate(ins) if kw == "COPY")
    assert copy_sources(ins[first_copy][1]) == ["requirements.txt"]
    install = next(i for i, (kw, args) in enumerate(ins) if kw == "RUN" and "pip install" in args)
    assert first_copy < install < next(i for i, (kw, _) in enumerate(ins) if kw == "COPY" and i > first_copy)
    command = ins[install][1]
    assert "-r requirements.txt" in command and "--no-cache-dir" in command


def test_same_requirements_as_the_local_setup():
    dev = (ROOT / "requirements-dev.txt").read_text().splitlines()
    assert "-r requirements.txt" in [line.strip() for line in dev]


@pytest.mark.parametrize("name", ["requirements.txt", "requirements-gpu.txt"])
def test_requirements_pinned_and_without_torch(name):
    lines = [line.split("#", 1)[0].strip() for line in (ROOT / name).read_text().splitlines()]
    lines = [line for line in lines if line]
    assert lines
    for line in lines:
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*==[0-9][0-9A-Za-z.+!-]*", line), f"not pinned with ==: {line}"
    assert not TORCH_PACKAGES & set(requirement_names(ROOT / name))


def test_the_gpu_extras_install_without_their_requirements_and_keep_torch():
    """The cuDNN frontend's own requirements (the CUTLASS DSL) serve kernels the product does not use."""
    install = next(args for args in args_of("RUN") if "-r requirements-gpu.txt" in args)
    assert "--no-deps" in install and "-c /tmp/keep-torch.txt" in install
    assert "nvidia-cudnn-frontend" in requirement_names(ROOT / "requirements-gpu.txt")


def test_torch_is_never_reinstalled():
    runs = args_of("RUN")
    for command in runs:
        assert not re.search(r"pip3? install[^&|;]*\btorch(==|\s|$)", command), command
    # NGC's own constraint file is switched off for our pins ...
    assert "PIP_CONSTRAINT=" in args_of("ENV")
    # ... and a later step compares torch's version with the one recorded before the install.
    install = next(i for i, command in enumerate(runs) if "pip install" in command)
    assert "torch.__version__" in runs[install]
    assert any("torch.__version__" in command and "exit 1" in command for command in runs[install + 1:])


def test_runtime_environment():
    env = " ".join(args_of("ENV")).split()
    for setting in ("HF_HUB_OFFLINE=1", "HF_HOME=/cache/huggingface", "PYTHONUNBUFFERED=1"):
        assert setting in env
    volumes = json.loads(args_of("VOLUME")[0])
    assert volumes == ["/cache/huggingface", "/outputs"]
    assert args_of("WORKDIR") == ["/app"]
    # compiled kernels outlive the container (in the volume the weights are in), so a run reuses the last one's
    compile_cache = next(setting.partition("=")[2] for setting in env if setting.startswith("TORCHINDUCTOR_CACHE_DIR="))
    assert compile_cache.startswith(volumes[0] + "/")


def test_entrypoint_and_default_command():
    assert [json.loads(a) for a in args_of("ENTRYPOINT")] == [["/app/entrypoint.sh"]]
    assert [json.loads(a) for a in args_of("CMD")] == [["--help"]]


def test_privileged_documented_as_unneeded():
    text = comments()
    assert "--privileged is not needed" in text
    assert "posix_fadvise" in text and "--drop-page-cache" in text
    # The option the comment points at really exists.
    assert "--drop-page-cache" in build_parser().format_help()


def test_hadolint():
    assert_linter_passes("hadolint", DOCKERFILE)
