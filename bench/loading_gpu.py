"""Loading weights from disk: what the disk itself reads, against the text encoder and the transformer as ours
loads them, with their memory peaks.

- `disk`: a component's weight files read cold (evicted from the page cache first) with plain reads and no GPU:
  the floor of any loader on this machine.
- `text_bf16`, `text_fp8`: the Gemma text encoder as the text stage loads it (`text.load_text_encoder`, streamed
  from its files), from bf16 files as `save_pretrained` writes them, in bf16 and with its linear layers stored in
  float8 as they load (`--text-fp8`), then one 1,024-token forward with every hidden state, as the text stage runs
  it. The FP8 run reports the relative error of its stacked hidden states against the bf16 run's.
- `published_text_bf16`, `published_text_fp8`, `published_text_from_pretrained`: the same from the text encoder
  as the published repos store it (float32 shards listed by `model.safetensors.index.json`, transformers-4 names,
  the vision tower beside the language model), streamed as above, and through transformers' from_pretrained.
- `transformer_bf16`, `transformer_fp8`: the streamed transformer loader (`ltx2gen.weights`), in bf16 and with each
  block quantized as it arrives (`--fp8 weight`).
- `vae_whole`, `vae_decoder`, `vae_decoder_prefetched`: the video VAE as the video stage loaded it before (whole,
  through diffusers' from_pretrained), as it loads it now (`video_decode.load_video_decoder`: the decoder's weights
  only), and the same once the decoder's file ranges are in the page cache (what `diffusion.prefetch_decoders` does
  while the transformer runs).

Each load runs in its own process from a cold page cache; "unified" is GPU memory allocated plus process RSS sampled
together every 10 ms. The full-size text encoder (23.5 GB) and transformer (38 GB) do not fit the GPU machine's disk
together, so each is written, measured and deleted in turn.

    python3 bench/loading_gpu.py --out OUT_DIR --work /tmp/loading   # full size (GPU)
    python3 bench/loading_gpu.py --smoke --out OUT_DIR               # the same code on the tiny model (CPU)
    python3 bench/loading_gpu.py --components vae --device cpu --out OUT_DIR   # the full-size VAE, no GPU needed
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

from compare_gpu import GIB, Sampler, run_child

ROOT = Path(__file__).resolve().parent.parent


TEXT_TOKENS = 1024
COMPONENT_CLASSES = {"text_encoder": ["transformers", "Gemma3ForConditionalGeneration"],
                     "transformer": ["diffusers", "LTX2VideoTransformer3DModel"],
                     "vae": ["diffusers", "AutoencoderKLLTX2Video"]}
RUNS = {"text_encoder": ("text_bf16", "text_fp8"),
        "published_text_encoder": ("published_text_bf16", "published_text_fp8", "published_text_from_pretrained"),
        "transformer": ("transformer_bf16", "transformer_fp8"),
        "vae": ("vae_whole", "vae_decoder", "vae_decoder_prefetched")}
FOLDERS = {"published_text_encoder": "text_encoder"}  # the model folder a component is written to, where not its name
COMPONENT_OF_RUN = {run: FOLDERS.get(name, name) for name, runs in RUNS.items() for run in runs}


def write_component(name: str, preset: str, model_dir: Path, device: str) -> float:
    """Seconds to build `name` of the preset on `device` and save it as the only component of `model_dir`."""
    import torch

    from ltx2gen.testing import synthetic
    from ltx2gen.testing.build import build_text_encoder, build_transformer, build_video_vae

    started = time.perf_counter()
    folder = FOLDERS.get(name, name)
    (model_dir / "model_index.json").write_text(json.dumps({folder: COMPONENT_CLASSES[folder]}) + "\n")
    if name == "published_text_encoder":  # float32, sharded and indexed, as the published repos store it
        synthetic.write_text_encoder(model_dir / folder, preset, seed=0, device=device)
        return time.perf_counter() - started
    build = {"text_encoder": build_text_encoder, "transformer": build_transformer,
             "vae": build_video_vae}[name]
    dtype = torch.float32 if preset == "tiny" else torch.bfloat16
    module = build(preset, seed=0, dtype=dtype, device=device)
    module.save_pretrained(model_dir / name, safe_serialization=True)
    del module
    if device == "cuda":  # give the writer's memory back before the measured processes start
        torch.cuda.empty_cache()
    return time.perf_counter() - started


def read_cold(folder: Path) -> dict:
    """Every weight file of `folder` read once with plain reads, after evicting it from the page cache."""
    from ltx2gen import memory
    from ltx2gen.weights import weight_files

    files = weight_files(folder)
    memory.evict_from_page_cache(files)
    buffer = bytearray(64 * 1024**2)
    started, total = time.perf_counter(), 0
    for path in files:
        with open(path, "rb", buffering=0) as handle:
            while read := handle.readinto(buffer):
                total += read
    seconds = time.perf_counter() - started
    memory.evict_from_page_cache(files)
    return {"run": "disk", "component": folder.name, "bytes": total, "gib": round(total / GIB, 2),
            "seconds": round(seconds, 2),
            "gib_per_s": round(total / GIB / seconds, 2)}


def child(args) -> int:
    """One load in this fresh process; writes its result JSON."""
    import torch

    from ltx2gen import components, diffusion, memory, text, video_decode

    device = components.resolve_device(args.device)
    dtype = components.default_dtype(device)
    name = COMPONENT_OF_RUN[args.child]
    fp8 = args.child.endswith("fp8")
    memory.evict_from_page_cache(components.model_weight_files(args.model))
    if args.child == "vae_decoder_prefetched":
        ranges = components.decoder_weight_ranges(args.model)
        memory.prefetch_into_page_cache(ranges).join()
        for path, offset, length in ranges:  # waits for the reads the prefetch queued, as diffusion would
            with open(path, "rb", buffering=0) as handle:
                handle.seek(offset)
                handle.read(length)
    sampler = Sampler(device)
    sampler.start()
    result = {"run": args.child}
    with memory.MemoryTracker(device).stage(name) as stage:
        with sampler.stage("load"):
            if args.child == "published_text_from_pretrained":  # what the text stage did with these files before
                from transformers import Gemma3ForConditionalGeneration

                model = stage.load(name, lambda: Gemma3ForConditionalGeneration.from_pretrained(
                    args.model / name, dtype=dtype, device_map=str(device)))
            elif name == "text_encoder":
                model = text.load_text_encoder(stage, args.model, device, dtype, mode="fp8" if fp8 else "resident")
            elif name == "vae":
                whole = args.child == "vae_whole"
                model = stage.load(name, lambda: components.load_component(args.model, name, device, dtype) if whole
                                   else video_decode.load_video_decoder(args.model, device, dtype))
            else:
                model = stage.load(name, lambda: diffusion.load_transformer(args.model, device, dtype,
                                                                        "weight" if fp8 else "off"))
        if name == "text_encoder":
            with sampler.stage("forward"), torch.no_grad():
                ids = torch.randint(0, model.config.text_config.vocab_size, (1, TEXT_TOKENS),
                                    generator=torch.Generator().manual_seed(0)).to(device)
                hidden = torch.stack(model(input_ids=ids, output_hidden_states=True).hidden_states).float().cpu()
            # Against the bf16 streamed load of the same files (the first run of the layout).
            bf16_run = "published_text_bf16" if args.child.startswith("published_") else "text_bf16"
            reference = args.result.with_name(f"{bf16_run}.hidden.pt")
            if args.child == bf16_run:
                torch.save(hidden, reference)
            elif reference.is_file():
                exact = torch.load(reference)
                result["relative_error"] = round(float((hidden - exact).norm() / exact.norm()), 4)
        del model
    result.update(sampler.finish())
    marks = dict((label, t) for t, label in result["marks"])
    result["load_s"] = round(marks["end load"] - marks["start load"], 2)
    if "end forward" in marks:
        result["forward_s"] = round(marks["end forward"] - marks["start forward"], 2)
    result.pop("samples")
    args.result.write_text(json.dumps(result) + "\n")
    return 0


def run_load(run: str, model_dir: Path, out: Path, device: str) -> dict:
    path = out / f"{run}.json"
    command = [sys.executable, __file__, "--child", run, "--model", str(model_dir), "--device", device,
               "--result", str(path)]
    return {"run": run, **run_child(command, path)}


def table(results: list[dict]) -> str:
    rows = ["| run | GiB read | load | forward | peak GPU | peak RSS | unified peak | relative error |",
            "|---|---|---|---|---|---|---|---|"]
    for r in results:
        if "error" in r:
            rows.append(f"| {r['run']} | failed: {r['error']} |||||||")
        elif r["run"] == "disk":
            rows.append(f"| disk, {r['component']} | {r['gib']} | {r['seconds']} s ({r['gib_per_s']} GiB/s) "
                        f"|||||| ")
        else:
            rows.append(f"| {r['run']} | | {r['load_s']} s | {r.get('forward_s', '')}{' s' if 'forward_s' in r else ''}"
                        f" | {r['peak_gpu_gib']} GiB | {r['peak_rss_gib']} GiB | {r['peak_unified_gib']} GiB "
                        f"| {r.get('relative_error', '')} |")
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="where loading.json and loading.md go")
    parser.add_argument("--work", type=Path, help="scratch folder for the weight files (default: OUT/work)")
    parser.add_argument("--smoke", action="store_true", help="the tiny model on CPU")
    parser.add_argument("--components", nargs="+", default=list(RUNS), choices=list(RUNS))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cuda", help="where the components load (default: cuda; cpu with --smoke)")
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)
    if not args.out:
        parser.error("--out is required")
    device = "cpu" if args.smoke else args.device
    preset = "tiny" if args.smoke else "full"
    work = args.work or args.out / "work"
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    for name in args.components:
        model_dir = work / name
        shutil.rmtree(model_dir, ignore_errors=True)
        model_dir.mkdir(parents=True)
        print(f"writing the {preset} {name}: {write_component(name, preset, model_dir, device):.0f} s", flush=True)
        os.sync()  # written pages cannot be evicted until they are on the disk, and writeback would slow the reads
        results.append(dict(read_cold(model_dir / FOLDERS.get(name, name)), component=name))
        for run in RUNS[name]:
            results.append(run_load(run, model_dir, args.out, device))
            print(json.dumps({k: v for k, v in results[-1].items() if k != "marks"}), flush=True)
        shutil.rmtree(model_dir)
    record = {"command": " ".join(["bench/loading_gpu.py", *(argv if argv is not None else sys.argv[1:])]),
              "date": time.strftime("%Y-%m-%d"), "preset": preset, "results": results}
    (args.out / "loading.json").write_text(json.dumps(record, indent=1) + "\n")
    (args.out / "loading.md").write_text(table(results))
    print(table(results))
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
