"""Flags from dataclasses: each field carries its flag's help, and the parser, the help and the flag reference
are built from the fields, so a default is written once. Bad input is one line and status 2."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import field


def opt(default, help: str, **argparse_kwargs):
    """A dataclass field that also describes its command-line flag."""
    return field(default=default, metadata={"help": help, **argparse_kwargs})


def add_fields(parser: argparse.ArgumentParser, cls: type, skip: tuple[str, ...] = (),
               given_only: bool = False) -> None:
    """Add one flag per dataclass field; defaults and help come from the field. `given_only`: the parsed namespace
    holds only the flags given (the dataclass fills in the rest), so a flag given at its default value is known to
    be given."""
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        meta = dict(f.metadata)
        help_text = meta.pop("help")
        flag = "--" + f.name.replace("_", "-")
        default = argparse.SUPPRESS if given_only else f.default
        if f.type in (bool, "bool"):
            parser.add_argument(flag, action="store_true", help=help_text, default=default)
            continue
        hidden = f.default is None or f.default is False or meta.get("required")  # 0.0 == False, yet is shown
        default_text = "" if hidden else f" (default: {f.default})"
        meta.setdefault("type", arg_type(f.type))
        parser.add_argument(flag, default=default, help=help_text + default_text, **meta)


def arg_type(annotation) -> type:
    """The type a field's flag converts its value to."""
    text = str(annotation)
    if text.startswith("int"):
        return int
    if text.startswith("float"):
        return float
    return str


class OneLineErrors(argparse.ArgumentParser):
    """Bad input is one line (what is wrong and what would be right) and status 2, without the usage block."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} [all flags: {self.prog} --help]\n")
