"""generate.py and decode_latents.py end to end on the tiny real model (real diffusers, real ffmpeg)."""

import json
import re
import shlex
import subprocess
import sys
import weakref
from fractions import Fraction

import numpy as np
import pytest
import torch

import decode_latents
from conftest import CLIP, ROOT, linked_copy, parse_config, run_generate, stock_run
from ltx2gen import memory
from ltx2gen.video import probe, read_frames


@pytest.fixture
def listen():
    listeners = []

    def add(listener):
        memory.add_listener(listener)
        listeners.append(listener)

    yield add
    for listener in listeners:
        memory.remove_listener(listener)


@pytest.fixture(scope="module")
def clip(tiny_model, tmp_path_factory):
    """One generation with --keep-latents, shared by the checks below."""
    out = tmp_path_factory.mktemp("clip") / "clip.mp4"
    calls = []

    def count_transformer_calls(event, name, obj):
        if event == "loaded" and name == "transformer":
            obj.register_forward_pre_hook(lambda *_: calls.append(1))

    memory.add_listener(count_transformer_calls)
    try:
        assert run_generate(tiny_model, out, "--keep-latents") == 0
    finally:
        memory.remove_listener(count_transformer_calls)
    return out, len(calls)


def test_mp4_has_exact_frames_size_rate_and_stereo_audio_at_the_vocoder_rate(clip, tiny_model):
    out, _ = clip
    info = probe(out)
    vocoder_rate = json.loads((tiny_model / "vocoder" / "config.json").read_text())["output_sampling_rate"]
    assert (info.frames, info.width, info.height, info.fps) == (17, 96, 64, Fraction(24))
    assert (info.audio_channels, info.audio_sample_rate) == (2, vocoder_rate)
    assert abs(info.audio_samples / vocoder_rate - 17 / 24) < 1024 / vocoder_rate


def test_sidecar_records_everything_needed_to_reproduce(clip):
    out, _ = clip
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["seed"] == 7 and sidecar["pipeline"] == "distilled" and sidecar["transformer_calls"] == 8
    call = sidecar["pipeline_call"]
    assert call["sigmas"] == [1.0, 0.99375, 0.9875, 0.98125, 0.975, 0.909375, 0.725, 0.421875]
    assert (call["guidance_scale"], call["stg_scale"], call["modality_scale"], call["audio_guidance_scale"]) == (
        1.0, 0.0, 1.0, 1.0)
    assert len(sidecar["scheduler_sigmas"]) == 9
    assert set(sidecar["stage_seconds"]) == {"text", "diffusion", "audio", "video"}
    assert all("rss_gib" in stage for stage in sidecar["stages"])
    diffusion = next(stage for stage in sidecar["stages"] if stage["name"] == "diffusion")
    assert 0 < diffusion["load_seconds"]["transformer"] <= diffusion["seconds"]
    assert (sidecar["fp8"], sidecar["offload"]) == ("off", "none")  # the CPU defaults


def test_fp8_weight_storage_runs_on_cpu_when_asked_and_is_recorded(tiny_model, tmp_path, capsys):
    out = tmp_path / "fp8.mp4"
    assert run_generate(tiny_model, out, "--fp8", "weight") == 0
    assert json.loads(out.with_suffix(".json").read_text())["fp8"] == "weight"
    assert "fp8 weights" in capsys.readouterr().out


def test_exactly_one_transformer_forward_per_distilled_step(clip):
    assert clip[1] == 8


def assert_frames_equal_the_stock_pipeline(out, model_dir):
    from ltx2gen.video import write_mp4

    sidecar = json.loads(out.with_suffix(".json").read_text())
    stock_frames = (stock_run(model_dir, sidecar, "np").frames[0] * 255).round().astype(np.uint8)
    # Our frames went through H.264; re-encode the stock frames identically to compare like with like.
    stock_mp4 = write_mp4(out.with_name(f"{out.stem}.stock.mp4"), iter(stock_frames), width=sidecar["width"],
                          height=sidecar["height"], num_frames=sidecar["num_frames"], fps=Fraction(sidecar["fps"]))
    assert np.array_equal(read_frames(out), read_frames(stock_mp4))


def test_staged_frames_equal_the_stock_pipeline_in_one_piece(clip, tiny_model):
    assert_frames_equal_the_stock_pipeline(clip[0], tiny_model)


def test_staged_latents_equal_the_stock_pipeline_latents(clip, tiny_model):
    from ltx2gen.latents import load_latents

    out, _ = clip
    saved = load_latents(out.with_suffix(".latents.safetensors"))
    stock = stock_run(tiny_model, json.loads(out.with_suffix(".json").read_text()), "latent")
    # The staged transformer is read tensor by tensor into fresh memory, the stock one is memory-mapped by
    # from_pretrained: CPU float32 kernels round differently on the two layouts (cloning the stock weights makes the
    # results bit-identical), so the check allows float32 rounding and nothing more.
    torch.testing.assert_close(saved.video, stock.frames, rtol=0, atol=1e-5)
    torch.testing.assert_close(saved.audio, stock.audio, rtol=0, atol=1e-5)


