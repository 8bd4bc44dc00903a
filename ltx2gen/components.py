"""Loading a checkpoint's components: the device and dtype a run uses, the model folder, each component from its
files (streamed where a stock loader would hold the files in memory), the stock pipeline built around just the
components a stage needs, and the page cache the weight files leave behind."""

from __future__ import annotations

import importlib
import json
import math
import struct
from pathlib import Path

import torch

from ltx2gen import memory as mem
from ltx2gen.built_at_load import build_at_load, built_at_load_names
from ltx2gen.checkpoint import (
    CONFIG_FILE_PATTERNS,
    FULL_TRANSFORMER_FOLDER,
    MODEL_FILE_PATTERNS,
    MODEL_IGNORE_PATTERNS,
    check_pipeline_index,
    check_video_vae,
    from_hub_cache,
)
from ltx2gen.errors import ConfigError
from ltx2gen.files import safetensors_header
from ltx2gen.quant import quantize_text_encoder_linears, text_encoder_quantization
from ltx2gen.ranks import Ranks
from ltx2gen.weights import (
    DTYPES,
    GEMMA_IMAGE_MODULES,
    WeightNamesMismatch,
    load_streamed,
    stored_tensors,
    weight_files,
)

CPU = torch.device("cpu")
TEXT_ENCODER_LAYERS = "model.language_model.layers"  # Gemma's decoder layers, quantized one by one as they load
TEXT_ENCODER_UNUSED = tuple(f"model.{name}" for name in GEMMA_IMAGE_MODULES)  # as Gemma3ForConditionalGeneration
NOT_FOR_DECODING = ("encoder",)  # the video VAE's submodules that decoding never runs


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        ranks = Ranks.from_env()  # under torchrun: one GPU per process
        return torch.device("cuda", ranks.local_rank) if ranks.distributed else torch.device("cuda")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: CUDA is not available on this machine (use --device cpu)")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ConfigError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device


def default_dtype(device: torch.device) -> torch.dtype:
    # bf16 is the checkpoints' dtype; CPU convolutions in bf16 are slow and poorly supported, so CPU runs in fp32.
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def resolve_model_dir(model: str, configs_only: bool = False) -> Path:
    """A local directory as is; a repo id from the Hugging Face cache (downloaded unless HF_HUB_OFFLINE=1; with
    `configs_only`, its configuration files alone, for a plan). Raises ConfigError, before any weight is read, when
    the model cannot be found, is not an LTX-2 pipeline's or its video VAE is not one this product decodes."""
    local = Path(model).expanduser()
    if local.is_dir():
        if not (local / "model_index.json").is_file():
            raise ConfigError(f"--model {model}: not a diffusers-format model directory (no model_index.json)")
        model_dir = local.resolve()
    else:
        from huggingface_hub import snapshot_download

        model_dir = from_hub_cache(f"--model {model}", lambda: snapshot_download(
            model, allow_patterns=CONFIG_FILE_PATTERNS if configs_only else MODEL_FILE_PATTERNS,
            ignore_patterns=MODEL_IGNORE_PATTERNS),
            f" (docker: 'download {model}') or give a local directory")
    check_pipeline_index(model_dir, f"--model {model}")
    check_video_vae(model_dir, f"--model {model}")
    return model_dir


# The components every generation reads; `processor` only with --enhance-prompt. Recovery reads the decoders alone.
READ_BY_A_RUN = ("scheduler", "tokenizer", "text_encoder", "connectors", "transformer", "vae", "audio_vae", "vocoder")


VIDEO_DECODER_FOLDERS = {"vae": "vae", "diffusion": "diffusion_decoder"}  # --decoder: the model folder it loads


def video_decoder_folder(model_dir: Path, decoder: str, model: str) -> str:
    """The folder the video decode reads with --decoder `decoder`: vae/, or LTX-2.5's diffusion_decoder/, which
    the other versions do not have (ConfigError, before any weight is read)."""
    folder = VIDEO_DECODER_FOLDERS[decoder]
    if decoder == "diffusion" and not (model_dir / folder / "config.json").is_file():
        raise ConfigError(f"--decoder diffusion: {model} has no diffusion decoder (diffusion_decoder/, which "
                          "LTX-2.5's Lightricks/LTX-2.5-Diffusers has); drop --decoder to decode with the VAE")
    return folder
CONFIG_FILES = {"scheduler": "scheduler_config.json", "tokenizer": "tokenizer_config.json",
                "processor": "processor_config.json"}
