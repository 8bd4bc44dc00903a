"""A batch line's settings as configuration values: each key a `GenerateConfig` field by its exact name, each value
typed from its JSON, never read as a command-line flag. A prompt of "--help" is a prompt, "false" is not a switch's
value, and a key that is not a setting ("outpu") is refused naming the known keys, not taken as the flag it starts.
The values then go through the same validation as the command line's (`GenerateConfig.from_values`)."""

from __future__ import annotations

import dataclasses
import difflib
import json
from pathlib import Path

from ltx2gen.config import GenerateConfig
from ltx2gen.errors import ConfigError
from ltx2gen.flags import arg_type

FIELDS = {f.name: f for f in dataclasses.fields(GenerateConfig)}
# Set by the batch itself (each clip is name.mp4 in the output folder; --resume where a clip was cut short)
RESERVED_KEYS = {"output", "no_timestamp", "list_lora_files", "refine_from", "resume"}
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
