"""What a checkpoint is, read from its files before any weight: where its files are, which pipeline it was trained
for, the settings it was trained with, and how its video VAE compresses. Pure: no torch import, so the flags are
checked against the checkpoint before anything heavy loads."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from ltx2gen.errors import ConfigError

# The diffusers layout only: repos that also ship a single-file checkpoint at the top level do not pull it.
MODEL_FILE_PATTERNS = ["model_index.json", "*/*.json", "*/*.safetensors", "*/*.model", "*/*.txt", "*/*.jinja"]
CONFIG_FILE_PATTERNS = ["model_index.json", "*/*.json"]  # what a plan reads (`--plan-only`), the weights' indexes too
# A transformers model at the top of its repo (LTX-2.5's prompt enhancer, google/gemma-4-E2B-it): what loading its
# language model and tokenizer reads. No LTX-2 repo has these names at its top level.
TRANSFORMERS_MODEL_FILE_PATTERNS = ["config.json", "generation_config.json", "model*.safetensors",
                                    "model.safetensors.index.json", "tokenizer.json", "tokenizer_config.json",
                                    "special_tokens_map.json", "chat_template.jinja", "processor_config.json"]
# Nothing reads these: the published text_encoder/ folders hold a stale second shard set (51.6 GB, names under
# `base_text_encoder.`) beside the one their index lists.
MODEL_IGNORE_PATTERNS = ["text_encoder/diffusion_pytorch_model*"]
# The prompt length LTX-2 was trained with (Lightricks' TOKENIZER_MAX_LENGTH in ltx-core's gemma_assets.py, and
# diffusers' default max_sequence_length): every prompt is padded to it. The tokenizer files cannot say it: the
# published ones are Gemma's own, whose model_max_length is transformers' "no limit" default (about 1e30).
PROMPT_TOKENS = 1024
# Lightricks' default negative prompt of the LTX-2 reference pipelines (video and audio defects alike), as diffusers
# 0.42.1 carries it (`diffusers.pipelines.ltx2.utils.DEFAULT_NEGATIVE_PROMPT`; tests/test_checkpoint.py holds the
# two equal). Kept here as text so that validating --nag-scale imports neither torch nor diffusers.
DEFAULT_NEGATIVE_PROMPT = (
    "blurry, out of focus, overexposed, underexposed, low contrast, washed out colors, excessive noise, grainy "
    "texture, poor lighting, flickering, motion blur, distorted proportions, unnatural skin tones, deformed facial "
    "features, asymmetrical face, missing facial features, extra limbs, disfigured hands, wrong hand count, artifacts "
    "around text, inconsistent perspective, camera shake, incorrect depth of field, background too sharp, background "
    "clutter, distracting reflections, harsh shadows, inconsistent lighting direction, color banding, cartoonish "
    "rendering, 3D CGI look, unrealistic materials, uncanny valley effect, incorrect ethnicity, wrong gender, "
    "exaggerated expressions, wrong gaze direction, mismatched lip sync, silent or muted audio, distorted voice, "
    "robotic voice, echo, background noise, off-sync audio, incorrect dialogue, added dialogue, repetitive speech, "
    "jittery movement, awkward pauses, incorrect timing, unnatural transitions, inconsistent framing, tilted camera, "
    "flat lighting, inconsistent tone, cinematic oversaturation, stylized filters, or AI artifacts.")


@dataclass(frozen=True)
class Guidance:
    """The multimodal guidance of one diffusion, for video and for audio: classifier-free guidance against the
    negative prompt (`cfg`, 1 = off), spatio-temporal guidance against a pass whose self-attention is skipped in
    `stg_blocks` (`stg`, 0 = off), modality-isolation guidance against a pass without the audio-video
    cross-attention (`modality`, 1 = off), and the rescale of the guided prediction towards the conditional one's
    spread (`rescale`, 0 = off)."""

    cfg: float = 1.0
    stg: float = 0.0
    modality: float = 1.0
    rescale: float = 0.0
    audio_cfg: float = 1.0
    audio_stg: float = 0.0
    audio_modality: float = 1.0
    audio_rescale: float = 0.0
    stg_blocks: tuple[int, ...] = ()

    def transformer_calls_per_step(self) -> int:
        """What each step costs, as diffusers 0.42.1's LTX-2 pipelines call the transformer: one call for the
        conditional prediction (with CFG, the unconditional one rides in the same call as a second batch row, so
        that call costs twice the compute), one more for STG, one more for modality isolation."""
        stg = self.stg > 0 or self.audio_stg > 0
        modality = self.modality > 1 or self.audio_modality > 1
        return 1 + stg + modality

    def pipeline_arguments(self) -> dict:
        """The keyword arguments of the LTX-2 pipelines' `__call__` that set this guidance."""
        return dict(guidance_scale=self.cfg, stg_scale=self.stg, modality_scale=self.modality,
                    guidance_rescale=self.rescale, audio_guidance_scale=self.audio_cfg,
                    audio_stg_scale=self.audio_stg, audio_modality_scale=self.audio_modality,
                    audio_guidance_rescale=self.audio_rescale,
                    spatio_temporal_guidance_blocks=list(self.stg_blocks) if self.stg_blocks else None)

    def record(self) -> dict:
        return {**asdict(self), "stg_blocks": list(self.stg_blocks)}

    def describe(self) -> str:
        """For the plan line: the guidance that is on."""
        parts = [f"CFG {self.cfg:g}/{self.audio_cfg:g}"] if self.cfg > 1 or self.audio_cfg > 1 else []
        if self.stg > 0 or self.audio_stg > 0:
            blocks = ",".join(str(block) for block in self.stg_blocks)
            parts.append(f"STG {self.stg:g}/{self.audio_stg:g} at block {blocks}")
        if self.modality > 1 or self.audio_modality > 1:
            parts.append(f"modality {self.modality:g}/{self.audio_modality:g}")
        if parts and (self.rescale or self.audio_rescale):
            parts.append(f"rescale {self.rescale:g}/{self.audio_rescale:g}")
        return "guidance " + (", ".join(parts) + " (video/audio)" if parts else "off")


