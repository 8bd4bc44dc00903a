"""The latents of each `--pipeline dfr` pass, saved before the next pass begins (`NAME.dfrK.latents.safetensors`): its
canvas and keyframe slots as one tensor (the slots after the canvas's frames), stage one's audio, and where the slots
sit. After a failure the finished ones are kept and `--dfr-from` resumes after the last, the clip's settings taken
from its record; after success they are removed (kept with --keep-latents). Reading a record is pure: no torch."""

from __future__ import annotations

from pathlib import Path

from ltx2gen.errors import ConfigError

PASS_KIND = "dfr pass"


def pass_path(config, index: int) -> Path:
    return config.output.with_suffix(f".dfr{index}.latents.safetensors")


def save_pass(plan, index: int, output, audio) -> Path:
    """A pass's canvas and keyframe slots (one tensor, the slots after the canvas's frames) and stage one's audio,
    with where the slots sit; said in one line."""
    import torch

    from ltx2gen import latents

    video = torch.cat([output.frames, output.keyframes.to(output.frames.dtype)], dim=2)
    metadata = {"kind": PASS_KIND, "pass": index, "canvas_latent_frames": output.frames.shape[2],
                "keyframe_positions": list(output.keyframe_positions), "clip": plan.clip_record()}
    path, tried = latents.save_anywhere(pass_path(plan.settings, index), video, audio, metadata)
    print(f"saved dfr pass {index} latents: {path}" + (" (its folder beside the output could not take it)" if tried
                                                        else ""), flush=True)
    return path


def read_pass_metadata(path: Path) -> dict:
    """A pass file's metadata, from its safetensors header alone (no torch)."""
    from ltx2gen.files import kept_work_metadata

    return kept_work_metadata(path, "--dfr-from", PASS_KIND, "not the latents of a dfr pass "
                              "(NAME.dfrK.latents.safetensors)")


def load_pass(path: Path):
    """(the pass's index, its output as the pipelines return it: canvas, slots, their places and stage one's
    audio)."""
    from types import SimpleNamespace

    from safetensors.torch import load_file

    metadata, tensors = read_pass_metadata(Path(path)), load_file(str(path))
    canvas_frames, video = metadata["canvas_latent_frames"], tensors["video_latents"]
    return metadata["pass"], SimpleNamespace(frames=video[:, :, :canvas_frames], keyframes=video[:, :, canvas_frames:],
                                             keyframe_positions=metadata["keyframe_positions"],
                                             audio=tensors["audio_latents"])


def settings_from_pass(values: dict, given: set[str]) -> dict:
    """`--dfr-from FILE`: the clip's settings come from the pass file; one also `given` must agree with it. The
    temporal rounds and the detailing IC-LoRA are the file's unless given (more rounds continue from it). The output
    is the interrupted run's unless --output is given."""
    if values.get("dfr_from") is None:
        return values
    path = Path(values["dfr_from"]).expanduser()
    clip = read_pass_metadata(path)["clip"]
    asked = clip["dfr"]
    if values["pipeline"] not in ("auto", "dfr"):
        raise ConfigError(f"--dfr-from resumes a dfr run; drop --pipeline {values['pipeline']}")
    values = dict(values, pipeline="dfr", dfr_from=path, num_frames=asked["requested_num_frames"],
                  fps=asked["requested_fps"])
    if "output" not in given:
        values.update(output=Path(clip["output"]), no_timestamp=True)
    for name in ("prompt", "seed", "width", "height", "model"):
        if name in given and str(values[name]) != str(clip[name]):
            raise ConfigError(f"--{name} {values[name]}: the pass's latents were made with {clip[name]!r}; drop the "
                              "flag to take it from the file")
        values[name] = clip[name]
    for name in ("temporal_rounds", "temporal_upsampler", "detailing_lora", "detailing_strength"):
        if name not in given:
            values[name] = asked[name]
    return values


def kept_passes(config) -> list[Path]:
    """The pass files this clip's run saved, beside its output or in a fallback folder (`latents.kept_copy`), the
    last finished one last."""
    from ltx2gen.latents import kept_copy

    if config.pipeline != "dfr":
        return []
    return [path for index in range(2 + config.temporal_rounds)
            if (path := kept_copy(pass_path(config, index), read_pass_metadata, config))]


def failure_advice(plan) -> str | None:
    """After a failed pass: which passes' latents are kept."""
    kept = kept_passes(plan.settings)
    if not kept:
        return None
    return ("the latents of each finished dfr pass are kept; resume after the last with:\n  "
            + resume_command(plan, kept[-1]))


def resume_command(plan, kept: Path) -> str:
    from ltx2gen.report import resume_command

    return resume_command(plan, "--dfr-from", kept)


def discard_passes(config) -> None:
    """After success the passes' latents are no longer needed (kept with --keep-latents)."""
    if not config.keep_latents:
        for path in kept_passes(config):
            path.unlink(missing_ok=True)
