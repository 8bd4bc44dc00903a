"""Post-processing: the decoded clip's frames streamed through frame interpolation (RIFE) and upscaling (spandrel's
super-resolution models) into the final MP4, in batches of a few frames, the audio copied untouched.

The decode writes the plain clip first (NAME.plain.mp4, kept until the post-processing has finished, and kept
with the latents when it fails); this stage then reads it back frame by frame, so the video VAE is freed before
any post-processing model loads and memory stays flat in the clip's length. Interpolation runs before upscaling,
at the smaller size. Redo only this stage from a kept plain clip:

    python -m ltx2gen.postprocess --input NAME.plain.mp4 --output NAME.mp4 --upscale 2 --upscale-model FILE
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from ltx2gen import frame_pipes, outputs, postprocess_models, report
from ltx2gen.components import resolve_device
from ltx2gen.errors import ConfigError
from ltx2gen.files import write_json
from ltx2gen.flag_values import check_output_file
from ltx2gen.flags import OneLineErrors, add_fields, opt
from ltx2gen.memory import MemoryTracker
from ltx2gen.postprocess_options import PostprocessOptions, postprocess_argv, validate_postprocess_options
from ltx2gen.video import VideoFormat, check_encoder, probe

FRAMES_PER_BATCH = 4  # frames on the device at once: enough to fill the GPU at 1080p, and memory flat in length
TILE_CONTEXT = 16  # pixels of neighbouring context each upscaler tile sees on every side, then discarded


def plain_path(output: Path) -> Path:
    """Where the decode writes the clip the post-processing reads: NAME.plain.mp4 beside NAME.mp4."""
    return Path(output).with_suffix(".plain.mp4")


def decode_target(options: PostprocessOptions, output: Path) -> Path:
    """Where the decode writes: the final MP4, or the plain clip the post-processing reads."""
    return plain_path(output) if options.postprocessing else Path(output)


def after_decode(tracker: MemoryTracker, options: PostprocessOptions, output: Path, source_format: VideoFormat,
                 device: torch.device) -> None:
    """The post-processing stage, once the decode has written `plain_path(output)` and freed the VAE; the plain
    clip is removed once `output` is whole (and kept when anything fails)."""
    if not options.postprocessing:
        return
    source = plain_path(output)
    tracker.run(stage_name(options), postprocess, options, source, output, source_format=source_format, device=device)
    source.unlink()


def stage_name(options: PostprocessOptions) -> str:
    return "+".join(step for step in ("interpolate", "upscale") if getattr(options, step))


def postprocess(stage, options: PostprocessOptions, source: Path, output: Path, *, source_format: VideoFormat,
                device: torch.device) -> VideoFormat:
    """A `MemoryTracker` stage: `source`'s frames through the models into `output`. Returns the output's format."""
    final = options.postprocessed(source_format)
    print(f"post-processing {source}: {source_format.width}x{source_format.height}x{source_format.num_frames} -> "
          f"{final.width}x{final.height}x{final.num_frames} at {float(final.fps):g} fps "
          f"({describe(options)})", flush=True)
    frames = to_batches(frame_pipes.read_frames_streamed(source, source_format.width, source_format.height), device)
    if options.interpolate:
        network = stage.load("interpolator", lambda: postprocess_models.load_interpolator(options.interpolate_model,
                                                                                          device))
        frames = interpolated(frames, network, options.interpolate)
    if options.upscale:
        upscaler = stage.load("upscaler", lambda: postprocess_models.load_upscaler(options.upscale_model, device))
        frames = (upscale_tiled(upscaler, batch, options.upscale_tile) for batch in frames)
    frame_pipes.write_with_audio_of(output, to_frames(frames), final, audio_from=source)
    return final


def describe(options: PostprocessOptions) -> str:
    steps = []
    if options.interpolate:
        steps.append(f"interpolate x{options.interpolate} with {options.interpolate_model}")
    if options.upscale:
        tile = f"tiles of {options.upscale_tile} px" if options.upscale_tile else "whole frames"
        steps.append(f"upscale x{options.upscale} with {options.upscale_model}, {tile}")
    return "; ".join(steps)


def to_batches(frames: Iterable[np.ndarray], device: torch.device) -> Iterator[torch.Tensor]:
    """uint8 [H, W, 3] frames as float [B, 3, H, W] batches in [0, 1] on `device`, at most FRAMES_PER_BATCH."""
    batch = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == FRAMES_PER_BATCH:
            yield _on_device(batch, device)
            batch = []
    if batch:
        yield _on_device(batch, device)


def _on_device(frames: list[np.ndarray], device: torch.device) -> torch.Tensor:
    stacked = torch.from_numpy(np.stack(frames)).to(device, non_blocking=True)
    return stacked.permute(0, 3, 1, 2).float().div_(255)


def to_frames(batches: Iterable[torch.Tensor]) -> Iterator[np.ndarray]:
    """[B, 3, H, W] batches in [0, 1] as uint8 [H, W, 3] frames on the CPU."""
    for batch in batches:
        with torch.inference_mode():
            pixels = (batch.float().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        yield from pixels


@torch.inference_mode()
def interpolated(batches: Iterable[torch.Tensor], network, factor: int) -> Iterator[torch.Tensor]:
    """Each source frame followed by `factor - 1` frames between it and the next; the last frame alone at the end:
    N frames become factor*(N-1)+1, the source frames unchanged."""
    dtype = next(network.parameters()).dtype
    previous = None
    for batch in batches:
        sequence = batch if previous is None else torch.cat((previous, batch))
        if len(sequence) > 1:
            yield _with_between(sequence, network, factor, dtype)
        previous = sequence[-1:]
    if previous is not None:
        yield previous


def _with_between(sequence: torch.Tensor, network, factor: int, dtype: torch.dtype) -> torch.Tensor:
    """[first, ..., last) of `sequence` with the frames between each neighbouring pair, for every pair."""
    pairs = len(sequence) - 1
    steps = torch.arange(1, factor, device=sequence.device, dtype=dtype) / factor
    first = sequence[:-1].repeat_interleave(factor - 1, 0).to(dtype)
    second = sequence[1:].repeat_interleave(factor - 1, 0).to(dtype)
    timestep = steps.repeat(pairs).view(-1, 1, 1, 1)
    height, width = sequence.shape[2:]
    multiple = network.multiple
    padding = (0, -width % multiple, 0, -height % multiple)
    between = network(F.pad(first, padding), F.pad(second, padding), timestep)[:, :, :height, :width].float()
    between = between.view(pairs, factor - 1, *between.shape[1:])
    return torch.cat((sequence[:-1].unsqueeze(1), between), 1).flatten(0, 1)


@torch.inference_mode()
def upscale_tiled(upscaler, frames: torch.Tensor, tile: int) -> torch.Tensor:
    """[B, 3, H, W] frames upscaled, in tiles of `tile` pixels (0: whole frames) that each see TILE_CONTEXT
    pixels of their neighbours, so the seams match a whole-frame run wherever the model's reach is within it."""
    dtype = next(upscaler.model.parameters()).dtype
    frames = frames.to(dtype)
    batch, _, height, width = frames.shape
    if not tile or (height <= tile and width <= tile):
        return upscaler(frames)
    scale = upscaler.scale
    result = frames.new_empty(batch, 3, height * scale, width * scale)
    for top in range(0, height, tile):
        for left in range(0, width, tile):
            bottom, right = min(top + tile, height), min(left + tile, width)
            y0, x0 = max(0, top - TILE_CONTEXT), max(0, left - TILE_CONTEXT)
            y1, x1 = min(height, bottom + TILE_CONTEXT), min(width, right + TILE_CONTEXT)
            upscaled = upscaler(frames[:, :, y0:y1, x0:x1])
            result[:, :, top * scale:bottom * scale, left * scale:right * scale] = upscaled[
                :, :, (top - y0) * scale:(bottom - y0) * scale, (left - x0) * scale:(right - x0) * scale]
    return result


