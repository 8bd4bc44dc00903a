"""--image and --keyframe on the tiny real model: the first frame follows the image, strength 1 is diffusers' stock
image-to-video pipeline, keyframes are the stock condition pipeline's, FP8 weights and camera LoRAs work with both,
bad files and times are refused before any model loads."""

import json
from fractions import Fraction

import numpy as np
import pytest
import torch
from PIL import Image

import decode_latents
import generate
from conftest import assert_refused_before_any_load, parse_config, run_generate
from ltx2gen import memory
from ltx2gen.image import image_crf, inspect_image, place_keyframes, prepare_frame
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
    assert source.crop_note("--image wide.png", 96, 64) == (
        "note: --image wide.png is 192x64, the clip 96x64: 96 px of the image (48 px each side, left and right) are "
        "cropped away, the rest scaled to fit")
    assert source.crop_note("--image wide.png", 288, 96) is None


def png_16_bit_rgb(path, pixels: np.ndarray):
    """A 16-bit RGB PNG of `pixels` (uint16 [height, width, 3]), which Pillow reads but does not write."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    height, width = pixels.shape[:2]
    rows = b"".join(b"\0" + row.astype(">u2").tobytes() for row in pixels)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    return path


def flat_frame(path) -> float:
    """The prepared frame of a flat image, in [-1, 1] (H.264 at CRF 0 keeps a flat image flat)."""
    frame = prepare_frame(inspect_image(path), 96, 64, crf=0)
    assert float(frame.max() - frame.min()) < 0.02
    return float(frame.mean())


def test_every_image_mode_is_converted_faithfully(tmp_path):
    """Mid grey in every form an image file holds it comes out mid grey: 16-bit greyscale scaled, not clipped to
    white; palette, greyscale with an opaque alpha, RGBA, CMYK and 16-bit RGB."""
    grey = tmp_path / "grey16.png"
    Image.fromarray(np.full((64, 96), 32896, np.uint16)).save(grey)  # 128 * 257
    assert Image.open(grey).mode == "I;16"
    stored = {"grey16": grey, "rgb16": png_16_bit_rgb(tmp_path / "rgb16.png", np.full((64, 96, 3), 32896, np.uint16))}
    for mode, value in (("P", None), ("LA", (128, 255)), ("RGBA", (128, 128, 128, 255)), ("L", 128)):
        image = Image.new(mode, (96, 64), value) if value else \
            Image.new("RGB", (96, 64), (128, 128, 128)).convert("P", palette=Image.Palette.ADAPTIVE)
        image.save(stored.setdefault(mode, tmp_path / f"{mode}.png"))
    Image.new("CMYK", (96, 64), (0, 0, 0, 127)).save(stored.setdefault("CMYK", tmp_path / "cmyk.jpg"), quality=100)
    for name, path in stored.items():
        assert abs(flat_frame(path) - (128 / 127.5 - 1)) < 0.02, name


def test_an_image_is_taken_upright_as_its_exif_orientation_shows_it(tmp_path):
    stored = np.zeros((64, 96, 3), np.uint8)
    stored[:, :48] = 255  # the left half white as stored; shown rotated 90 degrees clockwise, the top half
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = 6  # Orientation: rotate 90 CW to display
    image.save(tmp_path / "turned.jpg", exif=exif, quality=100)
    source = inspect_image(tmp_path / "turned.jpg")
    assert (source.width, source.height) == (64, 96)
    frame = prepare_frame(source, 64, 96, crf=0)
    assert frame[0, :, 0, :40].mean() > 0.9 and frame[0, :, 0, 56:].mean() < -0.9


def write_bad_files(folder):
    (folder / "notes.png").write_text("not an image")
    Image.new("RGB", (96, 64)).save(folder / "anim.gif")
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 96, 3), dtype=np.uint8)).save(folder / "ok.png")
    (folder / "cut.png").write_bytes((folder / "ok.png").read_bytes()[:300])
    (folder / "ok.jpg").write_bytes(b"")
    Image.new("RGBA", (96, 64), (200, 0, 0, 128)).save(folder / "seethrough.png")


@pytest.mark.parametrize("name,extra,message", [
    ("missing.png", [], "no such file"),
    ("notes.png", [], "not a readable image"),
    ("cut.png", [], "not a readable image"),
    ("ok.jpg", [], "not a readable image"),
    ("anim.gif", [], "a GIF image; give a PNG, JPEG or WebP file"),
    ("seethrough.png", [], "has transparent pixels, which a video frame cannot show"),
    ("ok.png", ["--image-strength", "1.5"], "--image-strength 1.5: must be between 0 and 1"),
    ("ok.png", ["--image-strength", "nan"], "must be between 0 and 1"),
])
def test_bad_images_exit_2_with_one_line_before_any_model_loads(tiny_model, tmp_path, capsys, name, extra, message):
    write_bad_files(tmp_path)
    assert_refused_before_any_load(capsys, tmp_path, message, tiny_model, tmp_path / "out" / "c.mp4", "--keep-latents",
                                   "--image", str(tmp_path / name), *extra, prompt=PROMPT)


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
        validate_image_options(picture, 1.0, (), 17, Fraction(24))


# --keyframe: three stills pinned over a 25-frame clip (4 latent frames: keyframes can take frames 0, 1, 9 and 17).
KEYFRAME_CLIP = ["--width", "96", "--height", "64", "--num-frames", "25", "--seed", "7"]


@pytest.fixture(scope="module")
def stills(tmp_path_factory):
    """first.png, middle.png and last.png: different 96x64 pictures, in one folder."""
    folder = tmp_path_factory.mktemp("stills")
    for seed, name in enumerate(("first", "middle", "last"), 10):
        Image.fromarray(np.random.default_rng(seed).integers(0, 256, (64, 96, 3), dtype=np.uint8)).save(
            folder / f"{name}.png")
    return folder


@pytest.fixture(scope="module")
def keyframed(tiny_model, stills, tmp_path_factory):
    """A batch clip with the first frame as --image and two keyframes, one as a string and one as an object."""
    out = tmp_path_factory.mktemp("keyframed")
    batch = stills / "keyframes.jsonl"
    batch.write_text(json.dumps({
        "name": "pinned", "prompt": PROMPT, "model": str(tiny_model), "width": 96, "height": 64, "num_frames": 25,
        "seed": 7, "keep_latents": True, "image": "first.png",  # relative to the batch file
        "keyframes": ["middle.png@0.5s:0.7", {"path": "last.png", "at": "end"}]}) + "\n")
    assert generate.main(["--batch", str(batch), "--out", str(out)]) == 0
    return out / "pinned.mp4"


def encoded(tiny_model, picture):
    """The tiny VAE's latents of `picture`, normalised and packed as the transformer sees them ([1, tokens, C])."""
    from diffusers import LTX2ConditionPipeline

    latents, vae = image_latents(tiny_model, picture)
    return LTX2ConditionPipeline._pack_latents(
        LTX2ConditionPipeline._normalize_latents(latents, vae.latents_mean, vae.latents_std))


