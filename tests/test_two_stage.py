"""--pipeline two-stage end to end on the tiny real models: reduced-size diffusion, the real latent upsampler of each
LTX-2 version (x2, or x1.5), the refine at full size, the stage-one latents file and the resumed refine; each
version's render equal to diffusers' documented two-stage recipe."""

import contextlib
import io
import json
import re
import shlex
import weakref
from pathlib import Path

import numpy as np
import pytest

import decode_latents
import generate
from conftest import run_generate, stock_pipeline
from ltx2gen import memory
from ltx2gen.latents import load_latents
from ltx2gen.testing import published, synthetic
from ltx2gen.video import probe, read_frames

# 128x128 so that stage one (64x64) is two latents wide: the tiny VAE's reflect padding needs more than one.
TWO_STAGE = ["--pipeline", "two-stage", "--width", "128", "--height", "128", "--num-frames", "17", "--seed", "5"]
# The later versions' renders, as small as the tiny models take (their 48 kHz vocoder is slow on a CPU): stage one one
# latent wide, the clip two (the decoders' reflect padding needs more than one).
SMALL_TWO_STAGE = ["--pipeline", "two-stage", "--width", "64", "--height", "64", "--num-frames", "9", "--seed", "5"]


@pytest.fixture(scope="module")
def clip(tiny_model, tmp_path_factory):
    """One uninterrupted two-stage run with --keep-latents, its printed output and its lifecycle events."""
    out = tmp_path_factory.mktemp("two_stage") / "clip.mp4"
    events, models = [], {}

    def observe(event, name, obj):
        if event in ("load", "freed", "stage-end"):
            events.append((event, name))
        if event == "loaded":
            models[name] = weakref.ref(obj)
        if event == "load" and name == "latent_upsampler":
            events.append(("transformer resident", models["transformer"]() is not None))

    memory.add_listener(observe)
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            assert run_generate(tiny_model, out, "--keep-latents", clip=TWO_STAGE) == 0
    finally:
        memory.remove_listener(observe)
    return out, printed.getvalue(), events


def test_output_has_the_requested_frames_and_size(clip):
    out, _, _ = clip
    info = probe(out)
    assert (info.frames, info.width, info.height) == (17, 128, 128)


def test_sidecar_and_plan_line_record_both_stages(clip):
    out, printed, _ = clip
    sidecar = json.loads(out.with_suffix(".json").read_text())
    first, upsample, refine = sidecar["diffusion_stages"]
    assert sidecar["pipeline"] == "two-stage" and (sidecar["width"], sidecar["height"]) == (128, 128)
    assert (first["width"], first["height"], first["steps"], first["transformer_calls"]) == (64, 64, 8, 8)
    assert first["pipeline_call"]["sigmas"] == [1.0, 0.99375, 0.9875, 0.98125, 0.975, 0.909375, 0.725, 0.421875]
    assert (upsample["width"], upsample["height"], upsample["upsampler_scale"]) == (128, 128, 2.0)
    assert upsample["upsampler"].endswith("latent_upsampler")
    # The official refine sigmas reach the scheduler unshifted (the tiny scheduler shifts by resolution otherwise).
    assert refine["scheduler_sigmas"] == pytest.approx([0.909375, 0.725, 0.421875, 0.0], abs=1e-7)
    assert (refine["steps"], refine["noise_scale"], refine["transformer_calls"]) == (3, 0.909375, 3)
    assert sidecar["transformer_calls"] == 11
    assert re.search(r"plan: LTX-2.0 two-stage \(64x64, 8 distilled steps -> x2 latent upsample \(the model's "
                     r"latent_upsampler/\) -> 128x128, 3 refine", printed)


def test_transformer_loads_once_and_stays_while_the_upsampler_loads_and_frees(clip):
    _, _, events = clip
    diffusion = events[events.index(("load", "transformer")):events.index(("stage-end", "diffusion"))]
    assert diffusion.count(("load", "transformer")) == 1
    assert ("transformer resident", True) in diffusion
    freed_upsampler = diffusion.index(("freed", "latent_upsampler"))
    assert diffusion.index(("load", "latent_upsampler")) < freed_upsampler
    assert ("freed", "transformer") not in diffusion[:freed_upsampler]