def record(options: PostprocessOptions, timings: dict[str, float]) -> dict:
    """The sidecar's `postprocess`: each model (path, SHA-256, architecture), its factor, the upscaler's tiles,
    the stage's seconds. Empty without post-processing."""
    if not options.postprocessing:
        return {}
    steps = {}
    if options.interpolate:
        model = postprocess_models.check_interpolator(options.interpolate_model)
        steps["interpolate"] = {"factor": options.interpolate, **model.record()}
    if options.upscale:
        model = postprocess_models.check_upscaler(options.upscale_model, options.upscale)
        steps["upscale"] = {"factor": options.upscale, **model.record(), "tile": options.upscale_tile,
                            "tile_context": TILE_CONTEXT}
    return {"postprocess": {**steps, "frames_per_batch": FRAMES_PER_BATCH,
                            "seconds": timings.get(stage_name(options))}}


def redo_command(options: PostprocessOptions, source: Path, output: Path) -> str:
    """The command that runs only the post-processing again, from the kept plain clip."""
    arguments = ["--input", str(Path(source).resolve()), "--output", str(Path(output).resolve()),
                 *postprocess_argv(options)]
    if os.environ.get("LTX2GEN_IN_CONTAINER") == "1":
        return "docker run <the same options and image> postprocess " + shlex.join(arguments)
    root = Path(__file__).resolve().parent.parent
    return f"cd {shlex.quote(str(root))} && " + shlex.join([sys.executable, "-m", "ltx2gen.postprocess", *arguments])


