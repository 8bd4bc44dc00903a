"""LoRAs: resolve and check them before the base model loads, then fuse them into the bf16 weights.

Order matters: load on the bf16 transformer, fuse at the requested scales, unload the adapters (so no PEFT
wrapper keeps a second copy of any weight alive), and only then quantize. Both the original Lightricks/ComfyUI
key format (`diffusion_model.` prefix) and the diffusers format load.

A LoRA is made for one LTX-2 version and is refused on another: LTX-2.3 kept 2.0's attention and feed-forward sizes,
so a 2.0 LoRA would load on it without an error and steer a model it was not trained on. The version is read from
the file alone, before any weight (its header and name: `lora_made_for`).
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from ltx2gen.checkpoint import from_hub_cache
from ltx2gen.errors import ConfigError

CAMERA_MOVES = ("dolly-in", "dolly-out", "dolly-left", "dolly-right", "jib-up", "jib-down", "static")
# The only LTX-2 version Lightricks has published camera-control LoRAs for (Lightricks/LTX-2-19b-LoRA-Camera-Control-*;
# docs/loras.md gives the sources).
CAMERA_LORA_VERSION = "2.0"
SCALE_RANGE = (-2.0, 2.0)
# lora_A / lora_down is [rank, in_features], lora_B / lora_up [out_features, rank].
DOWN_MARKERS = (".lora_A.", ".lora_down.")
UP_MARKERS = (".lora_B.", ".lora_up.")
LORA_KEY_MARKERS = DOWN_MARKERS + UP_MARKERS
LATER_VERSIONS = ("2.3", "2.5")  # the versions with gated attention (`checkpoint.model_version`)
# Lightricks names every LoRA it publishes after the model it was trained on: ltx-2-19b-... (LTX-2.0),
# ltx-2.3-22b-..., ltx-2.5-22b-... (files and repos alike, e.g. Lightricks/LTX-2.3-22b-IC-LoRA-Union-Control).
LIGHTRICKS_NAME = re.compile(r"ltx-2(\.\d+)?-\d+b-", re.IGNORECASE)
LARGEST_HEADER = 100 * 2 ** 20
# IC-LoRAs: the metadata key of the reference's downscale factor, and the name Lightricks gives them.
REFERENCE_DOWNSCALE_KEY = "reference_downscale_factor"
IC_LORA_NAME = re.compile(r"ic[-_]?lora", re.IGNORECASE)  # what safetensors itself accepts


@dataclass(frozen=True)
class LoraSpec:
    """One LoRA as the user named it: a local .safetensors path, `repo::file.safetensors`, or a repo id."""

    source: str
    weight_name: str | None = None
    scale: float = 1.0

    @property
    def label(self) -> str:
        return f"{self.source}::{self.weight_name}" if self.weight_name else self.source


def camera_lora(move: str) -> LoraSpec:
    """Lightricks' camera-control LoRA of `move`, made for LTX-2.0 (`check_camera_published` refuses other versions)."""
    if move not in CAMERA_MOVES:
        raise ConfigError(f"--camera {move}: unknown camera move; choose one of {', '.join(CAMERA_MOVES)}")
    title = "-".join(part.capitalize() for part in move.split("-"))
    return LoraSpec(f"Lightricks/LTX-2-19b-LoRA-Camera-Control-{title}",
                    f"ltx-2-19b-lora-camera-control-{move}.safetensors")


def check_camera_published(move: str, version: str) -> None:
    """Refuse `--camera` on a version Lightricks has published no camera-control LoRAs for, before any download."""
    if version != CAMERA_LORA_VERSION:
        raise ConfigError(f"--camera {move}: Lightricks has published camera-control LoRAs for "
                          f"LTX-{CAMERA_LORA_VERSION} only (Lightricks/LTX-2-19b-LoRA-Camera-Control-*), none for "
                          f"LTX-{version}; describe the camera move in the prompt, or use an LTX-{CAMERA_LORA_VERSION} "
                          "model")


