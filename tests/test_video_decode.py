"""The video decode stage: the temporal pieces and spatial tiles of a decode plan, the uint8 conversion, the video
decoder without its encoder."""

import numpy as np
import pytest
import torch

from ltx2gen.checkpoint import latent_frame_count
from ltx2gen.components import load_component
from ltx2gen.video_decode import DecodePlan, decode_video_frames, load_video_decoder, tile_stride, to_uint8_frames


@pytest.mark.parametrize("num_frames,chunk,context", [(17, 0, 32), (161, 0, 32), (321, 0, 32), (97, 16, 8),
                                                      (97, 40, 24), (9, 8, 8)])
def test_decode_pieces_cover_every_frame_exactly_once(num_frames, chunk, context):
    plan = DecodePlan.choose(num_frames, chunk, context)
    latent_frames = latent_frame_count(num_frames)
    covered = []
    for window_start, window_end, first, end in plan.pieces(latent_frames):
        window_frames = 8 * (window_end - window_start) - 7
        assert 0 <= first < end <= window_frames
        covered.extend(range(first + 8 * window_start, end + 8 * window_start))
    assert covered == list(range(num_frames))


def test_automatic_plan_is_whole_up_to_161_frames_and_pieces_beyond():
    assert DecodePlan.choose(161, 0, 32).chunk_latents == 21
    assert DecodePlan.choose(321, 0, 32) == DecodePlan(chunk_latents=8, context_latents=4)


@pytest.mark.parametrize("tile,overlap", [(16, 2), (8, 0), (12, 6), (16, 8)])
def test_tile_stride_never_leaves_a_one_latent_tile(tile, overlap):
    for size in range(1, 400):
        stride = tile_stride(size, tile, overlap)
        starts = range(0, size, stride)
        assert size - starts[-1] > 1 or size <= tile, size
        assert 1 <= stride <= tile


def test_tile_stride_keeps_the_default_where_it_is_safe():
    assert tile_stride(34) == 14  # 1088 px: diffusers' default stride
    assert tile_stride(29) != 14  # 928 px: 29 = 2 * 14 + 1 would leave a one-latent sliver


def test_tiled_decode_at_a_sliver_prone_width_decodes_every_pixel(tiny_vae):
    # 29 latents (928 px) with 16-latent tiles: diffusers' default stride of 14 would crash on the last tile.
    latents = torch.randn(1, 4, 2, 2, 29, generator=torch.Generator().manual_seed(1))
    frames = list(decode_video_frames(tiny_vae, latents, DecodePlan(2, 0, tile_latents=16, overlap_latents=2)))
    assert len(frames) == 9 and frames[0].shape == (64, 928, 3)


@pytest.fixture(scope="module")
def tiny_vae(tiny_model):
    return load_component(tiny_model, "vae", torch.device("cpu"), torch.float32)


def whole_decode(vae, latents):
    with torch.no_grad():
        video = vae.decode(latents, None, return_dict=False)[0][0]
    return ((video / 2 + 0.5).clamp(0, 1).permute(1, 2, 3, 0).numpy() * 255).round().astype(np.uint8)


def pieced_error(vae, latents, context_latents: int) -> int:
    plan = DecodePlan(chunk_latents=3, context_latents=context_latents)
    pieced = np.stack(list(decode_video_frames(vae, latents, plan)))
    assert pieced.shape == (89, 64, 96, 3)
    return int(np.abs(pieced.astype(int) - whole_decode(vae, latents)).max())


def test_pieces_with_context_covering_the_receptive_field_match_a_whole_decode(tiny_vae):
    latents = torch.randn(1, 4, 12, 2, 3, generator=torch.Generator().manual_seed(0))
    # The tiny decoder sees 7 latent frames to each side (measured with gradients): with 8 latent frames of context
    # the pieces match a whole decode up to float rounding (different conv shapes); with 2 they visibly do not.
    assert pieced_error(tiny_vae, latents, context_latents=8) <= 1
    assert pieced_error(tiny_vae, latents, context_latents=2) > 20


