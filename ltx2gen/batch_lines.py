"""A batch line's settings as configuration values: each key a `GenerateConfig` field by its exact name, each value
typed from its JSON, never read as a command-line flag. A prompt of "--help" is a prompt, "false" is not a switch's
value, and a key that is not a setting ("outpu") is refused naming the known keys, not taken as the flag it starts.
The values then go through the same validation as the command line's (`GenerateConfig.from_values`). A batch file's
lines become `Clip`s (`read_batch`), each naming its file and line in every error."""

from __future__ import annotations

import dataclasses
import difflib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from ltx2gen.conditioners import CONDITIONERS
from ltx2gen.config import GenerateConfig
from ltx2gen.errors import ConfigError
from ltx2gen.flags import arg_type

FIELDS = {f.name: f for f in dataclasses.fields(GenerateConfig)}
# Set by the batch itself (each clip is name.mp4 in the output folder; --resume where a clip was cut short)
RESERVED_KEYS = {"output", "no_timestamp", "list_lora_files", "refine_from", "resume", "dfr_from"}
LINE_KEYS = {"name", "prompts", "keyframes"}  # the batch file's own keys (`ltx2gen.batch.read_batch`)
KNOWN_KEYS = sorted(LINE_KEYS | set(FIELDS) - RESERVED_KEYS)


def check_keys(entry: dict, where: str) -> None:
    """Every key of a line is a setting's exact name; a key the batch sets itself, or any other, is refused."""
    reserved = sorted(RESERVED_KEYS & set(entry))
    if reserved:
        raise ConfigError(f"{where} sets {', '.join(reserved)}; outputs are named by the batch (name.mp4 in the "
                          "output folder)")
    for key in entry:
        if key not in KNOWN_KEYS:
            close = difflib.get_close_matches(key, KNOWN_KEYS + sorted(RESERVED_KEYS), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{where}: unknown key {key!r}{hint}; a line's keys are exactly these: "
                              f"{', '.join(KNOWN_KEYS)}")


def typed_values(entry: dict, where: str) -> dict:
    """A line's settings (after `check_keys`) as the values their flags' parser would give; a JSON null is a setting
    left at its default."""
    return {key: typed(key, value, where) for key, value in entry.items() if value is not None}


def typed(key: str, value, where: str):
    """One setting's value, checked against its field: a switch takes true or false, a number a JSON number, a
    repeatable setting a value or a list of them."""
    f = FIELDS[key]
    meta = f.metadata
    if f.type in (bool, "bool"):
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: {key!r} is a switch: give true or false (JSON, without quotes), not "
                              f"{json.dumps(value)}")
        return value
    if meta.get("nargs") == "+":  # --lora SPEC [SCALE], repeatable: a list of value lists
        groups = value if isinstance(value, list) and value and all(isinstance(v, list) for v in value) else [value]
        return [[_scalar(key, item, str, where) for item in (group if isinstance(group, list) else [group])]
                for group in groups]
    if meta.get("action") == "append":
        items = value if isinstance(value, list) else [value]
        return [_scalar(key, item, str, where, numbers=False) for item in items]
    convert = meta.get("type") or arg_type(f.type)
    value = _scalar(key, value, convert, where, numbers=not str(f.type).startswith("str"))
    if "choices" in meta and value not in meta["choices"]:
        raise ConfigError(f"{where}: {key!r} is {json.dumps(value)}; choose one of {', '.join(meta['choices'])}")
    return value


def _scalar(key: str, value, convert, where: str, numbers: bool = True):
    """A JSON scalar as `convert` (int, float, str or Path) takes it; a text setting takes a number (fps: 24) where
    `numbers`."""
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if convert is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if convert is float and is_number:
        return float(value)
    if convert in (str, Path) and (isinstance(value, str) or numbers and is_number):
        return convert(str(value))
    wanted = {int: "a whole number", float: "a number", Path: "a file path (text)"}.get(convert, "text")
    raise ConfigError(f"{where}: {key!r} must be {wanted}, not {json.dumps(value)}")


def argv(values: dict) -> list[str]:
    """generate.py's arguments carrying `values` exactly: every value after `=` (so "--help" stays a value),
    a switch alone, each item of a repeatable setting on a flag of its own."""
    arguments = []
    for key, value in values.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            arguments += [flag] if value else []
        elif FIELDS[key].metadata.get("nargs") == "+":
            for spec, *scale in value:  # several values: the spec after the flag, a relative path made plainly one
                arguments += [flag, f"./{spec}" if spec.startswith("-") else spec, *scale]
        elif isinstance(value, list):
            arguments += [f"{flag}={item}" for item in value]
        else:
            arguments.append(f"{flag}={value}")
    return arguments


def clip_config(values: dict, where: str, **settings) -> GenerateConfig:
    """The validated configuration of a clip's `values` and the batch's own `settings` (its output, --resume); an
    error names the clip's file and line (`where`)."""
    try:
        return GenerateConfig.from_values({**values, **settings})
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None


NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
# local files and folders a clip reads: relative to the batch file where they are
INPUT_FILE_KEYS = {"extend", "upscale_model", "interpolate_model", "upsampler", "temporal_upsampler", "detailing_lora",
                   *(key for kind in CONDITIONERS for key in kind.input_files)}


