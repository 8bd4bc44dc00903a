"""Normalized Attention Guidance on the tiny real model: the formula, both streams, one transformer call per step,
and its compatibility with compiled blocks, FP8 weights, group offload, guidance and batches."""

import json

import numpy as np
import pytest
import torch

import generate
from conftest import parse_config
from ltx2gen import diffusion, kernels, memory, nag, text
from ltx2gen.checkpoint import Guidance
from ltx2gen.nag import NagSettings, guide
from ltx2gen.video import read_frames

CPU = torch.device("cpu")
PROMPT, NEGATIVE = "a red fox runs through snow", "blurry, a dog"
ON = NagSettings(scale=8.0, tau=2.5, alpha=0.25)


def test_guide_extrapolates_clips_each_token_by_its_l1_norm_and_blends():
    positive = torch.tensor([[1.0, 2.0, -1.0], [1.0, 0.0, 0.0]])
    negative = torch.tensor([[1.0, 2.0, -0.5], [-1.0, 0.0, 0.0]])
    # Token 0: z = z+ + 2 (z+ - z-) = [1, 2, -2], ||z||_1 / ||z+||_1 = 5/4, under tau: kept.
    # Token 1: z = [5, 0, 0], ratio 5 > tau 2: scaled to [2, 0, 0].
    settings = NagSettings(scale=2.0, tau=2.0, alpha=1.0)
    assert torch.allclose(guide(positive, negative, settings), torch.tensor([[1.0, 2.0, -2.0], [2.0, 0.0, 0.0]]))
    blended = guide(positive, negative, NagSettings(scale=2.0, tau=2.0, alpha=0.25))
    assert torch.allclose(blended, 0.25 * torch.tensor([[1.0, 2.0, -2.0], [2.0, 0.0, 0.0]]) + 0.75 * positive)
    assert torch.equal(guide(positive, negative, NagSettings(scale=0.0, tau=2.0, alpha=0.5)), positive)
    assert torch.equal(guide(positive, positive, NagSettings(scale=9.0, tau=1.0, alpha=1.0)), positive)
    # An all-zero positive output leaves no room for guidance: zero, not NaN.
    assert torch.equal(guide(torch.zeros(1, 3), negative[:1], settings), torch.zeros(1, 3))


@pytest.fixture(scope="module")
def encoded(tiny_model):
    """Conditionings for the prompt, plain and with the NAG negative context, from one text stage."""
    requests = {"plain": text.PromptRequest(PROMPT, NEGATIVE, False),
                "nag": text.PromptRequest(PROMPT, NEGATIVE, False, with_nag=True),
                "nag_same": text.PromptRequest(PROMPT, PROMPT, False, with_nag=True),
                "cfg": text.PromptRequest(PROMPT, NEGATIVE, True),
                "cfg_nag": text.PromptRequest(PROMPT, NEGATIVE, True, with_nag=True)}
    with memory.MemoryTracker(CPU).stage("text") as stage:
        conditionings = text.encode_prompts(stage, tiny_model, list(requests.values()), CPU, torch.float32)
    return dict(zip(requests, conditionings))


def call(guidance_scale: float = 1.0) -> dict:
    return diffusion.pipeline_call_arguments(width=96, height=64, num_frames=17, fps=24.0, steps=8,
                                          guidance=Guidance(cfg=guidance_scale, audio_cfg=guidance_scale),
                                          distilled=True, version="2.0")


def load(tiny_model, **options) -> diffusion.Denoiser:
    with memory.MemoryTracker(CPU).stage("diffusion") as stage:
        return diffusion.load_denoiser(stage, tiny_model, CPU, torch.float32, diffusion.TransformerOptions(**options))


def denoise(denoiser, conditioning, settings=None, guidance_scale=1.0) -> diffusion.DiffusionResult:
    return diffusion.run_denoiser(denoiser, conditioning, call(guidance_scale), 7, nag_settings=settings)


@pytest.fixture(scope="module")
def denoiser(tiny_model):
    """One transformer for the runs below: guided runs restore its stock processors when they end."""
    return load(tiny_model)


@pytest.fixture(scope="module")
def plain(denoiser, encoded):
    return denoise(denoiser, encoded["plain"])


@pytest.fixture(scope="module")
def guided(denoiser, encoded):
    return denoise(denoiser, encoded["nag"], ON)


def close(a: diffusion.DiffusionResult, b: diffusion.DiffusionResult) -> bool:
    return all(torch.allclose(x, y, rtol=1e-4, atol=1e-5) for x, y in
               ((a.video_latents, b.video_latents), (a.audio_latents, b.audio_latents)))


def test_the_text_stage_appends_the_negative_context_at_guidance_1(encoded):
    plain, guided = encoded["plain"], encoded["nag"]
    tokens = plain.prompt_mask.shape[1]
    assert plain.video.shape[:2] == (1, tokens) and guided.video.shape[:2] == (1, 2 * tokens)
    assert torch.equal(guided.video[:, :tokens], plain.video) and torch.equal(guided.audio[:, :tokens], plain.audio)
    assert not torch.equal(guided.video[:, tokens:], plain.video)
    assert nag.has_negative_context(guided) and not nag.has_negative_context(plain)


def test_scale_0_gives_the_plain_run(denoiser, encoded, plain):
    # The guided processor with nothing to guide computes what the stock one does.
    assert close(denoise(denoiser, encoded["nag"], NagSettings(0.0, 2.5, 0.25)), plain)


