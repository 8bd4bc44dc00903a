"""The latents file: video and audio latents plus everything needed to decode them with no other flag.

Written atomically right after diffusion, so a crash in a later stage loses nothing. safetensors keeps bf16
exactly; metadata is one JSON string. The older `.npz` form (a `latents` array, optional `audio_latents`,
and metadata as separate entries) is read too. `read_header` reads a file's metadata and shapes without torch, so
the flags that name a latents file are checked before anything heavy is imported.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

from ltx2gen.checkpoint import latent_frame_count
from ltx2gen.files import atomic_path
from ltx2gen.video import VideoFormat

if TYPE_CHECKING:
    import torch

FORMAT = "ltx2gen-latents/1"
REQUIRED_METADATA = ("model", "fps", "width", "height", "num_frames")


class LatentsFileError(ValueError):
    """The file is missing, truncated, corrupt or holds the wrong shapes: reported in one line, status 2."""


class NonFiniteLatents(ValueError):
    """Latents holding NaN or infinite values: no clip can be decoded or continued from them."""


def check_finite(video: torch.Tensor, audio: torch.Tensor | None, what: str) -> None:
    """NonFiniteLatents naming `what` made them, where any value of `video` or `audio` is NaN or infinite."""
    import torch

    bad = {name: int((~torch.isfinite(tensor)).sum()) for name, tensor in (("video", video), ("audio", audio))
           if tensor is not None}
    if any(bad.values()):
        counts = ", ".join(f"{name} {count} of {tensor.numel()}" for (name, count), tensor in zip(bad.items(),
                           (video, audio)) if count)
        raise NonFiniteLatents(f"{what} are NaN or infinite ({counts} values)")


# The exponent bits of each float layout a latents file may hold: all set is an infinity or a NaN.
EXPONENT_BITS = {"F32": ("<u4", 0x7F800000), "BF16": ("<u2", 0x7F80), "F16": ("<u2", 0x7C00)}


def nonfinite_values(path: Path) -> int:
    """How many values of a latents file (safetensors) are NaN or infinite, read without torch."""
    import numpy as np

    from ltx2gen.files import safetensors_header

    header, start = safetensors_header(path)
    count = 0
    for name, entry in header.items():
        if name == "__metadata__" or entry.get("dtype") not in EXPONENT_BITS:
            continue
        layout, exponent = EXPONENT_BITS[entry["dtype"]]
        begin, end = entry["data_offsets"]
        values = np.fromfile(path, dtype=layout, count=(end - begin) // np.dtype(layout).itemsize,
                             offset=start + begin)
        count += int(np.count_nonzero((values & exponent) == exponent))
    return count


def video_format_of(meta: dict) -> VideoFormat:
    return VideoFormat(int(meta["width"]), int(meta["height"]), int(meta["num_frames"]), Fraction(str(meta["fps"])))


@dataclass
class LatentsFile:
    video: torch.Tensor
    audio: torch.Tensor | None
    metadata: dict

    @property
    def video_format(self) -> VideoFormat:
        return video_format_of(self.metadata)


@dataclass(frozen=True)
class LatentsHeader:
    """A latents file's metadata and tensor shapes, read from its safetensors header alone."""

    path: Path
    metadata: dict
    video_shape: tuple[int, ...]
    audio_shape: tuple[int, ...] | None

    @property
    def video_format(self) -> VideoFormat:
        return video_format_of(self.metadata)


def kept_beside(video: Path, named: str) -> Path | None:
    """The latents file an MP4's sidecar names (`named`, as the run that wrote it saw it, relative to that run's
    folder), or the file of that name beside the MP4 (the two moved together); None where neither is there."""
    return next((path for path in (Path(named), Path(video).with_name(Path(named).name)) if path.is_file()), None)


