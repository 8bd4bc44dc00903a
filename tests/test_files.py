"""Temporary files of the atomic writers: created exclusively, never through a link planted at their name."""

import os
from fractions import Fraction

import numpy as np
import pytest
import torch

from ltx2gen import files
from ltx2gen.latents import load_latents, save_latents
from ltx2gen.video import probe, write_mp4


def plant_links(path, victim, count: int = 3) -> list:
    """Links at the partial-file names this process would write `path` through, each pointing at `victim`."""
    links = []
    for attempt in range(count):
        extra = f"-{attempt}" if attempt else ""
        link = path.with_name(f".{path.stem}.partial-{os.getpid()}{extra}{path.suffix}")
        link.symlink_to(victim)
        links.append(link)
    return links


@pytest.fixture
def victim(tmp_path):
    target = tmp_path / "elsewhere" / "precious.txt"
    target.parent.mkdir()
    target.write_text("keep me\n")
    return target


def writers(tmp_path):
    """Each writer of the product, by the file it writes."""
    frames = np.full((9, 64, 64, 3), 90, np.uint8)
    return {
        "sidecar.json": lambda path: files.write_json(path, {"a": 1}),
        "summary.md": lambda path: files.write_text(path, "| a |\n"),
        "clip.latents.safetensors": lambda path: save_latents(path, torch.zeros(1, 4, 2, 2, 2), torch.zeros(1, 2, 3, 4),
                                                              {"model": "m", "fps": 24, "width": 64, "height": 64,
                                                               "num_frames": 9}),
        "clip.mp4": lambda path: write_mp4(path, iter(frames), width=64, height=64, num_frames=9, fps=Fraction(24)),
    }


@pytest.mark.parametrize("name", ["sidecar.json", "summary.md", "clip.latents.safetensors", "clip.mp4"])
def test_a_writer_passes_over_links_planted_at_its_partial_names(tmp_path, victim, name):
    out = tmp_path / "out" / name
    out.parent.mkdir()
    links = plant_links(out, victim)
    writers(tmp_path)[name](out)
    assert victim.read_text() == "keep me\n"  # nothing was written through a link
    assert out.is_file() and not out.is_symlink()
    assert all(link.is_symlink() and os.readlink(link) == str(victim) for link in links)  # left as they were
    if name == "sidecar.json":
        assert out.read_text() == '{\n  "a": 1\n}\n'
    elif name == "clip.latents.safetensors":
        assert load_latents(out).video_format.num_frames == 9
    elif name == "clip.mp4":
        assert probe(out).frames == 9
    assert sorted(p.name for p in out.parent.iterdir()) == sorted([out.name, *(link.name for link in links)])


def test_the_partial_file_is_created_exclusively_before_the_writer_opens_it(tmp_path):
    out = tmp_path / "clip.json"
    with files.atomic_path(out) as temporary:
        assert temporary.is_file() and not temporary.is_symlink() and temporary.stat().st_size == 0
        assert temporary.name == f".clip.partial-{os.getpid()}.json"
        with files.atomic_path(out) as second:  # a second writer of the same name in this process
            assert second != temporary and second.name == f".clip.partial-{os.getpid()}-1.json"
            second.write_text("{}")
        temporary.write_text("[]")
    assert out.read_text() == "[]"
    assert [p.name for p in tmp_path.iterdir()] == ["clip.json"]


def test_a_dead_processs_numbered_partial_file_is_removed_as_stale(tmp_path):
    from test_faults import NEVER_RUNNING

    stale = [tmp_path / f".clip.partial-{NEVER_RUNNING}.json", tmp_path / f".clip.partial-{NEVER_RUNNING}-2.json"]
    running = tmp_path / ".clip.partial-1-1.json"
    for path in [*stale, running]:
        path.write_text("")
    assert sorted(files.remove_stale_partials(tmp_path / "clip.json")) == sorted(stale)
    assert running.exists()
