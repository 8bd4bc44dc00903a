"""Issue #17: where FP8 video self-attention starts to beat bf16 SDPA. `attention_speed` (bench/transformer_gpu.py)
at video-token counts between the two measured before (4,992 and 42,840), plus cuDNN's FP8 kernel alone (inputs
already in e4m3, no quantization passes: what a compiled block leaves of the FP8 path's extra work, at best).
From the checkout's root: PYTHONPATH=$PWD python3 docs/results/fp8_dynamic_attention/threshold.py OUT.json"""

import json
import sys
import time

import torch

sys.path.insert(0, "bench")
from transformer_gpu import attention_speed  # noqa: E402

from ltx2gen import attention  # noqa: E402

# tokens: the clip sizes they are (latent frames x H/32 x W/32), where one is
POINTS = {4992: "768x512x97", 6630: "960x544x97", 8160: "960x544x121", 10710: "960x544x161", 12240: "",
          14080: "1280x704x121", 16320: "", 18480: "1280x704x161", 24480: "", 42840: "1920x1088x161"}


def kernel_only(tokens: int, device, repeats: int) -> float:
    generator = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, tokens, 32, 128, generator=generator).to(device, torch.bfloat16) for _ in range(3))
    scales = [attention.E4M3_MAX / attention.largest_magnitude(t).float() for t in (q, k, v)]
    q8, k8, v8 = ((t * s.to(t.dtype)).to(torch.float8_e4m3fn) for t, s in zip((q, k, v), scales))
    args = (q8, k8, v8, *(attention.as_scale(1 / s) for s in scales), attention.as_scale(scales[2]))
    with torch.no_grad():
        attention.cudnn_fp8_attention(*args)
        torch.cuda.synchronize(device)
        started = time.perf_counter()
        for _ in range(repeats):
            attention.cudnn_fp8_attention(*args)
        torch.cuda.synchronize(device)
    return (time.perf_counter() - started) / repeats


def main(out: str) -> None:
    import cudnn

    device = torch.device("cuda")
    record = {"device": torch.cuda.get_device_name(device), "torch": torch.__version__,
              "cudnn": torch.backends.cudnn.version(), "cudnn_frontend": getattr(cudnn, "__version__", "?"),
              "fp8_min_tokens": attention.FP8_MIN_TOKENS, "points": []}
    for tokens, size in POINTS.items():
        repeats = 10 if tokens > 30000 else 50
        result = attention_speed(tokens, device, repeats)
        flops = 4 * tokens * tokens * 32 * 128
        seconds = kernel_only(tokens, device, repeats)
        point = {"tokens": tokens, "size": size, "repeats": repeats, "kernels": result,
                 "cudnn_fp8_kernel_only": {"ms": round(seconds * 1e3, 2), "tflops": round(flops / seconds / 1e12)},
                 # from TFLOP/s, which keep more digits than the ms rounded to 0.1
                 "fp8_speedup_vs_default": round(result["cudnn_fp8"]["tflops"] / result["default"]["tflops"], 3),
                 "kernel_only_speedup_vs_default": round(flops / seconds / 1e12 / result["default"]["tflops"], 3)}
        record["points"].append(point)
        print(json.dumps(point), flush=True)
        with open(out, "w") as handle:
            json.dump(record, handle, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
