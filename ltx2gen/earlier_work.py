"""What a clip takes from earlier work (--extend, --retake, --seconds, --resume, --refine-from): its length, checked
before any model loads, and whether the kept work was made from what this command asks for."""

from __future__ import annotations

from pathlib import Path

from ltx2gen import continuation, retake, two_stage
from ltx2gen.errors import ConfigError
from ltx2gen.provenance import check_taken_up


def continuation_length(values: dict, given: set[str]) -> dict:
    """The clip's frame count from --extend and --extend-seconds (the earlier clip's and the new segment's), from
    --retake (the clip's, with its size, rate, model, seed and prompt), or from --seconds; --resume's seed. Checked
    before any model loads."""
    if values["retake"] is not None:
        values = retake.adopt_clip(values, given)
    elif "retake_what" in given:
        raise ConfigError(f"--retake-what {values['retake_what']}: give --retake CLIP, the clip to retake")
    elif values["extend"] is not None:
        values = continuation.adopt_earlier(values, given)
    elif values["seconds"] is not None:
        if "num_frames" in given:
            raise ConfigError(f"--seconds {values['seconds']} contradicts --num-frames {values['num_frames']}; give "
                              "one of them")
        if not values["seconds"] > 0:
            raise ConfigError(f"--seconds {values['seconds']}: must be above 0")
        values = {**values, "num_frames": continuation.frames_for_seconds(values["seconds"], values["fps"])}
        print(f"note: --seconds {values['seconds']:g} is {values['num_frames']} frames "
              f"({float(values['num_frames'] / values['fps']):.2f} s at {float(values['fps']):g} fps)")
    if values["resume"] is not None:
        values = continuation.check_resume(values)
    return values



def check_kept_work(config) -> None:
    """--resume and --refine-from of `config` (a `GenerateConfig`) take up kept work, which must have been made from
    what this command asks for."""
    if config.resume:
        check_taken_up(continuation.earlier_clip(config.resume, "--resume").metadata, config,
                       f"--resume {config.resume}", "resume with the same command that was cut short")
    if config.refine_from:
        check_taken_up(two_stage.read_stage_one_metadata(Path(config.refine_from).expanduser()), config,
                       f"--refine-from {config.refine_from}", "refine it with its stage one's LoRAs and settings "
                       "(the command its run printed)")