def test_keyframes_in_a_batch_equal_the_stock_condition_pipeline_with_the_same_conditions(keyframed, tiny_model,
                                                                                           stills):
    from diffusers import LTX2ConditionPipeline
    from diffusers.pipelines.ltx2.pipeline_ltx2_condition import LTX2VideoCondition

    sidecar = json.loads(keyframed.with_suffix(".json").read_text())
    # --image is the first keyframe; 0.5 s is frame 12, nearest to frame 9 (latent frame 2); the end, frame 24, is
    # nearest to frame 17 (latent frame 3), the last a keyframe can take.
    conditions = [LTX2VideoCondition(frames=Image.open(stills / "first.png"), index=0, strength=1.0),
                  LTX2VideoCondition(frames=Image.open(stills / "middle.png"), index=2, strength=0.7),
                  LTX2VideoCondition(frames=Image.open(stills / "last.png"), index=3, strength=1.0)]
    pipe = LTX2ConditionPipeline.from_pretrained(tiny_model)
    stock = pipe(conditions=conditions, prompt=PROMPT, generator=torch.Generator().manual_seed(7),
                 max_sequence_length=sidecar["prompt_tokens"], **sidecar["pipeline_call"])
    saved = load_latents(keyframed.with_suffix(".latents.safetensors"))
    torch.testing.assert_close(saved.video, stock.frames, rtol=0, atol=1e-5)
    torch.testing.assert_close(saved.audio, stock.audio, rtol=0, atol=1e-5)
    assert read_frames(keyframed).shape[0] == 25