# Lightricks' distilled sigmas, as the scheduler holds them (float32) and the sidecar records them (8 decimals).
OFFICIAL_DISTILLED_SIGMAS = [round(float(np.float32(sigma)), 8)
                             for sigma in (1.0, 0.99375, 0.9875, 0.98125, 0.975, 0.909375, 0.725, 0.421875, 0.0)]


def published(model, folder, repo):
    """The model where a user would have it: a Hugging Face cache snapshot of `repo`, or a folder whose name says
    nothing (`repo` None)."""
    if repo is None:
        return linked_copy(model, folder / "ltx2")
    owner, name = repo.split("/")
    return linked_copy(model, folder / "hub" / f"models--{owner}--{name}" / "snapshots" / "5a2f0c1e")


# What a render with default flags must record for each published repo: its version, pipeline, reason, steps,
# guidance (video CFG, audio CFG, STG, its block, modality isolation, rescale), transformer calls and sigmas (None:
# the checkpoint's shifting schedule, ending at its shift_terminal). The full models sample with Lightricks'
# recommended guidance: 3 transformer calls per step (CFG's two predictions in one batch, STG, modality isolation).
DISTILLED = ("distilled", "its scheduler takes the sigmas as given", 8, (1.0, 1.0, 0.0, [], 1.0, 0.0), 8,
             OFFICIAL_DISTILLED_SIGMAS)
FULL = ("full", "its scheduler shifts the sigmas with the clip size")
PUBLISHED_RUNS = {"tiny_model": ("2.0", *DISTILLED),
                  "tiny_full_model": ("2.0", *FULL, 40, (3.0, 7.0, 1.0, [29], 3.0, 0.7), 120, None),
                  "tiny_23_model": ("2.3", *DISTILLED),
                  "tiny_23_full_model": ("2.3", *FULL, 30, (3.0, 7.0, 1.0, [28], 3.0, 0.7), 90, None),
                  "tiny_25_model": ("2.5", *DISTILLED)}


@pytest.mark.parametrize("model_fixture, repo, against_stock", [
    ("tiny_model", "rootonchair/LTX-2-19b-distilled", False), ("tiny_model", None, True),
    ("tiny_full_model", "Lightricks/LTX-2", True), ("tiny_full_model", None, False),
    ("tiny_23_model", "diffusers/LTX-2.3-Distilled-Diffusers", True),
    ("tiny_23_full_model", "diffusers/LTX-2.3-Diffusers", True),
    ("tiny_25_model", "Lightricks/LTX-2.5-Diffusers", True)])
def test_a_published_repo_renders_with_default_flags_from_a_cache_snapshot_or_any_folder(
        request, tmp_path, capsys, model_fixture, repo, against_stock):
    version, pipeline, reason, steps, guidance, calls, sigmas = PUBLISHED_RUNS[model_fixture]
    model_dir = request.getfixturevalue(model_fixture)
    out = tmp_path / "clip.mp4"
    assert run_generate(published(model_dir, tmp_path, repo), out, prompt="a fox in snow") == 0
    plan_line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("plan: "))
    assert plan_line.startswith(f"plan: LTX-{version} {pipeline} ({reason}")
    sidecar = json.loads(out.with_suffix(".json").read_text())
    recorded = sidecar["guidance"]
    assert (sidecar["pipeline"], sidecar["steps"], sidecar["guidance_scale"]) == (pipeline, steps, guidance[0])
    assert (recorded["cfg"], recorded["audio_cfg"], recorded["stg"], recorded["stg_blocks"], recorded["modality"],
            recorded["rescale"]) == guidance
    assert sidecar["transformer_calls_per_step"] * steps == calls
    assert sidecar["model_version"] == version
    assert sidecar["pipeline_call"]["use_cross_timestep"] == (version != "2.0")  # how each version was trained
    assert sidecar["audio_sample_rate"] == (24000 if version == "2.0" else 48000)
    assert sidecar["transformer_calls"] == calls and sidecar["prompt_tokens"] == 1024
    if sigmas:
        assert sidecar["scheduler_sigmas"] == sigmas
    else:
        assert sidecar["pipeline_call"]["sigmas"] is None and sidecar["scheduler_sigmas"][-2] == pytest.approx(0.1)
    if against_stock:
        assert_frames_equal_the_stock_pipeline(out, model_dir)


