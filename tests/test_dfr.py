"""--pipeline dfr on the tiny LTX-2.5 model: each pass equal to diffusers' stock DFR pipelines with the same inputs,
the frames and frame rate after each temporal round with the audio in step, the records, and the refusals."""

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from conftest import run_generate
from ltx2gen.latents import load_latents
from ltx2gen.video import probe

SIZE = ["--width", "128", "--height", "128", "--num-frames", "17", "--seed", "7", "--pipeline", "dfr"]


@pytest.fixture(scope="module")
def temporal_upsampler(tmp_path_factory) -> Path:
    """A seeded temporal x2 latent upsampler at the tiny model's latent width, as diffusers' conversion writes one."""
    from diffusers.pipelines.ltx2.latent_upsampler import LTX2LatentUpsamplerModel

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("temporal") / "temporal_latent_upsampler"
    LTX2LatentUpsamplerModel(in_channels=4, mid_channels=32, num_blocks_per_stage=1, dims=3, spatial_upsample=False,
                             temporal_upsample=True).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def two_rounds(tiny_25_model, temporal_upsampler, tmp_path_factory):
    out = tmp_path_factory.mktemp("dfr") / "clip.mp4"
    assert run_generate(tiny_25_model, out, "--keep-latents", "--temporal-rounds", "2", "--temporal-upsampler",
                        str(temporal_upsampler), clip=SIZE) == 0
    return out


def stock_passes(model_dir: Path, upsampler: Path, sidecar: dict, detailing: Path | None = None) -> list:
    """diffusers' documented DFR composition ("Diffusion Fidelity Rendering (DFR) for LTX-2.5"), each pass with the
    noise the run records for it: LTX2DFRPipeline at half the size, LTX2LatentUpsamplePipeline on the video and the
    slots, LTX2DFRPipeline at the full size with stage one as reference (with `detailing`, the IC-LoRA loaded as the
    documentation does, at 0.5, for that pass alone), LTX2DFRTemporalRefinePipeline per round."""
    from diffusers import LTX2DFRPipeline, LTX2DFRTemporalRefinePipeline, LTXEulerAncestralRFScheduler
    from diffusers.pipelines.ltx2 import LTX2LatentUpsamplePipeline
    from diffusers.pipelines.ltx2.latent_upsampler import LTX2LatentUpsamplerModel
    from diffusers.pipelines.ltx2.utils import STAGE_2_DISTILLED_SIGMA_VALUES

    pipe = LTX2DFRPipeline.from_pretrained(model_dir, local_files_only=True, torch_dtype=torch.float32)
    seed, fps, frames = sidecar["seed"], 24.0, sidecar["dfr"]["requested_num_frames"]
    common = dict(prompt=sidecar["prompt"], max_sequence_length=sidecar["prompt_tokens"], output_type="latent")
    first = pipe(height=64, width=64, num_frames=frames, frame_rate=fps, generator=torch.Generator().manual_seed(seed),
                 **common)
    spatial = LTX2LatentUpsamplePipeline(vae=pipe.vae, latent_upsampler=LTX2LatentUpsamplerModel.from_pretrained(
        model_dir / "latent_upsampler", torch_dtype=torch.float32))
    video, keyframes = (spatial(latents=latents, output_type="latent", return_dict=False)[0]
                        for latents in (first.frames, first.keyframes))
    if detailing:
        pipe.load_lora_weights(str(detailing), adapter_name="detailing")
        pipe.set_adapters(["detailing"], adapter_weights=[0.5])
    second = pipe(height=128, width=128, num_frames=frames, latents=video, audio_latents=first.audio,
                  keyframes_latents=keyframes, keyframe_positions=first.keyframe_positions,
                  reference_latents=first.frames, reference_downscale_factor=2, sigmas=STAGE_2_DISTILLED_SIGMA_VALUES,
                  noise_scale=STAGE_2_DISTILLED_SIGMA_VALUES[0], generator=torch.Generator().manual_seed(seed + 1),
                  frame_rate=fps, **common)
    if detailing:
        pipe.unload_lora_weights()
    temporal = LTX2DFRTemporalRefinePipeline(
        scheduler=LTXEulerAncestralRFScheduler(eta=0.5), temporal_latent_upsampler=LTX2LatentUpsamplerModel
        .from_pretrained(upsampler, torch_dtype=torch.float32),
        **{name: getattr(pipe, name) for name in ("vae", "audio_vae", "text_encoder", "tokenizer", "connectors",
                                                  "transformer", "vocoder")})
    passes, last = [first, second], second
    for round_index in range(1, sidecar["dfr"]["temporal_rounds"] + 1):
        last = temporal(latents=last.frames, keyframes_latents=last.keyframes,
                        keyframe_positions=last.keyframe_positions, audio_latents=first.audio, height=128, width=128,
                        num_frames=(last.frames.shape[2] - 1) * 8 + 1,
                        frame_rate=fps * 2 ** (round_index - 1), source_seconds=sidecar["dfr"]["canvas_frames"] / fps,
                        condition_num_frames=frames, round_index=round_index,
                        generator=torch.Generator().manual_seed(seed + 1 + round_index), **common)
        passes.append(last)
    return passes


