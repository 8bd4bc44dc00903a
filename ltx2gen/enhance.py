"""--enhance-prompt: a short prompt rewritten into a detailed LTX-2-style paragraph before it is encoded.

This is diffusers' own `LTX2Pipeline.enhance_prompt` with the LTX-2.0/2.3 recipe: the Gemma 3 text encoder itself
generates (sampling at temperature 0.7, up to 512 new tokens, seeded), from Lightricks' text-to-video system prompt
(`T2V_DEFAULT_SYSTEM_PROMPT`, shipped with diffusers) and the user's prompt as chat turns. Besides the text encoder
it needs the model directory's `processor` component (a Gemma 3 processor) whose tokenizer has Gemma's chat
template; it runs in the text stage with the text encoder already loaded there, so it loads no other model.
"""

from __future__ import annotations

import json
from pathlib import Path

from ltx2gen.errors import ConfigError

PROCESSOR = "processor"


def check_supported(model_dir: Path) -> None:
    """Raise ConfigError unless the model directory provides what enhancement needs (no weights are read)."""
    _, class_name = json.loads((Path(model_dir) / "model_index.json").read_text()).get(PROCESSOR, (None, None))
    folder = Path(model_dir) / PROCESSOR
    if class_name is None or not folder.is_dir():
        raise ConfigError(f"--enhance-prompt: the model {model_dir} has no '{PROCESSOR}' component (the Gemma 3 "
                          "processor that writes the chat turns); use a diffusers LTX-2 model that ships one, or "
                          "drop --enhance-prompt")
    if not _has_chat_template(folder):
        raise ConfigError(f"--enhance-prompt: the model's {folder} has no chat template (chat_template.jinja); "
                          "use a diffusers LTX-2 model that ships one, or drop --enhance-prompt")


def _has_chat_template(folder: Path) -> bool:
    if (folder / "chat_template.jinja").is_file():
        return True
    for name in ("chat_template.json", "processor_config.json", "tokenizer_config.json"):
        path = folder / name
        if path.is_file() and json.loads(path.read_text()).get("chat_template"):
            return True
    return False


def enhance(pipe, prompt: str, seed: int, device) -> str:
    """The enhanced prompt, printed once; `pipe` is an `LTX2Pipeline` with the text encoder and the processor.
    The same prompt, model and seed give the same enhancement. An empty generation keeps the prompt as given."""
    from diffusers.pipelines.ltx2.utils import T2V_DEFAULT_SYSTEM_PROMPT

    enhanced = pipe.enhance_prompt(prompt, system_prompt=T2V_DEFAULT_SYSTEM_PROMPT, seed=seed, device=device)[0]
    if not enhanced.strip():
        print(f"warning: the prompt enhancement came back empty; encoding the prompt as given: {prompt}")
        return prompt
    print(f"enhanced prompt (seed {seed}): {enhanced}", flush=True)
    return enhanced
