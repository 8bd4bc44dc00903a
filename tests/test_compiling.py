import pytest

from ltx2gen import compiling


def test_call_time_follows_the_measured_steps():
    # one transformer call on an H100: 0.40 s at 768x512x97 (4,992 video tokens), 5.1 s at 1920x1088x161 (42,840)
    assert compiling.call_seconds(4992) == pytest.approx(0.40, rel=0.05)
    assert compiling.call_seconds(42840) == pytest.approx(5.13, rel=0.05)


def test_the_compile_cache_note_survives_processes_and_keeps_each_shape_once(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "cache"))
    assert compiling.warm_graphs() == []
    compiling.remember("a")
    compiling.remember("a")
    compiling.remember("b")
    assert compiling.warm_graphs() == ["a", "b"]


def test_a_compile_cache_that_cannot_be_written_costs_nothing_but_the_note(tmp_path, monkeypatch):
    blocked = tmp_path / "file"
    blocked.write_text("")
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(blocked / "cache"))
    compiling.remember("a")
    assert compiling.warm_graphs() == []


def test_diffusion_time_is_estimated_only_for_measured_modes():
    assert compiling.diffusion_seconds(42840, 8, "off", "none", False) == pytest.approx(41, abs=1)
    assert compiling.diffusion_seconds(42840, 8, "weight", "group", False) > compiling.diffusion_seconds(
        42840, 8, "off", "none", False)
    assert compiling.diffusion_seconds(42840, 8, "weight", "sequential", False) is None