def test_ltx_2_5_full_runs_the_full_transformer_with_its_recommended_guidance_as_diffusers_documents_it(
        tiny_25_model, tmp_path, capsys):
    out = tmp_path / "full.mp4"
    assert run_generate(tiny_25_model, out, "--pipeline", "full", "--steps", "2") == 0
    assert "plan: LTX-2.5 full (as asked with --pipeline; auto would take distilled" in capsys.readouterr().out
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["transformer_folder"] == "transformer_full"
    assert (sidecar["guidance"]["stg_blocks"], sidecar["transformer_calls"]) == ([28], 6)
    assert sidecar["scheduler_sigmas"][-2] == pytest.approx(0.1)  # shifting, ending at the terminal shift
    assert_frames_equal_the_stock_pipeline(out, tiny_25_model)


def test_ltx_2_5_full_without_its_full_transformer_is_refused_before_any_weight(tiny_25_model, tmp_path, capsys):
    model = linked_copy(tiny_25_model, tmp_path / "ltx25")
    (model / "transformer_full").unlink()
    with pytest.raises(SystemExit) as exit_status:
        run_generate(model, tmp_path / "c.mp4", "--pipeline", "full")
    assert exit_status.value.code == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "--pipeline full: " in error and "transformer_full is missing" in error


def test_the_distilled_schedule_does_not_depend_on_the_checkpoints_scheduler_config(tiny_model, tiny_full_model,
                                                                                    tmp_path):
    """A distilled checkpoint whose scheduler shifts (converted before March 2026) still steps through the official
    sigmas."""
    model = linked_copy(tiny_model, tmp_path / "ltx2")
    (model / "scheduler").unlink()
    (model / "scheduler").symlink_to(tiny_full_model / "scheduler")
    out = tmp_path / "clip.mp4"
    assert run_generate(model, out, "--pipeline", "distilled") == 0
    assert json.loads(out.with_suffix(".json").read_text())["scheduler_sigmas"] == OFFICIAL_DISTILLED_SIGMAS


def test_decode_latents_reproduces_the_generated_clip(clip, tmp_path):
    out, _ = clip
    recovered = tmp_path / "recovered.mp4"
    assert decode_latents.main(["--input", str(out.with_suffix(".latents.safetensors")),
                                "--output", str(recovered)]) == 0
    assert np.array_equal(read_frames(recovered), read_frames(out))
    assert probe(recovered).audio_samples == probe(out).audio_samples


def test_latents_are_removed_after_success_unless_kept(tiny_model, tmp_path):
    assert run_generate(tiny_model, tmp_path / "c.mp4") == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.json", "c.mp4"]


def test_lifecycle_frees_each_model_before_the_next_stage_needs_the_memory(tiny_model, tmp_path, listen):
    refs, checks, grad_modes = {}, [], []
    out = tmp_path / "life.mp4"

    def observe(event, name, obj):
        if event == "loaded":
            refs[name] = weakref.ref(obj)
            if name == "vae" and "transformer" in refs:
                obj.decoder.register_forward_hook(lambda *_: grad_modes.append(torch.is_grad_enabled()))
        if event == "load" and name == "transformer":
            checks.append(("text encoder gone before the transformer loads", refs["text_encoder"]() is None))
            checks.append(("connectors gone before the transformer loads", refs["connectors"]() is None))
        if event == "decode":
            checks.append(("transformer gone before the VAE decode", refs["transformer"]() is None))
        if event == "evict":
            checks.append(("page cache evicted only after the video exists", out.exists()))
            checks.append(("every model gone before eviction", all(ref() is None for ref in refs.values())))

    listen(observe)
    assert run_generate(tiny_model, out) == 0
    assert len(checks) == 5 and all(ok for _, ok in checks), checks
    assert grad_modes == [False]