def parse_lora_args(lora_args: list[list[str]] | None, weight_name: str | None, scale: float | None,
                    camera: str | None) -> tuple[LoraSpec, ...]:
    """`--lora SPEC [SCALE]` (repeatable), the older `--lora-weight-name`/`--lora-scale` form, and `--camera`."""
    specs = []
    for values in lora_args or []:
        if len(values) > 2:
            raise ConfigError(f"--lora {' '.join(values)}: takes a LoRA and at most one scale")
        source, weight = values[0], None
        if "::" in source:
            source, weight = source.split("::", 1)
        lora_scale = _scale(values[1]) if len(values) == 2 else 1.0
        specs.append(LoraSpec(source, weight, lora_scale))
    if weight_name is not None or scale is not None:
        if len(specs) != 1:
            raise ConfigError("--lora-weight-name/--lora-scale apply to exactly one --lora; use --lora SPEC SCALE "
                              "(or REPO::FILE) for several")
        only = specs[0]
        specs[0] = LoraSpec(only.source, weight_name or only.weight_name,
                            _scale(str(scale)) if scale is not None else only.scale)
    if camera:
        specs.append(camera_lora(camera))
    for spec in specs:
        _check_shape_of_spec(spec)
    return tuple(specs)


def _scale(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"--lora scale {text}: not a number") from None
    if not SCALE_RANGE[0] <= value <= SCALE_RANGE[1]:
        raise ConfigError(f"--lora scale {value:g}: must be between {SCALE_RANGE[0]:g} and {SCALE_RANGE[1]:g}")
    return value


def _is_local(source: str) -> bool:
    return source.endswith(".safetensors") or source.startswith((".", "/", "~")) or Path(source).exists()


def _check_shape_of_spec(spec: LoraSpec) -> None:
    if _is_local(spec.source):
        path = Path(spec.source).expanduser()
        if not path.suffix == ".safetensors":
            raise ConfigError(f"--lora {spec.source}: LoRAs load from .safetensors files only")
        if not path.is_file():
            raise ConfigError(f"--lora {spec.source}: no such file")
    elif spec.weight_name is not None and not spec.weight_name.endswith(".safetensors"):
        raise ConfigError(f"--lora {spec.label}: LoRAs load from .safetensors files only")


def resolve_file(spec: LoraSpec) -> Path:
    """The local .safetensors file of a LoRA (from the Hugging Face cache, downloaded unless offline)."""
    if _is_local(spec.source):
        return Path(spec.source).expanduser().resolve()
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError

    weight_name = spec.weight_name or _single_safetensors(spec.source)
    try:
        return from_hub_cache(f"--lora {spec.label}", lambda: hf_hub_download(spec.source, weight_name))
    except (EntryNotFoundError, RepositoryNotFoundError):
        raise ConfigError(f"--lora {spec.label}: no such repository or file; see --list-lora-files REPO") from None


def list_repo_safetensors(repo: str) -> list[str]:
    from huggingface_hub import list_repo_files, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled

    try:
        files = list_repo_files(repo)
    except (OfflineModeIsEnabled, HfHubHTTPError, OSError):
        try:  # offline: what the local cache holds
            files = [str(p.relative_to(root)) for root in [Path(snapshot_download(repo, local_files_only=True))]
                     for p in root.rglob("*")]
        except LocalEntryNotFoundError:
            raise ConfigError(f"{repo}: not reachable and not in the Hugging Face cache") from None
    return sorted(f for f in files if f.endswith(".safetensors"))


def _single_safetensors(repo: str) -> str:
    files = list_repo_safetensors(repo)
    if len(files) != 1:
        raise ConfigError(f"--lora {repo}: holds {len(files)} .safetensors files ({', '.join(files) or 'none'}); "
                          f"name one with {repo}::FILE")
    return files[0]


def transformer_module_sizes(model_dir: Path) -> dict[str, tuple[int, int] | None]:
    """Every module of the model's transformer and connectors by its diffusers name, with (in, out) features for the
    linear layers (None for the rest), built on the meta device (no weights read)."""
    from accelerate import init_empty_weights
    from diffusers import LTX2VideoTransformer3DModel
    from diffusers.pipelines.ltx2 import LTX2TextConnectors

    sizes = {}
    for subfolder, cls in (("transformer", LTX2VideoTransformer3DModel), ("connectors", LTX2TextConnectors)):
        config = json.loads((model_dir / subfolder / "config.json").read_text())
        with init_empty_weights():
            model = cls.from_config(config)
        sizes |= {f"{subfolder}.{name}": (module.in_features, module.out_features) if hasattr(module, "in_features")
                  else None for name, module in model.named_modules()}
    return sizes