def test_uint8_frames_are_the_stock_conversion_bit_for_bit():
    # The stock pipeline's VideoProcessor scales on the device, then numpy_to_pil rounds float32 on the host.
    video = torch.randn(3, 5, 8, 6, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16) * 1.2
    video[0, 0, 0, :4] = torch.tensor([-1.0, 1.0, 1 / 255 - 1, 2 / 255 - 1])  # ends and half-way cases
    stock = ((video / 2 + 0.5).clamp(0, 1).permute(1, 2, 3, 0).float().numpy() * 255).round().astype(np.uint8)
    frames = to_uint8_frames(video)
    assert frames.dtype == torch.uint8 and frames.shape == (5, 8, 6, 3)
    assert np.array_equal(frames.numpy(), stock)


def test_decode_runs_with_gradients_off(tiny_vae):
    seen = []
    handle = tiny_vae.decoder.register_forward_hook(lambda *_: seen.append(torch.is_grad_enabled()))
    try:
        with torch.enable_grad():
            frames = list(decode_video_frames(tiny_vae, torch.randn(1, 4, 3, 2, 3), DecodePlan(3, 0)))
    finally:
        handle.remove()
    assert len(frames) == 17 and seen == [False]


def test_the_video_decoder_decodes_like_the_whole_vae_without_holding_its_encoder(tiny_model):
    cpu = torch.device("cpu")
    whole = load_component(tiny_model, "vae", cpu, torch.float32)
    decoder = load_video_decoder(tiny_model, cpu, torch.float32)
    assert decoder.encoder is None and whole.encoder is not None
    assert dict(decoder.state_dict()).keys() == {name for name in whole.state_dict() if not name.startswith("encoder.")}
    latents = torch.randn(1, 4, 3, 2, 3, generator=torch.Generator().manual_seed(0))
    plan = DecodePlan(3, 0)
    assert np.array_equal(np.stack(list(decode_video_frames(decoder, latents, plan))),
                          np.stack(list(decode_video_frames(whole, latents, plan))))


def test_a_vae_whose_names_do_not_match_decodes_whole_through_from_pretrained_and_says_so(tiny_model, tmp_path,
                                                                                        capsys):
    import shutil

    from safetensors.torch import load_file, save_file

    folder = tmp_path / "model"
    shutil.copytree(tiny_model, folder)
    weights = next((folder / "vae").glob("*.safetensors"))
    save_file({**load_file(weights), "decoder.unused_extra": torch.zeros(2)}, weights, metadata={"format": "pt"})
    vae = load_video_decoder(folder, torch.device("cpu"), torch.float32)
    assert "1 unexpected (e.g. ['decoder.unused_extra']); loading the whole VAE" in capsys.readouterr().out
    assert vae.encoder is not None


@pytest.fixture(scope="module")
def diffusion_decoded(tiny_25_model, tmp_path_factory):
    """One LTX-2.5 clip decoded by its diffusion decoder, its latents kept."""
    from conftest import run_generate

    out = tmp_path_factory.mktemp("diffusion") / "clip.mp4"
    assert run_generate(tiny_25_model, out, "--decoder", "diffusion", "--keep-latents") == 0
    return out


def test_the_diffusion_decoder_decodes_what_the_stock_decode_pipeline_makes_from_the_same_latents(
        diffusion_decoded, tiny_25_model):
    from diffusers import LTX2VideoDiffusionDecodePipeline

    from ltx2gen.latents import load_latents

    saved = load_latents(diffusion_decoded.with_suffix(".latents.safetensors"))
    seed = saved.metadata["seed"]
    decoder = load_component(tiny_25_model, "diffusion_decoder", torch.device("cpu"), torch.float32)
    stock = LTX2VideoDiffusionDecodePipeline(diffusion_decoder=decoder, scheduler=None)
    frames = stock(saved.video, generator=torch.Generator("cpu").manual_seed(seed), output_type="np",
                   denormalize=False).frames[0]  # latents saved denormalized, as the stock pipelines return them
    ours = np.stack(list(decode_video_frames(decoder, saved.video, DecodePlan.choose(17, 0, 32, decoder="diffusion",
                                                                                      seed=seed))))
    assert ours.shape == (17, 64, 96, 3)
    assert np.array_equal(ours, (frames * 255).round().astype(np.uint8))


