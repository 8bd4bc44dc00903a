#!/usr/bin/env python3
"""Rebuild a clip (video and audio) from a latents file alone, e.g. after generate.py failed in a later stage.

    python decode_latents.py --input outputs/video_20260101_120000.latents.safetensors --output clip.mp4
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, fields
from pathlib import Path

from ltx2gen import outputs
from ltx2gen.checkpoint import latent_frame_count
from ltx2gen.decode_options import DecodeOptions, validate_decode_options
from ltx2gen.errors import ConfigError
from ltx2gen.flag_values import check_output_file
from ltx2gen.flags import OneLineErrors, add_fields, opt
from ltx2gen.postprocess_options import PostprocessOptions, validate_postprocess_options
from ltx2gen.signals import stop_like_ctrl_c
from ltx2gen.streams import survive_readers_leaving
from ltx2gen.video import check_encoder
from ltx2gen.weight_shapes import check_weights_fit_the_model


@dataclass(frozen=True)
class DecodeConfig(DecodeOptions, PostprocessOptions):
    input: Path = opt(None, "latents file written by generate.py (.safetensors, or the older .npz)", type=Path,
                      required=True)
    output: Path = opt(None, "MP4 to write", type=Path, required=True)
    model: str | None = opt(None, "override the model stored in the latents file")
    vae_chunk_frames: int | None = opt(None, "temporal piece size in frames (default: as stored by generate.py)",
                                       metavar="N")
    vae_context_frames: int | None = opt(None, "context frames per piece side (default: as stored)", metavar="N")
    vae_tile_size: int | None = opt(None, "spatial tile in pixels (default: as stored)", metavar="PX")
    vae_tile_overlap: int | None = opt(None, "spatial tile overlap in pixels (default: as stored)", metavar="PX")
    decoder: str | None = opt(None, "video decoder: vae or diffusion (default: the one the clip was made with)",
                              choices=("vae", "diffusion"))


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrors(prog="decode_latents.py", description=__doc__.splitlines()[0])
    add_fields(parser, DecodeConfig, skip=("keep_latents",))
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    stop_like_ctrl_c()  # `docker stop` or `kill`: ffmpeg is stopped and the partial file removed, as on Ctrl-C
    survive_readers_leaving()  # a closed pipe never ends the run
    reservation = outputs.Reservation()  # none yet
    try:
        config, latents_file = load_config(args)
        from ltx2gen import components, video_decode
        from ltx2gen.fit import host_memory_available_bytes

        device = components.resolve_device(config.device)
        model_dir = components.resolve_model_dir(config.model)
        reads = (components.video_decoder_folder(model_dir, config.decoder, config.model), "audio_vae", "vocoder")
        components.check_model_files(model_dir, f"--model {config.model}", reads)
        check_weights_fit_the_model(model_dir, reads, f"--model {config.model}")
        check_latent_space(latents_file, model_dir, config)
        video = latents_file.video_format
        video_decode.check_cpu_decode(model_dir, config.decoder, device, video.width, video.height, video.num_frames,
                                      host_memory_available_bytes())
        check_encoder()
        reservation = outputs.reserve_exactly(config.output)  # the name is this run's alone until it exits
    except ConfigError as err:
        reservation.release()
        parser.error(str(err))
    with reservation:
        return run(config, latents_file, device, model_dir)


def load_config(args: argparse.Namespace):
    from ltx2gen.latents import LatentsFileError, load_latents

    values = {f.name: getattr(args, f.name, f.default) for f in fields(DecodeConfig)}
    check_output_file(values["output"])
    try:
        latents_file = load_latents(values["input"])
    except LatentsFileError as err:
        raise ConfigError(str(err)) from None
    stored = latents_file.metadata
    for name in ("model", "vae_chunk_frames", "vae_context_frames", "vae_tile_size", "vae_tile_overlap", "decoder"):
        if values[name] is None:
            values[name] = stored.get(name, DecodeOptions.__dataclass_fields__[name].default)
    config = DecodeConfig(**values)
    validate_decode_options(config)
    validate_postprocess_options(config)
    return config, latents_file


def check_latent_space(latents_file, model_dir: Path, config: DecodeConfig) -> None:
    """Latents decode only with VAEs of the version that made them (LTX-2.0's and LTX-2.3's differ), and of the
    channels they have."""
    from ltx2gen.checkpoint import check_latents_fit, model_version
    from ltx2gen.continuation import check_model

    audio = latents_file.audio
    check_latents_fit(tuple(latents_file.video.shape), tuple(audio.shape) if audio is not None else None, model_dir,
                      f"--input {config.input}")
    if (model_dir / "transformer" / "config.json").is_file():  # where the version is written
        check_model(latents_file, model_version(model_dir), f"--input {config.input}", use="decode it")


def run(config: DecodeConfig, latents_file, device, model_dir: Path) -> int:
    from ltx2gen import clip, postprocess, report, video_decode

    started = time.perf_counter()
    video_format = latents_file.video_format
    plan = video_decode.DecodePlan.choose(video_format.num_frames, config.vae_chunk_frames, config.vae_context_frames,
                                          config.vae_tile_size, config.vae_tile_overlap, config.decoder,
                                          latents_file.metadata.get("seed") or 0)
    print(f"decoding {config.input}: {video_format.width}x{video_format.height}x{video_format.num_frames} at "
          f"{report.fps_text(video_format.fps)} fps with {config.model}, "
          f"{plan.describe(latent_frame_count(video_format.num_frames))}", flush=True)
    try:
        rendered = clip.recover(config.input, config.output, model_dir=model_dir, device=device, decode_plan=plan,
                                drop_page_cache=config.drop_page_cache, post=config)
    except (Exception, KeyboardInterrupt) as err:
        print(f"error: {type(err).__name__}: {err}; {config.input} is unchanged"
              + postprocess.redo_advice(config, config.output), file=sys.stderr)
        return 130 if isinstance(err, KeyboardInterrupt) else 1
    print(f"sidecar: {rendered.sidecar}")
    final = config.postprocessed(video_format)
    print(report.summary_line(config.output, final.num_frames, width=final.width, height=final.height, fps=final.fps,
                              tracker=rendered.tracker, total_seconds=time.perf_counter() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