# LTX-2.5's repo keeps its full (non-distilled) model here, beside the distilled one in transformer/, outside
# model_index.json; its scheduler/ is the distilled model's (diffusers' LTX-2.5 documentation, "Full / SFT
# transformer"), so the full model's schedule is rebuilt with the shifting LTX-2.0's full repo ships
# (Lightricks/LTX-2 scheduler_config.json: dynamic shifting, shift_terminal 0.1), as that documentation does.
FULL_TRANSFORMER_FOLDER = "transformer_full"
FULL_MODEL_SCHEDULER = dict(use_dynamic_shifting=True, shift_terminal=0.1)


def transformer_folder(version: str, full: bool) -> str:
    """The folder the run's transformer is read from, for a checkpoint of `version` (`model_version`):
    transformer_full/ for the full model of a repo that keeps it beside the distilled one (LTX-2.5), else
    transformer/."""
    return FULL_TRANSFORMER_FOLDER if full and version == "2.5" else "transformer"


# The command-line guidance scales (GenerateConfig) at the value that turns each off.
GUIDANCE_OFF = {"guidance_scale": 1.0, "audio_guidance_scale": 1.0, "stg_scale": 0.0, "modality_scale": 1.0}
# The most each guidance may be: several times Lightricks' recommendations (`RECOMMENDED_FULL_GUIDANCE`: 3, 7, 1, 3).
# Far above them the guided prediction leaves the range the model was trained on and a run ends in NaN latents (an
# overflow at 1e38); NAG's scale likewise, against the NAG paper's 8.
GUIDANCE_MOST = {"guidance_scale": 20.0, "audio_guidance_scale": 20.0, "stg_scale": 10.0, "modality_scale": 20.0,
                 "nag_scale": 20.0}


@dataclass(frozen=True)
class FullModelSettings:
    """What the non-distilled (full) model of one LTX-2 version was tuned to sample with, beyond
    `RECOMMENDED_FULL_GUIDANCE`."""

    steps: int
    stg_blocks: tuple[int, ...]


# Lightricks' recommended settings for the full models, from ltx-pipelines' utils/constants.py (Lightricks/LTX-2,
# commit 400fd31): LTX_2_PARAMS for LTX-2.0, LTX_2_3_PARAMS for LTX-2.3, and for LTX-2.5, which "continues the 2.3
# lineage" there, 2.3's (only its image CRF moves). The guidance scales are the same for every version; the steps
# and the block STG perturbs are not. diffusers 0.42.1's `LTX2Pipeline.__call__` defaults are the LTX-2.3 set.
RECOMMENDED_FULL_GUIDANCE = Guidance(cfg=3.0, stg=1.0, modality=3.0, rescale=0.7, audio_cfg=7.0, audio_stg=1.0,
                                     audio_modality=3.0, audio_rescale=0.7)
FULL_MODEL_SETTINGS = {"2.0": FullModelSettings(steps=40, stg_blocks=(29,)),
                       "2.3": FullModelSettings(steps=30, stg_blocks=(28,)),
                       "2.5": FullModelSettings(steps=30, stg_blocks=(28,))}


def latent_frame_count(num_frames: int) -> int:
    """The VAE compresses time 8x, keeping the first frame on its own: 8n+1 frames are n+1 latent frames."""
    return (num_frames - 1) // 8 + 1


def is_local_path(model: str) -> bool:
    """Repo ids look like `owner/name`; anything else (or anything that exists on disk) is a path."""
    return Path(model).expanduser().exists() or model.startswith((".", "/", "~")) or model.count("/") != 1


