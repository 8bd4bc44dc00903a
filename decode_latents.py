#!/usr/bin/env python3
"""Rebuild a clip (video and audio) from a latents file alone, e.g. after generate.py failed in a later stage.

    python decode_latents.py --input outputs/video_20260101_120000.latents.safetensors --output clip.mp4
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, fields
from fractions import Fraction
from pathlib import Path

from ltx2gen.config import (ConfigError, DecodeOptions, add_fields, ensure_writable_dir, latent_frame_count, opt,
                            validate_decode_options)


@dataclass(frozen=True)
class DecodeConfig(DecodeOptions):
    input: Path = opt(None, "latents file written by generate.py (.safetensors, or the older .npz)", type=Path,
                      required=True)
    output: Path = opt(None, "MP4 to write", type=Path, required=True)
    model: str | None = opt(None, "override the model stored in the latents file")
    vae_chunk_frames: int | None = opt(None, "temporal piece size in frames (default: as stored by generate.py)",
                                       metavar="N")
    vae_context_frames: int | None = opt(None, "context frames per piece side (default: as stored)", metavar="N")
    vae_tile_size: int | None = opt(None, "spatial tile in pixels (default: as stored)", metavar="PX")
    vae_tile_overlap: int | None = opt(None, "spatial tile overlap in pixels (default: as stored)", metavar="PX")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="decode_latents.py", description=__doc__.splitlines()[0])
    add_fields(parser, DecodeConfig, skip=("keep_latents",))
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config, latents_file = load_config(args)
        from ltx2gen import stages

        device = stages.resolve_device(config.device)
        model_dir = stages.resolve_model_dir(config.model)
    except ConfigError as err:
        parser.error(str(err))
    return run(config, latents_file, device, model_dir)


def load_config(args: argparse.Namespace):
    from ltx2gen.latents import LatentsFileError, load_latents

    values = {f.name: getattr(args, f.name, f.default) for f in fields(DecodeConfig)}
    if values["output"].suffix.lower() != ".mp4":
        raise ConfigError(f"--output {values['output']}: must end in .mp4")
    ensure_writable_dir(values["output"].parent, "--output")
    try:
        latents_file = load_latents(values["input"])
    except LatentsFileError as err:
        raise ConfigError(str(err)) from None
    stored = latents_file.metadata
    for name in ("model", "vae_chunk_frames", "vae_context_frames", "vae_tile_size", "vae_tile_overlap"):
        if values[name] is None:
            values[name] = stored.get(name, DecodeOptions.__dataclass_fields__[name].default)
    config = DecodeConfig(**values)
    validate_decode_options(config)
    return config, latents_file


def run(config: DecodeConfig, latents_file, device, model_dir: Path) -> int:
    from ltx2gen import audio_input, memory, report, stages

    started = time.perf_counter()
    meta = latents_file.metadata
    width, height, num_frames, fps = int(meta["width"]), int(meta["height"]), int(meta["num_frames"]), Fraction(
        str(meta["fps"]))
    dtype = stages.default_dtype(device)
    plan = stages.DecodePlan.choose(num_frames, config.vae_chunk_frames, config.vae_context_frames,
                                    config.vae_tile_size, config.vae_tile_overlap)
    tracker = memory.MemoryTracker(device)
    print(f"decoding {config.input}: {width}x{height}x{num_frames} at {report.fps_text(fps)} fps with {config.model}, "
          f"VAE decode {plan.describe(latent_frame_count(num_frames))}", flush=True)
    try:
        # A clip made with --audio gets its input audio again, if that file is unchanged.
        soundtrack = audio_input.stored_soundtrack(meta.get("audio_input"), num_frames, fps, meta.get("sample_rate"))
        stages.decode_to_mp4(tracker, model_dir, latents_file.video, latents_file.audio, config.output,
                             width=width, height=height, num_frames=num_frames, fps=fps, plan=plan, device=device,
                             dtype=dtype, soundtrack=soundtrack)
        stages.release_page_cache(model_dir, config.drop_page_cache)
    except (Exception, KeyboardInterrupt) as err:
        print(f"error: {type(err).__name__}: {err}; {config.input} is unchanged", file=sys.stderr)
        return 130 if isinstance(err, KeyboardInterrupt) else 1
    print(report.summary_line(config.output, num_frames, width, height, fps, tracker, time.perf_counter() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
