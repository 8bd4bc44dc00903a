"""The tiny character-level tokenizer and Gemma 3 processor of the test models, with the published settings, and their
files as the published tokenizer/ and processor/ folders hold them."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from ltx2gen.testing.layout_files import write_json
from ltx2gen.testing.presets import GEMMA4_MEDIA_TOKENS, SPECIAL_TOKENS, TINY_GEMMA4_VOCAB, TINY_VOCAB, tiny_vocab
from ltx2gen.testing.published import DEFAULT_REPO, fixture_dir, published_configs, read_json

# Repos without tokenizer files of their own (see SOURCES.md: the LTX-2.5 Gemma 4 tokenizer files were not seen): their
# tiny tokenizer takes the Gemma 3 tokenizer settings and chat template of this repo's (the LTX-2.0/2.3 one).
TOKENIZER_SETTINGS_REPO = "diffusers/LTX-2.3-Diffusers"


def has_tokenizer_files(repo: str) -> bool:
    return (fixture_dir(repo) / "tokenizer" / "tokenizer_config.json").is_file()


def tiny_tokenizer(repo: str = DEFAULT_REPO):
    """The tiny character-level vocabulary with the published tokenizer settings (Gemma 3's own: left padding,
    `<bos>` first, transformers' "no limit" model_max_length, the image markers, the chat template).

    The LTX-2.5 repo's Gemma 4 tokenizer files are unknown (SOURCES.md): its tiny tokenizer takes the Gemma 3 settings
    and chat template (TOKENIZER_SETTINGS_REPO's), with Gemma 4's audio and video markers added, so prompts encode
    as with LTX-2.0/2.3. It prepends `<bos>` as Gemma 3's does (LTX's own code says Gemma 4's assets do not)."""
    from transformers import AddedToken, GemmaTokenizer

    source = repo if has_tokenizer_files(repo) else TOKENIZER_SETTINGS_REPO
    # Borrowed settings leave out the Gemma 3 processor they name.
    unused = ("added_tokens_decoder", "tokenizer_class") + (() if source == repo else ("processor_class",))
    settings = {key: value for key, value in published_configs(source)["tokenizer"].items() if key not in unused}
    vocab = tiny_vocab(published_configs(repo).get("text_encoder"))
    tokenizer = GemmaTokenizer(vocab={token: i for i, token in enumerate(vocab)}, merges=[], **settings)
    # The chat markers are single special tokens, as in Gemma's vocabulary.
    specials = SPECIAL_TOKENS + (GEMMA4_MEDIA_TOKENS if vocab is TINY_GEMMA4_VOCAB else [])
    tokenizer.add_tokens([AddedToken(token, special=True, normalized=False) for token in specials],
                         special_tokens=True)
    tokenizer.chat_template = (fixture_dir(source) / "tokenizer" / "chat_template.jinja").read_text()
    return tokenizer


def tiny_processor(repo: str = DEFAULT_REPO, image_seq_length: int = 4):
    """What `LTX2Pipeline.enhance_prompt` needs besides the text encoder: a Gemma 3 processor with the chat template.
    The published LTX-2.0 repos ship none; `write_model(..., with_processor=True)` adds one."""
    from transformers import Gemma3ImageProcessorPil, Gemma3Processor

    tokenizer = tiny_tokenizer(repo)
    return Gemma3Processor(image_processor=Gemma3ImageProcessorPil(), tokenizer=tokenizer,
                           chat_template=tokenizer.chat_template, image_seq_length=image_seq_length)


def write_tokenizer(folder: Path, repo: str) -> None:
    """The tiny vocabulary in tokenizer.json beside the published tokenizer_config.json (its added_tokens_decoder
    holding the tiny ids of the same special tokens), special_tokens_map.json and chat_template.jinja.

    For a repo whose tokenizer files are unknown (LTX-2.5), the files transformers' save writes: tokenizer.json,
    tokenizer_config.json and chat_template.jinja, the names the repo is listed with."""
    folder.mkdir(parents=True, exist_ok=True)
    if not has_tokenizer_files(repo):
        tiny_tokenizer(repo).save_pretrained(folder)
        return
    published = fixture_dir(repo) / "tokenizer"
    with tempfile.TemporaryDirectory() as scratch:
        tiny_tokenizer(repo).save_pretrained(scratch)
        shutil.copyfile(Path(scratch) / "tokenizer.json", folder / "tokenizer.json")
    config = read_json(published / "tokenizer_config.json")
    ids = {token: i for i, token in enumerate(TINY_VOCAB)}
    config["added_tokens_decoder"] = {str(ids[entry["content"]]): entry
                                      for entry in config["added_tokens_decoder"].values()}
    write_json(folder / "tokenizer_config.json", config)
    for name in ("special_tokens_map.json", "chat_template.jinja"):
        shutil.copyfile(published / name, folder / name)


def write_published_processor(folder: Path, repo: str, configs: dict[str, dict]) -> None:
    """The Gemma 3 processor the LTX-2.3 repos publish (and list in model_index.json): the published
    processor_config.json (one image's token count the tiny vision tower's), the tokenizer files as in tokenizer/, and
    preprocessor_config.json for an image the tiny vision tower's size (transformers 4 wrote the image processor
    there; only processor_config.json of this folder was seen). tokenizer.model and added_tokens.json are left out, as
    in tokenizer/: a character-level vocabulary has no SentencePiece model."""
    from transformers import Gemma3ImageProcessorPil

    write_tokenizer(folder, repo)
    size = configs["text_encoder"]["vision_config"]["image_size"]
    Gemma3ImageProcessorPil(size={"height": size, "width": size}).save_pretrained(folder)
    write_json(folder / "processor_config.json", configs["processor"])