def detect_pipeline(model: str) -> tuple[str, str]:
    """("distilled" or "full", the reason) from what the checkpoint is, read from its files before any weight:
    1. its scheduler configuration: diffusers' conversion writes one without dynamic shifting for distilled
       checkpoints only (since March 2026), so that the distilled sigmas are used as given;
    2. its repo name, where one is known (the repo id given, or the Hugging Face cache folder
       `models--OWNER--NAME` a local path lies in), else the folder's own name: distilled checkpoints say so
       in their name (rootonchair/LTX-2-19b-distilled), while the converted files of January 2026 are otherwise
       the same as the full model's (Lightricks/LTX-2)."""
    scheduler = _scheduler_config(model)
    if scheduler is not None and scheduler.get("use_dynamic_shifting") is False:
        return "distilled", "its scheduler takes the sigmas as given, without dynamic shifting, as distilled ones do"
    name = repo_name(model)
    if "distill" in name.lower():
        return "distilled", f"its name, {name}, says distilled"
    shifting = "its scheduler shifts the sigmas with the clip size" if scheduler else "no scheduler config found"
    return "full", f"{shifting} and its name, {name}, does not say distilled"


def repo_name(model: str) -> str:
    """The repo a model comes from: the repo id as given, the `OWNER/NAME` of a Hugging Face cache snapshot
    (`.../models--OWNER--NAME/snapshots/HASH`), else the local folder's name."""
    if not is_local_path(model):
        return model
    path = Path(os.path.abspath(Path(model).expanduser()))  # as given: a link's target may be named otherwise
    for part in reversed(path.parts):
        if part.startswith("models--"):
            return part.removeprefix("models--").replace("--", "/")
    return path.name


def _scheduler_config(model: str) -> dict | None:
    """The model's scheduler configuration: from a local folder, or from the Hugging Face cache for a repo id
    (never downloaded here); None where there is none."""
    if is_local_path(model):
        path = Path(model).expanduser() / "scheduler" / "scheduler_config.json"
    else:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(model, "scheduler/scheduler_config.json")
        path = Path(cached) if isinstance(cached, str) else None
    try:
        return json.loads(path.read_text()) if path and path.is_file() else None
    except (OSError, ValueError):
        return None


