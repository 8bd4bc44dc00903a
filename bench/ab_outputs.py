"""A/B check that a change keeps every output bit-identical, on the tiny synthetic model (CPU, 2-3 minutes on 2 cores).

Renders with the real entry points (generate.py, decode_latents.py, as subprocesses, --no-timestamp, fixed seeds, one
CPU thread each): demo (make demo's clip), two_stage, refine_from (its kept stage-one latents), image, audio,
keyframes (three), windows (--seconds over --window-seconds, a --prompt-at), extend (the windows clip), batch (a mixed
batch file with an embedding cache), recovery (decode_latents.py on the demo's latents); and writes
case -> {artifact: sha256} as JSON. What is hashed is content, not containers: an MP4's decoded frames and its decoded
audio separately, each tensor of a safetensors file (latents, stage-one latents, the embedding cache) with its name,
dtype and shape, PNG pixels, and JSON (sidecars, latents metadata, the batch summary) with VOLATILE keys removed, the
run's folders written as <OUT> and <MODEL>, and a recorded hash of one of the run's files (made_from's inputs) written
as that file's name. The model is hashed too (case "model").

Across a refactor: run it from a checkout of the base commit and from one of the new commit, on the same machine and
with the same --model (the default is a fixed folder under the system temp dir, built there when missing; the
embedding cache's file names hash the model's absolute path, so a different model folder renames them), then compare:

    git worktree add /tmp/base BASE_COMMIT
    (cd /tmp/base && python /path/to/bench/ab_outputs.py --json /tmp/a.json)   # the script may be newer than BASE
    python bench/ab_outputs.py --json /tmp/b.json
    python bench/ab_outputs.py --compare /tmp/a.json /tmp/b.json                # lists what differs; status 1 if any

The checkout whose code runs is the current directory's (generate.py and decode_latents.py are taken from it).
"""

import argparse
import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from fnmatch import fnmatch
from pathlib import Path

# What is dropped from every JSON (sidecars, the latents files' metadata, the batch summary): keys by their path
# (list items as *), matched at any depth. A key named "seconds" elsewhere is content (an audio input's length, a
# keyframe's time) and stays.
VOLATILE = (
    "created",  # the wall-clock time of the run
    "stage_seconds", "stages/*/seconds", "stages/*/load_seconds",  # how long each stage and load took
    "windows/*/seconds", "diffusion_stages/*/seconds",  # how long each window's or two-stage stage's denoising took
    "clips/*/seconds",  # the batch summary: how long each clip took
    "stages/*/*_gib",  # memory measured after each stage: RSS, MemAvailable, CUDA allocated/reserved/peak
    "versions",  # torch/diffusers/transformers versions: the A and B runs share one virtualenv anyway
)
# Files not hashed: summary.md is summary.json as a table plus its durations; logs are progress text.
SKIPPED = {"summary.md"}
SKIPPED_SUFFIXES = (".log",)

PROMPT = "w1 w2 w3"
SMALL = ["--width", "96", "--height", "64", "--num-frames", "17", "--seed", "7"]
DEMO = ["--width", "256", "--height", "160", "--num-frames", "49", "--seed", "42",  # make demo's clip
        "--prompt", "A lighthouse on a cliff at dusk, waves crashing below, gulls calling"]
TWO_STAGE = ["--pipeline", "two-stage", "--width", "128", "--height", "128", "--num-frames", "17", "--seed", "5"]