def redo_advice(options: PostprocessOptions, output: Path) -> str:
    """After a failed run: where the plain clip was kept, how to redo only the post-processing ('' when there is
    no plain clip to start from)."""
    source = plain_path(output)
    if not options.postprocessing or not source.is_file() or Path(output).exists():
        return ""
    return (f"\nthe decoded clip before post-processing is kept: {source}; redo only the post-processing with:\n  "
            + redo_command(options, source, output))


@dataclass(frozen=True)
class RedoConfig(PostprocessOptions):
    """`python -m ltx2gen.postprocess`: the post-processing alone, from a plain clip a failed run kept."""

    input: Path = opt(None, "the decoded clip to post-process (NAME.plain.mp4, kept by a run whose post-processing "
                            "failed)", type=Path, required=True)
    output: Path = opt(None, "the MP4 to write (its sidecar, NAME.json, beside it)", type=Path, required=True)
    device: str = opt("auto", "torch device: auto (CUDA when available), cuda, cuda:N or cpu")


def main(argv: list[str] | None = None) -> int:
    parser = OneLineErrors(prog="python -m ltx2gen.postprocess", description=__doc__.splitlines()[0])
    add_fields(parser, RedoConfig)
    args = parser.parse_args(argv)
    config = RedoConfig(**{f.name: getattr(args, f.name) for f in fields(RedoConfig)})
    reservation = outputs.Reservation()
    try:
        source_format = check_redo(config)
        device = resolve_device(config.device)
        reservation = outputs.reserve_exactly(config.output)
    except ConfigError as err:
        reservation.release()
        parser.error(str(err))
    with reservation:
        tracker = MemoryTracker(device)
        final = tracker.run(stage_name(config), postprocess, config, config.input, config.output,
                            source_format=source_format, device=device)
        sidecar = write_json(config.output.with_suffix(".json"), {
            "output": str(config.output), "created": report.timestamp(), "postprocessed_from": str(config.input),
            "device": str(device), **record(config, tracker.timings()), "stage_seconds": tracker.timings(),
            "stages": report.stage_reports(tracker)})
    print(f"sidecar: {sidecar}")
    print(report.summary_line(config.output, final.num_frames, width=final.width, height=final.height,
                              fps=final.fps, tracker=tracker, total_seconds=sum(tracker.timings().values())))
    return 0


def check_redo(config: RedoConfig) -> VideoFormat:
    """The flags and the input clip, checked; returns the input's format. Raises ConfigError."""
    if not config.postprocessing:
        raise ConfigError("give --upscale 2|4 with --upscale-model, --interpolate 2|4 with --interpolate-model, or "
                          "both")
    validate_postprocess_options(config)
    check_output_file(config.output)
    if config.output.exists():
        raise ConfigError(f"--output {config.output}: already exists; choose another name (nothing is overwritten)")
    if not config.input.is_file():
        raise ConfigError(f"--input {config.input}: no such file (the plain clip is NAME.plain.mp4 beside the output)")
    check_encoder()
    try:
        info = probe(config.input)
    except (subprocess.CalledProcessError, AttributeError, IndexError):
        raise ConfigError(f"--input {config.input}: ffmpeg finds no video in it") from None
    return VideoFormat(info.width, info.height, info.frames, info.fps)


if __name__ == "__main__":
    sys.exit(main())