def test_each_pass_equals_diffusers_stock_dfr_pipelines_with_the_same_inputs(two_rounds, tiny_25_model,
                                                                            temporal_upsampler):
    sidecar = json.loads(two_rounds.with_suffix(".json").read_text())
    assert [stage["stage"] for stage in sidecar["diffusion_stages"]] == [
        "stage one", "stage two", "temporal round 1", "temporal round 2"]
    stock = stock_passes(tiny_25_model, temporal_upsampler, sidecar)
    for index, expected in enumerate(stock):
        path = two_rounds.with_suffix(f".dfr{index}.latents.safetensors")
        saved, metadata = load_file(path), json.loads(safe_open(path, "pt").metadata()["ltx2gen"])
        canvas = metadata["canvas_latent_frames"]
        assert (metadata["kind"], metadata["pass"]) == ("dfr pass", index)
        assert metadata["keyframe_positions"] == expected.keyframe_positions
        torch.testing.assert_close(saved["video_latents"][:, :, :canvas], expected.frames, rtol=0, atol=1e-5)
        torch.testing.assert_close(saved["video_latents"][:, :, canvas:], expected.keyframes, rtol=0, atol=1e-5)
        # stage one's audio, kept throughout
        torch.testing.assert_close(saved["audio_latents"], stock[0].audio, rtol=0, atol=1e-5)
    final = load_latents(two_rounds.with_suffix(".latents.safetensors"))
    torch.testing.assert_close(final.video, stock[-1].frames[:, :, :9], rtol=0, atol=1e-5)  # trimmed: 65 frames


def test_two_temporal_rounds_give_2n_minus_1_frames_twice_at_four_times_the_rate_with_the_audio_in_step(two_rounds):
    media = probe(two_rounds)
    assert (media.frames, media.fps) == (65, 96)  # 17 -> 33 -> 65 frames, 24 -> 48 -> 96 fps
    assert media.audio_samples == round(65 / 96 * media.audio_sample_rate)
    sidecar = json.loads(two_rounds.with_suffix(".json").read_text())
    assert (sidecar["num_frames"], sidecar["fps"]) == (65, "96")
    assert sidecar["dfr"] == {"requested_num_frames": 17, "requested_fps": "24", "canvas_frames": 25,
                              "keyframe_positions": [24], "temporal_rounds": 2,
                              "temporal_upsampler": sidecar["dfr"]["temporal_upsampler"], "detailing_lora": None,
                              "detailing_strength": 0.5}
    assert [stage["transformer_calls"] for stage in sidecar["diffusion_stages"]] == [8, 3, 4, 8]  # rounds: 4 a tile


def test_without_temporal_rounds_the_clip_keeps_its_frames_and_the_passes_are_removed(tiny_25_model, tmp_path,
                                                                                    capsys):
    out = tmp_path / "clip.mp4"
    assert run_generate(tiny_25_model, out, clip=SIZE) == 0
    printed = capsys.readouterr().out
    assert "plan: LTX-2.5 dfr (64x64, 8 distilled steps with 1 keyframe slot on a 25-frame canvas -> x2 latent " \
           "upsample -> 128x128, 3 refine steps)" in printed
    assert (probe(out).frames, probe(out).fps) == (17, 24)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["clip.json", "clip.mp4"]


