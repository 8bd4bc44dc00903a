"""--enhance-prompt: a short prompt rewritten into a detailed LTX-2-style paragraph before it is encoded.

This is diffusers' own `LTX2Pipeline.enhance_prompt`, with the enhancer and recipe of the model's version:
- LTX-2.0 and LTX-2.3 (a Gemma 3 text encoder): the text encoder itself generates (sampling at temperature 0.7, up
  to 512 new tokens, seeded: diffusers' `GEMMA3_PROMPT_ENHANCEMENT_CONFIG`), from Lightricks' text-to-video system
  prompt (`T2V_DEFAULT_SYSTEM_PROMPT`) and the user's prompt as chat turns. It needs the model directory's
  `processor` component (a Gemma 3 processor) whose tokenizer has Gemma's chat template, and runs in the text stage
  with the text encoder already loaded there. Lightricks' ltx-pipelines do the same: a Gemma 3 encoder enhances its
  own prompt (`PromptEncoder.__call__` in `ltx_pipelines/utils/blocks.py`).
- LTX-2.5 (an LTX-tuned Gemma 4 text encoder, not trained to enhance): a separate off-the-shelf Gemma 4 instruct
  model, `--prompt-enhancer` (diffusers' docs, "Prompt Enhancement for LTX-2.5": `google/gemma-4-E2B-it`), with the
  2.5 system prompt (`LTX2_5_T2V_DEFAULT_SYSTEM_PROMPT`, byte-identical to ltx-core's
  `prompts/gemma4_t2v_system_prompt.txt`) and the Gemma 4 recipe diffusers picks for a dedicated enhancer
  (`GEMMA4_PROMPT_ENHANCEMENT_CONFIG` in `pipelines/ltx2/utils.py`: greedy, `no_repeat_ngram_size=5`, up to 600 new
  tokens, matching ltx-core's `GEMMA4_ENHANCE_GENERATION_KWARGS`). Greedy decoding draws nothing, so the seed changes
  nothing there. The enhancer is loaded in the text stage, generates, and is freed before the text encoder loads, as
  Lightricks' `PromptEncoder` builds and frees its separate enhancer first.
"""

from __future__ import annotations

import json
from pathlib import Path

from ltx2gen import memory as mem
from ltx2gen.checkpoint import TRANSFORMERS_MODEL_FILE_PATTERNS, from_hub_cache
from ltx2gen.components import check_component, load_transformers_model, stock_pipeline
from ltx2gen.errors import ConfigError

PROCESSOR = "processor"
PROMPT_ENHANCER = "prompt_enhancer"  # LTX2Pipeline's component, and the stage's name for the loaded model
PROMPT_ENHANCER_FLAG = "--prompt-enhancer"
# Text encoders that enhance their own prompts; any other needs a separate enhancer (ltx-pipelines refuses
# enhancement with an encoder whose model_type is not gemma3 unless given one).
SELF_ENHANCING_TEXT_ENCODERS = ("Gemma3ForConditionalGeneration",)
ENHANCER_MODEL_TYPE = "gemma4"  # what diffusers' and ltx-core's Gemma 4 recipe is for


def check_supported(model_dir: Path, prompt_enhancer: str) -> Path | None:
    """Raise ConfigError unless what enhancement needs is there (no weights are read). Returns the folder of the
    separate enhancer `prompt_enhancer` names for a model whose text encoder does not enhance (LTX-2.5), None where
    the text encoder enhances (LTX-2.0/2.3)."""
    index = json.loads((Path(model_dir) / "model_index.json").read_text())
    if index["text_encoder"][1] not in SELF_ENHANCING_TEXT_ENCODERS:
        return resolve_prompt_enhancer(prompt_enhancer)
    _, class_name = index.get(PROCESSOR, (None, None))
    folder = Path(model_dir) / PROCESSOR
    if class_name is None or not folder.is_dir():
        raise ConfigError(f"--enhance-prompt: the model {model_dir} has no '{PROCESSOR}' component (the Gemma 3 "
                          "processor that writes the chat turns); use a diffusers LTX-2 model that ships one, or "
                          "drop --enhance-prompt")
    if not _has_chat_template(folder):
        raise ConfigError(f"--enhance-prompt: the model's {folder} has no chat template (chat_template.jinja); "
                          "use a diffusers LTX-2 model that ships one, or drop --enhance-prompt")
    return None