def test_sidecar_and_latents_record_each_keyframe(keyframed, stills):
    import hashlib

    def expected(name, at, requested, frame, latent_frame, strength):
        path = stills / f"{name}.png"
        return {"path": str(path.resolve()), "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "at": at,
                "requested_frame": requested, "frame": frame, "seconds": round(frame / 24, 6),
                "latent_frame": latent_frame, "strength": strength, "crf": 33}  # LTX-2.0's conditioning CRF

    keyframes = [expected("middle", "0.5s", 12, 9, 2, 0.7), expected("last", "end", 24, 17, 3, 1.0)]
    metadata = load_latents(keyframed.with_suffix(".latents.safetensors")).metadata
    sidecar = json.loads(keyframed.with_suffix(".json").read_text())
    for record in (sidecar, metadata):
        assert record["keyframes"] == keyframes
        assert (record["image"], record["image_strength"], record["image_crf"]) == (
            str((stills / "first.png").resolve()), 1.0, 33)


def test_keyframes_with_fp8_a_lora_and_audio_reach_the_transformer_as_encoded_every_step(tiny_model, stills,
                                                                                          tmp_path, monkeypatch,
                                                                                          capsys):
    from huggingface_hub import constants
    from test_audio_input import encoded as encoded_audio
    from test_audio_input import write_tone

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    cache_camera_lora(tmp_path / "hub", tiny_model, "static")
    seen = []

    def record_inputs(module, args, kwargs):
        seen.append((kwargs["hidden_states"].detach().float(), kwargs["timestep"].detach().float()))

    def observe(event, name, obj):
        if event == "loaded" and name == "transformer":
            obj.register_forward_pre_hook(record_inputs, with_kwargs=True)

    memory.add_listener(observe)
    try:
        # 17 frames: keyframes can take frames 0, 1 and 9. Frame 4 is nearest to 1, the end (16) goes to 9.
        tone = write_tone(tmp_path / "tone.wav", 0.8)
        assert run_generate(tiny_model, tmp_path / "c.mp4", "--keep-latents", "--fp8", "weight", "--camera", "static",
                            "--audio", str(tone), "--keyframe", f"{stills / 'first.png'}@0",
                            "--keyframe", f"{stills / 'middle.png'}@f4:0.7", "--keyframe", f"{stills / 'last.png'}@end",
                            prompt=PROMPT) == 0
    finally:
        memory.remove_listener(observe)
    assert ("keyframes: first.png at frame 0 (0 s), middle.png at frame 1 (0.0417 s, asked 4), last.png at frame 9 "
            "(0.375 s, asked 16)") in capsys.readouterr().out
    first, last = (encoded(tiny_model, stills / f"{name}.png") for name in ("first", "last"))
    tokens = first.shape[1]  # per latent frame
    clip_tokens = 3 * tokens
    assert len(seen) == 8
    for hidden, timestep in seen:
        # The clip's tokens, then the keyframes after frame 0 appended in order (middle, last).
        assert hidden.shape[1] == clip_tokens + 2 * tokens
        torch.testing.assert_close(hidden[:, :tokens], first, rtol=0, atol=1e-5)  # replaced, clean, timestep 0
        torch.testing.assert_close(hidden[:, -tokens:], last, rtol=0, atol=1e-5)  # strength 1: clean every step
        assert not timestep[:, :tokens].any() and not timestep[:, -tokens:].any()
        middle_timestep = timestep[:, clip_tokens:clip_tokens + tokens]
        torch.testing.assert_close(middle_timestep, timestep[:, tokens:2 * tokens] * 0.3)  # strength 0.7
    saved = load_latents(tmp_path / "c.latents.safetensors")
    assert saved.video.shape[2] == 3 and read_frames(tmp_path / "c.mp4").shape[0] == 17
    torch.testing.assert_close(saved.audio, encoded_audio(tiny_model, tone), rtol=0, atol=1e-5)  # the audio followed
    sidecar = json.loads((tmp_path / "c.json").read_text())
    assert (sidecar["fp8"], sidecar["camera"], sidecar["loras"][0]["modules"]) == ("weight", "static", 6)
    assert [(k["frame"], k["latent_frame"]) for k in sidecar["keyframes"]] == [(0, 0), (1, 1), (9, 2)]


