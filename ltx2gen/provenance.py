"""What a clip's kept work was made from: the settings that shape its latents and a hash of every input file,
recorded in each latents file (a clip's, a cut-short clip's finished windows, two-stage stage-one latents). Kept
work is taken up again (a batch's re-run, --resume, --refine-from) only where its record still matches the clip
asked for now.

Pure and cheap: no torch; each input file is hashed once per version of it (its size and modification time)."""

from __future__ import annotations

import os
from pathlib import Path

from ltx2gen import files
from ltx2gen.errors import ConfigError

RECORD_KEY = "made_from"


def file_sha256(path: Path | str) -> str:
    """The SHA-256 of a file's bytes; a file that cannot be read has its error instead (which matches nothing)."""
    try:
        return files.file_sha256(path)
    except OSError as err:
        return f"unreadable: {err.strerror or err}"


def model_reference(model: str) -> str:
    """A repo id as given; a local model folder as its absolute path (a run from another folder names it alike)."""
    folder = Path(model).expanduser()
    return os.path.abspath(folder) if folder.is_dir() else model


def lora_reference(spec) -> list:
    """A LoRA as given, with the hash of its file where it is a local one (a repo's is its name and file)."""
    local = Path(spec.source).expanduser()
    return [spec.label, file_sha256(local) if local.is_file() else None, spec.scale]


def record(config, length_chosen: bool = False) -> dict:
    """The settings and input hashes a `GenerateConfig`'s latents are made from (its output, decode and memory
    settings are not among them: they do not change the latents). `length_chosen`: the frame count is the one the
    model chose for --num-frames auto, which is recorded as asked."""
    auto = config.num_frames is None or length_chosen
    return {
        "prompt": config.prompt, "prompt_at": [change.text for change in config.prompt_at],
        "negative_prompt": config.negative_prompt, "enhance_prompt": config.enhance_prompt, "seed": config.seed,
        "width": config.width, "height": config.height,
        "num_frames": ["auto", config.min_seconds, config.max_seconds] if auto else config.num_frames,
        "fps": str(config.fps), "model": model_reference(config.model), "pipeline": config.pipeline,
        "upsampler": config.upsampler, "steps": config.steps,
        "guidance": [config.guidance_scale, config.audio_guidance_scale, config.stg_scale, config.modality_scale],
        "nag": [config.nag_scale, config.nag_tau, config.nag_alpha] if config.uses_nag else None,
        "windows": None if auto else [config.window_frames, config.window_overlap],
        "image": [file_sha256(config.image), config.image_strength] if config.image else None,
        "keyframes": [[file_sha256(spec.path), spec.at, spec.strength] for spec in config.keyframe],
        "audio": [file_sha256(config.audio), config.audio_strength] if config.audio else None,
        "extend": file_sha256(config.earlier.path) if config.extend else None,
        "lora": [lora_reference(spec) for spec in config.lora],
    }


def made_from(config, length_chosen: bool = False) -> dict:
    """The latents file's entry: {"made_from": `record`}."""
    return {RECORD_KEY: record(config, length_chosen)}


def differences(metadata: dict, config, ignore: tuple[str, ...] = ()) -> list[str] | None:
    """What a latents file's record says its work was made from that `config` does not ask for now (`ignore`: what
    may differ, such as the seed of a line that leaves it to chance); None where the file has no record (written by
    an earlier version)."""
    stored = metadata.get(RECORD_KEY)
    if not isinstance(stored, dict):
        return None
    now = record(config)
    return [name for name, value in now.items() if name not in ignore and stored.get(name) != _as_json(value)]


def _as_json(value):
    """A record's value as it reads back from the file's JSON (tuples are lists)."""
    if isinstance(value, (list, tuple)):
        return [_as_json(item) for item in value]
    return value


def describe(differ: list[str] | None) -> str:
    """How kept work differs, for one line: 'was made from another prompt, seed'."""
    if differ is None:
        return "does not record what it was made from (an earlier version wrote it)"
    return f"was made from another {', '.join(differ)}"


def check_taken_up(metadata: dict, config, flag: str, advice: str) -> None:
    """Kept work named on the command line (--resume, --refine-from) must be this command's: a ConfigError saying
    what differs. A file without a record is taken as it is (the flag's own checks still apply)."""
    differ = differences(metadata, config)
    if differ:
        raise ConfigError(f"{flag}: {describe(differ)} than this command asks for; {advice}")
