"""FP8 video self-attention (`ltx2gen.attention`): where it runs, how far it is from bf16 attention, and that a run
which cannot have it is refused or falls back in one line before any weight is read."""

import json

import pytest
import torch

from conftest import run_generate
from ltx2gen import attention


def test_it_runs_only_on_a_gpu_with_heads_cudnn_can_take():
    assert attention.unavailable_reason(torch.device("cpu")) == "FP8 attention needs an NVIDIA GPU"
    assert "multiple of 16" in attention.unavailable_reason(torch.device("cpu"), head_dim=8)


def test_on_is_refused_in_one_line_before_any_weight_where_it_cannot_run(tiny_model, tmp_path, capsys):
    from ltx2gen import memory

    events = []

    def listener(event, name, obj):
        events.append(event)

    memory.add_listener(listener)
    try:
        with pytest.raises(SystemExit) as exit_status:
            run_generate(tiny_model, tmp_path / "c.mp4", "--fp8-attention", "on", "--device", "cpu")
    finally:
        memory.remove_listener(listener)
    error = capsys.readouterr().err
    assert exit_status.value.code == 2 and error.count("\n") == 1
    assert "--fp8-attention on: cuDNN's FP8 attention takes heads a multiple of 16 wide, and this model's are 8 " \
        "(device cpu)" in error and "--fp8-attention off" in error
    assert "load" not in events and not (tmp_path / "c.mp4").exists()


def test_auto_keeps_bf16_attention_without_fp8_dynamic_and_records_it(tiny_model, tmp_path, capsys):
    out = tmp_path / "c.mp4"
    assert run_generate(tiny_model, out) == 0
    assert json.loads(out.with_suffix(".json").read_text())["fp8_attention"] is False
    assert "fp8 video self-attention" not in capsys.readouterr().out


def test_the_error_measures_are_relative_to_the_reference():
    reference = torch.tensor([1.0, -2.0, 4.0])
    errors = attention.relative_errors(reference + torch.tensor([0.1, 0.0, -0.2]), reference)
    assert errors["max"] == pytest.approx(0.2 / 4) and errors["mean"] == pytest.approx(0.1 / (7 / 3))
    assert errors["norm"] == pytest.approx((0.05 / 21) ** 0.5)


@pytest.mark.gpu
def test_fp8_attention_is_within_its_stated_tolerance_of_bf16_attention():
    """Seeded random inputs at the video self-attention's head layout: FP8 inputs and output give a relative error of
    a few percent (the output's e4m3 rounding is most of it); a wrong scale or layout would give order 1."""
    error = attention.check_on_random_inputs(torch.device("cuda"), batch=1, tokens=4096, heads=4, head_dim=128)
    assert error < 0.08


@pytest.mark.gpu
def test_fp8_attention_compiled_is_as_close_to_bf16_attention_as_eager():
    """The cuDNN call is a custom operator: a compiled block keeps it whole and fuses only the quantization around
    it. The compiler multiplies in float32 where eager rounds to bf16 first, so some inputs land on the other side of
    an e4m3 rounding step, and the e4m3 output rounding turns each small change of the result into whole steps:
    compiled and eager differ by about the FP8 error itself (0.057, H100), so each is held to the reference."""
    generator = torch.Generator().manual_seed(1)
    query, key, value = (torch.randn(1, 2048, 4, 128, generator=generator).to("cuda", torch.bfloat16)
                         for _ in range(3))
    reference = torch.nn.functional.scaled_dot_product_attention(
        *(tensor.transpose(1, 2) for tensor in (query, key, value))).transpose(1, 2)
    eager = attention.relative_errors(attention.fp8_attention(query, key, value), reference)["norm"]
    compiled = attention.relative_errors(
        torch.compile(attention.fp8_attention, fullgraph=True)(query, key, value), reference)["norm"]
    assert compiled < 0.08 and abs(compiled - eager) < 0.01


def test_auto_keeps_bf16_attention_where_the_clip_is_too_short_for_fp8_to_pay(tiny_model, capsys):
    """Decided from the clip's video tokens before the GPU or cuDNN is asked (so this runs on the CPU)."""
    from ltx2gen.plan import choose_fp8_attention

    folder = tiny_model / "transformer"
    assert not choose_fp8_attention("auto", "dynamic", torch.device("cpu"), folder, attention.FP8_MIN_TOKENS - 1)
    assert "the FP8 kernel is slower than bf16" in capsys.readouterr().out
    assert not choose_fp8_attention("auto", "dynamic", torch.device("cpu"), folder, attention.FP8_MIN_TOKENS)
    assert "attention stays bf16 with --fp8 dynamic: cuDNN's FP8 attention takes heads a multiple of 16 wide" in \
        capsys.readouterr().out
    assert not choose_fp8_attention("auto", "weight", torch.device("cpu"), folder, 10**6)


def test_the_scales_come_from_each_tensors_exact_largest_magnitude():
    generator = torch.Generator().manual_seed(2)
    tensor = torch.randn(1, 300, 4, 128, generator=generator).to(torch.bfloat16)
    tensor[0, 7, 1, 5] = -9.5  # the largest magnitude is a negative value
    assert attention.largest_magnitude(tensor).item() == 9.5