def read_header(path: Path) -> LatentsHeader:
    """The header of a latents file written by `save_latents`; anything else is a LatentsFileError."""
    path = Path(path)
    if not path.is_file():
        raise LatentsFileError(f"{path}: no such latents file")
    try:
        with path.open("rb") as handle:
            size = int.from_bytes(handle.read(8), "little")
            if not 0 < size <= path.stat().st_size - 8:
                raise ValueError("no safetensors header")
            header = json.loads(handle.read(size))
        stored = header.get("__metadata__") or {}
        if stored.get("format") != FORMAT or "ltx2gen" not in stored:
            raise LatentsFileError(f"{path}: not an ltx2gen latents file (.latents.safetensors, as generate.py "
                                   "writes it)")
        loaded = LatentsHeader(path, json.loads(stored["ltx2gen"]), tuple(header["video_latents"]["shape"]),
                               tuple(header["audio_latents"]["shape"]) if "audio_latents" in header else None)
        for name in ("video", "audio"):
            dtype = header.get(f"{name}_latents", {}).get("dtype", "F32")
            if dtype not in FLOATING_DTYPES:
                raise _not_floating(path, name, dtype)
    except LatentsFileError:
        raise
    except (ValueError, KeyError, TypeError) as err:
        raise LatentsFileError(f"{path}: not a readable latents file ({type(err).__name__}: {err})") from None
    _check_shapes(path, loaded.metadata, loaded.video_shape, loaded.audio_shape)
    return loaded


FLOATING_DTYPES = ("F32", "BF16", "F16", "F64")  # safetensors' names of the dtypes latents can be in


def _not_floating(path: Path, name: str, dtype: str) -> LatentsFileError:
    return LatentsFileError(f"{path}: its {name} latents are not floating-point numbers ({dtype}); not latents "
                            "generate.py wrote")


def save_latents(path: Path, video: torch.Tensor, audio: torch.Tensor, metadata: dict) -> Path:
    """Raises NonFiniteLatents (writing nothing) for latents no clip can be made from."""
    from safetensors.torch import save_file

    check_finite(video, audio, "the diffusion's latents")
    tensors = {"video_latents": video.contiguous().cpu(), "audio_latents": audio.contiguous().cpu()}
    with atomic_path(path) as temporary:
        save_file(tensors, str(temporary), metadata={"format": FORMAT, "ltx2gen": json.dumps(metadata)})
    return Path(path)


def fallback_paths(name: str) -> list[Path]:
    """Where a latents file goes when the output's folder cannot take it: the Hugging Face cache volume in the Docker
    image (a mounted volume outlives the container), the user's cache folder, the temporary folder."""
    folders = [Path(os.environ["HF_HOME"]) / "ltx2gen-latents"] if os.environ.get("HF_HOME") else []
    folders += [Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ltx2gen" / "latents",
                Path(tempfile.gettempdir()) / "ltx2gen-latents"]
    return [folder / name for folder in folders]


def kept_copy(beside: Path, record_of, config) -> Path | None:
    """A clip's kept work (a two-stage run's stage one, a dfr pass) at `beside`, or where that folder could not take
    it, in the first fallback folder that did (`save_anywhere`): known by the clip's output and seed in its record
    (`record_of(path)`, a ConfigError for any other file); None where there is none."""
    from ltx2gen.errors import ConfigError

    for path in [Path(beside), *fallback_paths(Path(beside).name)]:
        try:
            clip = record_of(path)["clip"]
        except ConfigError:  # none there, or not this kind of file
            continue
        if clip.get("output") == str(Path(config.output).resolve()) and clip.get("seed") == config.seed:
            return path
    return None


def save_anywhere(path: Path, video: torch.Tensor, audio: torch.Tensor, metadata: dict) -> tuple[Path, list[str]]:
    """`save_latents` at `path`, or where it cannot be written there (a full disk, a folder that became read-only)
    in the first of its `fallback_paths` that takes it, each refusal said in one warning line. Returns where it went
    and the refusals; OSError when no folder took it."""
    tried = []
    for candidate in [Path(path), *fallback_paths(Path(path).name)]:
        try:
            return save_latents(candidate, video, audio, metadata), tried
        except OSError as err:
            tried.append(f"{candidate.parent}: {err.strerror or err}")
            print(f"warning: cannot save the latents in {tried[-1]}", file=sys.stderr, flush=True)
    raise OSError(f"no folder took the latents ({'; '.join(tried)})")


