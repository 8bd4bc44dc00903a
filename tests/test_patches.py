import pytest
import torch

from ltx2gen import patches
from ltx2gen.components import load_component
from tests.test_kernels import run, tiny_inputs


def recording_tokens(forward, token_counts: list):
    def recorded(x, *args, **kwargs):
        token_counts.append(x.shape[1])
        return forward(x, *args, **kwargs)

    return recorded


def test_feed_forward_and_norms_in_token_chunks_give_the_same_output(tiny_model):
    transformer = load_component(tiny_model, "transformer", torch.device("cpu"), torch.bfloat16)
    reference = run(transformer)
    block = transformer.transformer_blocks[0]
    seen = {name: [] for name in ("ff", "audio_ff", "norm1", "attn1.norm_q", "attn2.norm_k")}
    for name in seen:  # record what the original forward receives, under the chunking wrapper
        layer = block.get_submodule(name)
        layer.forward = recording_tokens(layer.forward, seen[name])
    patches.token_wise_layers_in_chunks(transformer, chunk_tokens=4)
    chunked = run(transformer)
    # 6 video tokens as 4 + 2, 5 audio tokens as 4 + 1; the text keys (7 tokens) too: every token-wise layer
    assert seen == {"ff": [4, 2], "audio_ff": [4, 1], "norm1": [4, 2], "attn1.norm_q": [4, 2], "attn2.norm_k": [4, 3]}
    torch.testing.assert_close(chunked, reference, rtol=0, atol=1e-2)


def test_rotary_embedding_in_token_chunks_gives_the_same_output(tiny_model, monkeypatch):
    from diffusers.models.transformers import transformer_ltx2

    transformer = load_component(tiny_model, "transformer", torch.device("cpu"), torch.bfloat16)
    reference = run(transformer)
    original, token_counts = transformer_ltx2.apply_split_rotary_emb, []

    def counted(x, freqs):
        token_counts.append(x.shape[1])
        return original(x, freqs)

    monkeypatch.setattr(transformer_ltx2, "apply_split_rotary_emb", counted)
    monkeypatch.setattr(patches, "ROTARY_CHUNK_TOKENS", 4)
    patches.rotary_embedding_in_chunks()
    patches.rotary_embedding_in_chunks()  # installed once, not wrapped twice
    assert torch.equal(run(transformer), reference)
    assert token_counts and max(token_counts) == 4  # 6 video tokens as 4 + 2, 5 audio tokens as 4 + 1


def test_ltx20_blocks_become_perturbable_for_stg_and_compute_the_same_attention_otherwise(tiny_model):
    transformer = load_component(tiny_model, "transformer", torch.device("cpu"), torch.bfloat16)
    with torch.no_grad():
        def skipping_block_0():
            return transformer(**tiny_inputs(), spatio_temporal_guidance_blocks=[0])[0].float()

        plain, unperturbed_stg = run(transformer), skipping_block_0()
        patches.self_attention_perturbable(transformer)
        perturbed_stg = skipping_block_0()
    assert torch.equal(unperturbed_stg, plain)  # as diffusers loads LTX-2.0: STG's pass is the plain prediction
    assert torch.equal(run(transformer), plain)  # nothing perturbed: the same attention, bit for bit
    assert not torch.allclose(perturbed_stg, plain, atol=1e-3)  # block 0's self-attention skipped


def test_the_video_self_attention_alone_is_routed_to_the_fp8_kernel_and_everything_else_is_untouched(
        tiny_model, monkeypatch):
    """The routing of `video_self_attention_in_fp8`, on the CPU: with the FP8 kernel's place taken by PyTorch's own
    attention (the kernel itself needs a GPU: tests/test_attention.py), the marked attentions are exactly the video
    self-attentions, the output is unchanged bit for bit, and a transformer without the mark is not affected."""
    from diffusers.models.transformers import transformer_ltx2

    from ltx2gen import attention

    transformer = load_component(tiny_model, "transformer", torch.device("cpu"), torch.bfloat16)
    other = load_component(tiny_model, "transformer", torch.device("cpu"), torch.bfloat16)
    reference = run(transformer)
    routed = []

    def exact_attention(query, key, value):
        routed.append(query.shape)
        return torch.nn.functional.scaled_dot_product_attention(
            *(tensor.transpose(1, 2) for tensor in (query, key, value))).transpose(1, 2)

    monkeypatch.setattr(attention, "fp8_attention", exact_attention)
    monkeypatch.setattr(transformer_ltx2, "dispatch_attention_fn", transformer_ltx2.dispatch_attention_fn)
    patches.video_self_attention_in_fp8(transformer)
    patches.video_self_attention_in_fp8(transformer)  # the router is installed once, not wrapped twice
    assert torch.equal(run(transformer), reference)
    heads = transformer.config.num_attention_heads
    video_tokens = tiny_inputs()["hidden_states"].shape[1]
    assert routed == [(1, video_tokens, heads, transformer.config.attention_head_dim)] * len(
        transformer.transformer_blocks)
    routed.clear()
    run(other)
    assert routed == []