def read_header(path: Path, label: str) -> tuple[dict, dict[str, list[int]]]:
    """A safetensors file's metadata and tensor shapes, from its header alone (no tensor is read)."""
    try:
        with path.open("rb") as file:
            (length,) = struct.unpack("<Q", file.read(8))
            if length > min(LARGEST_HEADER, path.stat().st_size - 8):
                raise ValueError("header length past the end of the file")
            header = json.loads(file.read(length))
        metadata = header.pop("__metadata__", None) or {}
        return metadata, {name: list(entry["shape"]) for name, entry in header.items()}
    except (OSError, ValueError, struct.error, AttributeError, TypeError, KeyError) as err:  # damaged or foreign
        raise ConfigError(f"--lora {label}: cannot be read as safetensors ({type(err).__name__})") from None


def adapted_module_sizes(shapes: dict[str, list[int]]) -> dict[str, tuple[int | None, int | None]]:
    """(in, out) features of every module a LoRA adapts, by its diffusers name (diffusers' own renaming of the
    Lightricks/ComfyUI format), from the shapes of its down and up matrices."""
    sizes = {}
    for module, down, shape in _lora_matrices(shapes):
        features_in, features_out = sizes.get(module, (None, None))
        sizes[module] = (shape[1], features_out) if down else (features_in, shape[0])
    return sizes


def mismatched_ranks(shapes: dict[str, list[int]]) -> dict[str, list[int]]:
    """The modules whose down and up matrices disagree on the LoRA's rank (down [rank, in], up [out, rank]), with
    the ranks each gives: such a pair cannot be multiplied, and fusing it would fail with the text stage done."""
    ranks: dict[str, list[int]] = {}
    for module, down, shape in _lora_matrices(shapes):
        ranks.setdefault(module, []).append(shape[0] if down else shape[1])
    return {module: given for module, given in ranks.items() if len(set(given)) > 1}


def _lora_matrices(shapes: dict[str, list[int]]):
    """(module by its diffusers name, whether the matrix is the down one, its shape) of every 2-D LoRA matrix, as
    diffusers renames the Lightricks/ComfyUI format."""
    from diffusers import LTX2Pipeline

    for key, shape in LTX2Pipeline.lora_state_dict(dict(shapes)).items():
        for marker in LORA_KEY_MARKERS:
            if marker in key and len(shape) == 2:
                yield key.split(marker)[0], marker in DOWN_MARKERS, shape


@dataclass(frozen=True)
class MadeFor:
    """The LTX-2 versions a LoRA can have been made for (none known: empty) and what in the file says so."""

    versions: tuple[str, ...]
    reason: str

    def describe(self) -> str:
        return " or ".join(f"LTX-{version}" for version in self.versions) or "an unknown LTX-2 version"


def lora_made_for(metadata: dict, modules: dict[str, tuple], names: tuple[str, ...]) -> MadeFor:
    """What the file says it was made for, most direct first:
    1. `model_version` metadata, which Lightricks' checkpoints carry (ltx-pipelines' `detect_model_version`);
    2. modules only some versions have: gated attention (`to_gate_logits`) and prompt modulation (`prompt_adaln`)
       came with LTX-2.3, and its timestep modulation is 9 rows per width where LTX-2.0's is 6; LTX-2.0's transformer
       alone projects the captions (`caption_projection`). LTX-2.3 and 2.5 adapt the same modules at the same sizes;
    3. Lightricks' file and repo names (`LIGHTRICKS_NAME`)."""
    declared = str(metadata.get("model_version") or "")
    if declared:
        parts = re.match(r"(\d+)(?:[.-](\d+))?", declared)
        version = f"{parts[1]}.{parts[2] or 0}" if parts else declared
        return MadeFor((version,), f"its model_version metadata says {declared}")
    later, earlier = _version_marks(modules)
    named_version, name = _lightricks_name(names)
    if later and not earlier:
        if named_version in LATER_VERSIONS:
            return MadeFor((named_version,), f"it adapts {later[0]}, and its name {name} says LTX-{named_version}")
        return MadeFor(LATER_VERSIONS, f"it adapts {later[0]}")
    if earlier and not later:
        return MadeFor(("2.0",), f"it adapts {earlier[0]}")
    if named_version:
        return MadeFor((named_version,), f"its name {name} is Lightricks' for LTX-{named_version}")
    return MadeFor((), "it has no model_version metadata, adapts no module only some versions have, and is not named "
                       "as Lightricks names its LoRAs")


