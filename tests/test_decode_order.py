import dataclasses

from ltx2gen import fit
from ltx2gen.decode_order import why_decoded_after_diffusion
from ltx2gen.plan import RunPlan
from tests.test_clip import configure
from tests.test_fit import LTX2, WORK_1080P


def planned_for(plan, machine):
    """`plan` with the memory plan of a 1080p clip of the published LTX-2.0 on `machine`."""
    return dataclasses.replace(plan, memory_fit=fit.choose(LTX2, WORK_1080P, machine))


def test_a_discrete_gpu_decodes_each_clip_beside_the_transformer_only_where_both_estimates_fit(tiny_model, tmp_path):
    plan = RunPlan.choose(configure(tiny_model, tmp_path / "a.mp4", "--device", "cpu"))
    h100 = planned_for(plan, fit.Machine(80, 120))
    assert why_decoded_after_diffusion([h100]) == ""  # bf16 resident 39.6 GiB and the decode's 7.3 GiB fit
    tight = planned_for(plan, fit.Machine(44, 120))  # bf16 resident still fits alone, not with the decode beside it
    assert (tight.memory_fit.fp8, tight.memory_fit.offload) == ("off", "none")
    why = why_decoded_after_diffusion([h100, tight])
    assert why.startswith("the video decoder does not fit beside the transformer (a.mp4: diffusion GPU 39.")
    assert "44 GiB GPU" in why
    offloaded = planned_for(plan, fit.Machine(22, 30))  # a 24 GB card: the transformer in host memory
    assert offloaded.memory_fit.offload == "group" and why_decoded_after_diffusion([offloaded]) == ""


def test_the_cpu_decodes_beside_the_transformer_where_the_host_has_the_memory(tiny_model, tmp_path, monkeypatch):
    plan = RunPlan.choose(configure(tiny_model, tmp_path / "a.mp4", "--device", "cpu"))
    monkeypatch.setenv(fit.HOST_MEMORY_ENV, "64")
    assert why_decoded_after_diffusion([plan]) == ""
    monkeypatch.setenv(fit.HOST_MEMORY_ENV, "2")  # below the decode's own host estimate
    assert "does not fit beside the transformer in host memory (a.mp4: " in why_decoded_after_diffusion([plan])


def test_unified_memory_keeps_the_decodes_after_the_diffusion(tiny_model, tmp_path):
    import torch

    plan = RunPlan.choose(configure(tiny_model, tmp_path / "a.mp4", "--device", "cpu"))
    thor = dataclasses.replace(plan, device=torch.device("cuda"))  # no memory plan: one pool for GPU and host
    assert "on unified memory" in why_decoded_after_diffusion([thor])
