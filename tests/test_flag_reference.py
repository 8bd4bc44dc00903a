"""docs/FLAGS.md is what the argument parser says now: every flag of --help, with the defaults a run starts from."""

import argparse
import re
from pathlib import Path

from conftest import ROOT
from ltx2gen import flag_reference
from ltx2gen.config import build_parser

REFERENCE = ROOT / "docs" / "FLAGS.md"


def reference_rows(text: str) -> dict[str, list[str]]:
    """Each flag of the reference's tables and the row's other cells (takes, default, meaning)."""
    rows = {}
    for line in text.splitlines():
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]]
        if len(cells) == 4 and cells[0].startswith("`-"):
            for flag in re.findall(r"`(-[^`]+)`", cells[0]):
                rows[flag] = cells[1:]
    return rows


def test_the_reference_is_what_the_generator_writes_now():
    assert REFERENCE.read_text() == flag_reference.render(), \
        "docs/FLAGS.md differs from the argument parser: run `make docs` and commit it"


def test_every_flag_of_help_has_a_row_and_no_row_names_another():
    in_help = set(re.findall(r"(?<![\w-])--?[a-z][\w-]*", build_parser().format_help()))
    in_help -= {"--privileged"}  # a docker run option named in --drop-page-cache's help, not a flag of ours
    assert set(reference_rows(REFERENCE.read_text())) == in_help


def test_defaults_are_the_dataclass_defaults_the_parser_suppresses():
    rows = reference_rows(flag_reference.render())
    assert rows["--width"][1] == "`768`" and rows["--num-frames"][1] == "`97`"
    assert rows["--output"][1] == "`outputs/video.mp4`" and rows["--fps"][1] == "`24`"
    assert rows["--no-fp8"][:2] == ["(switch)", "off"]
    assert rows["--pipeline"][0] == "`auto`, `distilled`, `full`, `two-stage`, `dfr`"
    assert rows["--lora"][0] == "`SPEC [SCALE] [SPEC [SCALE] ...]`"
    assert rows["--prompt"][1] == "" and rows["--seed"][1] == ""
    # the default shown once, in its column, not again at the end of the help
    assert rows["--nag-tau"][1] == "`2.5`" and "(default: 2.5)" not in rows["--nag-tau"][2]


def test_a_flag_added_to_the_parser_shows_in_the_reference():
    parser = build_parser()
    parser.add_argument_group("extra").add_argument("--brand-new", choices=("a", "b"), default="a",
                                                     help="new | odd <text>")
    text = flag_reference.render(parser)
    assert text != REFERENCE.read_text()
    assert reference_rows(text)["--brand-new"] == ["`a`, `b`", "`a`", "new \\| odd &lt;text>"]
    assert "## extra" in text


def test_defaults_under_the_cache_or_home_folder_read_the_same_on_every_machine(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert flag_reference.portable_path(tmp_path / "cache" / "ltx2gen" / "x") == "~/.cache/ltx2gen/x"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert flag_reference.portable_path(Path.home() / ".cache" / "y") == "~/.cache/y"
    assert flag_reference.portable_path(Path("/srv/models")) == "/srv/models"
    assert flag_reference.shown_default(argparse.SUPPRESS) == ""