def _version_marks(modules: dict[str, tuple]) -> tuple[list[str], list[str]]:
    """What a LoRA's adapted modules say of its version: (marks of LTX-2.3 and later, marks of LTX-2.0)."""
    later, earlier = [], []
    for module, (features_in, features_out) in sorted(modules.items()):
        modulation = module.endswith("time_embed.linear") and features_in and features_out
        if ".to_gate_logits" in module or "prompt_adaln." in module:
            later.append(f"{module}, which LTX-2.3 added")
        elif modulation and features_out == 9 * features_in:
            later.append(f"{module} at LTX-2.3's 9 modulation rows per width")
        elif "caption_projection." in module:
            earlier.append(f"{module}, which only LTX-2.0 has")
        elif modulation and features_out == 6 * features_in:
            earlier.append(f"{module} at LTX-2.0's 6 modulation rows per width")
    return later, earlier


def _lightricks_name(names: tuple[str, ...]) -> tuple[str | None, str | None]:
    """(the version, the name) of the first of `names` named as Lightricks names its LoRAs; (None, None) if none is."""
    for name in names:
        match = LIGHTRICKS_NAME.search(name)
        if match:
            return f"2{match[1] or '.0'}", name
    return None, None


def check_lora_file(path: Path, spec: LoraSpec, module_sizes: dict, version: str) -> tuple[int, MadeFor]:
    """Refuse files that are not LoRAs, were made for another LTX-2 version than the model's `version`, or adapt
    modules the model lacks or has at other sizes. Returns how many modules it adapts and what it was made for."""
    from ltx2gen.components import check_weight_file

    metadata, shapes = read_header(path, spec.label)
    check_weight_file(path, f"--lora {spec.label}")  # every tensor's bytes there, as its header says
    modules = adapted_module_sizes(shapes)
    if not modules:
        raise ConfigError(f"--lora {spec.label}: holds no LoRA weights (no lora_A/lora_B keys)")
    unmatched_ranks = mismatched_ranks(shapes)
    if unmatched_ranks:
        module, ranks = next(iter(unmatched_ranks.items()))
        raise ConfigError(f"--lora {spec.label}: {len(unmatched_ranks)} adapted modules have down and up matrices of "
                          f"different ranks (first: {module}, ranks {' and '.join(map(str, ranks))}); the file is "
                          "damaged or not a LoRA")
    names = names_of(spec, path)
    made_for = lora_made_for(metadata, modules, names)
    if made_for.versions and version not in made_for.versions:
        raise ConfigError(f"--lora {spec.label}: made for {made_for.describe()} ({made_for.reason}); this model is "
                          f"LTX-{version}; use a LoRA made for LTX-{version}, or a model of the LoRA's version")
    unmatched = sorted(set(modules) - set(module_sizes))
    if unmatched:
        raise ConfigError(f"--lora {spec.label}: {len(unmatched)} of {len(modules)} adapted modules do not exist in "
                          f"this model (first: {unmatched[0]}); it was made for another model")
    resized = sorted(module for module, sizes in modules.items() if module_sizes[module] != sizes)
    if resized:
        first = resized[0]
        raise ConfigError(f"--lora {spec.label}: {len(resized)} of {len(modules)} adapted modules have other sizes in "
                          f"this model (first: {first}, {_features(modules[first])} in the LoRA, "
                          f"{_features(module_sizes[first])} here); it was made for another model")
    if not made_for.versions:
        print(f"note: --lora {spec.label}: the LTX-2 version it was made for cannot be read ({made_for.reason}); it "
              f"is fused into this LTX-{version} model as it is")
    return len(modules), made_for


def names_of(spec: LoraSpec, path: Path) -> tuple[str, ...]:
    """The names a LoRA goes by: its file's, and its repo's where it came from one."""
    return (path.name,) if _is_local(spec.source) else (spec.source, path.name)


