"""--image on the tiny real model: the first frame follows the image, strength 1 is diffusers' stock image-to-video
pipeline, FP8 weights and camera LoRAs work with it, bad files are refused before any model loads."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

import decode_latents
import generate
from conftest import run_generate
from ltx2gen import memory
from ltx2gen.image import image_crf, inspect_image, prepare_frame
from ltx2gen.latents import load_latents
from ltx2gen.video import read_frames

PROMPT = "w1 w2 w3"


@pytest.fixture(scope="module")
def picture(tmp_path_factory):
    """A 96x64 PNG (the clip's size, so no resize separates us from the stock pipeline's preprocessing)."""
    path = tmp_path_factory.mktemp("image") / "picture.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def runs(tiny_model, picture, tmp_path_factory):
    """Text-only, strength 1 and strength 0.5 runs of the same prompt and seed."""
    folder = tmp_path_factory.mktemp("runs")
    cases = {"text": [], "image": ["--image", str(picture)],
             "half": ["--image", str(picture), "--image-strength", "0.5"]}
    for name, extra in cases.items():
        assert run_generate(tiny_model, folder / f"{name}.mp4", "--keep-latents", *extra, prompt=PROMPT) == 0
    return folder


def image_latents(tiny_model, picture):
    """The tiny VAE's latents of the picture, normalised as the transformer sees them."""
    from diffusers import AutoencoderKLLTX2Video

    vae = AutoencoderKLLTX2Video.from_pretrained(tiny_model / "vae")
    with torch.no_grad():
        latents = vae.encode(prepare_frame(inspect_image(picture), 96, 64, image_crf(tiny_model))).latent_dist.mode()
    return latents, vae


def test_the_first_latent_frame_is_the_image_at_strength_1_and_nearer_it_the_stronger(runs, tiny_model, picture):
    # The tiny VAE has random weights, so its decode is no reconstruction of the image: the pixels of frame 0 say
    # nothing. The latents the decoder receives do: at strength 1 the first latent frame is the image's.
    expected, _ = image_latents(tiny_model, picture)
    distance = {name: (load_latents(runs / f"{name}.latents.safetensors").video[:, :, :1] - expected).abs().mean()
                for name in ("text", "image", "half")}
    assert distance["image"] < 1e-5
    assert distance["half"] < 0.8 * distance["text"]
    assert distance["image"] < 1e-4 * distance["text"]


def test_strength_1_equals_the_stock_image_to_video_pipeline_with_every_component(runs, tiny_model, picture):
    from diffusers import LTX2ImageToVideoPipeline

    sidecar = json.loads((runs / "image.json").read_text())
    pipe = LTX2ImageToVideoPipeline.from_pretrained(tiny_model)
    stock = pipe(image=Image.open(picture), prompt=PROMPT, generator=torch.Generator().manual_seed(7),
                 max_sequence_length=sidecar["prompt_tokens"], **sidecar["pipeline_call"])
    saved = load_latents(runs / "image.latents.safetensors")
    # Float32 rounding only (the staged transformer is read into fresh memory, see test_generate; the stock
    # pipeline scales pixels as x/255*2-1, ours as x/127.5-1): measured 2.4e-7.
    torch.testing.assert_close(saved.video, stock.frames, rtol=0, atol=1e-5)
    torch.testing.assert_close(saved.audio, stock.audio, rtol=0, atol=1e-5)


def test_sidecar_and_latents_record_the_image_and_recovery_still_works(runs, picture, tmp_path):
    sidecar = json.loads((runs / "half.json").read_text())
    metadata = load_latents(runs / "half.latents.safetensors").metadata
    import hashlib

    expected = {"image": str(picture.resolve()), "image_sha256": hashlib.sha256(picture.read_bytes()).hexdigest(),
                "image_strength": 0.5}
    for record in (sidecar, metadata):
        assert {key: record[key] for key in expected} == expected
    assert json.loads((runs / "text.json").read_text())["image"] is None
    recovered = tmp_path / "recovered.mp4"
    assert decode_latents.main(["--input", str(runs / "half.latents.safetensors"), "--output", str(recovered)]) == 0
    assert np.array_equal(read_frames(recovered), read_frames(runs / "half.mp4"))


def cache_camera_lora(cache, tiny_model, move: str):
    """A tiny LoRA where the Hugging Face cache keeps the camera-control LoRA of `move` (offline, as downloaded)."""
    from test_lora import write_lora

    from ltx2gen.lora import camera_lora

    spec = camera_lora(move)
    repo = cache / f"models--{spec.source.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    (repo / "snapshots" / ("0" * 40)).mkdir(parents=True)
    return write_lora(repo / "snapshots" / ("0" * 40) / spec.weight_name, tiny_model, seed=5)