WITHOUT_WEIGHTS = ("scheduler", "tokenizer", "processor")


def check_model_files(model_dir: Path, flag: str, names: tuple[str, ...]) -> None:
    """Every file the run will read of these components, checked before any weight is (`check_component`), so a
    damaged or incomplete download is found in planning, not after the text stage. Raises ConfigError naming the
    file."""
    check_pipeline_index(model_dir, flag, names)
    built_at_load = built_at_load_names(model_dir)
    for name in names:
        check_component(Path(model_dir) / name, flag, config_file=CONFIG_FILES.get(name, "config.json"),
                        with_weights=name not in WITHOUT_WEIGHTS and name not in built_at_load)


def check_component(folder: Path, flag: str, config_file: str = "config.json", with_weights: bool = True) -> None:
    """A component's folder, its configuration (readable JSON) and its weight files: each a safetensors file whose
    header reads and whose data is all there (a truncated download is shorter than its header says)."""
    if not folder.is_dir():
        raise ConfigError(f"{flag}: {folder} is missing; the model is incomplete (download it again, or give the "
                          "folder that holds it)")
    try:
        json.loads((folder / config_file).read_text())
    except FileNotFoundError:
        raise ConfigError(f"{flag}: {folder / config_file} is missing; the model is incomplete") from None
    except (OSError, ValueError) as err:
        raise ConfigError(f"{flag}: {folder / config_file} cannot be read ({err}); the file is damaged") from None
    if not with_weights:
        return
    files = weight_files(folder)
    if not files:
        raise ConfigError(f"{flag}: {folder} holds no .safetensors weights; the model is incomplete")
    for file in files:
        check_weight_file(file, flag)


def check_weight_file(file: Path, flag: str) -> None:
    """A safetensors file whose header reads, whose every entry is a tensor of a known dtype whose byte range holds
    its shape, and whose data is all there. Raises ConfigError naming the file."""
    try:
        header, data_start = safetensors_header(file)
    except FileNotFoundError:
        raise ConfigError(f"{flag}: {file} is missing (its component's index lists it); the model is "
                          "incomplete") from None
    except (OSError, ValueError, struct.error) as err:
        reason = "it is empty" if file.stat().st_size == 0 else f"not a safetensors file: {str(err).split(': ')[-1]}"
        raise ConfigError(f"{flag}: {file} is damaged ({reason}); download it again") from None
    tensors = {name: entry for name, entry in header.items() if name != "__metadata__"}
    for name, entry in tensors.items():
        _check_header_entry(file, flag, name, entry)
    data_end = max((entry["data_offsets"][1] for entry in tensors.values()), default=0)
    size = file.stat().st_size
    if data_start + data_end > size:
        raise ConfigError(f"{flag}: {file} is cut short ({size} of its {data_start + data_end} bytes); download it "
                          "again")


def _check_header_entry(file: Path, flag: str, name: str, entry) -> None:
    """One tensor of a safetensors header: a known dtype, a shape of whole sizes and a byte range that holds exactly
    that many elements of it (a header can promise a tensor its data does not hold)."""
    try:
        shape, (start, end) = entry["shape"], entry["data_offsets"]
        itemsize = DTYPES[entry["dtype"]].itemsize
        whole = all(type(size) is int and size >= 0 for size in (*shape, start, end))
    except (KeyError, TypeError, ValueError):
        whole = False
    if not whole:
        raise ConfigError(f"{flag}: {file} is damaged (its header's entry for {name} is not a tensor's); download it "
                          "again")
    if end - start != math.prod(shape) * itemsize:
        raise ConfigError(f"{flag}: {file} is damaged (its header gives {name} the shape {shape} of "
                          f"{entry['dtype']} but {end - start} bytes); download it again")


def model_weight_files(model_dir: Path) -> list[Path]:
    """The weight files a run reads: each component's (`weights.weight_files`: the indexed shard set where a
    folder holds two) and the latent upsampler's, never a stale set beside them."""
    model_dir = Path(model_dir).resolve()
    components = [name for name, value in json.loads((model_dir / "model_index.json").read_text()).items()
                  if isinstance(value, list)]
    return [file for name in [*components, "latent_upsampler"] for file in weight_files(model_dir / name)]