def model_version(model_dir: Path) -> str:
    """"2.0", "2.3" or "2.5" from the transformer's configuration, as diffusers' conversion writes each version
    (ltx2gen/published/SOURCES.md): LTX-2.3 added gated attention and cross-attention modulation; LTX-2.5 kept them,
    dropped the feed-forward biases and added keyframe positions."""
    try:
        config = json.loads((Path(model_dir) / "transformer" / "config.json").read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(f"{model_dir}: cannot read its transformer configuration ({err})") from None
    if config.get("use_keyframes_abs_pos_embedding") or config.get("ff_bias") is False:
        return "2.5"
    if config.get("gated_attn") or config.get("cross_attn_mod"):
        return "2.3"
    return "2.0"


def video_vae_compression(model_dir: Path) -> tuple[int, int]:
    """(spatial, temporal) compression of the model's video VAE, from its configuration as diffusers derives it."""
    config = json.loads((Path(model_dir) / "vae" / "config.json").read_text())
    scaling = sum(config.get("spatio_temporal_scaling") or ())
    spatial = config.get("spatial_compression_ratio") or config.get("patch_size", 1) * 2 ** scaling
    temporal = config.get("temporal_compression_ratio") or config.get("patch_size_t", 1) * 2 ** scaling
    return spatial, temporal


# The audio VAE's compression of the mel axis (diffusers' LATENT_DOWNSAMPLE_FACTOR, the LTX-2 audio VAE's
# `mel_compression_ratio`; tests/test_checkpoint.py holds the two equal).
AUDIO_MEL_COMPRESSION = 4


def check_latents_fit(video_shape: tuple[int, ...], audio_shape: tuple[int, ...] | None, model_dir: Path,
                      flag: str) -> None:
    """Latents read from a file ([1, channels, frames, height, width] video, [1, channels, length, mel bins] audio)
    have the channels the model's VAEs take (`latent_channels` of vae/ and audio_vae/, the audio's mel bins
    compressed x4): others would pass every check and fail in the transformer or the decoder with the work spent.
    Raises ConfigError naming `flag`."""
    try:
        video_vae = json.loads((Path(model_dir) / "vae" / "config.json").read_text())
        audio_vae = json.loads((Path(model_dir) / "audio_vae" / "config.json").read_text())
        expected = {"video": (video_vae["latent_channels"],),
                    "audio": (audio_vae["latent_channels"], audio_vae["mel_bins"] // AUDIO_MEL_COMPRESSION)}
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"{flag}: cannot read the model's VAE configurations ({err})") from None
    given = {"video": tuple(video_shape[1:2]),
             "audio": (audio_shape[1], audio_shape[3]) if audio_shape is not None else None}
    for stream, needs in expected.items():
        if given[stream] is not None and given[stream] != needs:
            what = "channels" if stream == "video" else "(channels, mel bins)"
            raise ConfigError(f"{flag}: its {stream} latents have {what} {_shown(given[stream])}, this model's "
                              f"{stream} VAE takes {_shown(needs)}; they were made by another model")


def _shown(values: tuple[int, ...]) -> str:
    return str(values[0]) if len(values) == 1 else str(values)


def check_video_vae(model_dir: Path, flag: str) -> None:
    """Sizes are checked against 32 and frame counts against 8n+1, the LTX-2 VAE's compression: a VAE that
    compresses otherwise would diffuse fine and then fail at the writer with the work spent."""
    try:
        spatial, temporal = video_vae_compression(model_dir)
    except (OSError, ValueError, TypeError) as err:
        raise ConfigError(f"{flag}: cannot read its video VAE configuration (vae/config.json: {err})") from None
    if (spatial, temporal) != (32, 8):
        raise ConfigError(f"{flag}: its video VAE compresses x{spatial} in space and x{temporal} in time; this "
                          "product decodes LTX-2's x32/x8 video VAE only")


# The pipelines whose model folders this product renders, and each component's [library, class] as the LTX-2 repos'
# model_index.json names them (ltx2gen/published; the Gemma tokenizer in either form): a folder made for another
# pipeline, or a component of another class, would load a model the stages do not drive and fail after the text
# stage or after diffusion. Entries of [null, null] are components the repo leaves out.
LTX2_PIPELINES = ("LTX2Pipeline", "LTX2ImageToVideoPipeline", "LTX2ConditionPipeline")
LTX2_COMPONENTS = {
    "transformer": {("diffusers", "LTX2VideoTransformer3DModel")},
    "vae": {("diffusers", "AutoencoderKLLTX2Video")},
    "audio_vae": {("diffusers", "AutoencoderKLLTX2Audio")},
    "connectors": {("ltx2", "LTX2TextConnectors")},
    "vocoder": {("ltx2", "LTX2Vocoder"), ("ltx2", "LTX2VocoderWithBWE")},
    "duration_head": {("ltx2", "LTX2DurationHead")},
    "scheduler": {("diffusers", "FlowMatchEulerDiscreteScheduler")},
    "text_encoder": {("transformers", "Gemma3ForConditionalGeneration"),
                     ("transformers", "Gemma4UnifiedForConditionalGeneration")},
    "tokenizer": {("transformers", "GemmaTokenizer"), ("transformers", "GemmaTokenizerFast")},
    "processor": {("transformers", "Gemma3Processor")},
}


def check_pipeline_index(model_dir: Path, flag: str, needed: tuple[str, ...] = ()) -> None:
    """model_index.json names an LTX-2 pipeline, each component it lists of the class LTX-2 uses
    (`LTX2_COMPONENTS`), and each of `needed` present. Raises ConfigError naming the entry and what it should be."""
    index_file = Path(model_dir) / "model_index.json"
    try:
        index = json.loads(index_file.read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(f"{flag}: {index_file} cannot be read ({err}); the model is damaged") from None
    pipeline = index.get("_class_name") if isinstance(index, dict) else None
    if pipeline not in LTX2_PIPELINES:
        raise ConfigError(f"{flag}: {index_file} is for a {pipeline}, not an LTX-2 pipeline ({LTX2_PIPELINES[0]}); "
                          "give an LTX-2 model in diffusers format")
    for name, classes in LTX2_COMPONENTS.items():
        entry = index.get(name)
        given = tuple(entry) if isinstance(entry, list) else entry
        if given in (None, (None, None)):
            if name in needed:
                raise ConfigError(f"{flag}: {index_file} lists no {name}, which the run needs; the model is "
                                  "incomplete")
            continue
        if given not in classes:
            shown = ".".join(map(str, given)) if isinstance(given, tuple) else repr(given)
            wanted = " or ".join(f"{library}.{cls}" for library, cls in sorted(classes))
            raise ConfigError(f"{flag}: {index_file} makes its {name} a {shown}; LTX-2's {name} is a {wanted}; "
                              "give an LTX-2 model in diffusers format")


def from_hub_cache(flag: str, fetch: Callable[[], str], hint: str = "") -> Path:
    """The local path `fetch()` gives for a Hugging Face repo (its cache, downloading unless HF_HUB_OFFLINE=1), or a
    ConfigError naming `flag` where it is not cached and downloads are off."""
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(fetch())
    except LocalEntryNotFoundError:
        raise ConfigError(f"{flag}: not in the Hugging Face cache and downloads are off (HF_HUB_OFFLINE=1); download "
                          f"it first{hint}") from None