def test_stage_one_latents_decode_to_a_half_size_preview(clip, tmp_path):
    out, _, _ = clip
    preview = tmp_path / "stage1.mp4"
    assert decode_latents.main(["--input", str(out.with_suffix(".stage1.latents.safetensors")),
                                "--output", str(preview)]) == 0
    info = probe(preview)
    assert (info.frames, info.width, info.height) == (17, 64, 64)


def test_a_failed_refine_keeps_stage_one_and_its_resume_command_gives_the_uninterrupted_clip(clip, tiny_model,
                                                                                            tmp_path, capsys):
    out, _, _ = clip
    failed = tmp_path / "failed.mp4"
    transformer_calls = []

    def fail_in_the_refine(event, name, obj):
        if event == "loaded" and name == "transformer":
            def explode(*_):
                transformer_calls.append(1)
                if len(transformer_calls) > 8:  # the refine's first step
                    raise RuntimeError("injected refine fault")
            obj.register_forward_pre_hook(explode)

    memory.add_listener(fail_in_the_refine)
    try:
        assert run_generate(tiny_model, failed, clip=TWO_STAGE) == 1
    finally:
        memory.remove_listener(fail_in_the_refine)
    err = capsys.readouterr().err
    assert "injected refine fault" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["failed.stage1.latents.safetensors"]
    command = shlex.split(re.search(r"resume the refine with:\n\s+(.*)", err).group(1))
    assert command[2:4] == ["--refine-from", str(tmp_path / "failed.stage1.latents.safetensors")]
    assert generate.main(command[2:]) == 0
    assert np.array_equal(read_frames(failed), read_frames(out))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["failed.json", "failed.mp4"]  # stage one discarded


def test_a_resumed_refine_refuses_settings_that_differ_from_its_stage_one(clip, capsys):
    out, _, _ = clip
    with pytest.raises(SystemExit) as exit_info:
        generate.main(["--refine-from", str(out.with_suffix(".stage1.latents.safetensors")), "--seed", "9"])
    assert exit_info.value.code == 2
    assert "--seed 9: the stage-one latents were made with 5; drop the flag" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--image", "--audio"])
def test_conditioning_inputs_are_refused_with_two_stage(flag, tiny_model, tmp_path, capsys):
    from PIL import Image

    from tests.test_audio_input import write_tone

    path = tmp_path / ("still.png" if flag == "--image" else "tone.wav")
    if flag == "--image":
        Image.new("RGB", (128, 128)).save(path)
    else:
        write_tone(path, 1.0)
    with pytest.raises(SystemExit) as exit_info:
        generate.main(["--prompt", "a fox", "--model", str(tiny_model), "--pipeline", "two-stage", "--width", "128",
                       "--height", "128", flag, str(path), "--output", str(tmp_path / "clip.mp4")])
    assert exit_info.value.code == 2
    assert f"{flag} {path}: conditioning is not built into --pipeline two-stage yet" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_resume_advice_in_the_container_is_the_images_generate_command(monkeypatch, tmp_path):
    from types import SimpleNamespace

    from ltx2gen.config import GenerateConfig, build_parser
    from ltx2gen.two_stage import resume_command

    config = GenerateConfig.from_args(build_parser().parse_args([
        "--prompt", "a fox", "--pipeline", "two-stage", "--camera", "jib-up", "--no-timestamp",
        "--output", str(tmp_path / "a b.mp4")]))
    monkeypatch.setenv("LTX2GEN_IN_CONTAINER", "1")
    from ltx2gen.two_stage import stage_one_path

    assert resume_command(SimpleNamespace(settings=config, fp8="weight"), stage_one_path(config)) == (
        f"docker run <the same options and image> generate --refine-from '{tmp_path}/a b.stage1.latents.safetensors' "
        "--fp8 weight --lora Lightricks/LTX-2-19b-LoRA-Camera-Control-Jib-Up::"
        "ltx-2-19b-lora-camera-control-jib-up.safetensors 1")