def conditioned_step(config, version: str, dtype: torch.dtype, audio_per_token: bool) -> dict:
    """A guided step's inputs (split_transformer's) as image, keyframe and tail conditioning make them: each video
    token at t * (1 - strength), the first latent frame clean and the last at strength 0.5, so three runs; with
    `audio_per_token`, the audio too (a conditioned prefix), over three tokens so that its count equals the runs'."""
    from split_transformer import FRAMES, HEIGHT, WIDTH, step_inputs

    inputs = step_inputs(config, version)
    for name in ("hidden_states", "audio_hidden_states", "encoder_hidden_states", "audio_encoder_hidden_states"):
        inputs[name] = inputs[name].to(dtype)
    frame = HEIGHT * WIDTH
    strength = torch.zeros(FRAMES * frame)
    strength[:frame], strength[-frame:] = 1.0, 0.5
    step = torch.tensor([700.0, 700.0])
    inputs["timestep"] = step.view(-1, 1) * (1 - strength)
    if audio_per_token:
        inputs["audio_hidden_states"] = inputs["audio_hidden_states"][:, :3]
        inputs["audio_num_frames"] = 3
        inputs["audio_timestep"] = step.view(-1, 1) * torch.tensor([0.0, 1.0, 1.0])
    else:
        inputs["audio_timestep"] = step
    return inputs


@pytest.mark.parametrize("repo", ["rootonchair/LTX-2-19b-distilled", "diffusers/LTX-2.3-Distilled-Diffusers",
                                  "Lightricks/LTX-2.5-Diffusers"])
@pytest.mark.parametrize("dtype, audio_per_token", [(torch.bfloat16, False), (torch.float32, True)])
def test_per_run_modulation_gives_the_stock_output_and_no_block_holds_a_per_token_embedding(repo, dtype,
                                                                                             audio_per_token):
    """Each version's tiny transformer, with per-token timesteps as conditioning makes them, gives the stock output
    bit for bit while its blocks receive one modulation row per run of equal timesteps: three runs, padded with an
    empty one where the audio also has three tokens. A plain step (one timestep a row) is untouched, and compiled
    blocks take the runs in one graph over the steps."""
    import copy

    from torch._dynamo.testing import CompileCounter

    from ltx2gen.checkpoint import model_version
    from ltx2gen.kernels import compile_blocks
    from ltx2gen.testing import build, published

    version = model_version(published.fixture_dir(repo))
    stock = build.build_transformer("tiny", seed=0, dtype=dtype, repo=repo).eval()
    inputs = conditioned_step(stock.config, version, dtype, audio_per_token)
    patched = copy.deepcopy(stock)
    patches.timestep_modulation_per_run(patched)
    rows_seen = []
    patched.transformer_blocks[0].register_forward_pre_hook(
        lambda module, args, kwargs: rows_seen.append((kwargs["temb"].shape[1], kwargs["temb_ca_gate"].shape[1])),
        with_kwargs=True)
    plain = dict(inputs, timestep=inputs["timestep"][:, -1], audio_timestep=inputs["timestep"][:, -1])
    with torch.no_grad():
        expected, expected_plain = stock(**inputs), stock(**plain)
        found, found_plain = patched(**inputs), patched(**plain)
        assert all(torch.equal(a, b) for a, b in zip(expected, found))
        assert all(torch.equal(a, b) for a, b in zip(expected_plain, found_plain))
        runs = 4 if audio_per_token else 3
        cross_rows = runs if version == "2.0" else 1  # LTX-2.3 on: the other modality's sigma, one a row
        assert rows_seen == [(runs, cross_rows), (1, 1)]
        assert all(torch.equal(a, b) for a, b in zip(expected, stock(**inputs)))  # the stock blocks are as they were
        compiler = CompileCounter()
        compile_blocks(patched, backend=compiler)
        for step in (1.0, 0.5):
            patched(**dict(inputs, timestep=inputs["timestep"] * step, audio_timestep=inputs["audio_timestep"] * step))
        assert compiler.frame_count == 1
    torch._dynamo.reset()