def cases(out: Path, model: Path) -> list[list[tuple[str, list[str]]]]:
    """The cases as two lanes that run side by side; each lane in order (a case may use an earlier one's files).
    Each case is (name, command): the command's files go to out/name/. Writes the batch case's file among the inputs."""
    inputs = out / "inputs"

    def generate(name, *flags, prompt=PROMPT):
        return [sys.executable, "generate.py", "--model", str(model), "--no-timestamp", "--prompt", prompt,
                "--output", str(out / name / f"{name}.mp4"), *flags]

    batch_file = inputs / "mixed.jsonl"
    common = {"prompt": PROMPT, "model": str(model), "width": 96, "height": 64, "num_frames": 17}
    lines = [dict(common, name="plain", seed=1, keep_latents=True),
             dict(common, name="image", seed=2, image=str(inputs / "picture.png")),
             dict(common, name="audio", seed=3, audio=str(inputs / "tone.wav"), audio_strength=0.5),
             dict(common, name="plain_again", prompt="w3 w2 w1", seed=4)]
    batch_file.write_text("".join(json.dumps(line) + "\n" for line in lines))
    keyframes = [f"{inputs / 'first.png'}@0", f"{inputs / 'middle.png'}@f4:0.7", f"{inputs / 'last.png'}@end"]
    return [
        [("demo", generate("demo", "--keep-latents", *DEMO[:-2], prompt=DEMO[-1])),
         ("recovery", [sys.executable, "decode_latents.py", "--input", str(out / "demo" / "demo.latents.safetensors"),
                       "--output", str(out / "recovery" / "recovered.mp4")]),
         ("two_stage", generate("two_stage", "--keep-latents", *TWO_STAGE)),
         ("refine_from", [sys.executable, "generate.py", "--no-timestamp", "--refine-from",
                          str(out / "two_stage" / "two_stage.stage1.latents.safetensors"),
                          "--output", str(out / "refine_from" / "refined.mp4")]),
         ("image", generate("image", "--keep-latents", "--image", str(inputs / "picture.png"), "--image-strength",
                            "0.5", *SMALL))],
        [("windows", generate("windows", "--keep-latents", "--width", "96", "--height", "64", "--seconds", "1.7",
                              "--window-seconds", "1", "--prompt-at", "f20:w3 w3 w3", "--seed", "7")),
         ("extend", generate("extend", "--keep-latents", "--extend", str(out / "windows" / "windows.mp4"),
                             "--extend-seconds", "0.5", "--seed", "8", prompt="w3 w2 w1")),
         ("audio", generate("audio", "--keep-latents", "--audio", str(inputs / "tone.wav"), "--audio-strength", "0.5",
                            *SMALL)),
         ("keyframes", generate("keyframes", "--keep-latents", *sum((["--keyframe", k] for k in keyframes), []),
                                "--width", "96", "--height", "64", "--num-frames", "25", "--seed", "7")),
         ("batch", [sys.executable, "generate.py", "--batch", str(batch_file), "--out", str(out / "batch"),
                    "--embedding-cache", str(out / "batch" / "embedding-cache")])],
    ]