# --- LTX-2.3 and LTX-2.5: each version's upsampler; x1.5 --------------------------------------------------------------

@pytest.fixture(scope="module")
def upsampler_23(tmp_path_factory):
    """The tiny LTX-2.3 x2 upsampler repo (rootonchair/LTX-2.3-spatial-upscaler-x2-v1.1-Diffusers: vae/ and
    latent_upsampler/ of the published configuration, tiny sizes)."""
    return synthetic.write_model("tiny", tmp_path_factory.mktemp("upsamplers") / "x2", repo=published.UPSAMPLER_REPO)


@pytest.fixture(scope="module")
def upsampler_x15(upsampler_23):
    """A tiny LTX-2.3 x1.5 upsampler: no diffusers-format one is published, so the x2 repo's configuration with what
    SOURCES.md derives for Lightricks' x1.5 (the rational resampler at 1.5), saved as diffusers saves it."""
    from diffusers.pipelines.ltx2.latent_upsampler import LTX2LatentUpsamplerModel

    config = json.loads((upsampler_23 / "latent_upsampler" / "config.json").read_text())
    arguments = {key: value for key, value in config.items() if not key.startswith("_")}
    folder = upsampler_23.parent / "x1.5"
    x15 = LTX2LatentUpsamplerModel(**dict(arguments, use_rational_resampler=True, rational_spatial_scale=1.5))
    x15.save_pretrained(folder)
    return folder


def in_hub_cache(cache: Path, repo: str, snapshot: Path) -> None:
    """`snapshot` where the Hugging Face cache keeps `repo` (offline, as downloaded)."""
    from conftest import linked_copy

    folder = cache / f"models--{repo.replace('/', '--')}"
    linked_copy(snapshot, folder / "snapshots" / ("0" * 40))
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text("0" * 40)


def stock_two_stage(model_dir: Path, upsampler_dir: Path, sidecar: dict):
    """diffusers' documented two-stage recipe for a distilled checkpoint ("Distilled checkpoint generation", "Two-stage
    generation for LTX-2.5"): the stock pipeline at stage one's size through DISTILLED_SIGMA_VALUES, the stock
    LTX2LatentUpsamplePipeline (`latents_normalized=False`), then the refine through STAGE_2_DISTILLED_SIGMA_VALUES
    re-noised to their first sigma; called with the run's recorded calls (every guidance off, where the docs' calls
    leave STG and modality isolation at the pipeline's defaults) and its noise (seed, then seed + 1 for the refine,
    where the docs continue one generator)."""
    import torch
    from diffusers.pipelines.ltx2 import LTX2LatentUpsamplePipeline
    from diffusers.pipelines.ltx2.latent_upsampler import LTX2LatentUpsamplerModel
    from diffusers.pipelines.ltx2.utils import DISTILLED_SIGMA_VALUES, STAGE_2_DISTILLED_SIGMA_VALUES

    first_call, refine_call = sidecar["diffusion_stages"][0]["pipeline_call"], sidecar["pipeline_call"]
    assert first_call["sigmas"] == DISTILLED_SIGMA_VALUES and refine_call["sigmas"] == STAGE_2_DISTILLED_SIGMA_VALUES
    assert refine_call["noise_scale"] == STAGE_2_DISTILLED_SIGMA_VALUES[0]
    pipe = stock_pipeline(model_dir)
    prompt = dict(prompt=sidecar["prompt"], negative_prompt=sidecar["negative_prompt"],
                  max_sequence_length=sidecar["prompt_tokens"])
    video, audio = pipe(**prompt, generator=torch.Generator().manual_seed(sidecar["seed"]), **first_call,
                        return_dict=False)
    upsampler = LTX2LatentUpsamplerModel.from_pretrained(upsampler_dir, torch_dtype=torch.float32)
    upsampled = LTX2LatentUpsamplePipeline(vae=pipe.vae, latent_upsampler=upsampler)(
        latents=video, latents_normalized=False, output_type="latent", return_dict=False)[0]
    return pipe(**prompt, latents=upsampled, audio_latents=audio,
                generator=torch.Generator().manual_seed(sidecar["seed"] + 1), **refine_call, return_dict=False)


