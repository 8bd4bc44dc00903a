"""docs/FLAGS.md: every flag of generate.py, from the argument parser itself, so the reference cannot drift from it.

    python -m ltx2gen.flag_reference > docs/FLAGS.md      (what `make docs` runs)

One table per group of the parser, in its order: each flag with what it takes (its metavar or its choices), its
default and its help. The flags of `GenerateConfig` are parsed with suppressed defaults (the namespace holds only the
flags given), so their defaults come from the dataclass fields, the same values a run starts from.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

from ltx2gen.config import GenerateConfig, build_parser

HEADER = """# Every flag of generate.py

Generated from the argument parser (`make docs`, which runs `python -m ltx2gen.flag_reference`); do not edit by
hand: `make test` fails while this file differs from what the parser says. What each feature does, with examples
and measurements, is on its own page: see the [README](../README.md#documentation). `python generate.py --help`
prints the same help.
"""


def portable_path(path: Path) -> str:
    """A default under the user's cache or home folder as every user's shell writes it (`~/.cache/...`), so the
    reference reads the same on every machine that generates it."""
    for root, shown in ((os.environ.get("XDG_CACHE_HOME"), "~/.cache"), (str(Path.home()), "~")):
        if root and Path(root) != Path("/") and path.is_relative_to(root):
            return f"{shown}/{path.relative_to(root).as_posix()}"
    return str(path)


def shown_default(value) -> str:
    if value is None or value is argparse.SUPPRESS:
        return ""
    if value is False:
        return "off"
    if isinstance(value, Path):
        return f"`{portable_path(value)}`"
    return f"`{value}`"


def takes(action: argparse.Action, formatter: argparse.HelpFormatter) -> str:
    """What follows the flag on the command line: nothing for a switch, one of its choices, or its metavar."""
    if action.nargs == 0:
        return "(switch)"
    if action.choices:
        return ", ".join(f"`{choice}`" for choice in action.choices)
    # argparse's own rendering, as --help prints it (`SPEC [SCALE] [SPEC [SCALE] ...]` for a repeatable pair)
    return f"`{formatter._format_args(action, action.dest.upper())}`"


def cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def flag_row(action: argparse.Action, defaults: dict, formatter: argparse.HelpFormatter) -> str:
    default = defaults.get(action.dest, action.default) if action.default is argparse.SUPPRESS else action.default
    help_text = action.help or ""
    # `config.add_fields` repeats a shown default at the end of the help; here it has its own column.
    help_text = help_text.removesuffix(f" (default: {default})").replace("<", "&lt;")  # not an HTML tag
    flags = ", ".join(f"`{flag}`" for flag in action.option_strings)
    return "| " + " | ".join(cell(text) for text in (flags, takes(action, formatter), shown_default(default),
                                                        help_text)) + " |"


def render(parser: argparse.ArgumentParser | None = None) -> str:
    """The whole reference of `parser` (generate.py's by default) as Markdown."""
    parser = parser or build_parser()
    defaults = {field.name: field.default for field in dataclasses.fields(GenerateConfig)}
    formatter = parser._get_formatter()
    sections = [HEADER]
    # argparse keeps its groups, in the order --help prints them, only in this attribute.
    for group in parser._action_groups:
        actions = [action for action in group._group_actions if action.option_strings]
        if not actions:
            continue
        rows = [flag_row(action, defaults, formatter) for action in actions]
        description = f"\n{group.description}\n" if group.description else ""
        sections.append(f"## {group.title}\n{description}\n| flag | takes | default | meaning |\n|---|---|---|---|\n"
                        + "\n".join(rows) + "\n")
    return "\n".join(sections)


if __name__ == "__main__":
    print(render(), end="")