@pytest.mark.parametrize("flags,expected", [
    (["--width", "96"], "--width 96: --pipeline dfr runs stage one at half the size"),
    (["--temporal-rounds", "1"], "--temporal-rounds 1 needs --temporal-upsampler FOLDER"),
    (["--temporal-upsampler", "{temporal}"], "has no effect with --temporal-rounds 0"),
    (["--temporal-rounds", "1", "--temporal-upsampler", "{spatial}"], "a spatial latent upsampler; the temporal "
                                                                      "rounds need the temporal one"),
    (["--image", "{image}"], "--pipeline dfr renders one clip from its prompt alone yet"),
    (["--guidance-scale", "3"], "dfr runs the distilled model without guidance"),
])
def test_bad_dfr_input_is_refused_in_one_line_before_any_weight(flags, expected, tiny_25_model, temporal_upsampler,
                                                                tmp_path, capsys):
    from PIL import Image

    Image.new("RGB", (128, 128)).save(tmp_path / "still.png")
    given = [flag.format(temporal=temporal_upsampler, spatial=tiny_25_model / "latent_upsampler",
                         image=tmp_path / "still.png") for flag in flags]
    with pytest.raises(SystemExit) as exit_:
        run_generate(tiny_25_model, tmp_path / "clip.mp4", *given, clip=SIZE)
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and len(err.splitlines()) == 1 and expected in err, err
    assert not (tmp_path / "clip.mp4").exists()


