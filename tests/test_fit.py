import pytest
import torch

from ltx2gen import fit

GIB = fit.GIB
# LTX-2.0 at its published sizes (`sizes.loaded_bytes` of the published configurations, tests/test_sizes.py)
LTX2 = fit.Sizes(transformer=35.16, transformer_fp8=17.93, text_encoder=21.92, text_encoder_fp8=11.90,
                 connectors=2.67, vae=2.28)
TOKENS_1080P = fit.clip_tokens(1920, 1088, 161)
TOKENS_DRAFT = fit.clip_tokens(768, 512, 97)
WORK_1080P = fit.Work(TOKENS_1080P, 161, megapixels=1920 * 1088 / 1e6)


def test_token_counts_match_the_measured_sizes():
    assert (TOKENS_1080P, TOKENS_DRAFT) == (42840, 4992)


@pytest.mark.parametrize("tokens,fp8,offload,measured", [
    (TOKENS_1080P, False, "none", 39.55), (TOKENS_1080P, True, "none", 22.54), (TOKENS_DRAFT, False, "none", 35.93),
    (TOKENS_DRAFT, True, "none", 19.16), (TOKENS_1080P, False, "group", 6.42), (TOKENS_1080P, True, "group", 5.97),
    (fit.clip_tokens(768, 512, 121), True, "group", 2.72)])
def test_diffusion_estimates_are_within_a_tenth_of_the_measured_peaks(tokens, fp8, offload, measured):
    # docs/BENCHMARKS.md: full-size weights, eager, on an H100/H200
    estimate = fit.diffusion_peak(LTX2, fit.Work(tokens, 97), fp8, offload).gpu
    assert measured * 0.9 <= estimate <= measured * 1.1


def test_conditioning_and_compiling_move_the_diffusion_estimate_by_their_measured_amounts():
    plain = fit.diffusion_peak(LTX2, WORK_1080P, False, "none").gpu
    conditioned = fit.diffusion_peak(LTX2, fit.Work(TOKENS_1080P, 161, conditioned=True), False, "none").gpu
    compiled = fit.diffusion_peak(LTX2, WORK_1080P, False, "none", compiled=True).gpu
    assert conditioned - plain == pytest.approx(3.6, abs=0.1)  # per-token modulation sums at 1080p, LTX-2.0
    assert plain - compiled == pytest.approx(1.3, abs=0.1)


def test_the_two_stage_upsampler_counts_where_it_outweighs_the_activations_it_replaces():
    small = fit.Work(fit.clip_tokens(512, 320, 49), 49)
    with_upsampler = fit.Work(small.tokens, 49, upsampler_gib=0.93)
    for offload in ("none", "group", "files", "sequential"):
        plain = fit.diffusion_peak(LTX2, small, True, offload).gpu
        assert fit.diffusion_peak(LTX2, with_upsampler, True, offload).gpu == pytest.approx(
            plain - fit.activations_gib(small.tokens, False, False) + fit.ACTIVATION_BASE_GIB + 0.93)
    large = fit.Work(TOKENS_1080P, 161, upsampler_gib=0.93)
    assert fit.diffusion_peak(LTX2, large, False, "none") == fit.diffusion_peak(LTX2, WORK_1080P, False, "none")


def test_offloading_moves_the_transformer_into_the_host_estimate():
    resident = fit.diffusion_peak(LTX2, WORK_1080P, True, "none")
    group = fit.diffusion_peak(LTX2, WORK_1080P, True, "group")
    assert group.host - resident.host == pytest.approx(LTX2.transformer_fp8)
    assert group.gpu < resident.gpu - LTX2.transformer_fp8 + 3.5


@pytest.mark.parametrize("gpu,host,flags,expected", [
    (80, 120, {}, ("off", "none", "resident")),  # an H100: everything resident in bf16
    (40, 120, {}, ("weight", "none", "fp8")),  # FP8 weights make it fit resident
    (22, 30, {}, ("weight", "group", "fp8")),  # a 24 GB card in a 32 GB desktop
    (22, 64, {"fp8": "off"}, ("off", "group", "offloaded")),  # bf16 asked: both streamed from a 64 GB host
    (15, 30, {}, ("weight", "group", "offloaded")),  # a 16 GB card: even the FP8 Gemma does not fit the GPU
    (22, 30, {"offload": "sequential"}, ("weight", "sequential", "fp8")),  # a flag wins
])
def test_the_fastest_plan_that_fits_both_pools_is_chosen(gpu, host, flags, expected):
    machine = fit.Machine(gpu, host)
    chosen = fit.choose(LTX2, WORK_1080P, machine, fit.Requested(**flags))
    assert (chosen.fp8, chosen.offload, chosen.text_encoder) == expected
    for peak in (chosen.text, chosen.diffusion, chosen.decode):
        assert machine.fits(peak)
    assert f"{expected[2]} text encoder" in chosen.describe() and "host" in chosen.describe()


def test_a_bf16_run_that_fits_neither_pool_is_refused_naming_the_pool():
    with pytest.raises(fit.DoesNotFit, match=r"diffusion stage does not fit 22 GiB GPU, 30 GiB host .* host \(37"):
        fit.choose(LTX2, WORK_1080P, fit.Machine(22, 30), fit.Requested(fp8="off", offload="group"))
    # asked for bf16 and nothing more, the transformer is read from its files instead
    assert fit.choose(LTX2, WORK_1080P, fit.Machine(22, 30), fit.Requested(fp8="off")).offload == "files"


