"""Stage 1, text: Gemma encodes each prompt (and the negative prompt) and the text connectors turn it into the
transformer's conditioning; prompts encoded before come from the embedding cache. Gemma and the connectors are
freed when the stage ends."""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from ltx2gen import enhance, nag
from ltx2gen import memory as mem
from ltx2gen.checkpoint import PROMPT_TOKENS
from ltx2gen.components import (
    CPU,
    TEXT_ENCODER_LAYERS,
    TEXT_ENCODER_UNUSED,
    component_class,
    load_component,
    stock_pipeline,
)
from ltx2gen.lora import fuse_loras
from ltx2gen.provenance import lora_reference
from ltx2gen.streaming import from_files

TEXT_ENCODER_MODES = ("resident", "fp8", "offloaded", "files")


@dataclass(frozen=True)
class EncodedPrompt:
    """The prompt the text stage encoded (the enhanced one with --enhance-prompt) and its length in tokens."""

    text: str | None = None
    token_count: int | None = None

    def record(self, enhanced: bool) -> dict:
        """The sidecar's entries."""
        cut = self.token_count is not None and self.token_count > PROMPT_TOKENS
        return {"enhanced_prompt": self.text if enhanced else None, "prompt_token_count": self.token_count,
                "prompt_tokens_dropped": self.token_count - PROMPT_TOKENS if cut else 0}


