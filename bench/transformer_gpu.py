"""One transformer step at full size, per memory/precision mode: peak GPU memory, step time and the relative error
of the output against plain bf16. Random seeded weights with the real LTX-2 19B shapes, built on the GPU.

    python3 bench/transformer_gpu.py --size 1920x1088x161 --modes stock bf16 fp8_weight --out result.json

A mode ending in `_nag` is its base mode with Normalized Attention Guidance in the text cross-attention (a negative
context of another 1,024 tokens): its step time against the base mode's is NAG's overhead.

Each mode builds the same transformer (same seed) and prepares it with the product's own functions (token-chunked
token-wise layers, FP8 quantization, offload), so the figures are those of `generate.py`.
The first mode is the reference for the relative error: list `stock` first.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import sys
import time
from pathlib import Path

import torch

from ltx2gen import diffusion, kernels, nag, patches, quant
from ltx2gen.checkpoint import latent_frame_count
from ltx2gen.testing import build, presets

GIB = 1024**3
# name: (fp8 mode, token chunking, offload, regional compile, FP8 video self-attention)
MODES = {
    "stock": ("off", False, "none", False, False),
    "bf16": ("off", True, "none", False, False),
    "bf16_compiled": ("off", True, "none", True, False),
    "fp8_weight": ("weight", True, "none", False, False),
    "fp8_dynamic": ("dynamic", True, "none", True, False),
    "bf16_fp8attn": ("off", True, "none", False, True),
    "bf16_compiled_fp8attn": ("off", True, "none", True, True),
    "fp8_dynamic_fp8attn": ("dynamic", True, "none", True, True),
    "group_stock": ("off", False, "group", False, False),
    "group": ("off", True, "group", False, False),
    "group_fp8": ("weight", True, "group", False, False),
    "group_compiled": ("off", True, "group", True, False),
    "group_leaf": ("off", True, "group_leaf", False, False),
    "group_leaf_fp8": ("weight", True, "group_leaf", False, False),
    "model_fp8": ("weight", True, "model", False, False),
}
NAG_MODES = {f"{mode}_nag": mode for mode in ("bf16", "bf16_compiled", "fp8_weight", "fp8_dynamic", "group",
                                               "group_compiled")}
NAG_SETTINGS = nag.NagSettings(scale=8.0, tau=2.5, alpha=0.25)


def step_inputs(config, width: int, height: int, frames: int, device: torch.device, guided: bool = False) -> dict:
    """What the pipeline hands a transformer of `config` at one distilled step, for one prompt of 1,024 tokens
    (followed by a negative prompt of 1,024 tokens when `guided`, as NAG's text stage leaves it)."""
    generator = torch.Generator().manual_seed(0)
    latent_frames, latent_h, latent_w = latent_frame_count(frames), height // 32, width // 32
    audio_frames = round(frames / 24.0 * 16000 / 160 / 4)

    def noise(*shape):
        return torch.randn(*shape, generator=generator).to(device, torch.bfloat16)

    context = 2048 if guided else 1024
    return dict(hidden_states=noise(1, latent_frames * latent_h * latent_w, config.in_channels),
                audio_hidden_states=noise(1, audio_frames, config.audio_in_channels),
                encoder_hidden_states=noise(1, context, config.caption_channels),
                audio_encoder_hidden_states=noise(1, context, config.caption_channels),
                encoder_attention_mask=torch.ones(1, context, device=device),
                audio_encoder_attention_mask=torch.ones(1, context, device=device),
                timestep=torch.tensor([900.0], device=device), num_frames=latent_frames, height=latent_h,
                width=latent_w, fps=24.0, audio_num_frames=audio_frames, use_cross_timestep=False,
                return_dict=False)


def prepare(mode: str, preset: str, device: torch.device) -> torch.nn.Module:
    fp8, chunk, offload, compiled, fp8_attention = MODES[mode]
    # Built on the device even when offloaded: 19B random weights take minutes to initialise on the CPU.
    transformer = build.build_transformer(preset, seed=0, device=device)
    if offload != "none":
        transformer.to("cpu")
    if fp8_attention:
        patches.video_self_attention_in_fp8(transformer)
    if chunk:
        patches.token_wise_layers_in_chunks(transformer)
        patches.rotary_embedding_in_chunks()
    if fp8 != "off":
        quant.quantize_fp8(transformer, fp8)
    if compiled:
        kernels.compile_blocks(transformer)
    if offload.startswith("group"):
        diffusion.stream_blocks(transformer, device, "leaf" if offload == "group_leaf" else "block")
    elif offload == "model":  # what `enable_model_cpu_offload` does for each model of a pipeline
        from accelerate import cpu_offload_with_hook

        cpu_offload_with_hook(transformer, device)
    return transformer


def measure(mode: str, preset: str, inputs: dict, device: torch.device, repeats: int,
            trace: bool = False) -> tuple[dict, torch.Tensor]:
    cuda = device.type == "cuda"
    torch._dynamo.utils.counters.clear()
    started = time.perf_counter()
    base = NAG_MODES.get(mode, mode)
    transformer = prepare(base, preset, device)
    guidance = nag.guided_cross_attention(transformer, NAG_SETTINGS) if mode in NAG_MODES else contextlib.nullcontext()
    synchronize(device)
    resident = torch.cuda.memory_allocated(device) / GIB if cuda else 0.0
    setup = time.perf_counter() - started
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    with torch.no_grad(), guidance:
        for _ in range(repeats + 1):  # the first call compiles, warms kernels and fills the offload pipeline
            synchronize(device)
            started = time.perf_counter()
            output = transformer(**inputs)[0]
            synchronize(device)
            times.append(time.perf_counter() - started)
    settings = dict(zip(("fp8", "chunked", "offload", "compiled", "fp8_attention"), MODES[base]))
    result = {"mode": mode, "settings": dict(settings,
                                             nag=NAG_SETTINGS.record() if mode in NAG_MODES else None),
              "graphs_compiled": torch._dynamo.utils.counters["stats"]["unique_graphs"],
              "setup_s": round(setup, 1), "first_step_s": round(times[0], 3),
              "step_s": round(min(times[1:]), 3), "resident_gib": round(resident, 2),
              "peak_gib": round(torch.cuda.max_memory_allocated(device) / GIB, 2) if cuda else None}
    if trace:
        with torch.no_grad():
            result["peak_allocations"] = allocations_at_peak(transformer, inputs, device)
    output = output.float().cpu()
    del transformer
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    torch._dynamo.reset()
    return result, output


def allocations_at_peak(transformer, inputs: dict, device: torch.device, top: int = 15) -> list[dict]:
    """Run one step while recording every CUDA allocation, and list the largest ones alive at the moment the memory
    allocated during the step peaked, with the Python line that made each (what bounds the peak)."""
    torch.cuda.memory._record_memory_history(max_entries=500_000, stacks="python")
    transformer(**inputs)
    synchronize(device)
    events = [event for trace in torch.cuda.memory._snapshot()["device_traces"] for event in trace
              if event["action"] in ("alloc", "free_completed")]
    torch.cuda.memory._record_memory_history(enabled=None)
    live, peak, peak_index = 0, 0, 0
    for index, event in enumerate(events):
        live += event["size"] if event["action"] == "alloc" else -event["size"]
        if live > peak:
            peak, peak_index = live, index
    alive = {}
    for event in events[:peak_index + 1]:
        if event["action"] == "alloc":
            alive[event["addr"]] = event
        else:
            alive.pop(event["addr"], None)

    def origin(event) -> str:
        frames = [frame for frame in event["frames"] if "diffusers" in frame["filename"] or
                  "ltx2gen" in frame["filename"]] or event["frames"] or [{"filename": "?", "line": 0, "name": "?"}]
        frame = frames[0]
        return f"{Path(frame['filename']).name}:{frame['line']} {frame['name']}"

    largest = sorted(alive.values(), key=lambda event: -event["size"])[:top]
    return [{"mib": round(peak / 2**20), "what": "allocated during the step, at its peak"}] + \
        [{"mib": round(event["size"] / 2**20), "what": origin(event)} for event in largest]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def linear_speed(tokens: int, device: torch.device, repeats: int = 20) -> dict:
    """The dynamic-FP8 linears of one block (video attention projections and feed-forward) over `tokens` rows,
    bf16 against FP8, both compiled: each layer's input is a fresh tensor, so here the activation quantization
    cannot fuse into a previous kernel (in the transformer it fuses into the norm and modulation before it)."""
    block = build.build_transformer("full", seed=0, device=device).transformer_blocks[0]
    layers = {name: module for name, module in block.named_modules()
              if isinstance(module, torch.nn.Linear) and quant.is_dynamic_layer(name)}
    generator = torch.Generator().manual_seed(0)
    inputs = {name: torch.randn(1, tokens, layer.in_features, generator=generator).to(device, torch.bfloat16)
              for name, layer in layers.items()}

    def timed() -> float:
        run = torch.compile(lambda: [layer(inputs[name]) for name, layer in layers.items()])
        with torch.no_grad():
            run()
            torch.cuda.synchronize()
            started = time.perf_counter()
            for _ in range(repeats):
                run()
            torch.cuda.synchronize()
        return (time.perf_counter() - started) / repeats

    bf16 = timed()
    from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, PerRow, quantize_

    quantize_(block, Float8DynamicActivationFloat8WeightConfig(granularity=PerRow()),
              filter_fn=lambda module, name: name in layers)
    torch._dynamo.reset()
    fp8 = timed()
    flops = sum(2 * tokens * layer.in_features * layer.out_features for layer in layers.values())
    return {"layers": sorted(layers), "tokens": tokens, "bf16_ms": round(bf16 * 1e3, 2),
            "fp8_ms": round(fp8 * 1e3, 2), "speedup": round(bf16 / fp8, 2),
            "bf16_tflops": round(flops / bf16 / 1e12), "fp8_tflops": round(flops / fp8 / 1e12)}


def attention_speed(tokens: int, device: torch.device, repeats: int = 10) -> dict:
    """One video self-attention (32 heads x 128) over `tokens` tokens with PyTorch's default kernel choice, with
    each SDPA kernel forced, and in FP8 as the product runs it (`attention.fp8_attention`: the per-tensor
    quantization of query, key and value, cuDNN's FP8 kernel, the output back to bf16): which kernel the default
    picks on this GPU, what each costs, and each one's error against the default (bf16) output."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from ltx2gen import attention

    generator = torch.Generator().manual_seed(0)
    query, key, value = (torch.randn(1, tokens, 32, 128, generator=generator).to(device, torch.bfloat16)
                         for _ in range(3))
    flops = 4 * tokens * tokens * 32 * 128

    def sdpa():
        return torch.nn.functional.scaled_dot_product_attention(
            query.transpose(1, 2), key.transpose(1, 2), value.transpose(1, 2)).transpose(1, 2)

    kernels_to_time = {"default": (sdpa, None), "flash": (sdpa, SDPBackend.FLASH_ATTENTION),
                       "cudnn": (sdpa, SDPBackend.CUDNN_ATTENTION), "efficient": (sdpa, SDPBackend.EFFICIENT_ATTENTION),
                       "cudnn_fp8": (lambda: attention.fp8_attention(query, key, value), None)}
    results, reference = {}, None
    for name, (attend, backend) in kernels_to_time.items():
        with torch.no_grad(), sdpa_kernel(backend) if backend else contextlib.nullcontext():
            output = attend()
            synchronize(device)
            started = time.perf_counter()
            for _ in range(repeats):
                attend()
            synchronize(device)
        seconds = (time.perf_counter() - started) / repeats
        results[name] = {"ms": round(seconds * 1e3, 1), "tflops": round(flops / seconds / 1e12)}
        if reference is None:
            reference = output
        else:
            results[name]["error_vs_default"] = {measure: round(error, 5) for measure, error in
                                                 attention.relative_errors(output, reference).items()}
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1920x1088x161", help="WIDTHxHEIGHTxFRAMES")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=[*MODES, *NAG_MODES])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--linears", action="store_true", help="also time the dynamic-FP8 linears alone (CUDA)")
    parser.add_argument("--trace-peak", metavar="MODE", help="list what is alive at the peak of one step of MODE")
    parser.add_argument("--attention-kernels", action="store_true",
                        help="also time one self-attention with each SDPA kernel (CUDA)")
    parser.add_argument("--preset", default="full", choices=sorted(presets.PRESETS),
                        help="transformer size: full (the default) or tiny (a CPU smoke run)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    width, height, frames = (int(value) for value in args.size.split("x"))
    device = torch.device(args.device)
    config = build.build_transformer(args.preset, device="meta").config
    inputs = step_inputs(config, width, height, frames, device)
    guided = set(args.modes) & set(NAG_MODES)
    guided_inputs = step_inputs(config, width, height, frames, device, guided=True) if guided else None
    record = {"size": args.size, "preset": args.preset, "video_tokens": inputs["hidden_states"].shape[1],
              "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "torch": torch.__version__, "modes": []}
    if args.attention_kernels:
        record["attention_kernels"] = attention_speed(record["video_tokens"], device)
        print(json.dumps(record["attention_kernels"]), flush=True)
    if args.linears:
        torch._dynamo.reset()
        record["linears"] = linear_speed(record["video_tokens"], device)
        print(json.dumps(record["linears"]), flush=True)
    reference = None
    for mode in args.modes:
        result, output = measure(mode, args.preset, guided_inputs if mode in NAG_MODES else inputs, device,
                                 args.repeats, mode == args.trace_peak)
        if mode in NAG_MODES:  # other inputs and a guided output: an error against the reference means nothing
            result["overhead_of"] = NAG_MODES[mode]
        elif reference is None:
            reference, result["reference"] = output, True
        else:
            result["relative_error"] = float((output - reference).norm() / reference.norm())
        record["modes"].append(result)
        print(json.dumps(result), flush=True)
        args.out.write_text(json.dumps(record, indent=2) + "\n")
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
