import json
import subprocess
import sys

import pytest
import torch

from conftest import CLIP, ROOT, run_generate, torchrun
from ltx2gen import context_parallel
from ltx2gen.errors import ConfigError
from ltx2gen.testing import presets

# A published repo of each LTX-2 version (2.0, 2.3, 2.5).
ONE_REPO_PER_VERSION = ("rootonchair/LTX-2-19b-distilled", "diffusers/LTX-2.3-Distilled-Diffusers",
                        "Lightricks/LTX-2.5-Diffusers")


@pytest.mark.parametrize("repo, rope_type", [*((repo, None) for repo in ONE_REPO_PER_VERSION),
                                             (ONE_REPO_PER_VERSION[0], "interleaved")])
def test_plan_splits_every_video_rotary_embedding_along_its_tokens(repo, rope_type):
    """Each rotary embedding the plan splits must have the dimensions the plan expects, with the video tokens on
    the split dimension; otherwise diffusers silently leaves it whole while the tokens are split. Each version's own
    rotary embedding (`rope_type` None), and diffusers' default, "interleaved"."""
    config = presets.PRESETS["tiny"](repo)["transformer"]
    config["rope_type"] = rope_type or config["rope_type"]
    from diffusers import LTX2VideoTransformer3DModel

    transformer = LTX2VideoTransformer3DModel(**config)
    frames, height, width = 3, 2, 3
    coords = transformer.rope.prepare_video_coords(1, frames, height, width, torch.device("cpu"), fps=24.0)
    embeddings = {"rope": transformer.rope(coords), "cross_attn_rope": transformer.cross_attn_rope(coords[:, 0:1])}
    plan = context_parallel.plan(config["rope_type"])
    for name, (cos, sin) in embeddings.items():
        for index, tensor in enumerate((cos, sin)):
            split = plan[name][index]
            assert tensor.dim() == split.expected_dims, name
            assert tensor.shape[split.split_dim] == frames * height * width, name


@pytest.mark.parametrize("world_size, size, message", [
    (3, (1920, 1088, 161), "32 attention heads must divide evenly"),
    (4, (96, 64, 1), "do not split evenly; use a --width that is a multiple of 64"),
])
def test_uneven_splits_are_refused_with_a_size_that_works(world_size, size, message):
    with pytest.raises(ConfigError, match=message):
        context_parallel.check_split(world_size, *size)
    context_parallel.check_split(2, 1920, 1088, 161)
    context_parallel.check_split(4, 1920, 1088, 161)


def test_split_transformer_makes_every_guidance_pass_as_it_does_whole(tmp_path):
    """Each version's tiny transformer, split over two processes, gives what it gives whole in the passes guidance
    makes: plain, STG (self-attention skipped for every row, or for one), modality isolation; each rank's blocks see
    half the video tokens."""
    out = tmp_path / "differences.json"
    result = torchrun(*ONE_REPO_PER_VERSION, str(out), script=ROOT / "tests" / "split_transformer.py",
                      PYTHONPATH=str(ROOT))
    assert result.returncode == 0, result.stderr[-3000:]
    for repo, found in json.loads(out.read_text()).items():
        assert found["video_tokens_seen_split"] * 2 == found["video_tokens"], repo
        for name, (video, audio) in found["passes"].items():
            assert video < 1e-5 and audio < 1e-5, (repo, name, video, audio)


# LTX-2.3's distilled transformer is its full one's (the same configuration); the split transformer test above
# covers every version's transformer pass by pass.
@pytest.mark.parametrize("model, flags", [
    ("tiny_23_full_model", ("--steps", "2")),  # its default guidance: CFG, STG and modality isolation
    ("tiny_25_model", ()),
])
def test_one_clip_over_two_processes_equals_one_process(model, flags, request, tmp_path):
    """On CPUs the ranks exchange over gloo; the split clip's latents equal one process's to float32 rounding."""
    from ltx2gen.latents import load_latents

    model_dir = request.getfixturevalue(model)
    flags = ("--device", "cpu", "--keep-latents", *flags)
    assert run_generate(model_dir, tmp_path / "alone.mp4", *flags) == 0
    split = torchrun("--prompt", "w1 w2 w3", "--model", str(model_dir), "--no-timestamp", *CLIP, *flags,
                     "--output", str(tmp_path / "split.mp4"))
    assert split.returncode == 0, split.stderr[-3000:]
    one, two = (load_latents(tmp_path / f"{name}.latents.safetensors") for name in ("alone", "split"))
    for stream in ("video", "audio"):
        reference, value = getattr(one, stream).float(), getattr(two, stream).float()
        assert (value - reference).norm() / reference.norm() < 1e-5, stream


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA GPUs")
def test_one_clip_over_two_gpus_equals_one_gpu(tiny_model, tmp_path):
    from ltx2gen.latents import load_latents

    args = ["--prompt", "w1 w2 w3", "--model", str(tiny_model), "--no-timestamp", "--keep-latents", "--fp8", "off",
            "--width", "128", "--height", "64", "--num-frames", "17", "--seed", "3"]
    alone = subprocess.run([sys.executable, str(ROOT / "generate.py"), *args, "--output", str(tmp_path / "a.mp4")],
                           capture_output=True, text=True)
    assert alone.returncode == 0, alone.stderr
    split = torchrun(*args, "--output", str(tmp_path / "b.mp4"))
    assert split.returncode == 0, split.stderr
    one, two = (load_latents(tmp_path / f"{name}.latents.safetensors") for name in "ab")
    for reference, value in ((one.video, two.video), (one.audio, two.audio)):
        error = (value.float() - reference.float()).norm() / reference.float().norm()
        assert error < 2e-2, error