def test_a_negative_prompt_steers_both_streams_with_one_transformer_call_per_step(denoiser, plain, guided):
    assert guided.transformer_calls == plain.transformer_calls == 8
    for name in ("video_latents", "audio_latents"):
        difference = (getattr(guided, name) - getattr(plain, name)).norm() / getattr(plain, name).norm()
        assert difference > 1e-4, name  # float32 noise between equal runs is below 1e-6
    blocks = denoiser.pipe.transformer.transformer_blocks
    assert not any(isinstance(getattr(block, name).processor, nag.NagCrossAttention)
                   for block in blocks for name in nag.CROSS_ATTENTION_LAYERS)  # restored after the run


def test_every_text_cross_attention_of_both_streams_is_guided_at_every_step(denoiser, encoded):
    seen = []
    layers = [(f"{index}.{name}", getattr(block, name)) for index, block in
              enumerate(denoiser.pipe.transformer.transformer_blocks) for name in ("attn2", "audio_attn2")]
    hooks = [layer.register_forward_hook(lambda module, args, output, name=name: seen.append(
        (name, isinstance(module.processor, nag.NagCrossAttention)))) for name, layer in layers]
    try:
        denoise(denoiser, encoded["nag"], ON)
    finally:
        for hook in hooks:
            hook.remove()
    assert sorted(seen) == sorted((name, True) for name, _ in layers for _ in range(8))


def test_a_negative_prompt_equal_to_the_prompt_changes_nothing(denoiser, encoded, plain):
    assert close(denoise(denoiser, encoded["nag_same"], ON), plain)


def test_nag_with_guidance_guides_the_positive_row_in_the_same_single_call(denoiser, encoded):
    cfg = denoise(denoiser, encoded["cfg"], guidance_scale=3.0)
    both = denoise(denoiser, encoded["cfg_nag"], ON, guidance_scale=3.0)
    assert both.transformer_calls == cfg.transformer_calls == 8
    assert not close(both, cfg)


def test_settings_and_conditioning_must_agree(denoiser, encoded):
    with pytest.raises(ValueError, match="negative context is encoded exactly when NAG is on"):
        denoise(denoiser, encoded["plain"], ON)
    with pytest.raises(ValueError, match="negative context is encoded exactly when NAG is on"):
        denoise(denoiser, encoded["nag"])


def test_nag_runs_with_streamed_blocks(tiny_model, encoded, guided):
    streamed = load(tiny_model)
    diffusion.stream_blocks(streamed.pipe.transformer, CPU)  # diffusers' group offload on the CPU, as in test_kernels
    assert close(denoise(streamed, encoded["nag"], ON), guided)


def test_nag_runs_with_fp8_weights(tiny_model, encoded, guided):
    result = denoise(load(tiny_model, fp8="weight"), encoded["nag"], ON)
    error = (result.video_latents - guided.video_latents).norm() / guided.video_latents.norm()
    assert result.transformer_calls == 8 and 0 < error < 0.1  # the guided run, within FP8 rounding


def test_compiled_blocks_with_nag_share_one_graph_and_match_eager(tiny_model, encoded, guided):
    from torch._dynamo.testing import CompileCounter

    compiler = CompileCounter()
    compiled = load(tiny_model)
    kernels.compile_blocks(compiled.pipe.transformer, backend=compiler)
    try:
        result = denoise(compiled, encoded["nag"], ON)
    finally:
        torch._dynamo.reset()
    assert close(result, guided)
    assert compiler.frame_count == 1  # the guided cross-attention traces without a graph break


def test_nag_without_a_negative_prompt_uses_ltx2_default_said_once(capsys):
    from diffusers.pipelines.ltx2.utils import DEFAULT_NEGATIVE_PROMPT

    config = parse_config("--nag-scale", "8")
    assert config.uses_nag and config.negative_prompt == DEFAULT_NEGATIVE_PROMPT
    assert capsys.readouterr().out.count("LTX-2's default negative prompt") == 1
    assert parse_config("--nag-scale", "8", "--negative-prompt", "dog").negative_prompt == "dog"
    assert parse_config().negative_prompt is None and not parse_config().uses_nag
    assert "default negative prompt" not in capsys.readouterr().out


def test_a_batch_sets_nag_per_clip_and_caches_its_conditioning_apart(tiny_model, tmp_path):
    # Same prompt and negative prompt in both clips: only NAG tells their cached conditionings apart.
    clips = [{"name": "guided", "nag_scale": 8}, {"name": "plain"}]
    common = {"prompt": PROMPT, "negative_prompt": NEGATIVE, "model": str(tiny_model), "width": 96, "height": 64,
              "num_frames": 17, "seed": 7}
    batch_file = tmp_path / "clips.jsonl"
    batch_file.write_text("".join(json.dumps(dict(common, **clip)) + "\n" for clip in clips))
    cache = tmp_path / "embeddings"
    assert generate.main(["--batch", str(batch_file), "--out", str(tmp_path / "out"),
                          "--embedding-cache", str(cache)]) == 0
    assert len(list(cache.iterdir())) == 2
    sidecars = {clip["name"]: json.loads((tmp_path / "out" / f"{clip['name']}.json").read_text()) for clip in clips}
    assert sidecars["guided"]["nag"] == {"scale": 8.0, "tau": 2.5, "alpha": 0.25} and sidecars["plain"]["nag"] is None
    assert sidecars["guided"]["transformer_calls"] == 8
    out = tmp_path / "out"
    assert not np.array_equal(read_frames(out / "guided.mp4"), read_frames(out / "plain.mp4"))