def test_a_diffusion_decoded_clip_records_its_decoder_and_recovers_with_it_exactly(diffusion_decoded, tmp_path):
    import json

    import decode_latents
    from ltx2gen.video import read_frames

    sidecar = json.loads(diffusion_decoded.with_suffix(".json").read_text())
    assert sidecar["video_decoder"]["decoder"] == "diffusion"
    assert sidecar["vae_decode"].startswith(f"diffusion decode (noise seed {sidecar['seed']})")
    recovered = tmp_path / "again.mp4"
    assert decode_latents.main(["--input", str(diffusion_decoded.with_suffix(".latents.safetensors")),
                                "--output", str(recovered)]) == 0
    assert np.array_equal(read_frames(recovered), read_frames(diffusion_decoded))  # the same decoder and noise
    assert json.loads(recovered.with_suffix(".json").read_text())["video_decoder"]["decoder"] == "diffusion"
    vae = tmp_path / "vae.mp4"
    assert decode_latents.main(["--input", str(diffusion_decoded.with_suffix(".latents.safetensors")),
                                "--output", str(vae), "--decoder", "vae"]) == 0
    assert not np.array_equal(read_frames(vae), read_frames(diffusion_decoded))


def test_the_diffusion_decoder_decodes_in_temporal_pieces_with_every_frame(tiny_25_model):
    decoder = load_component(tiny_25_model, "diffusion_decoder", torch.device("cpu"), torch.float32)
    latents = torch.randn(1, 4, 5, 2, 3, generator=torch.Generator().manual_seed(3))
    plan = DecodePlan.choose(33, 16, 8, decoder="diffusion", seed=5)
    assert plan.describe(5) == "diffusion decode (noise seed 5) in pieces of 16 frames with 8 frames of context on " \
                               "each side"
    frames = list(decode_video_frames(decoder, latents, plan))
    assert len(frames) == 33 and frames[0].shape == (64, 96, 3)


@pytest.mark.parametrize("script", ["generate.py", "decode_latents.py"])
def test_the_diffusion_decoder_of_a_model_without_one_is_refused_before_any_weight(script, tiny_model, clip_latents,
                                                                                     tmp_path, capsys):
    import decode_latents
    import generate

    if script == "generate.py":
        argv = ["--model", str(tiny_model), "--prompt", "a fox", "--output", str(tmp_path / "c.mp4")]
        main = generate.main
    else:
        argv = ["--input", str(clip_latents), "--output", str(tmp_path / "c.mp4")]
        main = decode_latents.main
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--decoder", "diffusion"])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and len(err.splitlines()) == 1
    assert "--decoder diffusion: " in err and "has no diffusion decoder (diffusion_decoder/" in err
    assert "drop --decoder to decode with the VAE" in err and not list(tmp_path.iterdir())


@pytest.fixture(scope="module")
def clip_latents(tiny_model, tmp_path_factory):
    from conftest import run_generate

    out = tmp_path_factory.mktemp("vae") / "clip.mp4"
    assert run_generate(tiny_model, out, "--keep-latents") == 0
    return out.with_suffix(".latents.safetensors")


def test_a_cpu_diffusion_decode_larger_than_the_host_holds_is_refused_before_any_weight(tiny_25_model):
    """Its uncompiled attention would hold every score of the largest tile: the tiny decoder's needs about 14 GiB at
    128x128x33 (measured), over the 8 GiB the check is given here; 96x64x17 needs 0.5 GiB."""
    from ltx2gen.errors import ConfigError
    from ltx2gen.video_decode import check_cpu_decode

    cpu, gib = torch.device("cpu"), 1024**3
    with pytest.raises(ConfigError, match=r"would hold about 14 GiB for a 128x128x33 clip \(8 GiB available\); "
                                          "decode with --decoder vae on the CPU, or on a GPU"):
        check_cpu_decode(tiny_25_model, "diffusion", cpu, 128, 128, 33, 8 * gib)
    check_cpu_decode(tiny_25_model, "diffusion", cpu, 96, 64, 17, 8 * gib)
    check_cpu_decode(tiny_25_model, "vae", cpu, 1920, 1088, 161, 8 * gib)
    check_cpu_decode(tiny_25_model, "diffusion", torch.device("cuda"), 1920, 1088, 161, 8 * gib)
