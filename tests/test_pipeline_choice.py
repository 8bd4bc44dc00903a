"""`--pipeline auto` for each published repo (configuration files only): two-stage, Lightricks' recipe, for a distilled
checkpoint whose version's latent upsampler is at hand, else distilled or full with the reason in the plan line."""

import shutil
from pathlib import Path

import huggingface_hub.constants
import pytest

from ltx2gen import pipeline_choice
from ltx2gen.config import GenerateConfig, build_parser
from tests.test_checkpoint import PUBLISHED

UPSCALER_23 = "rootonchair/LTX-2.3-spatial-upscaler-x2-v1.1-Diffusers"


def settings(model: Path, *flags: str) -> GenerateConfig:
    length = [] if "--seconds" in flags else ["--num-frames", "161"]
    return GenerateConfig.from_args(build_parser().parse_args(
        ["--prompt", "a fox", "--model", str(model), "--width", "1920", "--height", "1088", *length, *flags]))


def published(tmp_path: Path, repo: str) -> Path:
    """The repo's configuration files in a folder of the repo's own name."""
    folder = tmp_path / repo.split("/")[1]
    shutil.copytree(PUBLISHED / repo.replace("/", "--"), folder)
    return folder


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> Path:
    """An empty Hugging Face cache of this test's own."""
    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


def cache_repo(cache: Path, repo: str) -> None:
    """`repo`'s configuration files in `cache` as huggingface_hub lays a download out."""
    folder = cache / f"models--{repo.replace('/', '--')}"
    shutil.copytree(PUBLISHED / repo.replace("/", "--"), folder / "snapshots" / "0123abc")
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text("0123abc")


@pytest.mark.parametrize("repo, expected", [
    ("rootonchair/LTX-2-19b-distilled", "two-stage"),  # its own latent_upsampler/
    ("Lightricks/LTX-2.5-Diffusers", "two-stage"),
    ("Lightricks/LTX-2", "full"),
    ("diffusers/LTX-2.3-Diffusers", "full"),
])
def test_auto_takes_two_stage_for_a_distilled_checkpoint_with_its_upsampler(tmp_path, hub_cache, repo, expected):
    config = settings(published(tmp_path, repo))
    assert config.pipeline == expected
    if expected == "two-stage":
        assert "two stages, Lightricks' recipe for a distilled model" in pipeline_choice.reason(config)


def test_ltx_2_3_distilled_takes_two_stage_once_its_upsampler_is_in_the_cache(tmp_path, hub_cache):
    model = published(tmp_path, "diffusers/LTX-2.3-Distilled-Diffusers")
    alone = settings(model)
    assert alone.pipeline == "distilled"
    assert "no latent upsampler for it in the model or the Hugging Face cache" in pipeline_choice.reason(alone)
    cache_repo(hub_cache, UPSCALER_23)
    assert settings(model).pipeline == "two-stage"


@pytest.mark.parametrize("flags, why", [
    (["--width", "992", "--height", "544"], "992x544 is not a multiple of 64 px"),
    (["--guidance-scale", "3"], "--guidance-scale asks for guidance"),
    (["--seconds", "20"], "renders in windows"),
])
def test_otherwise_one_stage_with_the_reason_in_the_plan_line(tmp_path, hub_cache, flags, why):
    config = settings(published(tmp_path, "rootonchair/LTX-2-19b-distilled"), *flags)
    assert config.pipeline == "distilled" and why in pipeline_choice.reason(config)


def test_distilled_asked_for_says_what_auto_would_take(tmp_path, hub_cache):
    config = settings(published(tmp_path, "rootonchair/LTX-2-19b-distilled"), "--pipeline", "distilled")
    assert pipeline_choice.reason(config) == ("as asked with --pipeline; auto would take two-stage, Lightricks' "
                                              "recipe for a distilled model")
