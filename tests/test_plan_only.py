"""generate.py --plan-only: the memory plan of both pools for the flags given, for this machine or another, without
reading any weight (the published configurations alone, which hold no weights)."""

import shutil
from importlib.resources import files

import pytest

import generate

PUBLISHED = files("ltx2gen") / "published" / "rootonchair--LTX-2-19b-distilled"


@pytest.fixture(scope="module")
def configs_only(tmp_path_factory):
    """LTX-2.0 distilled as published, configuration files only: a plan must need nothing more."""
    folder = tmp_path_factory.mktemp("model") / "LTX-2-19b-distilled"
    shutil.copytree(PUBLISHED, folder)
    assert not list(folder.rglob("*.safetensors"))
    return folder


def plan(configs_only, tmp_path, capsys, *flags):
    argv = ["--prompt", "a fox", "--model", str(configs_only), "--output", str(tmp_path / "c.mp4"), "--plan-only",
            *flags]
    try:
        status = generate.main(argv)
    except SystemExit as exit_:
        status = exit_.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.mark.parametrize("machine,size,expected", [
    (("22", "30"), ("1920", "1088", "161"), ["fp8 weights", "group offload", "fp8 text encoder", "diffusion GPU"]),
    (("15", "30"), ("1280", "704", "121"), ["group offload", "offloaded text encoder"]),
    (("80", "120"), ("1920", "1088", "161"), ["bfloat16", "(none offload)", "(resident text encoder)"]),
])
def test_a_plan_for_another_machine_names_its_modes_and_both_pools_peaks(configs_only, tmp_path, capsys, machine,
                                                                         size, expected):
    status, out, _ = plan(configs_only, tmp_path, capsys, "--plan-for-gpu", machine[0], "--plan-for-host",
                          machine[1], "--width", size[0], "--height", size[1], "--num-frames", size[2])
    assert status == 0
    for text in expected + [f"for {machine[0]} GiB GPU, {machine[1]} GiB host", "no weight read", "peak host"]:
        assert text in out, text
    assert not list(tmp_path.iterdir())  # nothing written


def test_a_12_gb_card_in_a_16_gb_desktop_reads_the_models_from_their_files(configs_only, tmp_path, capsys):
    status, out, _ = plan(configs_only, tmp_path, capsys, "--plan-for-gpu", "11", "--plan-for-host", "15")
    assert status == 0 and "(files offload)" in out and "read from the weight files as they run" in out


def test_a_machine_too_small_is_refused_in_one_line_with_what_does_not_fit(configs_only, tmp_path, capsys):
    status, _, err = plan(configs_only, tmp_path, capsys, "--plan-for-gpu", "4", "--plan-for-host", "15")
    assert status == 2 and len(err.strip().splitlines()) == 1
    assert "text stage does not fit 4 GiB GPU, 15 GiB host" in err and "GPU (" in err


def test_bf16_in_host_memory_on_a_24_gb_desktop_is_refused_with_the_flag_that_fits(configs_only, tmp_path, capsys):
    status, _, err = plan(configs_only, tmp_path, capsys, "--plan-for-gpu", "22", "--plan-for-host", "30",
                          "--fp8", "off", "--offload", "group", "--width", "1920", "--height", "1088",
                          "--num-frames", "161")
    assert status == 2 and "--fp8 weight would fit" in err


@pytest.mark.parametrize("flags,message", [
    (["--plan-for-gpu", "24"], "go together"),
    (["--plan-for-gpu", "0", "--plan-for-host", "32"], "from 1 to 4096"),
])
def test_bad_plan_flags_are_refused(configs_only, tmp_path, capsys, flags, message):
    status, _, err = plan(configs_only, tmp_path, capsys, *flags)
    assert status == 2 and message in err


def test_planning_for_another_machine_needs_plan_only(configs_only, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        generate.main(["--prompt", "a fox", "--model", str(configs_only), "--plan-for-gpu", "24", "--plan-for-host",
                       "32"])
    assert exit_.value.code == 2 and "needs --plan-only" in capsys.readouterr().err


def test_a_plan_for_this_cpu_machine_says_nothing_is_offloaded(configs_only, tmp_path, capsys):
    status, out, _ = plan(configs_only, tmp_path, capsys, "--device", "cpu")
    assert status == 0 and "nothing is offloaded" in out


def test_a_batch_is_not_rendered_when_only_a_plan_was_asked_for(tmp_path, capsys):
    batch = tmp_path / "b.jsonl"
    batch.write_text('{"name": "a", "prompt": "a fox"}\n')
    with pytest.raises(SystemExit) as exit_:
        generate.main(["--batch", str(batch), "--out", str(tmp_path / "out"), "--plan-only"])
    assert exit_.value.code == 2 and "--plan-only plans one clip" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_two_stage_plans_its_latent_upsampler_beside_the_transformer(configs_only, tmp_path, capsys):
    """Between its two runs the upsampler (0.93 GiB for LTX-2.0's, from its configuration) loads beside the
    transformer: on a small clip, whose activations (0.13 GiB over their base) are smaller, it sets the diffusion
    stage's GPU peak."""
    def diffusion_gpu(pipeline: str) -> float:
        status, out, _ = plan(configs_only, tmp_path, capsys, "--plan-for-gpu", "11", "--plan-for-host", "15",
                              "--width", "512", "--height", "320", "--num-frames", "49", "--pipeline", pipeline)
        assert status == 0
        return float(out.split("diffusion GPU ")[1].split(" /")[0])

    assert diffusion_gpu("two-stage") - diffusion_gpu("distilled") == pytest.approx(0.8, abs=0.1)
