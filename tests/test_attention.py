"""FP8 video self-attention (`ltx2gen.attention`): where it runs, how far it is from bf16 attention, and that a run
which cannot have it is refused or falls back in one line before any weight is read."""

import json

import pytest
import torch

from conftest import run_generate
from ltx2gen import attention


def test_it_runs_only_on_a_gpu_with_heads_cudnn_can_take():
    assert attention.unavailable_reason(torch.device("cpu")) == "it needs an NVIDIA GPU"
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
    assert "--fp8-attention on: FP8 attention cannot run on cpu: " in error and "--fp8-attention off" in error
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
def test_fp8_attention_compiled_equals_it_eager():
    """The cuDNN call is a custom operator: a compiled block keeps it whole, and only the quantization around it is
    fused, which must not change its numbers beyond float8 rounding of the same values."""
    generator = torch.Generator().manual_seed(1)
    query, key, value = (torch.randn(1, 2048, 4, 128, generator=generator).to("cuda", torch.bfloat16)
                         for _ in range(3))
    eager = attention.fp8_attention(query, key, value)
    compiled = torch.compile(attention.fp8_attention, fullgraph=True)(query, key, value)
    assert attention.relative_errors(compiled, eager)["norm"] < 0.02