def test_image_with_fp8_weights_and_a_camera_lora_frees_the_vae_before_the_transformer(tiny_model, picture, tmp_path,
                                                                                        monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    lora = cache_camera_lora(tmp_path / "hub", tiny_model, "dolly-in")
    events = []

    def observe(event, name, obj):
        events.append(name) if event == "load" and name in ("vae", "transformer") else None

    memory.add_listener(observe)
    try:
        assert run_generate(tiny_model, tmp_path / "c.mp4", "--keep-latents", "--image", str(picture), "--fp8",
                            "weight", "--camera", "dolly-in", prompt=PROMPT) == 0
    finally:
        memory.remove_listener(observe)
    # Diffusion loads no VAE (its stand-in holds the image latents); the VAE loads again only for the decode.
    assert events == ["vae", "transformer", "vae"]
    sidecar = json.loads((tmp_path / "c.json").read_text())
    assert (sidecar["fp8"], sidecar["camera"], sidecar["image_strength"]) == ("weight", "dolly-in", 1.0)
    assert sidecar["loras"][0]["file"] == str(lora.resolve()) and sidecar["loras"][0]["modules"] == 6
    first_latent_frame = load_latents(tmp_path / "c.latents.safetensors").video[:, :, :1]
    torch.testing.assert_close(first_latent_frame, image_latents(tiny_model, picture)[0], rtol=0, atol=1e-5)


def test_batch_files_take_image_and_strength_per_clip(tiny_model, picture, runs, tmp_path):
    batch = tmp_path / "clips.jsonl"
    common = {"prompt": PROMPT, "model": str(tiny_model), "width": 96, "height": 64, "num_frames": 17, "seed": 7,
              "keep_latents": True}
    batch.write_text(json.dumps(dict(common, name="still", image=str(picture), image_strength=0.5)) + "\n")
    assert generate.main(["--batch", str(batch), "--out", str(tmp_path / "out")]) == 0
    still = load_latents(tmp_path / "out" / "still.latents.safetensors")
    torch.testing.assert_close(still.video, load_latents(runs / "half.latents.safetensors").video, rtol=0, atol=1e-5)
    assert json.loads((tmp_path / "out" / "still.json").read_text())["image_strength"] == 0.5


def test_center_crop_keeps_the_middle_and_says_what_it_cut(tmp_path):
    wide = np.zeros((64, 192, 3), np.uint8)
    wide[:, 48:144] = 200  # the middle 96 columns
    path = tmp_path / "wide.png"
    Image.fromarray(wide).save(path)
    source = inspect_image(path)
    frame = prepare_frame(source, 96, 64, crf=0)
    assert frame.shape == (1, 3, 1, 64, 96)
    torch.testing.assert_close(frame, torch.full_like(frame, 200 / 127.5 - 1))
    assert source.crop_note(96, 64) == ("note: --image wide.png is 192x64, the clip 96x64: 96 px of the image (48 px "
                                        "each side, left and right) are cropped away, the rest scaled to fit")
    assert source.crop_note(288, 96) is None


def write_bad_files(folder):
    (folder / "notes.png").write_text("not an image")
    Image.new("RGB", (96, 64)).save(folder / "anim.gif")
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 96, 3), dtype=np.uint8)).save(folder / "ok.png")
    (folder / "cut.png").write_bytes((folder / "ok.png").read_bytes()[:300])
    (folder / "ok.jpg").write_bytes(b"")


@pytest.mark.parametrize("name,extra,message", [
    ("missing.png", [], "no such file"),
    ("notes.png", [], "not a readable image"),
    ("cut.png", [], "not a readable image"),
    ("ok.jpg", [], "not a readable image"),
    ("anim.gif", [], "a GIF image; give a PNG, JPEG or WebP file"),
    ("ok.png", ["--image-strength", "1.5"], "--image-strength 1.5: must be between 0 and 1"),
    ("ok.png", ["--image-strength", "nan"], "must be between 0 and 1"),
])
def test_bad_images_exit_2_with_one_line_before_any_model_loads(tiny_model, tmp_path, capsys, name, extra, message):
    write_bad_files(tmp_path)
    loads = []

    def observe(event, name, obj):
        loads.append(name) if event == "load" else None

    memory.add_listener(observe)
    try:
        with pytest.raises(SystemExit) as exit_info:
            run_generate(tiny_model, tmp_path / "out" / "c.mp4", "--keep-latents", "--image", str(tmp_path / name),
                         *extra, prompt=PROMPT)
    finally:
        memory.remove_listener(observe)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("generate.py: error: ") and message in error, error
    assert loads == [] and not (tmp_path / "out").exists()


def test_an_image_without_pyav_installed_is_refused_while_the_flags_are_checked(tmp_path, monkeypatch):
    import importlib.util

    from PIL import Image

    from ltx2gen.errors import ConfigError
    from ltx2gen.image import validate_image_options

    picture = tmp_path / "still.png"
    Image.new("RGB", (96, 64)).save(picture)
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None if name == "av" else find_spec(name))
    with pytest.raises(ConfigError, match="needs PyAV"):
        validate_image_options(picture, 1.0)
