"""Random-weight post-processing models at the real architectures' sizes, and the reference loops' frames per second
(spandrel's plain call per frame; a Practical-RIFE inference_video.py-style loop, one pair at a time in float16), set
beside this package's batched stages on the same GPU.

    python bench/postprocess_models.py write DIR     # RealESRGAN_x2plus-random.safetensors, rife-random.pkl
    python bench/postprocess_models.py fps DIR WIDTH HEIGHT FRAMES
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from ltx2gen import postprocess, postprocess_models
from ltx2gen.ifnet import IFNet
from ltx2gen.torchvision_compat import prepare_torchvision

RIFE_426_WIDTHS = (192, 128, 96, 64, 32)  # RIFE 4.25/4.26, the layout of the released flownet.pkl


def write(folder: Path) -> None:
    prepare_torchvision()
    from safetensors.torch import save_file
    from spandrel.architectures.ESRGAN import ESRGAN

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    x2plus = ESRGAN(in_nc=3, out_nc=3, num_filters=64, num_blocks=23, scale=2, shuffle_factor=2)  # RealESRGAN_x2plus
    save_file({key: value.contiguous() for key, value in x2plus.state_dict().items()},
              folder / "RealESRGAN_x2plus-random.safetensors")
    torch.save(IFNet(RIFE_426_WIDTHS).state_dict(), folder / "rife-random.pkl")


def timed(label: str, frames: int, run) -> None:
    run(2)  # warm-up: kernels chosen, memory allocated
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    run(frames)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    print(f"| {label} | {frames / seconds:.2f} frames/s | peak {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB |",
          flush=True)


def fps(folder: Path, width: int, height: int, frames: int) -> None:
    device = torch.device("cuda")
    source = torch.rand(1, 3, height, width, device=device)
    upscaler = postprocess_models.load_upscaler(folder / "RealESRGAN_x2plus-random.safetensors", device)
    dtype = next(upscaler.model.parameters()).dtype

    def spandrel_plain(count):
        with torch.inference_mode():
            for _ in range(count):
                upscaler(source.to(dtype)).float().cpu()

    def ours_upscale(count):
        batch = source.expand(postprocess.FRAMES_PER_BATCH, -1, -1, -1)
        for _ in range(0, count, postprocess.FRAMES_PER_BATCH):
            for _ in postprocess.to_frames([postprocess.upscale_tiled(upscaler, batch, 512)]):
                pass

    timed(f"upscale x2 {width}x{height}, spandrel plain call per frame ({dtype})", frames, spandrel_plain)
    timed(f"upscale x2 {width}x{height}, ltx2gen (batches of {postprocess.FRAMES_PER_BATCH}, tiles 512)", frames,
          ours_upscale)
    network = postprocess_models.load_interpolator(folder / "rife-random.pkl", device)
    multiple = network.multiple
    padded = torch.nn.functional.pad(source, (0, -width % multiple, 0, -height % multiple)).half()
    half = torch.full((1, 1, 1, 1), 0.5, device=device, dtype=torch.float16)

    def practical_rife(count):  # inference_video.py: one pair at a time, padded, fp16, frame back to the host
        with torch.inference_mode():
            for _ in range(count):
                network(padded, padded, half)[:, :, :height, :width].float().cpu()

    def ours_interpolate(count):
        batches = (source.expand(postprocess.FRAMES_PER_BATCH, -1, -1, -1)
                   for _ in range(0, count, postprocess.FRAMES_PER_BATCH))
        for _ in postprocess.to_frames(postprocess.interpolated(batches, network, 2)):
            pass

    timed(f"interpolate x2 {width}x{height}, Practical-RIFE-style loop (new frames)", frames, practical_rife)
    timed(f"interpolate x2 {width}x{height}, ltx2gen (frames out)", frames, ours_interpolate)


if __name__ == "__main__":
    if sys.argv[1] == "write":
        write(Path(sys.argv[2]))
    else:
        fps(Path(sys.argv[2]), *map(int, sys.argv[3:6]))