@dataclass
class TextConditioning:
    """What the text stage leaves for diffusion: the connectors' outputs for the video and audio streams (a batch
    of [negative, positive] with guidance, as the stock pipeline builds it; with NAG each row's tokens followed by
    the negative prompt's, `nag.with_negative_context`), the Gemma attention masks and the prompt they encode
    (the enhanced one with --enhance-prompt)."""

    video: torch.Tensor
    audio: torch.Tensor
    mask: torch.Tensor
    prompt_mask: torch.Tensor
    prompt: str | None = None
    prompt_token_count: int | None = None  # the prompt's length in tokens, before it is cut to PROMPT_TOKENS

    @property
    def encoded(self) -> EncodedPrompt:
        return EncodedPrompt(self.prompt, self.prompt_token_count)

    @property
    def with_guidance(self) -> bool:
        return self.video.shape[0] == 2

    def tensors(self) -> dict[str, torch.Tensor]:
        return {name: value for name, value in vars(self).items() if isinstance(value, torch.Tensor)}

    def to(self, device) -> "TextConditioning":
        return dataclasses.replace(self, **{name: value.to(device) for name, value in self.tensors().items()})

    def prompt_tokens(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The connectors' video and audio outputs for the prompt alone: the positive row (the last), without NAG's
        negative context after its tokens. What the stock pipeline gives LTX-2.5's duration head."""
        length = self.prompt_mask.shape[1]
        return self.video[-1:, :length], self.audio[-1:, :length]

    def pipeline_inputs(self) -> dict:
        """The stock call's prompt arguments; its connectors call then returns these outputs unchanged."""
        if self.with_guidance:
            return dict(prompt_embeds=self.video[1:], prompt_attention_mask=self.prompt_mask[1:],
                        negative_prompt_embeds=self.video[:1], negative_prompt_attention_mask=self.prompt_mask[:1])
        return dict(prompt_embeds=self.video, prompt_attention_mask=self.prompt_mask)


@dataclass(frozen=True)
class PromptRequest:
    prompt: str
    negative_prompt: str | None
    with_guidance: bool
    with_nag: bool = False
    enhance_seed: int | None = None  # --enhance-prompt: rewrite the prompt first, with this seed
    prompt_enhancer: Path | None = None  # the separate model that rewrites it (LTX-2.5); None: the text encoder

    @classmethod
    def for_clip(cls, config, prompt_enhancer: Path | None = None) -> "PromptRequest":
        """What the text stage encodes for one clip's settings (a `GenerateConfig`); `prompt_enhancer`: the plan's
        (`RunPlan.prompt_enhancer`)."""
        return cls(config.prompt, config.negative_prompt, config.uses_guidance, config.uses_nag, config.enhance_seed,
                   prompt_enhancer if config.enhance_seed is not None else None)

    @classmethod
    def for_clip_prompts(cls, config, prompt_enhancer: Path | None = None) -> list["PromptRequest"]:
        """`for_clip` for each of a clip's prompts: --prompt, then each --prompt-at's (`GenerateConfig.prompts`)."""
        request = cls.for_clip(config, prompt_enhancer)
        return [dataclasses.replace(request, prompt=prompt) for prompt in config.prompts]


def encode_prompts(stage: mem.Stage, model_dir: Path, requests: list[PromptRequest], device: torch.device,
                   dtype: torch.dtype, *, loras: tuple = (), cache: "EmbeddingCache | None" = None,
                   text_encoder: str = "resident") -> list[TextConditioning]:
    """Stage 1: Gemma encodes each prompt (and negative prompt with guidance or NAG) and the text connectors turn
    that into the transformer's conditioning; `text_encoder` says how Gemma is held (`load_text_encoder`). Prompts
    to enhance are rewritten first (`ltx2gen.enhance`): by a separate enhancer, loaded and freed before anything
    else (LTX-2.5), or by the same text encoder. With a cache, prompts encoded before are read from disk (keyed by
    the prompt encoded), and no model is loaded at all when every prompt is cached and none is to be enhanced."""
    requests = _enhance_with_prompt_enhancers(stage, requests, device, dtype)
    tokenizer = stage.load("tokenizer", lambda: load_component(model_dir, "tokenizer", device, dtype))
    enhancing = any(request.enhance_seed is not None for request in requests)
    pipe = None

    def text_pipeline():  # the text encoder, loaded once, when first needed
        nonlocal pipe
        if pipe is None:
            pipe = stock_pipeline(tokenizer=tokenizer,
                             text_encoder=load_text_encoder(stage, model_dir, device, dtype, mode=text_encoder),
                             processor=load_component(model_dir, enhance.PROCESSOR, device, dtype) if enhancing
                             else None)
        return pipe

    requests = list(requests)
    for i, request in enumerate(requests):
        if request.enhance_seed is not None:
            prompt = enhance.enhance(text_pipeline(), request.prompt, request.enhance_seed, device)
            requests[i] = dataclasses.replace(request, prompt=prompt, enhance_seed=None)
    # a LoRA by its file's hash (`lora_reference`): one changed under the same name must not answer with old entries
    key_extra = [PROMPT_TOKENS, str(dtype), [lora_reference(lora.spec) for lora in loras]]
    if text_encoder == "fp8":  # appended only then, so the bf16 entries cached before FP8 existed keep their keys
        key_extra.append("fp8 text encoder")
    counts = [prompt_token_count(tokenizer, request.prompt) for request in requests]
    cached = [cache.get(model_dir, request, key_extra) if cache else None for request in requests]
    results = [entry and dataclasses.replace(entry, prompt_token_count=count) for entry, count in zip(cached, counts)]
    missing = [i for i, result in enumerate(results) if result is None]
    if not missing:
        return results
    connectors = stage.load("connectors", lambda: load_component(model_dir, "connectors", device, dtype))
    fuse_loras("connectors", connectors, loras)
    pipe = text_pipeline()
    for i in missing:
        request = requests[i]
        with_negative = request.with_guidance or request.with_nag
        with torch.no_grad():
            embeds, mask, negative_embeds, negative_mask = pipe.encode_prompt(
                request.prompt, request.negative_prompt, do_classifier_free_guidance=with_negative,
                max_sequence_length=PROMPT_TOKENS, device=device, dtype=dtype)
            if with_negative:  # the order the stock pipeline concatenates them in
                embeds, mask = torch.cat([negative_embeds, embeds]), torch.cat([negative_mask, mask])
            video, audio, connector_mask = connectors(embeds, mask, padding_side=tokenizer.padding_side)
        results[i] = TextConditioning(video, audio, connector_mask, mask, request.prompt, counts[i])
        if request.with_nag:
            results[i] = nag.with_negative_context(results[i], request.with_guidance)
        if cache:
            cache.put(model_dir, request, key_extra, results[i])
    return results


def _enhance_with_prompt_enhancers(stage: mem.Stage, requests: list[PromptRequest], device: torch.device,
                                   dtype: torch.dtype) -> list[PromptRequest]:
    """The requests with the prompts that a separate enhancer rewrites rewritten, each enhancer loaded, used for
    all of its prompts and freed in turn."""
    requests = list(requests)
    folders = dict.fromkeys(request.prompt_enhancer for request in requests
                            if request.enhance_seed is not None and request.prompt_enhancer is not None)
    for folder in folders:
        chosen = [i for i, request in enumerate(requests)
                  if request.enhance_seed is not None and request.prompt_enhancer == folder]
        prompts = enhance.enhance_with_prompt_enhancer(
            stage, folder, [(requests[i].prompt, requests[i].enhance_seed) for i in chosen], device, dtype)
        for i, prompt in zip(chosen, prompts):
            requests[i] = dataclasses.replace(requests[i], prompt=prompt, enhance_seed=None, prompt_enhancer=None)
    return requests


def prompt_token_count(tokenizer, prompt: str) -> int:
    """The prompt's length in the text encoder's tokens; beyond PROMPT_TOKENS the encoder sees only the first ones,
    which is said in one line."""
    count = len(tokenizer(prompt)["input_ids"])
    if count > PROMPT_TOKENS:
        print(f"note: the prompt is {count} tokens long; the text encoder takes the first {PROMPT_TOKENS} and the "
              f"last {count - PROMPT_TOKENS} are dropped (shorten it to keep them)", flush=True)
    return count


def load_text_encoder(stage: mem.Stage, model_dir: Path, device: torch.device, dtype: torch.dtype,
                      *, mode: str = "resident"):
    """Gemma for the text stage, by `mode` (one of TEXT_ENCODER_MODES): `resident` on `device`; `fp8` there with
    its linear layers stored in float8 (about 12 instead of 22 GiB at full size); `offloaded` in host memory, each
    layer streamed to the GPU when it runs; `files`: each layer read from the weight files when it runs, for a host
    too small to hold the encoder (`streaming`)."""
    if mode not in TEXT_ENCODER_MODES:
        raise ValueError(f"unknown text encoder mode {mode!r}; expected one of {', '.join(TEXT_ENCODER_MODES)}")
    if mode == "offloaded":
        from diffusers.hooks import apply_group_offloading

        text_encoder = stage.load("text_encoder", lambda: load_component(model_dir, "text_encoder", CPU, dtype))
        mem.pin_to_host(text_encoder, device)  # offloading uses these tensors instead of pinning a second copy
        apply_group_offloading(text_encoder, onload_device=device, offload_device=CPU, offload_type="leaf_level",
                               use_stream=device.type == "cuda")
        return text_encoder
    if mode == "files":
        return stage.load("text_encoder", lambda: from_files(
            component_class(model_dir, "text_encoder"), model_dir / "text_encoder", device, dtype,
            blocks=TEXT_ENCODER_LAYERS, without=TEXT_ENCODER_UNUSED))
    return stage.load("text_encoder", lambda: load_component(model_dir, "text_encoder", device, dtype,
                                                             fp8=mode == "fp8"))


def encode_prompt(stage: mem.Stage, model_dir: Path, request: PromptRequest, device: torch.device,
                  dtype: torch.dtype, *, loras: tuple = (), text_encoder: str = "resident") -> TextConditioning:
    """Stage 1 for one prompt."""
    return encode_prompts(stage, model_dir, [request], device, dtype, loras=loras, text_encoder=text_encoder)[0]


class EmbeddingCache:
    """Text conditioning on disk, keyed by model, prompts, length, dtype and LoRAs (a local one by its file's hash),
    so a re-render skips the text encoder. One entry is 12-25 MB (the connectors' outputs, not Gemma's 0.4 GB of
    hidden states)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.unwritable = False

    def _path(self, model_dir: Path, request: PromptRequest, key_extra: list) -> Path:
        import hashlib

        fields = [str(Path(model_dir).resolve()), request.prompt, request.negative_prompt, request.with_guidance,
                  key_extra]
        if request.with_nag:  # appended only when on, so the entries cached before NAG existed keep their keys
            fields.append("nag")
        key = json.dumps(fields)
        return self.folder / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.safetensors"

    def get(self, model_dir: Path, request: PromptRequest, key_extra: list) -> TextConditioning | None:
        from safetensors.torch import load_file

        path = self._path(model_dir, request, key_extra)
        if not path.is_file():
            return None
        try:
            return TextConditioning(**load_file(str(path)), prompt=request.prompt)
        except Exception as err:  # safetensors raises its own error type for a damaged file
            print(f"warning: the embedding cache entry {path} cannot be read ({err}); encoding the prompt again",
                  file=sys.stderr, flush=True)
            return None

    def put(self, model_dir: Path, request: PromptRequest, key_extra: list, conditioning: TextConditioning) -> None:
        from safetensors.torch import save_file

        from ltx2gen.files import atomic_path

        if self.unwritable:
            return
        tensors = {name: value.detach().cpu().contiguous() for name, value in conditioning.tensors().items()}
        try:
            with atomic_path(self._path(model_dir, request, key_extra)) as temporary:
                save_file(tensors, str(temporary))
        except OSError as err:  # a cache that cannot be written costs a re-encode next time, never the run
            self.unwritable = True
            print(f"warning: the embedding cache {self.folder} cannot be written ({err.strerror or err}); prompts "
                  "are encoded again on the next run", file=sys.stderr, flush=True)