@pytest.mark.parametrize("version", ["2.3", "2.5"])
def test_each_versions_default_upsampler_renders_what_the_stock_recipe_makes(version, tiny_23_model, tiny_25_model,
                                                                             upsampler_23, tmp_path, monkeypatch):
    import torch
    from huggingface_hub import constants

    model = {"2.3": tiny_23_model, "2.5": tiny_25_model}[version]
    # LTX-2.3's repos ship no upsampler: its default comes from the Hugging Face cache; LTX-2.5's is its own.
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    in_hub_cache(tmp_path / "hub", published.UPSAMPLER_REPO, upsampler_23)
    out = tmp_path / "clip.mp4"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert run_generate(model, out, "--keep-latents", clip=SMALL_TWO_STAGE) == 0
    source = {"2.3": f"{published.UPSAMPLER_REPO} (LTX-2.3's default)", "2.5": "the model's latent_upsampler/"}[version]
    assert f"plan: LTX-{version} two-stage (32x32, 8 distilled steps -> x2 latent upsample ({source}) -> 64x64" in \
        printed.getvalue()
    sidecar = json.loads(out.with_suffix(".json").read_text())
    upsample = sidecar["diffusion_stages"][1]
    upsampler_dir = Path(upsample["upsampler"])
    assert (upsample["upsampler_source"], upsample["upsampler_scale"]) == (source, 2.0)
    assert upsampler_dir.parent.name == ("0" * 40 if version == "2.3" else model.name)
    stage_one = load_latents(out.with_suffix(".stage1.latents.safetensors")).metadata
    assert (stage_one["width"], stage_one["upsampler"], stage_one["upsampler_scale"]) == (32, str(upsampler_dir), 2.0)
    stock_video, stock_audio = stock_two_stage(model, upsampler_dir, sidecar)
    saved = load_latents(out.with_suffix(".latents.safetensors"))
    torch.testing.assert_close(saved.video, stock_video, rtol=0, atol=1e-5)  # float32 rounding, as in test_generate
    torch.testing.assert_close(saved.audio, stock_audio, rtol=0, atol=1e-5)


def test_an_x15_upsampler_diffuses_stage_one_at_two_thirds_of_the_size_and_lands_on_the_full_size(
        tiny_23_model, upsampler_x15, capsys):
    import torch
    from diffusers.pipelines.ltx2 import LTX2LatentUpsamplePipeline
    from diffusers.pipelines.ltx2.latent_upsampler import LTX2LatentUpsamplerModel

    from conftest import parse_config
    from ltx2gen.plan import RunPlan

    plan = RunPlan.choose(parse_config("--model", str(tiny_23_model), "--upsampler", str(upsampler_x15), "--device",
                                       "cpu", "--pipeline", "two-stage", "--width", "96", "--height", "192"))
    assert f"(64x128, 8 distilled steps -> x1.5 latent upsample (--upsampler {upsampler_x15}) -> 96x192" in \
        capsys.readouterr().out
    assert (plan.call["width"], plan.call["height"], plan.upsampler.scale) == (64, 128, 1.5)
    # The real x1.5 module on stage one's latents (64x128 px: 2x4) gives the refine's (96x192 px: 3x6).
    upsampler = LTX2LatentUpsamplerModel.from_pretrained(upsampler_x15)
    pipe = LTX2LatentUpsamplePipeline(vae=None, latent_upsampler=upsampler)  # given latents, it reads no VAE
    latents = torch.randn(1, 4, 2, 4, 2, generator=torch.Generator().manual_seed(0))
    upsampled = pipe(latents=latents, width=64, height=128, output_type="latent", return_dict=False)[0]
    assert upsampled.shape == (1, 4, 2, 6, 3)