def test_a_host_too_small_for_the_fp8_transformer_reads_both_models_from_their_files():
    chosen = fit.choose(LTX2, fit.Work(TOKENS_DRAFT, 97), fit.Machine(11, 15))  # a 12 GB card, a 16 GB desktop
    assert (chosen.fp8, chosen.offload, chosen.text_encoder) == ("off", "files", "files")
    assert chosen.diffusion.host < 5 and chosen.text.host < 5
    with pytest.raises(fit.DoesNotFit, match="host"):  # with a LoRA to fuse, the transformer must be in memory
        fit.choose(LTX2, fit.Work(TOKENS_DRAFT, 97), fit.Machine(11, 15), fit.Requested(files=False))


def test_a_gpu_too_small_for_the_whole_clips_decode_decodes_it_in_pieces():
    machine = fit.Machine(7.4, 64)
    chosen = fit.choose(LTX2, fit.Work(fit.clip_tokens(1920, 1088, 161), 161, megapixels=2.09), machine)
    assert 0 < chosen.decode_chunk_frames < 161 and chosen.decode_chunk_frames % 8 == 0
    assert machine.fits(chosen.decode)
    asked = fit.choose(LTX2, fit.Work(TOKENS_DRAFT, 97, decode_chunk_frames=16), fit.Machine(80, 120))
    assert asked.decode_chunk_frames == 16


@pytest.mark.parametrize("frames,megapixels,measured", [(161, 1920 * 1088 / 1e6, 7.34), (121, 768 * 512 / 1e6, 4.48)])
def test_decode_estimates_are_within_a_tenth_of_the_measured_peaks(frames, megapixels, measured):
    assert measured * 0.9 <= fit.decode_peak(LTX2, frames, megapixels).gpu <= measured * 1.1


def test_the_plan_records_each_stages_estimates_for_the_sidecar():
    record = fit.choose(LTX2, WORK_1080P, fit.Machine(22, 30)).record()
    assert set(record) == {"machine", "text", "diffusion", "video"}
    assert record["diffusion"]["host_gib"] == pytest.approx(fit.HOST_STAGE_GIB["diffusion"] + LTX2.transformer_fp8,
                                                          abs=0.01)


def test_the_text_stage_is_sized_from_the_configuration_even_without_weight_files(tiny_model, tmp_path):
    import shutil

    from ltx2gen.components import load_component

    model = load_component(tiny_model, "text_encoder", torch.device("cpu"), torch.bfloat16)
    loaded = sum(parameter.numel() * parameter.element_size() for parameter in model.parameters())
    assert fit.Sizes.of(tiny_model).text_encoder * GIB == loaded
    without_weights = tmp_path / "model"
    shutil.copytree(tiny_model, without_weights, ignore=shutil.ignore_patterns("*.safetensors"))
    assert fit.Sizes.of(without_weights) == fit.Sizes.of(tiny_model)


def write_weights(folder, size):
    """A bf16 transformer of `size` bytes in a safetensors file whose data is sparse (only the header is read)."""
    import json
    import struct

    (folder / "transformer").mkdir()
    header = json.dumps({"weight": {"dtype": "BF16", "shape": [size // 2], "data_offsets": [0, size]}}).encode()
    with open(folder / "transformer" / "model.safetensors", "wb") as handle:
        handle.write(struct.pack("<Q", len(header)) + header)
        handle.truncate(8 + len(header) + size)
    return folder


def test_the_transformer_is_read_ahead_only_where_its_files_fit_the_page_cache_with_the_margin(tmp_path):
    model = write_weights(tmp_path, 38 * 10**9)
    files = (model / "transformer" / "model.safetensors").stat().st_size
    needed = files + int(fit.READ_AHEAD_MARGIN_GIB * fit.GIB)
    assert fit.read_ahead_fits(model / "transformer", needed)
    assert not fit.read_ahead_fits(model / "transformer", needed - 1)
    # offloaded, the weights the diffusion stage keeps in host memory sit beside the files' pages
    assert not fit.read_ahead_fits(model / "transformer", needed, host_weights_bytes=18 * GIB)
    assert fit.read_ahead_fits(model / "transformer", needed + 18 * GIB, host_weights_bytes=18 * GIB)


def test_the_host_memory_to_plan_with_is_mem_available_within_the_control_group_unless_given(monkeypatch):
    from ltx2gen import memory

    monkeypatch.delenv(fit.HOST_MEMORY_ENV, raising=False)
    monkeypatch.setattr(memory, "cgroup_available_bytes", lambda: None)
    assert abs(fit.host_memory_available_bytes() - memory.mem_available_bytes()) < 512 << 20
    monkeypatch.setattr(memory, "cgroup_available_bytes", lambda: 3 * GIB)
    assert fit.host_memory_available_bytes() == 3 * GIB
    monkeypatch.setenv(fit.HOST_MEMORY_ENV, "120")
    assert fit.host_memory_available_bytes() == 120 * fit.GIB


def test_a_run_says_whether_each_stage_stayed_within_its_plan():
    from ltx2gen.memory import StageReport

    chosen = fit.choose(LTX2, WORK_1080P, fit.Machine(22, 30))
    within = [StageReport("text", cuda_peak_gib=chosen.text.gpu, peak_rss_gib=3.6),
              StageReport("diffusion", cuda_peak_gib=5.97, peak_rss_gib=chosen.diffusion.host),
              StageReport("audio", cuda_peak_gib=30.0, peak_rss_gib=30.0),  # not planned: not compared
              StageReport("video", cuda_peak_gib=7.3, peak_rss_gib=2.7)]
    line = chosen.against(within)
    assert line.startswith("memory: every stage within its plan") and f"host {chosen.diffusion.host:.1f}" in line
    over = within[:1] + [StageReport("diffusion", cuda_peak_gib=chosen.diffusion.gpu * 1.2, peak_rss_gib=1.0)]
    assert chosen.against(over).startswith("note: the memory plan was short: diffusion GPU")