def release_page_cache(model_dir: Path, drop_system_cache: bool) -> None:
    """Stage 6: with every model deleted and the video on disk, evict the weight files from the page cache
    (no root needed) and, if asked and permitted, drop the whole page cache."""
    advised = mem.evict_from_page_cache(model_weight_files(model_dir))
    dropped = drop_system_cache and mem.drop_system_page_cache()
    extra = "; whole page cache dropped" if dropped else (
        "; dropping the whole page cache is not permitted here" if drop_system_cache else "")
    print(f"page cache: evicted {advised / mem.GIB:.3f} GiB of model files{extra}", flush=True)


def component_class(model_dir: Path, name: str):
    """The class of component `name`, as model_index.json names it; LTX-2.5's transformer_full/, which the index
    leaves out, is of the transformer's class, and any other folder it leaves out (LTX-2.5's diffusion_decoder/) of
    the diffusers class its configuration names."""
    name = "transformer" if name == FULL_TRANSFORMER_FOLDER else name
    index = json.loads((model_dir / "model_index.json").read_text())
    if name not in index:
        return getattr(importlib.import_module("diffusers"),
                       json.loads((model_dir / name / "config.json").read_text())["_class_name"])
    library, class_name = index[name]
    module = library if library in ("diffusers", "transformers") else f"diffusers.pipelines.{library}"
    return getattr(importlib.import_module(module), class_name)


def load_component(model_dir: Path, name: str, device: torch.device, dtype: torch.dtype, *, fp8: bool = False):
    """One component of the model directory on `device`. `fp8` (transformers models: the text encoder) stores
    its linear layers in float8 as they load, so the bf16 model is never whole in memory."""
    built = build_at_load(model_dir, name, device, dtype, quantize=quantize_text_encoder_linears if fp8 else None)
    if built is not None:
        return built.eval().requires_grad_(False)
    cls = component_class(model_dir, name)
    if name in ("tokenizer", "scheduler", "processor"):
        return cls.from_pretrained(model_dir, subfolder=name)
    if cls.__module__.startswith("transformers"):
        model = load_transformers_model(cls, model_dir / name, device, dtype, fp8)
    elif fp8:
        raise ValueError(f"{name}: FP8 while loading is for the transformers text encoder, not {cls.__name__}")
    else:
        model = cls.from_pretrained(model_dir, subfolder=name, torch_dtype=dtype, device_map=str(device))
    return model.eval().requires_grad_(False)


def load_transformers_model(cls, folder: Path, device: torch.device, dtype: torch.dtype, fp8: bool = False):
    """Streamed from the files one tensor at a time, each decoder layer quantized as it arrives with `fp8`:
    from_pretrained memory-maps the files, and every page it reads stays in the process's memory until it returns
    (21.6 GiB of RSS beside the GPU copy for Gemma 12B, measured). Where the stored names cannot be matched, it is
    from_pretrained after all (quantizing as it loads with `fp8`), said in one line."""
    try:
        model = load_streamed(cls, folder, device, dtype, on_block=quantize_text_encoder_linears if fp8 else None,
                              blocks=TEXT_ENCODER_LAYERS, evict=not Ranks.share_the_page_cache(),
                              without=TEXT_ENCODER_UNUSED)
    except WeightNamesMismatch as mismatch:
        print(f"note: {mismatch}; loading it with from_pretrained, which holds its files in memory while it loads",
              flush=True)
        return cls.from_pretrained(folder, dtype=dtype, device_map=str(device),
                                   quantization_config=text_encoder_quantization() if fp8 else None)
    if fp8:
        quantize_text_encoder_linears(model)  # the layers outside the decoder
    return model


def stock_pipeline(**components):
    from diffusers import LTX2Pipeline

    names = ("scheduler", "vae", "audio_vae", "text_encoder", "tokenizer", "connectors", "transformer", "vocoder",
             "processor", "prompt_enhancer")
    return LTX2Pipeline(**{name: components.get(name) for name in names})


def decoder_weight_ranges(model_dir: Path) -> list[tuple[Path, int, int]]:
    """The file ranges the audio and video decode stages read: the video VAE's without its encoder, the audio VAE
    and the vocoder whole (a length of 0 is to the end of the file)."""
    model_dir = Path(model_dir)
    ranges = [(tensor.file, tensor.offset, tensor.nbytes) for tensor in stored_tensors(model_dir / "vae")
              if tensor.name.split(".")[0] not in NOT_FOR_DECODING]
    return ranges + [(file, 0, 0) for name in ("audio_vae", "vocoder") for file in weight_files(model_dir / name)]
