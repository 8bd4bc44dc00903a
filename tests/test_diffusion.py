"""The diffusion stage: the denoiser, resident or offloaded, and what each guidance setting costs."""

import json

import pytest
import torch

from conftest import run_generate


def prompt_and_call(model, device, dtype):
    """A tracker, a short prompt's conditioning and the pipeline call of a 17-frame distilled clip."""
    from ltx2gen import memory
    from ltx2gen.checkpoint import Guidance
    from ltx2gen.diffusion import pipeline_call_arguments
    from ltx2gen.text import PromptRequest, encode_prompt

    tracker = memory.MemoryTracker(device)
    conditioning = tracker.run("text", encode_prompt, model, PromptRequest("a fox", None, False), device, dtype)
    call = pipeline_call_arguments(width=96, height=64, num_frames=17, fps=24.0, steps=8, guidance=Guidance(),
                                   distilled=True, version="2.0")
    return tracker, conditioning, call


def test_offloaded_transformer_denoises_like_a_resident_one(tiny_model):
    from ltx2gen.diffusion import TransformerOptions, load_denoiser, run_denoiser

    cpu = torch.device("cpu")
    tracker, conditioning, call = prompt_and_call(tiny_model, cpu, torch.float32)
    results = {}
    for offload in ("none", "model", "group", "files"):
        def diffuse(stage):
            denoiser = load_denoiser(stage, tiny_model, cpu, torch.float32, TransformerOptions(offload=offload))
            return run_denoiser(denoiser, conditioning, call, seed=3)
        results[offload] = tracker.run("diffusion", diffuse)
    # The same weights, streamed from the files either way; the offload hooks move them between calls, so CPU
    # kernels may round differently in float32, nothing more.
    for offload in ("model", "group", "files"):
        torch.testing.assert_close(results[offload].video_latents, results["none"].video_latents, rtol=0, atol=1e-6)
    assert results["group"].transformer_calls == results["files"].transformer_calls == 8


@pytest.mark.parametrize("flags, calls_per_step", [
    ((), 3),  # Lightricks' recommendation: CFG (both predictions in one call), STG, modality isolation
    (("--stg-scale", "0"), 2),
    (("--modality-scale", "1"), 2),
    (("--stg-scale", "0", "--modality-scale", "1"), 1),  # CFG alone: one call of twice the batch
    (("--guidance-scale", "1", "--audio-guidance-scale", "1", "--stg-scale", "0", "--modality-scale", "1"), 1),
])
def test_each_guidance_setting_costs_its_transformer_calls_per_step(tiny_full_model, tmp_path, flags,
                                                                    calls_per_step):
    out = tmp_path / "clip.mp4"
    assert run_generate(tiny_full_model, out, "--steps", "2", *flags) == 0
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["transformer_calls"] == 2 * calls_per_step == 2 * sidecar["transformer_calls_per_step"]


def test_the_transformer_for_offloading_loads_into_host_memory_as_the_resident_one_does(tiny_model):
    from ltx2gen.diffusion import load_transformer, load_transformer_to_host

    cpu = torch.device("cpu")
    streamed = load_transformer(tiny_model, cpu, torch.float32).state_dict()
    host = load_transformer_to_host(tiny_model, cpu, torch.float32).state_dict()
    assert streamed.keys() == host.keys() and all(torch.equal(host[name], streamed[name]) for name in streamed)


@pytest.mark.gpu
@pytest.mark.parametrize("fp8", ["off", "weight"])
def test_group_offload_keeps_the_transformer_once_in_pinned_host_memory_and_streams_it(tiny_model, fp8):
    from ltx2gen.diffusion import TransformerOptions, load_denoiser, run_denoiser

    cuda = torch.device("cuda")
    tracker, conditioning, call = prompt_and_call(tiny_model, cuda, torch.bfloat16)
    results, placements = {}, {}
    for offload in ("none", "group"):
        def diffuse(stage):
            denoiser = load_denoiser(stage, tiny_model, cuda, torch.bfloat16,
                                     TransformerOptions(fp8=fp8, offload=offload))
            result = run_denoiser(denoiser, conditioning, call, seed=3)
            weight = denoiser.pipe.transformer.transformer_blocks[0].ff.net[2].weight
            # an FP8 weight's data is its inner tensors; offloading moves those and leaves the wrapper's device as is
            data = getattr(weight, weight.__tensor_flatten__()[0][0]) if fp8 != "off" else weight
            placements[offload] = (data.device.type, data.is_pinned() if data.device.type == "cpu" else None)
            return result
        results[offload] = tracker.run("diffusion", diffuse)
    assert placements == {"none": ("cuda", None), "group": ("cpu", True)}  # streamed back after the run, pinned
    difference = (results["group"].video_latents - results["none"].video_latents).abs().max()
    assert difference < 1e-2