def load_latents(path: Path) -> LatentsFile:
    path = Path(path)
    if not path.is_file():
        raise LatentsFileError(f"{path}: no such latents file")
    try:
        loaded = _load_npz(path) if path.suffix == ".npz" else _load_safetensors(path)
    except LatentsFileError:
        raise
    except Exception as err:  # any parse failure of a damaged file
        raise LatentsFileError(f"{path}: not a readable latents file ({type(err).__name__}: "
                               f"{str(err).splitlines()[0] if str(err) else 'truncated or corrupt'})") from None
    _check(path, loaded)
    return loaded


def _load_safetensors(path: Path) -> LatentsFile:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        header = handle.metadata() or {}
        if "ltx2gen" not in header:
            raise LatentsFileError(f"{path}: a safetensors file but not an ltx2gen latents file (no metadata)")
        keys = set(handle.keys())
        if "video_latents" not in keys:
            raise LatentsFileError(f"{path}: holds no video_latents tensor")
        video = handle.get_tensor("video_latents")
        audio = handle.get_tensor("audio_latents") if "audio_latents" in keys else None
    return LatentsFile(video, audio, json.loads(header["ltx2gen"]))


def _load_npz(path: Path) -> LatentsFile:
    import numpy as np
    import torch

    with np.load(path, allow_pickle=False) as archive:
        if "latents" not in archive:
            raise LatentsFileError(f"{path}: an .npz file without a 'latents' array")
        video = torch.from_numpy(archive["latents"].astype(np.float32))
        audio = torch.from_numpy(archive["audio_latents"].astype(np.float32)) if "audio_latents" in archive else None
        metadata = {key: archive[key].item() for key in archive.files if archive[key].ndim == 0}
    return LatentsFile(video, audio, metadata)


def _check(path: Path, loaded: LatentsFile) -> None:
    _check_shapes(path, loaded.metadata, tuple(loaded.video.shape),
                  tuple(loaded.audio.shape) if loaded.audio is not None else None)
    for name, tensor in (("video", loaded.video), ("audio", loaded.audio)):
        if tensor is not None and not tensor.is_floating_point():
            raise _not_floating(path, name, str(tensor.dtype).replace("torch.", ""))
    try:
        check_finite(loaded.video, loaded.audio, "its latents")
    except NonFiniteLatents as err:
        raise LatentsFileError(f"{path}: {err}; no clip can be made from them (render it again, with lower "
                               "guidance scales if they were raised)") from None


def _check_shapes(path: Path, meta: dict, video: tuple[int, ...], audio: tuple[int, ...] | None) -> None:
    missing = [key for key in REQUIRED_METADATA if key not in meta]
    if missing:
        raise LatentsFileError(f"{path}: metadata lacks {', '.join(missing)} (pass them or re-generate)")
    if len(video) != 5 or video[0] != 1:
        raise LatentsFileError(f"{path}: video latents have shape {video}, expected "
                               "[1, channels, frames, height/32, width/32]")
    expected = (latent_frame_count(int(meta["num_frames"])), int(meta["height"]) // 32, int(meta["width"]) // 32)
    if video[2:] != expected:
        raise LatentsFileError(f"{path}: video latents are {video[2:]} (frames, h, w) but the "
                               f"metadata's {meta['num_frames']} frames at {meta['width']}x{meta['height']} "
                               f"need {expected}")
    if audio is not None and (len(audio) != 4 or audio[0] != 1):
        raise LatentsFileError(f"{path}: audio latents have shape {audio}, expected "
                               "[1, channels, length, mel bins]")