def test_dfr_on_a_model_without_keyframe_slots_or_its_flags_without_dfr_are_refused(tiny_model, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        run_generate(tiny_model, tmp_path / "clip.mp4", clip=SIZE)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "cannot place keyframe slots" in err and "Lightricks/LTX-2.5-Diffusers" in err
    with pytest.raises(SystemExit):
        run_generate(tiny_model, tmp_path / "clip.mp4", "--temporal-rounds", "1")
    assert "--temporal-rounds is for --pipeline dfr" in capsys.readouterr().err


def test_a_failed_pass_keeps_the_finished_ones_and_the_printed_command_resumes_to_the_same_clip(
        two_rounds, tiny_25_model, temporal_upsampler, tmp_path, monkeypatch, capsys):
    """Round 2 fails: passes 0-2 are kept and the command printed resumes after round 1, rendering the clip the
    uninterrupted run made."""
    import shlex

    from diffusers import LTX2DFRTemporalRefinePipeline

    import generate

    out = tmp_path / "clip.mp4"
    stock_round = LTX2DFRTemporalRefinePipeline.__call__

    def failing_in_round_two(self, *args, **kwargs):
        if kwargs["round_index"] == 2:
            raise RuntimeError("out of memory in round 2")
        return stock_round(self, *args, **kwargs)

    monkeypatch.setattr(LTX2DFRTemporalRefinePipeline, "__call__", failing_in_round_two)
    assert run_generate(tiny_25_model, out, "--temporal-rounds", "2", "--temporal-upsampler", str(temporal_upsampler),
                        clip=SIZE) == 1
    err = capsys.readouterr().err
    assert "the latents of each finished dfr pass are kept; resume after the last with:" in err
    assert sorted(path.name for path in tmp_path.iterdir()) == [f"clip.dfr{index}.latents.safetensors"
                                                                for index in range(3)]
    monkeypatch.setattr(LTX2DFRTemporalRefinePipeline, "__call__", stock_round)
    command = shlex.split(err.strip().splitlines()[-1])
    assert command[command.index("--dfr-from") + 1] == str(tmp_path / "clip.dfr2.latents.safetensors")
    script = next(index for index, word in enumerate(command) if word.endswith("generate.py"))
    assert generate.main(command[script + 1:] + ["--keep-latents"]) == 0
    printed = capsys.readouterr().out
    assert f"dfr: resumed from pass 2's latents ({tmp_path / 'clip.dfr2.latents.safetensors'})" in printed
    torch.testing.assert_close(load_latents(out.with_suffix(".latents.safetensors")).video,
                               load_latents(two_rounds.with_suffix(".latents.safetensors")).video, rtol=0, atol=0)
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert [stage["stage"] for stage in sidecar["diffusion_stages"]] == ["resumed after pass 2", "temporal round 2"]


def test_the_detailing_ic_lora_adapts_stage_two_alone_as_diffusers_documents_it(tiny_25_model, temporal_upsampler,
                                                                                tmp_path):
    from test_lora import GATED, write_lora

    lora = write_lora(tmp_path / "detailing.safetensors", tiny_25_model, seed=5, modules=GATED)
    out = tmp_path / "clip.mp4"
    assert run_generate(tiny_25_model, out, "--keep-latents", "--temporal-rounds", "1", "--temporal-upsampler",
                        str(temporal_upsampler), "--detailing-lora", str(lora), clip=SIZE) == 0
    assert (probe(out).frames, probe(out).fps) == (33, 48)  # one round: 17 -> 33 frames, 24 -> 48 fps
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["diffusion_stages"][1]["detailing"]["scale"] == 0.5
    stock = stock_passes(tiny_25_model, temporal_upsampler, sidecar, detailing=lora)
    for index, expected in enumerate(stock):
        saved = load_file(out.with_suffix(f".dfr{index}.latents.safetensors"))["video_latents"]
        torch.testing.assert_close(saved[:, :, :expected.frames.shape[2]], expected.frames, rtol=0, atol=1e-5)
    without = stock_passes(tiny_25_model, temporal_upsampler, sidecar)[1]
    assert (stock[1].frames - without.frames).abs().max() > 1e-3  # the adapter changed stage two
    from ltx2gen.config import GenerateConfig, build_parser

    # a run resumed after stage one applies the same adapter to its stage two
    resumed = GenerateConfig.from_args(build_parser().parse_args(
        ["--dfr-from", str(out.with_suffix(".dfr0.latents.safetensors")), "--output", str(tmp_path / "again.mp4")]))
    assert (resumed.detailing_lora, resumed.detailing_strength, resumed.temporal_rounds) == (str(lora), 0.5, 1)


def test_the_detailing_ic_lora_needs_the_transformer_resident_in_bf16_and_uncompiled():
    from ltx2gen.dfr import check_detailing_fits
    from ltx2gen.errors import ConfigError
    from ltx2gen.lora import LoraSpec, ResolvedLora

    detailing = ResolvedLora(LoraSpec("detailing.safetensors", scale=0.5), Path("detailing.safetensors"), 6)
    check_detailing_fits(detailing, "off", "none", False)
    check_detailing_fits(None, "weight", "group", True)
    with pytest.raises(ConfigError, match="this run holds it fp8 weight, group offload; drop --detailing-lora"):
        check_detailing_fits(detailing, "weight", "group", False)


def test_the_model_chooses_the_length_then_the_keyframe_grid_is_laid_for_it(tiny_25_model, temporal_upsampler,
                                                                            tmp_path, capsys):
    out = tmp_path / "clip.mp4"
    assert run_generate(tiny_25_model, out, "--num-frames", "auto", "--max-seconds", "2", "--temporal-rounds", "1",
                        "--temporal-upsampler", str(temporal_upsampler), clip=SIZE[:4] + SIZE[6:]) == 0
    printed = capsys.readouterr().out
    assert "dfr (64x64, 8 distilled steps with keyframe slots on the grid of the length chosen" in printed
    sidecar = json.loads(out.with_suffix(".json").read_text())
    chosen = sidecar["auto_duration"]["num_frames"]
    assert sidecar["dfr"]["requested_num_frames"] == chosen
    assert (probe(out).frames, probe(out).fps) == (2 * (chosen - 1) + 1, 48)
    assert f"done: {out} ({2 * (chosen - 1) + 1} frames 128x128 at 48 fps" in printed