def write_inputs(folder: Path) -> None:
    """The conditioning inputs, the same bytes on every run: 96x64 random pictures and a 1.3 s 440 Hz tone."""
    import wave

    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True)
    for seed, name in enumerate(("picture", "first", "middle", "last")):
        pixels = np.random.default_rng(seed).integers(0, 256, (64, 96, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{name}.png")
    rate = 22050  # neither the audio encoder's rate nor the vocoder's: both resample
    samples = (0.5 * 32767 * np.sin(2 * np.pi * 440 * np.arange(round(1.3 * rate)) / rate)).astype("<i2")
    with wave.open(str(folder / "tone.wav"), "wb") as tone:
        tone.setnchannels(1)
        tone.setsampwidth(2)
        tone.setframerate(rate)
        tone.writeframes(samples.tobytes())


def run_lane(lane, out: Path, log) -> None:
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONHASHSEED="0")
    for name, command in lane:
        (out / name).mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        with open(out / "logs" / f"{name}.log", "w") as output:
            status = subprocess.run(command, stdout=output, stderr=subprocess.STDOUT, env=env).returncode
        log(f"{name}: {'ok' if status == 0 else f'FAILED (status {status})'} in {time.monotonic() - started:.1f} s")
        if status != 0:
            raise RuntimeError(f"case {name} failed: see {out / 'logs' / f'{name}.log'}")


# --- hashing ---------------------------------------------------------------------------------------------------------

def sha256(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)
    return digest.hexdigest()


def volatile(path: str) -> bool:
    return any(fnmatch(path, pattern) or fnmatch(path, "*/" + pattern) for pattern in VOLATILE)


def stable_json(value, places: dict[str, str], path: str = ""):
    """`value` without VOLATILE keys, with the run's folders as placeholders and JSON held in strings parsed."""
    if isinstance(value, dict):
        return {key: stable_json(item, places, f"{path}/{key}".lstrip("/")) for key, item in value.items()
                if not volatile(f"{path}/{key}".lstrip("/"))}
    if isinstance(value, list):
        return [stable_json(item, places, f"{path}/*".lstrip("/")) for item in value]
    if isinstance(value, str):
        if value[:1] in "{[":
            try:
                return stable_json(json.loads(value), places, path)
            except ValueError:
                pass
        for folder, placeholder in places.items():
            value = value.replace(folder, placeholder)
    return value


def json_digest(value, places) -> str:
    return sha256(json.dumps(stable_json(value, places), sort_keys=True).encode())


def safetensors_hashes(path: Path, places) -> dict[str, str]:
    """One hash per tensor (name, dtype, shape, bytes) and one of the metadata."""
    with open(path, "rb") as file:
        header = json.loads(file.read(struct.unpack("<Q", file.read(8))[0]))
        start = file.tell()
        hashes = {"metadata": json_digest(header.pop("__metadata__", {}), places)}
        for name, entry in sorted(header.items()):
            begin, end = entry["data_offsets"]
            file.seek(start + begin)
            described = json.dumps([name, entry["dtype"], entry["shape"]]).encode()
            hashes[name] = sha256(described, file.read(end - begin))
    return hashes


def decoded(path: Path, stream: str, pcm: list[str]) -> str:
    """The hash of one decoded stream with its geometry (size and rate, or sample rate and layout)."""
    from imageio_ffmpeg import get_ffmpeg_exe

    result = subprocess.run([get_ffmpeg_exe(), "-v", "info", "-nostdin", "-i", str(path), "-map", f"0:{stream}:0",
                             *pcm, "-"], capture_output=True, check=True)
    kind = "Video" if stream == "v" else "Audio"
    line = re.search(rf"Stream #0:\d+.*?: {kind}: (.*)", result.stderr.decode()).group(1)
    # the geometry the decode keeps: WxH and fps, or Hz and channel layout (not bitrates or codec tags)
    geometry = re.findall(r"\d+x\d+(?= |,|$)|[\d.]+ fps|\d+ Hz|mono|stereo", line)
    return sha256(json.dumps(geometry).encode(), result.stdout)


def mp4_hashes(path: Path) -> dict[str, str]:
    return {"video": decoded(path, "v", ["-f", "rawvideo", "-pix_fmt", "rgb24"]),
            "audio": decoded(path, "a", ["-f", "f32le"])}


def png_hash(path: Path) -> str:
    from PIL import Image

    with Image.open(path) as image:
        return sha256(json.dumps([image.mode, image.size]).encode(), image.tobytes())


def artifact_hashes(folder: Path, places) -> dict[str, str]:
    """Every file under `folder` by its relative path (#part for a file hashed in parts)."""
    hashes = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        name = path.relative_to(folder).as_posix()
        if path.name in SKIPPED or path.name.endswith(SKIPPED_SUFFIXES):
            continue
        if path.suffix == ".mp4":
            parts = mp4_hashes(path)
        elif path.suffix == ".safetensors":
            parts = safetensors_hashes(path, places)
        elif path.suffix == ".json":
            parts = {"": json_digest(json.loads(path.read_text()), places)}
        elif path.suffix == ".png":
            parts = {"": png_hash(path)}
        else:
            parts = {"": sha256(path.read_bytes())}
        hashes.update({f"{name}#{part}" if part else name: digest for part, digest in parts.items()})
    return hashes


# --- commands --------------------------------------------------------------------------------------------------------

def ensure_model(model: Path) -> None:
    if (model / "model_index.json").is_file():
        return
    print(f"building the tiny model in {model}", flush=True)
    partial = model.with_name(model.name + ".partial")  # renamed once whole: a failed build is never taken for one
    shutil.rmtree(partial, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "ltx2gen.testing.synthetic", "--preset", "tiny", "--out", str(partial)],
                   check=True, stdout=subprocess.DEVNULL, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    partial.rename(model)


def render_and_hash(out: Path, model: Path) -> dict[str, dict[str, str]]:
    write_inputs(out / "inputs")
    (out / "logs").mkdir()
    lanes = cases(out, model)
    with ThreadPoolExecutor(len(lanes)) as pool:
        for finished in [pool.submit(run_lane, lane, out, lambda line: print(line, flush=True)) for lane in lanes]:
            finished.result()
    places = {str(out.resolve()): "<OUT>", str(out): "<OUT>", str(model.resolve()): "<MODEL>", str(model): "<MODEL>"}
    places = dict(sorted(places.items(), key=lambda item: -len(item[0])))  # the longest folder first
    # A recorded hash of an input file (made_from's image, audio, extend) by the file's name: --extend's is of a
    # latents file whose metadata holds its absolute path. A hash computed otherwise stays as it is, and differs.
    places.update({sha256(path.read_bytes()): f"<sha256 of {path.relative_to(out).as_posix()}>"
                   for path in sorted(out.rglob("*")) if path.is_file()})
    # the input, one hash per file: a differing model explains every other difference
    model_files = {}
    for artifact, digest in artifact_hashes(model, places).items():
        model_files.setdefault(artifact.split("#")[0], []).append(digest)
    result = {"model": {name: sha256(*(d.encode() for d in digests)) for name, digests in model_files.items()}}
    for lane in lanes:
        for name, _ in lane:
            result[name] = artifact_hashes(out / name, places)
    return result


def compare(first: Path, second: Path) -> int:
    a, b = json.loads(first.read_text()), json.loads(second.read_text())
    differing = 0
    for case in sorted(set(a) | set(b)):
        left, right = a.get(case, {}), b.get(case, {})
        for artifact in sorted(set(left) | set(right)):
            if left.get(artifact) != right.get(artifact):
                differing += 1
                print(f"differs: {case} {artifact}: {left.get(artifact, 'missing')} vs "
                      f"{right.get(artifact, 'missing')}")
    total = len({(case, artifact) for data in (a, b) for case in data for artifact in data[case]})
    print(f"{differing} of {total} artifacts differ" if differing else f"all {total} artifacts are identical")
    return 1 if differing else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="an empty or new folder for the renders (default: a temp folder, "
                                                 "removed at the end)")
    parser.add_argument("--model", type=Path, default=Path(tempfile.gettempdir()) / "ltx2gen-ab-tiny-model",
                        help="the tiny model's folder, built there when missing (default: %(default)s)")
    parser.add_argument("--json", type=Path, help="write the hashes here too")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("A.json", "B.json"),
                        help="compare two runs' hashes instead of rendering; status 1 if any artifact differs")
    args = parser.parse_args(argv)
    if args.compare:
        return compare(*args.compare)
    if not Path("generate.py").is_file():
        parser.error("run it from a checkout's root (generate.py is taken from the current directory)")
    if args.out and args.out.exists() and any(args.out.iterdir()):
        parser.error(f"--out {args.out}: not empty; give a new or empty folder")
    if args.json and args.json.exists():
        parser.error(f"--json {args.json}: exists; give a new file")
    started = time.monotonic()
    try:
        ensure_model(args.model)
    except subprocess.CalledProcessError as failed:
        print(f"error: building the tiny model failed (status {failed.returncode}); see above", file=sys.stderr)
        return 1
    out = args.out or Path(tempfile.mkdtemp(prefix="ltx2gen-ab-"))
    out.mkdir(parents=True, exist_ok=True)
    try:
        hashes = render_and_hash(out, args.model)
    except RuntimeError as failed:  # `out` stays, with the case's log
        print(f"error: {failed}", file=sys.stderr)
        return 1
    if not args.out:
        shutil.rmtree(out)
    text = json.dumps(hashes, indent=1, sort_keys=True) + "\n"
    if args.json:
        args.json.write_text(text)
    print(text, end="")
    count = sum(len(artifacts) for artifacts in hashes.values())
    print(f"done: {count} artifacts of {len(hashes)} cases hashed in {time.monotonic() - started:.0f} s"
          + (f", written to {args.json}" if args.json else ""), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