def local_file(spec: LoraSpec) -> Path | None:
    """The file of a LoRA given as a local path (None for one from a repo, found only by `resolve_file`)."""
    return Path(spec.source).expanduser() if _is_local(spec.source) else None


@dataclass(frozen=True)
class InContextLora:
    """An in-context LoRA (IC-LoRA): one trained to follow a reference video whose latent tokens join the sequence.
    `downscale` is how much smaller than the clip its reference was in training (1: the clip's size)."""

    label: str
    downscale: int


def in_context_lora(path: Path, spec: LoraSpec) -> InContextLora | None:
    """What the file says of a LoRA being an IC-LoRA, from its header and name alone: Lightricks' trainer writes
    `REFERENCE_DOWNSCALE_KEY` into the metadata of IC-LoRAs trained with a reference smaller than the clip
    (ltx-pipelines reads it, default 1), and Lightricks names every IC-LoRA it publishes so (`IC_LORA_NAME`:
    ltx-2-19b-ic-lora-canny-control, LTX-2.3-22b-IC-LoRA-Union-Control). None for any other LoRA."""
    metadata, _ = read_header(path, spec.label)
    if REFERENCE_DOWNSCALE_KEY in metadata:
        text = str(metadata[REFERENCE_DOWNSCALE_KEY])
        if not text.isdigit() or int(text) < 1:
            raise ConfigError(f"--lora {spec.label}: its {REFERENCE_DOWNSCALE_KEY} metadata is {text!r}, not a "
                              "whole number of at least 1; the file is damaged or not an IC-LoRA")
        return InContextLora(spec.label, int(text))
    if any(IC_LORA_NAME.search(name) for name in names_of(spec, path)):
        return InContextLora(spec.label, 1)
    return None


def _features(sizes: tuple | None) -> str:
    return f"{sizes[0]} -> {sizes[1]} features" if sizes else "not a linear layer"


@dataclass(frozen=True)
class ResolvedLora:
    spec: LoraSpec
    path: Path
    modules: int
    made_for: MadeFor = MadeFor((), "not read")

    def record(self) -> dict:
        return {"lora": self.spec.label, "file": str(self.path), "scale": self.spec.scale, "modules": self.modules,
                "made_for": self.made_for.describe(), "made_for_reason": self.made_for.reason}


def resolve_loras(specs: tuple[LoraSpec, ...], model_dir: Path, version: str) -> tuple[ResolvedLora, ...]:
    """Find and check every LoRA against the model of `version` (`checkpoint.model_version`) before the base model
    is loaded."""
    if not specs:
        return ()
    module_sizes = transformer_module_sizes(model_dir)
    resolved = []
    for spec in specs:
        path = resolve_file(spec)
        resolved.append(ResolvedLora(spec, path, *check_lora_file(path, spec, module_sizes, version)))
    return tuple(resolved)


def fuse_loras(target: str, model, loras: tuple[ResolvedLora, ...]) -> int:
    """Fuse the part of every LoRA that adapts `target` ("transformer" or "connectors") into `model`'s weights at
    its scale, then unload the adapters. The connectors part is fused in the text stage, the transformer part in
    the diffusion stage. Returns how many LoRAs had a part for `target`."""
    if not loras:
        return 0
    from diffusers import LTX2Pipeline

    host = LTX2Pipeline(scheduler=None, vae=None, audio_vae=None, text_encoder=None, tokenizer=None,
                        connectors=model if target == "connectors" else None,
                        transformer=model if target == "transformer" else None, vocoder=None)
    adapters = {}
    for index, lora in enumerate(loras):
        state_dict = LTX2Pipeline.lora_state_dict(str(lora.path))
        part = {key: value for key, value in state_dict.items() if key.startswith(f"{target}.")}
        if not part:
            continue
        name = f"lora{index}"
        if target == "transformer":
            host.load_lora_weights(part, adapter_name=name)
        else:
            host.load_lora_into_transformer(part, transformer=model, adapter_name=name, prefix=target,
                                            _pipeline=host)
        adapters[name] = lora.spec.scale
    if adapters:
        host.set_adapters(list(adapters), adapter_weights=list(adapters.values()))
        host.fuse_lora(components=[target], adapter_names=list(adapters))
        host.unload_lora_weights()
    return len(adapters)