@pytest.mark.parametrize("size, message", [
    ("128", "--width 128: --pipeline two-stage with the x1.5 upsampler (--upsampler {x15}) runs stage one at "
            "128/1.5 px, which must be a multiple of 32; give a multiple of 96: try 96 or 192"),
    ("1088", "--width 1088: --pipeline two-stage with the x1.5 upsampler (--upsampler {x15}) runs stage one at "
             "1088/1.5 px, which must be a multiple of 32; give a multiple of 96: try 1056 or 1152")])
def test_sizes_stage_one_cannot_take_are_refused_with_the_valid_ones_before_anything_loads(
        size, message, upsampler_x15, tmp_path):
    from conftest import run_generate_process

    result = run_generate_process("--prompt", "a fox", "--pipeline", "two-stage", "--width", size, "--height", "96",
                                  "--upsampler", str(upsampler_x15), "--output", str(tmp_path / "c.mp4"), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1].startswith(f"generate.py: error: {message.format(x15=upsampler_x15)}")
    assert "TORCH_NOT_IMPORTED" in result.stdout


@pytest.mark.parametrize("model, upsampler, message", [
    ("tiny_23_model", "tiny_model", "--upsampler {upsampler}: a latent upsampler made for LTX-2.0 latents (its "
                                    "config.json: use_rational_resampler true at x2), not for LTX-2.3's; drop "
                                    "--upsampler for rootonchair/LTX-2.3-spatial-upscaler-x2-v1.1-Diffusers"),
    ("tiny_model", "upsampler_23", "--upsampler {upsampler}: a latent upsampler made for LTX-2.3/2.5 latents (its "
                                   "config.json: use_rational_resampler false at x2), not for LTX-2.0's; drop "
                                   "--upsampler for the model's own latent_upsampler/"),
    ("tiny_23_model", "tiny_25_model", "--upsampler {upsampler}: the latent upsampler of an LTX-2.5 model, not of "
                                       "LTX-2.3"),
    ("tiny_23_model", None, "--pipeline two-stage on LTX-2.3: its repos ship no latent upsampler and the default one, "
                            "rootonchair/LTX-2.3-spatial-upscaler-x2-v1.1-Diffusers (an unofficial diffusers "
                            "conversion of Lightricks' x2 v1.1), is not in the Hugging Face cache")])
def test_an_upsampler_made_for_another_version_or_missing_is_refused_before_any_weight(
        model, upsampler, message, request, tmp_path, capsys, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    loads = []

    def observe(event, name, obj):
        if event == "load":
            loads.append(name)

    upsampler = upsampler and str(request.getfixturevalue(upsampler))
    memory.add_listener(observe)
    try:
        with pytest.raises(SystemExit) as exit_info:
            run_generate(request.getfixturevalue(model), tmp_path / "c.mp4",
                         *(["--upsampler", upsampler] if upsampler else []), clip=TWO_STAGE)
    finally:
        memory.remove_listener(observe)
    assert exit_info.value.code == 2
    assert f"generate.py: error: {message.format(upsampler=upsampler)}" in capsys.readouterr().err
    assert loads == []


def test_a_temporal_upsampler_is_refused_while_validating(upsampler_23, tmp_path):
    from conftest import parse_config
    from ltx2gen.errors import ConfigError

    folder = tmp_path / "temporal"
    folder.mkdir()
    config = json.loads((upsampler_23 / "latent_upsampler" / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(dict(config, spatial_upsample=False, temporal_upsample=True)))
    with pytest.raises(ConfigError, match="a temporal latent upsampler \\(it adds frames\\); two-stage needs a "
                                          "spatial one \\(x2 or x1.5\\)"):
        parse_config("--pipeline", "two-stage", "--upsampler", str(folder))
