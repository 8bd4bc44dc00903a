"""The diffusion stage: the denoiser, resident or offloaded."""

import torch


def test_offloaded_transformer_denoises_like_a_resident_one(tiny_model):
    from ltx2gen import memory
    from ltx2gen.diffusion import load_denoiser, pipeline_call_arguments, run_denoiser
    from ltx2gen.text import PromptRequest, encode_prompt

    cpu = torch.device("cpu")
    tracker = memory.MemoryTracker(cpu)
    conditioning = tracker.run("text", encode_prompt, tiny_model, PromptRequest("a fox", None, False), cpu,
                               torch.float32)
    call = pipeline_call_arguments(width=96, height=64, num_frames=17, fps=24.0, steps=8, guidance_scale=1.0,
                                   distilled=True)
    results = {}
    for offload in ("none", "model", "group"):
        def diffuse(stage):
            denoiser = load_denoiser(stage, tiny_model, cpu, torch.float32, offload=offload)
            return run_denoiser(denoiser, conditioning, call, seed=3)
        results[offload] = tracker.run("diffusion", diffuse)
    # The same weights (resident ones are streamed from the files, offloaded ones loaded by diffusers): their memory
    # layouts differ, so CPU kernels round differently in float32, nothing more.
    for offload in ("model", "group"):
        torch.testing.assert_close(results[offload].video_latents, results["none"].video_latents, rtol=0, atol=1e-6)
    assert results["group"].transformer_calls == results["model"].transformer_calls == 8
