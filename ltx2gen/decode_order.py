"""When an in-process batch decodes each clip: right after the clip's diffusion, with the transformer its group shares
still loaded, where memory holds the video decode beside it (the clip's MP4 then appears as soon as it is diffused),
or after the whole group's diffusion, once the transformer is freed, where it may not.

The rule never lets the two stages together exceed what the memory plan budgets each alone: on a discrete GPU the
plan's estimated peaks of the diffusion stage and of the video decode (`fit.Fit`) must fit the planned machine side
by side; on the CPU the transformer's weights and the decode's estimate must fit the host memory available now (the
text encoder freed). On unified memory (Jetson Thor) no plan budgets the two together, so the order stays the safe
one. The audio decode runs before the video decode and frees its models first; its VAE and vocoder are a small
fraction of the video VAE, inside the estimate's headroom.
"""

from __future__ import annotations

from ltx2gen import fit
from ltx2gen.plan import RunPlan


def why_decoded_after_diffusion(plans: list[RunPlan]) -> str:
    """'' where each clip of a group (the `plans` that share one transformer) may be decoded right after its own
    diffusion, the transformer still loaded; otherwise why its clips are decoded after the group's diffusion."""
    for plan in plans:
        why = _why_not_beside(plan)
        if why:
            return why
    return ""


def _why_not_beside(plan: RunPlan) -> str:
    if plan.memory_fit is not None:  # a discrete GPU (or one planned for): the stages' estimated peaks
        planned = plan.memory_fit
        together = fit.Peak(planned.diffusion.gpu + planned.decode.gpu, planned.diffusion.host + planned.decode.host)
        if planned.machine.fits(together):
            return ""
        return (f"the video decoder does not fit beside the transformer ({plan.settings.output.name}: diffusion "
                f"{planned.diffusion.describe()} and video decode {planned.decode.describe()} together exceed "
                f"{planned.machine.describe()})")
    if plan.device.type != "cpu":
        return ("on unified memory the memory plan does not budget the video decoder beside the resident "
                "transformer")
    sizes = fit.Sizes.of(plan.model_dir, plan.transformer_folder)
    scale = plan.dtype.itemsize / 2  # the sizes are bf16's; the CPU runs in float32
    transformer = (sizes.transformer_fp8 if plan.fp8 != "off" else sizes.transformer) * scale
    config = plan.settings
    decode = fit.decode_peak(sizes, config.num_frames or 1, config.width * config.height / 1e6).gpu * scale
    needed = transformer + decode + fit.HOST_STAGE_GIB["video"]
    available = fit.host_memory_available_bytes() / fit.GIB
    if needed <= available * fit.HOST_HEADROOM:
        return ""
    return (f"the video decoder does not fit beside the transformer in host memory ({config.output.name}: "
            f"{needed:.1f} GiB needed, {available * fit.HOST_HEADROOM:.1f} GiB usable)")
