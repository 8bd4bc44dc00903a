"""LoRAs: resolve and check them before the base model loads, then fuse them into the bf16 weights.

Order matters: load on the bf16 transformer, fuse at the requested scales, unload the adapters (so no PEFT
wrapper keeps a second copy of any weight alive), and only then quantize. Both the original Lightricks/ComfyUI
key format (`diffusion_model.` prefix) and the diffusers format load.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ltx2gen.checkpoint import from_hub_cache
from ltx2gen.errors import ConfigError

CAMERA_MOVES = ("dolly-in", "dolly-out", "dolly-left", "dolly-right", "jib-up", "jib-down", "static")
SCALE_RANGE = (-2.0, 2.0)
LORA_KEY_MARKERS = (".lora_A.", ".lora_B.", ".lora_down.", ".lora_up.")


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
    if move not in CAMERA_MOVES:
        raise ConfigError(f"--camera {move}: unknown camera move; choose one of {', '.join(CAMERA_MOVES)}")
    title = "-".join(part.capitalize() for part in move.split("-"))
    return LoraSpec(f"Lightricks/LTX-2-19b-LoRA-Camera-Control-{title}",
                    f"ltx-2-19b-lora-camera-control-{move}.safetensors")


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


def transformer_module_names(model_dir: Path) -> set[str]:
    """Module names of the model's transformer and connectors, built on the meta device (no weights read)."""
    from accelerate import init_empty_weights
    from diffusers import LTX2VideoTransformer3DModel
    from diffusers.pipelines.ltx2 import LTX2TextConnectors

    names = set()
    for subfolder, cls in (("transformer", LTX2VideoTransformer3DModel), ("connectors", LTX2TextConnectors)):
        config = json.loads((model_dir / subfolder / "config.json").read_text())
        with init_empty_weights():
            model = cls.from_config(config)
        names |= {f"{subfolder}.{name}" for name, _ in model.named_modules()}
    return names


def check_lora_file(path: Path, label: str, module_names: set[str]) -> int:
    """Refuse files that are not LoRAs or whose keys match no module. Returns how many modules it adapts."""
    from diffusers import LTX2Pipeline

    try:
        state_dict = LTX2Pipeline.lora_state_dict(str(path))
    except Exception as err:  # a damaged or foreign file
        raise ConfigError(f"--lora {label}: cannot be read as safetensors ({type(err).__name__})") from None
    targets = {key.split(marker)[0] for key in state_dict for marker in LORA_KEY_MARKERS if marker in key}
    if not targets:
        raise ConfigError(f"--lora {label}: holds no LoRA weights (no lora_A/lora_B keys)")
    unmatched = sorted(targets - module_names)
    if unmatched:
        raise ConfigError(f"--lora {label}: {len(unmatched)} of {len(targets)} adapted modules do not exist in this "
                          f"model (first: {unmatched[0]}); it was made for another model")
    return len(targets)


@dataclass(frozen=True)
class ResolvedLora:
    spec: LoraSpec
    path: Path
    modules: int

    def record(self) -> dict:
        return {"lora": self.spec.label, "file": str(self.path), "scale": self.spec.scale, "modules": self.modules}


def resolve_loras(specs: tuple[LoraSpec, ...], model_dir: Path) -> tuple[ResolvedLora, ...]:
    """Find and check every LoRA before the base model is loaded."""
    if not specs:
        return ()
    module_names = transformer_module_names(model_dir)
    resolved = []
    for spec in specs:
        path = resolve_file(spec)
        resolved.append(ResolvedLora(spec, path, check_lora_file(path, spec.label, module_names)))
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