@dataclass(frozen=True)
class Clip:
    name: str
    line: int
    flags: dict  # the line's settings, typed (`typed_values`)
    source: Path | None = None  # the batch file

    @property
    def where(self) -> str:
        """The clip as an error names it: its file and line, and its name."""
        return f"{self.source}:{self.line}: clip {self.name!r}"

    def argv(self, output: Path) -> list[str]:
        """generate.py arguments for this clip, writing exactly `output`."""
        return argv(self.flags) + [f"--output={output}", "--no-timestamp"]

    def config(self, output: Path, **settings) -> GenerateConfig:
        """The clip's validated configuration, writing exactly `output` (and any of the batch's own `settings`:
        --resume); a ConfigError names the clip's file and line."""
        return clip_config(self.flags, self.where, output=output, no_timestamp=True, **settings)


def read_batch(path: Path) -> list[Clip]:
    """Parse and check the structure of a batch file (flag values are checked per clip, by generate.py)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such batch file")
    clips, names = [], set()
    for number, line in enumerate(path.read_bytes().splitlines(), 1):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as err:
            raise ConfigError(f"{path}:{number}: byte 0x{line[err.start]:02x} at column {err.start + 1} is not UTF-8 "
                              "text; save the batch file as UTF-8") from None
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        try:
            entry = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(f"{path}:{number}: not valid JSON ({err.msg} at column {err.colno})") from None
        if not isinstance(entry, dict):
            raise ConfigError(f"{path}:{number}: each line must be a JSON object with name and prompt")
        name = entry.pop("name", None)
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise ConfigError(f"{path}:{number}: 'name' must be a file-name-safe string (letters, digits, . _ -)")
        if name in names:
            raise ConfigError(f"{path}:{number}: the name {name!r} is used twice")
        where = f"{path}:{number}: clip {name!r}"
        check_keys(entry, where)
        if "prompts" in entry:
            entry.update(timed_prompts(entry.pop("prompts"), entry.get("prompt"), where))
        if not isinstance(entry.get("prompt"), str):
            raise ConfigError(f"{where} has no 'prompt' string")
        for key in INPUT_FILE_KEYS & set(entry):
            entry[key] = beside_batch_file(entry[key], path)
        if "keyframes" in entry:
            entry["keyframe"] = keyframe_flags(entry.pop("keyframes"), path, where)
        names.add(name)
        clips.append(Clip(name, number, typed_values(entry, where), path))
    if not clips:
        raise ConfigError(f"{path}: holds no clips")
    return clips


def beside_batch_file(value, batch_file: Path):
    """A relative input path that names a file or folder beside the batch file, as that path; any other value (a
    repo id, say) as it is."""
    if isinstance(value, str) and not Path(value).is_absolute() and (batch_file.parent / value).exists():
        return str(batch_file.parent / value)
    return value


def keyframe_flags(keyframes, batch_file: Path, where: str) -> list[str]:
    """A clip's `keyframes` as --keyframe values (PATH@TIME[:STRENGTH], checked by generate.py), each path relative
    to the batch file where the file is there."""
    if not isinstance(keyframes, list):
        raise ConfigError(f"{where}: 'keyframes' must be a list of \"PATH@TIME[:STRENGTH]\" strings or "
                          "{\"path\": ..., \"at\": ..., \"strength\": ...} objects")
    flags = []
    for keyframe in keyframes:
        if isinstance(keyframe, dict):
            unknown = set(keyframe) - {"path", "at", "strength"}
            if unknown or not isinstance(keyframe.get("path"), str) or \
                    not isinstance(keyframe.get("at"), (str, int, float)):
                raise ConfigError(f"{where}: keyframe {json.dumps(keyframe)} needs a 'path' string and an 'at' time "
                                  "(seconds, \"f60\" or \"end\"), and optionally a 'strength', nothing else")
            strength = f":{keyframe['strength']}" if "strength" in keyframe else ""
            keyframe = f"{keyframe['path']}@{keyframe['at']}{strength}"
        elif not isinstance(keyframe, str):
            raise ConfigError(f"{where}: keyframe {json.dumps(keyframe)} is neither a \"PATH@TIME[:STRENGTH]\" string "
                              "nor an object")
        image, at_sign, when = keyframe.rpartition("@")
        flags.append(f"{beside_batch_file(image, batch_file)}{at_sign}{when}")
    return flags


def timed_prompts(prompts, prompt, where: str) -> dict:
    """A clip's `prompts` list as `prompt` (the one at 0, unless `prompt` is given beside it) and `prompt_at` flags
    (TIME:TEXT, checked by generate.py)."""
    shape = ("'prompts' must be a list of {\"at\": seconds or \"fNN\", \"prompt\": text} objects in order of time, "
             "the first at 0 unless 'prompt' is given")
    if not isinstance(prompts, list) or not prompts or not all(
            isinstance(item, dict) and set(item) == {"at", "prompt"} and isinstance(item["prompt"], str)
            and isinstance(item["at"], (str, int, float)) and not isinstance(item["at"], bool) for item in prompts):
        raise ConfigError(f"{where}: {shape}")
    starts_at_zero = str(prompts[0]["at"]).rstrip("s") in ("0", "0.0", "f0")
    if prompt is None and not starts_at_zero:
        raise ConfigError(f"{where}: the first of 'prompts' is at {prompts[0]['at']}; {shape}")
    if prompt is not None and starts_at_zero:
        raise ConfigError(f"{where}: 'prompt' and a 'prompts' entry at 0 both give the opening prompt; keep one")
    later = prompts if prompt is not None else prompts[1:]
    return {"prompt": prompt if prompt is not None else prompts[0]["prompt"],
            "prompt_at": [f"{item['at']}:{item['prompt']}" for item in later] or None}