@pytest.mark.parametrize("num_frames,fps,at,requested,frame,latent_frame", [
    (25, "24", "0", 0, 0, 0),
    (25, "24", "f1", 1, 1, 1),
    (25, "24", "f5", 5, 1, 1),  # halfway between frames 1 and 9: the earlier
    (25, "24", "f6", 6, 9, 2),
    (25, "24", "0.5", 12, 9, 2),  # seconds, with or without the s
    (25, "24", "0.5s", 12, 9, 2),
    (25, "24", "end", 24, 17, 3),
    (97, "24000/1001", "2", 48, 49, 7),  # 2 s at 23.976 fps is frame 47.95
    (97, "24", "end", 96, 89, 12),
    (97, "24", "f89", 89, 89, 12),
    (1, "24", "end", 0, 0, 0),
])
def test_a_time_maps_to_the_nearest_frame_a_keyframe_can_take(tmp_path, num_frames, fps, at, requested, frame,
                                                             latent_frame):
    Image.new("RGB", (96, 64)).save(tmp_path / "k.png")
    config = parse_config("--num-frames", str(num_frames), "--fps", fps, "--keyframe", f"{tmp_path / 'k.png'}@{at}")
    (keyframe,) = place_keyframes(None, 1.0, config.keyframe, config.num_frames, config.fps)
    assert (keyframe.requested_frame, keyframe.frame, keyframe.latent_frame) == (requested, frame, latent_frame)


@pytest.mark.parametrize("flags,message", [
    (["--keyframe", "{ok}"], "--keyframe {ok}: give PATH@TIME[:STRENGTH]"),
    (["--keyframe", "{ok}@soon"], "--keyframe {ok}@soon: give PATH@TIME[:STRENGTH]"),
    (["--keyframe", "{ok}@-1"], "give PATH@TIME[:STRENGTH]"),
    (["--keyframe", "{ok}@1:x"], "the strength 'x' after ':' is not a number"),
    (["--keyframe", "{ok}@1:1.5"], "--keyframe {ok}@1:1.5: strength 1.5: must be between 0 and 1"),
    (["--keyframe", "{folder}/missing.png@0"], "--keyframe {folder}/missing.png@0: no such file"),
    (["--keyframe", "{folder}/notes.png@end"], "--keyframe {folder}/notes.png@end: not a readable image"),
    (["--keyframe", "{ok}@1.5"], "--keyframe {ok}@1.5: 1.5 s (frame 36) is past the clip's last frame, 24 (1 s"),
    (["--keyframe", "{ok}@f25"], "--keyframe {ok}@f25: frame 25 is past the clip's last frame, 24"),
    (["--keyframe", "{ok}@f10", "--keyframe", "{ok}@f12"],
     "--keyframe {ok}@f12: falls on frame 9 (latent frame 2), as --keyframe {ok}@f10 does"),
    (["--image", "{ok}", "--keyframe", "{ok}@0"], "--keyframe {ok}@0: the first frame is --image {ok}'s already"),
    (["--num-frames", "auto", "--keyframe", "{ok}@end"], "--keyframe {ok}@end with --num-frames auto"),
    (["--pipeline", "two-stage", "--width", "128", "--height", "128", "--keyframe", "{ok}@end"],
     "--keyframe {ok}@end: conditioning is not built into --pipeline two-stage yet"),
])
def test_bad_keyframes_exit_2_with_one_line_before_any_model_loads(tiny_model, tmp_path, capsys, flags, message):
    write_bad_files(tmp_path)
    fill = dict(ok=tmp_path / "ok.png", folder=tmp_path)
    assert_refused_before_any_load(capsys, tmp_path, message.format(**fill), tiny_model, tmp_path / "out" / "c.mp4",
                                   *(flag.format(**fill) for flag in flags), prompt=PROMPT, clip=KEYFRAME_CLIP)


def test_batch_keyframes_must_be_a_list_of_strings_or_objects(tmp_path):
    from ltx2gen.batch_lines import read_batch
    from ltx2gen.errors import ConfigError

    Image.new("RGB", (96, 64)).save(tmp_path / "end.png")
    batch = tmp_path / "b.jsonl"
    clip = {"name": "c", "prompt": PROMPT}
    batch.write_text(json.dumps(dict(clip, keyframes=["end.png@end:0.5", {"path": "end.png", "at": 2.5}])) + "\n")
    assert read_batch(batch)[0].argv(tmp_path / "c.mp4")[1:3] == [
        f"--keyframe={tmp_path / 'end.png'}@end:0.5", f"--keyframe={tmp_path / 'end.png'}@2.5"]
    for keyframes, message in (("end.png@end", "must be a list"), ([{"path": "end.png"}], "needs a 'path' string"),
                               ([{"path": "end.png", "at": 1, "when": 2}], "nothing else"), ([3], "neither")):
        batch.write_text(json.dumps(dict(clip, keyframes=keyframes)) + "\n")
        with pytest.raises(ConfigError, match=message):
            read_batch(batch)
