import pytest
import torch

from ltx2gen import fit

GB = 10**9
FULL_TRANSFORMER = int(37.76 * GB)  # 18.88B parameters in bf16
TOKENS_1080P = fit.clip_tokens(1920, 1088, 161)
TOKENS_DRAFT = fit.clip_tokens(768, 512, 97)


def test_token_counts_match_the_measured_sizes():
    assert (TOKENS_1080P, TOKENS_DRAFT) == (42840, 4992)


@pytest.mark.parametrize("tokens,fp8,offload,measured", [
    (TOKENS_1080P, False, "none", 41.18), (TOKENS_1080P, True, "none", 23.95), (TOKENS_DRAFT, False, "none", 35.92),
    (TOKENS_DRAFT, True, "none", 19.16), (TOKENS_1080P, False, "group", 8.11), (TOKENS_DRAFT, False, "group", 2.85),
    (TOKENS_DRAFT, False, "sequential", 0.78)])
def test_estimates_cover_the_measured_peaks_closely(tokens, fp8, offload, measured):
    estimate = fit.diffusion_peak_gib(FULL_TRANSFORMER, tokens, fp8, offload)
    assert measured * 0.95 <= estimate <= measured * 1.35 + 0.3


def write_weights(folder, sizes):
    """One bf16 tensor of the given bytes per component, in a safetensors file whose data is sparse (only the header
    is read)."""
    import json
    import struct

    for name, size in sizes.items():
        (folder / name).mkdir()
        header = json.dumps({"weight": {"dtype": "BF16", "shape": [size // 2], "data_offsets": [0, size]}}).encode()
        with open(folder / name / "model.safetensors", "wb") as handle:
            handle.write(struct.pack("<Q", len(header)) + header)
            handle.truncate(8 + len(header) + size)
    return folder


def test_the_published_text_encoder_counts_as_what_it_loads_not_its_files(tiny_model):
    from ltx2gen.components import load_component

    folder = tiny_model / "text_encoder"
    on_disk = sum(file.stat().st_size for file in folder.glob("*.safetensors"))  # float32, and the stale set
    model = load_component(tiny_model, "text_encoder", torch.device("cpu"), torch.bfloat16)
    loaded = sum(parameter.numel() * parameter.element_size() for parameter in model.parameters())
    _, encoder, _ = fit.weight_bytes(tiny_model)
    assert encoder == loaded and on_disk > 4 * loaded


@pytest.mark.parametrize("budget,text_fp8,offload,text_encoder", [
    (80, False, "none", "resident"), (48, False, "none", "resident"), (24, False, "group", "offloaded"),
    (4, False, "sequential", "offloaded"), (24, True, "group", "fp8"), (16, True, "group", "offloaded")])
def test_the_fastest_mode_that_fits_is_chosen(tmp_path, budget, text_fp8, offload, text_encoder):
    model = write_weights(tmp_path, {"transformer": FULL_TRANSFORMER, "text_encoder": 24 * GB,
                                     "connectors": int(2.7 * GB)})
    chosen = fit.choose(model, TOKENS_1080P, fp8=True, budget_gib=budget, text_fp8=text_fp8)
    assert (chosen.offload, chosen.text_encoder) == (offload, text_encoder)
    assert chosen.diffusion_gib <= budget or offload == "sequential"
    assert chosen.text_gib <= budget * fit.HEADROOM or text_encoder == "offloaded"
    assert f"{text_encoder} text encoder" in chosen.describe()
    assert fit.choose(model, TOKENS_1080P, True, budget_gib=budget, offload="none").offload == "none"  # a flag wins


def test_offloaded_text_encoder_matches_the_resident_one(tiny_model):
    from ltx2gen import memory
    from ltx2gen.text import PromptRequest, encode_prompt

    cpu = torch.device("cpu")
    tracker = memory.MemoryTracker(cpu)
    request = PromptRequest("a fox", "blur", True)
    resident, offloaded = (tracker.run("text", encode_prompt, tiny_model, request, cpu, torch.float32, loras=(),
                                       text_encoder=mode) for mode in ("resident", "offloaded"))
    assert torch.equal(resident.video, offloaded.video) and torch.equal(resident.audio, offloaded.audio)


@pytest.mark.parametrize("mode,measured", [("resident", 25.79), ("fp8", 15.71)])
def test_text_stage_estimates_cover_the_measured_peaks_closely(mode, measured):
    # Full-size text stage on an H100 (docs/BENCHMARKS.md): Gemma 3 12B (23.5 GB) and the connectors (2.86 GB).
    estimate = fit.text_peak_gib(int(23.5 * GB), int(2.86 * GB), mode)
    assert measured <= estimate <= measured * 1.2


@pytest.mark.parametrize("budget,tokens,fits", [
    (80, TOKENS_1080P, True), (48, TOKENS_1080P, True), (40, TOKENS_1080P, False), (40, 4_992, True),
    (24, 4_992, False)])
def test_bf16_is_kept_only_where_every_stage_fits(tmp_path, budget, tokens, fits):
    model = write_weights(tmp_path, {"transformer": FULL_TRANSFORMER, "text_encoder": 24 * GB,
                                     "connectors": int(2.7 * GB)})
    assert fit.bf16_fits(model, tokens, budget) == fits


def test_the_transformer_is_read_ahead_only_where_its_files_fit_the_page_cache_with_the_margin(tmp_path):
    model = write_weights(tmp_path, {"transformer": FULL_TRANSFORMER})
    files = (model / "transformer" / "model.safetensors").stat().st_size
    needed = files + int(fit.READ_AHEAD_MARGIN_GIB * fit.GIB)
    assert fit.read_ahead_fits(model / "transformer", needed)
    assert not fit.read_ahead_fits(model / "transformer", needed - 1)
    # offloaded, the transformer itself sits in host memory beside its files' pages
    assert not fit.read_ahead_fits(model / "transformer", needed, offloaded=True)
    assert fit.read_ahead_fits(model / "transformer", needed + files, offloaded=True)


def test_the_host_memory_to_plan_with_is_mem_available_unless_given(monkeypatch):
    from ltx2gen.memory import mem_available_bytes

    monkeypatch.delenv(fit.HOST_MEMORY_ENV, raising=False)
    assert abs(fit.host_memory_available_bytes() - mem_available_bytes()) < 512 << 20
    monkeypatch.setenv(fit.HOST_MEMORY_ENV, "120")
    assert fit.host_memory_available_bytes() == 120 * fit.GIB