def test_fault_in_video_decode_keeps_latents_and_prints_a_working_recovery_command(tiny_model, tmp_path, listen,
                                                                                  capsys):
    out = tmp_path / "crash.mp4"

    def inject_fault(event, name, obj):
        if event == "decode":
            def explode(*_):
                raise RuntimeError("injected decoder fault")
            obj.decoder.register_forward_hook(explode)

    listen(inject_fault)
    assert run_generate(tiny_model, out) == 1
    err = capsys.readouterr().err
    assert "injected decoder fault" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["crash.latents.safetensors"]  # no partial MP4
    command = shlex.split(re.search(r"recover the clip with:\n\s+(.*)", err).group(1))
    assert command[1] == str(ROOT / "decode_latents.py")
    result = subprocess.run(command, capture_output=True, text=True, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin"})
    assert result.returncode == 0, result.stderr
    assert probe(out).frames == 17


def test_recovery_advice_in_the_container_is_the_images_decode_command(monkeypatch):
    from ltx2gen.report import recovery_command

    monkeypatch.setenv("LTX2GEN_IN_CONTAINER", "1")
    assert recovery_command("/outputs/a b.latents.safetensors", "/outputs/a b.mp4") == (
        "docker run <the same options and image> decode --input '/outputs/a b.latents.safetensors' "
        "--output '/outputs/a b.mp4'")


def test_negative_prompt_at_guidance_one_is_reported_as_ignored(tiny_model, tmp_path, capsys):
    assert run_generate(tiny_model, tmp_path / "n.mp4", "--negative-prompt", "blurry") == 0
    assert "--negative-prompt has no effect at guidance 1.0" in capsys.readouterr().out


def test_full_mode_with_guidance_uses_the_negative_prompt_in_one_batched_forward_per_step(tiny_model, tmp_path):
    from diffusers.pipelines.ltx2.utils import DEFAULT_NEGATIVE_PROMPT

    outputs = {}
    for negative in (None, "w5 w6", "w7 w8"):
        out = tmp_path / f"{str(negative).replace(' ', '')}.mp4"
        flags = ["--negative-prompt", negative] if negative else []
        assert run_generate(tiny_model, out, "--pipeline", "full", "--steps", "3", "--guidance-scale", "3",
                            "--stg-scale", "0", "--modality-scale", "1", *flags) == 0
        sidecar = json.loads(out.with_suffix(".json").read_text())
        assert sidecar["transformer_calls"] == 3 and sidecar["pipeline_call"]["sigmas"] is None
        assert sidecar["negative_prompt"] == (negative or DEFAULT_NEGATIVE_PROMPT)
        outputs[negative] = read_frames(out)
    assert not np.array_equal(outputs["w5 w6"], outputs["w7 w8"])
    assert not np.array_equal(outputs[None], outputs["w5 w6"])  # the default negative prompt is really used


def test_one_clip_over_several_processes_refuses_a_length_the_model_has_yet_to_choose():
    import generate
    from ltx2gen.errors import ConfigError
    from ltx2gen.ranks import Ranks

    with pytest.raises(ConfigError, match="--num-frames auto: one clip over 2 processes splits its video tokens by a "
                                          "frame count known before the prompt is encoded"):
        generate.one_clip_over_ranks(parse_config("--num-frames", "auto"), Ranks(rank=0, world_size=2))


def test_one_clip_over_several_processes_refuses_fp8_attention_asked_for():
    """The FP8 kernel attends over the whole sequence on one GPU; split over ranks, the attention is diffusers'
    ring exchange, which it does not do."""
    import generate
    from ltx2gen.errors import ConfigError
    from ltx2gen.ranks import Ranks

    with pytest.raises(ConfigError, match="--fp8-attention on: one clip over several GPUs splits the attention"):
        generate.one_clip_over_ranks(parse_config("--fp8-attention", "on", "--width", "768", "--height", "512"),
                                     Ranks(rank=0, world_size=2))



def test_one_clip_over_several_processes_refuses_dfr():
    import generate
    from ltx2gen.errors import ConfigError
    from ltx2gen.ranks import Ranks

    with pytest.raises(ConfigError, match="--pipeline dfr renders on one GPU"):
        generate.one_clip_over_ranks(parse_config("--pipeline", "dfr", "--width", "768", "--height", "512",
                                                  "--num-frames", "97"), Ranks(rank=0, world_size=2))


STOPPED_AT = """
import os, signal, sys
import generate
from ltx2gen import memory
from ltx2gen.plan import RunPlan

owner, name = {{"planned": (RunPlan, "choose"), "tracking": (memory.MemoryTracker, "__init__")}}[{moment!r}]
real = getattr(owner, name)

def then_stopped(*args, **kwargs):  # SIGTERM lands the moment this step ends, as `kill` may
    result = real(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGTERM)
    return result

setattr(owner, name, then_stopped)
sys.exit(generate.main(sys.argv[1:]))
"""


@pytest.mark.parametrize("moment", ["planned", "tracking"])
def test_a_stop_between_the_plan_line_and_the_first_stage_ends_as_interrupted_with_the_command_again(
        tiny_model, tmp_path, moment):
    out = tmp_path / "clip.mp4"
    args = ["--prompt", "a fox", "--model", str(tiny_model), "--no-timestamp", "--output", str(out), *CLIP]
    result = subprocess.run([sys.executable, "-c", STOPPED_AT.format(moment=moment), *args], cwd=ROOT,
                            capture_output=True, text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin",
                                                                 "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 130, result.stderr
    assert "plan:" in result.stdout and "Traceback" not in result.stderr
    assert "error: interrupted\nit stopped before the diffusion finished, so nothing was saved" in result.stderr
    assert "--prompt 'a fox'" in result.stderr.splitlines()[-1]
    assert list(tmp_path.iterdir()) == []  # the output's name is free again