def resolve_prompt_enhancer(reference: str) -> Path:
    """A local folder as is; a repo id from the Hugging Face cache (downloaded unless HF_HUB_OFFLINE=1), as --model
    is found. Its files are checked before any weight is read: ConfigError where it is missing or incomplete, or is
    not a Gemma 4 instruct model."""
    flag = f"{PROMPT_ENHANCER_FLAG} {reference}"
    local = Path(reference).expanduser()
    if local.is_dir():
        folder = local.resolve()
    else:
        from huggingface_hub import snapshot_download

        folder = from_hub_cache(
            flag, lambda: snapshot_download(reference, allow_patterns=TRANSFORMERS_MODEL_FILE_PATTERNS),
            f" (docker: 'download {reference}') or give a local folder")
    check_component(folder, flag)  # its configuration and every weight file, complete
    model_type = json.loads((folder / "config.json").read_text()).get("model_type")
    if model_type != ENHANCER_MODEL_TYPE:
        raise ConfigError(f"{flag}: {folder} holds a {model_type!r} model; LTX-2.5's prompt enhancement is for a "
                          f"Gemma 4 instruct model (model_type '{ENHANCER_MODEL_TYPE}'), e.g. google/gemma-4-E2B-it")
    if not (folder / "tokenizer_config.json").is_file() or not _has_chat_template(folder):
        raise ConfigError(f"{flag}: {folder} has no tokenizer with a chat template (tokenizer_config.json, "
                          "chat_template.jinja); the model is incomplete (download it again)")
    return folder


def _has_chat_template(folder: Path) -> bool:
    if (folder / "chat_template.jinja").is_file():
        return True
    for name in ("chat_template.json", "processor_config.json", "tokenizer_config.json"):
        path = folder / name
        if path.is_file() and json.loads(path.read_text()).get("chat_template"):
            return True
    return False


def enhance(pipe, prompt: str, seed: int, device) -> str:
    """The enhanced prompt, printed once; `pipe` is an `LTX2Pipeline` with the processor and either a separate
    `prompt_enhancer` (then LTX-2.5's system prompt and diffusers' Gemma 4 recipe) or the text encoder (Lightricks'
    LTX-2.0 system prompt and the Gemma 3 recipe). The same prompt, model and seed give the same enhancement. An
    empty generation keeps the prompt as given."""
    from diffusers.pipelines.ltx2.utils import LTX2_5_T2V_DEFAULT_SYSTEM_PROMPT, T2V_DEFAULT_SYSTEM_PROMPT

    # What diffusers' own call uses: with a prompt_enhancer, its default system prompt is the 2.5 one
    separate = getattr(pipe, PROMPT_ENHANCER, None) is not None
    system_prompt = LTX2_5_T2V_DEFAULT_SYSTEM_PROMPT if separate else T2V_DEFAULT_SYSTEM_PROMPT
    enhanced = pipe.enhance_prompt(prompt, system_prompt=system_prompt, seed=seed, device=device)[0]
    if not enhanced.strip():
        print(f"warning: the prompt enhancement came back empty; encoding the prompt as given: {prompt}")
        return prompt
    print(f"enhanced prompt (seed {seed}): {enhanced}", flush=True)
    return enhanced


def enhance_with_prompt_enhancer(stage: mem.Stage, folder: Path, prompts: list[tuple[str, int]], device,
                                 dtype) -> list[str]:
    """Each (prompt, seed) enhanced by the separate enhancer in `folder` (LTX-2.5), loaded into `stage` and freed
    before this returns, so nothing else of the stage is resident beside it."""
    enhanced = _generate(stage, folder, prompts, device, dtype)  # its pipeline, the only other holder, ends here
    stage.release(PROMPT_ENHANCER)
    return enhanced


def _generate(stage: mem.Stage, folder: Path, prompts: list[tuple[str, int]], device, dtype) -> list[str]:
    from transformers import AutoTokenizer, Gemma4ForConditionalGeneration

    enhancer = stage.load(PROMPT_ENHANCER, lambda: load_transformers_model(Gemma4ForConditionalGeneration, folder,
                                                                           device, dtype))
    processor = TokenizerProcessor(AutoTokenizer.from_pretrained(folder))
    pipe = stock_pipeline(prompt_enhancer=enhancer, processor=processor)
    return [enhance(pipe, prompt, seed, device) for prompt, seed in prompts]


class TokenizerProcessor:
    """What diffusers' text-to-video enhancement uses of a processor: `.tokenizer` (its chat template, decoding) and
    the text tokenized. Gemma 4's own `Gemma4Processor` cannot be built without torchvision (for its video
    processor), which this product does not install; for text alone it adds only all-zero `mm_token_type_ids`, which
    mark image tokens (Gemma 4 attends bidirectionally between those only)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def __call__(self, text, images=None, return_tensors=None):
        if images is not None:
            raise ValueError("image-conditioned prompt enhancement needs Gemma 4's full processor")
        return self.tokenizer(text, return_tensors=return_tensors)
