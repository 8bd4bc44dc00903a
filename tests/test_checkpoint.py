"""What a checkpoint is, read from its files before any weight: which pipeline it was trained for, where it comes
from, how its video VAE compresses, and LTX-2's default negative prompt."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import generate
from conftest import ROOT, linked_copy, parse_config
from ltx2gen.checkpoint import DEFAULT_NEGATIVE_PROMPT, detect_pipeline
from ltx2gen.errors import ConfigError

PUBLISHED = ROOT / "ltx2gen" / "published"


def checkpoint_folder(folder: Path, repo: str) -> Path:
    """A folder holding a published repo's configuration files (no weights) under any name."""
    shutil.copytree(PUBLISHED / repo.replace("/", "--"), folder)
    return folder


def test_the_default_negative_prompt_is_diffusers_ltx2_one():
    from diffusers.pipelines.ltx2 import utils

    assert DEFAULT_NEGATIVE_PROMPT == utils.DEFAULT_NEGATIVE_PROMPT


@pytest.mark.parametrize("repo, expected", [("rootonchair/LTX-2-19b-distilled", "distilled"),
                                            ("Lightricks/LTX-2", "full")])
def test_the_pipeline_follows_the_checkpoint_in_a_cache_snapshot_and_by_repo_id(tmp_path, repo, expected):
    owner, name = repo.split("/")
    snapshot = checkpoint_folder(tmp_path / f"models--{owner}--{name}" / "snapshots" / "0123abc", repo)
    assert detect_pipeline(str(snapshot))[0] == expected
    assert detect_pipeline(repo)[0] == expected
    # with its latent upsampler at hand, auto renders a distilled checkpoint in two stages, Lightricks' recipe
    assert parse_config("--model", str(snapshot)).pipeline == {"distilled": "two-stage"}.get(expected, expected)


def test_a_scheduler_without_dynamic_shifting_is_distilled_under_any_folder_name(tmp_path):
    folder = checkpoint_folder(tmp_path / "ltx2", "Lightricks/LTX-2")
    assert detect_pipeline(str(folder)) == ("full", "its scheduler shifts the sigmas with the clip size and its name, "
                                                    "ltx2, does not say distilled")
    config_file = folder / "scheduler" / "scheduler_config.json"
    config_file.write_text(json.dumps(dict(json.loads(config_file.read_text()), use_dynamic_shifting=False,
                                           shift_terminal=None)))
    assert detect_pipeline(str(folder))[0] == "distilled"


def test_a_video_vae_of_other_compression_is_refused_before_any_weight_is_read(tiny_model, tmp_path, capsys):
    folder = linked_copy(tiny_model, tmp_path / "model")
    (folder / "vae").unlink()
    linked_copy(tiny_model / "vae", folder / "vae")
    (folder / "vae" / "config.json").unlink()
    vae_config = json.loads((tiny_model / "vae" / "config.json").read_text())
    (folder / "vae" / "config.json").write_text(json.dumps(dict(vae_config, spatial_compression_ratio=64)))
    with pytest.raises(SystemExit) as exit_info:
        generate.main(["--prompt", "a fox", "--model", str(folder), "--output", str(tmp_path / "out" / "c.mp4")])
    assert exit_info.value.code == 2
    assert "its video VAE compresses x64 in space and x8 in time" in capsys.readouterr().err.splitlines()[-1]
    assert not (tmp_path / "out").exists()


def test_a_model_not_downloaded_exits_2_before_any_weight_is_read(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "generate.py"), "--prompt", "a fox", "--model",
                             "nobody/not-downloaded", "--output", str(tmp_path / "out" / "c.mp4")],
                            capture_output=True, text=True,
                            env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 2
    assert "--model nobody/not-downloaded: not in the Hugging Face cache" in result.stderr.splitlines()[-1]
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()


@pytest.mark.parametrize("folder, version", [("rootonchair--LTX-2-19b-distilled", "2.0"), ("Lightricks--LTX-2", "2.0"),
                                             ("diffusers--LTX-2.3-Diffusers", "2.3"),
                                             ("diffusers--LTX-2.3-Distilled-Diffusers", "2.3"),
                                             ("Lightricks--LTX-2.5-Diffusers", "2.5")])
def test_the_version_is_read_from_the_published_transformer_configuration(folder, version):
    from ltx2gen.checkpoint import model_version
    from ltx2gen.testing.published import PUBLISHED

    assert model_version(PUBLISHED / folder) == version


def test_a_version_without_a_transformer_configuration_is_a_config_error(tmp_path):
    from ltx2gen.checkpoint import model_version

    with pytest.raises(ConfigError, match="cannot read its transformer configuration"):
        model_version(tmp_path)


def test_the_audio_mel_compression_is_diffusers_audio_vaes():
    from diffusers.models.autoencoders.autoencoder_kl_ltx2_audio import LATENT_DOWNSAMPLE_FACTOR

    from ltx2gen.checkpoint import AUDIO_MEL_COMPRESSION

    assert AUDIO_MEL_COMPRESSION == LATENT_DOWNSAMPLE_FACTOR
