"""The post-processing flags (--upscale, --interpolate and their models), shared by generate.py, decode_latents.py,
batch files and `python -m ltx2gen.postprocess`, with their checks. Pure until a model flag is given: the checks
then read the model file (not any LTX-2 weight) to recognise its architecture and factor."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from ltx2gen.errors import ConfigError
from ltx2gen.flags import opt
from ltx2gen.video import VideoFormat

FACTORS = (2, 4)


@dataclass(frozen=True)
class PostprocessOptions:
    """post-processing

    Frame interpolation and upscaling of the decoded clip, streamed frame by frame into the final MP4."""

    upscale: int | None = opt(None, "upscale the decoded frames x2 or x4 with the model of --upscale-model (a "
                                    "super-resolution model: Real-ESRGAN, ESRGAN, Compact, SPAN, ...)", choices=FACTORS,
                              metavar="2|4")
    upscale_model: Path | None = opt(None, "the upscaler's weights: a .safetensors or .pth file any "
                                           "super-resolution architecture spandrel recognises (docs/postprocess.md)",
                                     type=Path, metavar="FILE")
    upscale_tile: int = opt(512, "the upscaler runs on tiles of this many pixels (with 16 pixels of overlapping "
                                 "context each side; a multiple of 8, at least 64), or 0 for whole frames",
                            metavar="PX")
    interpolate: int | None = opt(None, "interpolate x2 or x4 with --interpolate-model: N frames become "
                                        "factor*(N-1)+1 at factor times the frame rate, the audio untouched",
                                  choices=FACTORS, metavar="2|4")
    interpolate_model: Path | None = opt(None, "the interpolator's weights: RIFE 4.22-4.26's flownet.pkl "
                                               "(Practical-RIFE)", type=Path, metavar="FILE")

    @property
    def postprocessing(self) -> bool:
        return bool(self.upscale or self.interpolate)

    def postprocessed(self, video_format: VideoFormat) -> VideoFormat:
        """What the final MP4 holds, from what the decode writes."""
        frames, fps = video_format.num_frames, video_format.fps
        if self.interpolate:
            frames, fps = self.interpolate * (frames - 1) + 1, fps * self.interpolate
        scale = self.upscale or 1
        return replace(video_format, width=video_format.width * scale, height=video_format.height * scale,
                       num_frames=frames, fps=fps)


def validate_postprocess_options(options: PostprocessOptions) -> None:
    """Each step's factor and model given together, each model file recognised and doing its factor. Raises
    ConfigError before anything else is read."""
    if options.upscale_tile < 0 or (options.upscale_tile and (options.upscale_tile < 64 or options.upscale_tile % 8)):
        raise ConfigError(f"--upscale-tile {options.upscale_tile}: give 0 (whole frames) or a multiple of 8, at "
                          "least 64")
    for step, model in (("upscale", options.upscale_model), ("interpolate", options.interpolate_model)):
        factor = getattr(options, step)
        if factor is not None and factor not in FACTORS:
            raise ConfigError(f"--{step} {factor}: give 2 or 4")
        if factor and model is None:
            raise ConfigError(f"--{step} {factor} needs --{step}-model FILE (weights are never downloaded at run "
                              "time; docs/postprocess.md says where to get them)")
        if model is not None and not factor:
            raise ConfigError(f"--{step}-model {model} has no effect without --{step} 2|4; give --{step} too")
    if options.postprocessing:
        from ltx2gen import postprocess_models  # torch: only once a model is to be checked

        if options.upscale:
            postprocess_models.check_upscaler(options.upscale_model, options.upscale)
        if options.interpolate:
            postprocess_models.check_interpolator(options.interpolate_model)


def postprocess_argv(options: PostprocessOptions) -> list[str]:
    """The flags that ask for `options`' post-processing (for the command that redoes it)."""
    argv = []
    for step in ("upscale", "interpolate"):
        if getattr(options, step):
            model = getattr(options, f"{step}_model")
            argv += [f"--{step}", str(getattr(options, step)), f"--{step}-model", str(model)]
    if options.upscale and options.upscale_tile != PostprocessOptions.upscale_tile:
        argv += ["--upscale-tile", str(options.upscale_tile)]
    return argv
